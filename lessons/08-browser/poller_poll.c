/*
 * poller_poll.c - poller.h with POSIX poll(), the portable backend. The
 * poller keeps the array of what is watched, and every poll() hands all of
 * it to the kernel, which looks at each socket: a wait costs as much as
 * the sockets watched, ready or not. With ten thousand idle clients and a
 * few busy ones, that is ten thousand looks for a few lines (make bench
 * compares it with epoll).
 *
 * A descriptor is a small number on POSIX, so `slot_of` maps it straight
 * to its place in the array; removing swaps the last entry into the hole.
 */
#include "poller.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

struct poller {
    struct pollfd *fds; /* what poll() is given: one entry per watched socket */
    void **data;        /* data[i] goes with fds[i] */
    int count, capacity;
    int *slot_of; /* slot_of[fd]: the index of fd in fds, or -1 */
    int slots;    /* how many descriptors slot_of covers */
    int next;     /* where the last wait's reports left off in fds */
};

static short poll_events(unsigned events)
{
    return (short)((events & POLLER_READ ? POLLIN : 0) | (events & POLLER_WRITE ? POLLOUT : 0));
}

/* Grows an array of `*capacity` items of `size` bytes to hold at least `need`; returns it, or NULL. */
static void *grow(void *array, int *capacity, int need, size_t size)
{
    if (need <= *capacity)
        return array;
    int more = *capacity > 0 ? *capacity : 64;
    while (more < need)
        more *= 2;
    void *bigger = realloc(array, (size_t)more * size);
    if (bigger != NULL)
        *capacity = more;
    return bigger;
}

struct poller *poller_create(int expected)
{
    struct poller *poller = calloc(1, sizeof *poller);
    if (poller == NULL)
        return NULL;
    int capacity = 0;
    poller->fds = grow(NULL, &capacity, expected, sizeof *poller->fds);
    poller->data = malloc((size_t)capacity * sizeof *poller->data);
    poller->capacity = capacity;
    if (poller->fds == NULL || poller->data == NULL) {
        poller_destroy(poller);
        return NULL;
    }
    return poller;
}

/* Makes slot_of cover descriptor fd, new entries -1. Returns 0, or -1. */
static int cover(struct poller *poller, int fd)
{
    int old = poller->slots;
    int *bigger = grow(poller->slot_of, &poller->slots, fd + 1, sizeof *poller->slot_of);
    if (bigger == NULL)
        return -1;
    poller->slot_of = bigger;
    for (int i = old; i < poller->slots; i++)
        poller->slot_of[i] = -1;
    return 0;
}

int poller_add(struct poller *poller, socket_t sock, unsigned events, void *data)
{
    if (sock < 0 || cover(poller, sock) != 0)
        return -1;
    if (poller->slot_of[sock] >= 0) {
        errno = EEXIST;
        return -1;
    }
    int capacity = poller->capacity;
    struct pollfd *fds = grow(poller->fds, &capacity, poller->count + 1, sizeof *fds);
    if (fds == NULL)
        return -1;
    poller->fds = fds;
    void **data_array = realloc(poller->data, (size_t)capacity * sizeof *data_array);
    if (data_array == NULL)
        return -1;
    poller->data = data_array;
    poller->capacity = capacity;
    int slot = poller->count++;
    poller->fds[slot] = (struct pollfd){.fd = sock, .events = poll_events(events)};
    poller->data[slot] = data;
    poller->slot_of[sock] = slot;
    return 0;
}

int poller_modify(struct poller *poller, socket_t sock, unsigned events, void *data)
{
    if (sock < 0 || sock >= poller->slots || poller->slot_of[sock] < 0) {
        errno = ENOENT;
        return -1;
    }
    int slot = poller->slot_of[sock];
    poller->fds[slot].events = poll_events(events);
    poller->data[slot] = data;
    return 0;
}

int poller_remove(struct poller *poller, socket_t sock)
{
    if (sock < 0 || sock >= poller->slots || poller->slot_of[sock] < 0) {
        errno = ENOENT;
        return -1;
    }
    int slot = poller->slot_of[sock];
    int last = --poller->count;
    /* The last entry fills the hole, so the array stays packed. */
    poller->fds[slot] = poller->fds[last];
    poller->data[slot] = poller->data[last];
    poller->slot_of[poller->fds[slot].fd] = slot;
    poller->slot_of[sock] = -1;
    return 0;
}

int poller_wait(struct poller *poller, struct poller_event *events, int max, int timeout_ms)
{
    int ready = poll(poller->fds, (nfds_t)poller->count, timeout_ms);
    if (ready < 0)
        return errno == EINTR ? 0 : -1; /* a signal: if it was Ctrl+C, the stop waker is readable now */
    /* Report from where the last wait left off, so that with more ready than max none waits for ever. */
    int found = 0;
    for (int seen = 0; seen < poller->count && found < max && found < ready; seen++) {
        int slot = (poller->next + seen) % poller->count;
        short got = poller->fds[slot].revents;
        if (got == 0)
            continue;
        bool broken = (got & (POLLERR | POLLHUP | POLLNVAL)) != 0;
        events[found].data = poller->data[slot];
        events[found].events =
            (got & POLLIN || broken ? POLLER_READ : 0u) | (got & POLLOUT || broken ? POLLER_WRITE : 0u);
        found++;
    }
    poller->next = poller->count > 0 ? (poller->next + 1) % poller->count : 0;
    return found;
}

void poller_destroy(struct poller *poller)
{
    if (poller == NULL)
        return;
    free(poller->fds);
    free(poller->data);
    free(poller->slot_of);
    free(poller);
}

const char *poller_name(void)
{
    return "poll";
}
