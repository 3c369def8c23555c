/*
 * poller.h - readiness: which of many sockets can be read or written now.
 *
 * One thread serves every client by asking the system, in one call, which
 * sockets are ready, and doing only what will not wait. The poller is that
 * question, behind one small interface with a backend per system, chosen
 * when the program is built (the Makefile's POLLER=, as Redis's ae.c picks
 * ae_epoll.c or ae_select.c):
 *
 *   poller_epoll.c    Linux's epoll: the kernel keeps the interest list, and
 *                     a wait costs what is ready, not what is watched
 *   poller_poll.c     POSIX poll(): the whole list goes to the kernel at
 *                     every wait, so a wait costs what is watched (server-poll)
 *   poller_wsapoll.c  Windows' WSAPoll(), the same idea as poll()
 *
 * Readiness is level-triggered: a socket that still has bytes to read (or
 * room to write) is reported again at the next wait, so a loop may read only
 * part of what waits and come back for the rest. README.md compares this
 * with edge-triggered readiness, and with completion (IOCP, io_uring).
 */
#ifndef POLLER_H
#define POLLER_H

#include "platform.h"

/* What a socket is watched for, and what a wait reports. */
enum {
    POLLER_READ = 1,  /* bytes, a connection, the end of the stream or an error wait to be read */
    POLLER_WRITE = 2, /* a send() can take bytes (or will report the error) */
};

/* One ready socket, as poller_wait() reports it. */
struct poller_event {
    void *data;      /* what poller_add() was given for the socket */
    unsigned events; /* POLLER_READ and/or POLLER_WRITE (an error or a hang-up counts as both) */
};

struct poller;

/* A new poller, for about `expected` sockets (it grows). Returns it, or NULL. */
struct poller *poller_create(int expected);

/* Starts watching sock for `events`; data comes back with each of its events. Returns 0, or -1. */
int poller_add(struct poller *poller, socket_t sock, unsigned events, void *data);

/* Changes what a watched socket is watched for (0: nothing, for now). Returns 0, or -1. */
int poller_modify(struct poller *poller, socket_t sock, unsigned events, void *data);

/* Stops watching sock; call it before closing the socket. Returns 0, or -1. */
int poller_remove(struct poller *poller, socket_t sock);

/*
 * Waits until at least one watched socket is ready, or timeout_ms pass
 * (-1: no limit), and fills at most `max` events. Returns how many (0 when
 * the time ran out, or a signal came), or -1.
 */
int poller_wait(struct poller *poller, struct poller_event *events, int max, int timeout_ms);

/* Releases the poller; the sockets stay open. */
void poller_destroy(struct poller *poller);

/* Which backend this is: "epoll", "poll" or "WSAPoll". */
const char *poller_name(void);

#endif
