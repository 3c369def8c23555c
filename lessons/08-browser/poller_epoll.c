/*
 * poller_epoll.c - poller.h with Linux's epoll. The kernel keeps the list
 * of what is watched (epoll_ctl()), and epoll_wait() returns only what is
 * ready: a wait costs as much as the sockets that are ready, not the ones
 * that are watched. That is why it serves ten thousand clients where poll()
 * slows down.
 */
#include "poller.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

/* How many ready sockets one epoll_wait() may report; the rest wait for the next. */
#define EPOLL_BATCH 1024

struct poller {
    int epoll;
    struct epoll_event ready[EPOLL_BATCH];
};

static uint32_t epoll_events(unsigned events)
{
    return (events & POLLER_READ ? EPOLLIN : 0u) | (events & POLLER_WRITE ? EPOLLOUT : 0u);
}

struct poller *poller_create(int expected)
{
    (void)expected; /* the kernel grows its list as sockets come */
    struct poller *poller = malloc(sizeof *poller);
    if (poller == NULL)
        return NULL;
    poller->epoll = epoll_create1(EPOLL_CLOEXEC);
    if (poller->epoll < 0) {
        free(poller);
        return NULL;
    }
    return poller;
}

/* One epoll_ctl(): EPOLL_CTL_ADD or EPOLL_CTL_MOD. */
static int control(struct poller *poller, int operation, socket_t sock, unsigned events, void *data)
{
    struct epoll_event change = {.events = epoll_events(events), .data.ptr = data};
    return epoll_ctl(poller->epoll, operation, sock, &change);
}

int poller_add(struct poller *poller, socket_t sock, unsigned events, void *data)
{
    return control(poller, EPOLL_CTL_ADD, sock, events, data);
}

int poller_modify(struct poller *poller, socket_t sock, unsigned events, void *data)
{
    return control(poller, EPOLL_CTL_MOD, sock, events, data);
}

int poller_remove(struct poller *poller, socket_t sock)
{
    struct epoll_event unused = {0}; /* kernels before 2.6.9 wanted one, though it is ignored */
    return epoll_ctl(poller->epoll, EPOLL_CTL_DEL, sock, &unused);
}

int poller_wait(struct poller *poller, struct poller_event *events, int max, int timeout_ms)
{
    if (max > EPOLL_BATCH)
        max = EPOLL_BATCH;
    int ready = epoll_wait(poller->epoll, poller->ready, max, timeout_ms);
    if (ready < 0)
        return errno == EINTR ? 0 : -1; /* a signal: if it was Ctrl+C, the stop waker is readable now */
    for (int i = 0; i < ready; i++) {
        uint32_t got = poller->ready[i].events;
        /* An error or a hang-up: the next recv() or send() says which, so report both. */
        bool broken = (got & (EPOLLERR | EPOLLHUP)) != 0;
        events[i].data = poller->ready[i].data.ptr;
        events[i].events =
            (got & EPOLLIN || broken ? POLLER_READ : 0u) | (got & EPOLLOUT || broken ? POLLER_WRITE : 0u);
    }
    return ready;
}

void poller_destroy(struct poller *poller)
{
    if (poller == NULL)
        return;
    close(poller->epoll);
    free(poller);
}

const char *poller_name(void)
{
    return "epoll";
}
