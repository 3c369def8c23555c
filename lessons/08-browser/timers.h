/*
 * timers.h - deadlines, nearest first: a binary heap.
 *
 * An event loop must wake up when the nearest deadline of any client comes
 * (a client silent too long, a line taking too long, a reply that finds no
 * room), and must not look at ten thousand clients to find it. A heap keeps
 * the nearest at the top: finding it is free, and setting or removing one
 * costs log2(n) steps (14 for ten thousand).
 *
 * Each timer lives inside what it belongs to (a connection), which finds
 * itself from the timer with offsetof(); the heap only orders pointers.
 */
#ifndef TIMERS_H
#define TIMERS_H

#include <stddef.h>

struct timer {
    long long due; /* when it goes off, on the caller's clock */
    size_t slot;   /* 1 + its place in the heap; 0 while it is not set */
};

struct timers {
    struct timer **heap; /* heap[0] is due first */
    size_t len, cap;
};

/* Sets the timer to go off at due, whether it was set or not. Returns 0, or -1 when out of memory. */
int timers_set(struct timers *timers, struct timer *timer, long long due);

/* Unsets the timer, if it was set. */
void timers_cancel(struct timers *timers, struct timer *timer);

/* When the nearest timer goes off, or 0 when none is set. */
long long timers_next(const struct timers *timers);

/* Unsets and returns the nearest timer if it is due at now; NULL when none is. */
struct timer *timers_take_due(struct timers *timers, long long now);

/* Frees the heap (the timers themselves belong to their owners). */
void timers_free(struct timers *timers);

#endif
