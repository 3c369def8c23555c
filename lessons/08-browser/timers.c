/*
 * timers.c - see timers.h. The heap's rule: every timer is due no later
 * than the two below it (heap[2i + 1] and heap[2i + 2] below heap[i]).
 */
#include "timers.h"

#include <stdlib.h>

static void place(struct timers *timers, size_t at, struct timer *timer)
{
    timers->heap[at] = timer;
    timer->slot = at + 1;
}

/* Moves the timer at `at` up while it is due before the one above it. */
static void sift_up(struct timers *timers, size_t at)
{
    struct timer *timer = timers->heap[at];
    while (at > 0) {
        size_t above = (at - 1) / 2;
        if (timers->heap[above]->due <= timer->due)
            break;
        place(timers, at, timers->heap[above]);
        at = above;
    }
    place(timers, at, timer);
}

/* Moves the timer at `at` down while one below it is due sooner. */
static void sift_down(struct timers *timers, size_t at)
{
    struct timer *timer = timers->heap[at];
    for (;;) {
        size_t below = 2 * at + 1;
        if (below >= timers->len)
            break;
        if (below + 1 < timers->len && timers->heap[below + 1]->due < timers->heap[below]->due)
            below++; /* the sooner of the two */
        if (timer->due <= timers->heap[below]->due)
            break;
        place(timers, at, timers->heap[below]);
        at = below;
    }
    place(timers, at, timer);
}

int timers_set(struct timers *timers, struct timer *timer, long long due)
{
    if (timer->slot == 0) {
        if (timers->len == timers->cap) {
            size_t cap = timers->cap > 0 ? 2 * timers->cap : 64;
            struct timer **bigger = realloc(timers->heap, cap * sizeof *bigger);
            if (bigger == NULL)
                return -1;
            timers->heap = bigger;
            timers->cap = cap;
        }
        timer->due = due;
        place(timers, timers->len++, timer);
        sift_up(timers, timers->len - 1);
        return 0;
    }
    long long was = timer->due;
    timer->due = due;
    if (due < was)
        sift_up(timers, timer->slot - 1);
    else
        sift_down(timers, timer->slot - 1);
    return 0;
}

void timers_cancel(struct timers *timers, struct timer *timer)
{
    if (timer->slot == 0)
        return;
    size_t at = timer->slot - 1;
    timer->slot = 0;
    struct timer *last = timers->heap[--timers->len];
    if (at == timers->len)
        return; /* it was the last one */
    /* The last timer takes its place, then finds its own: up or down. */
    place(timers, at, last);
    sift_up(timers, at);
    sift_down(timers, last->slot - 1);
}

long long timers_next(const struct timers *timers)
{
    return timers->len > 0 ? timers->heap[0]->due : 0;
}

struct timer *timers_take_due(struct timers *timers, long long now)
{
    if (timers->len == 0 || timers->heap[0]->due > now)
        return NULL;
    struct timer *first = timers->heap[0];
    timers_cancel(timers, first);
    return first;
}

void timers_free(struct timers *timers)
{
    free(timers->heap);
    *timers = (struct timers){0};
}
