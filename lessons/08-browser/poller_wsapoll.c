/*
 * poller_wsapoll.c - poller.h with Windows' WSAPoll(), the same idea as
 * poll(): the array of what is watched goes to the system at every wait.
 * (Windows' scalable way is completion, not readiness: I/O completion
 * ports, which README.md compares.) A SOCKET is not a small number, so a
 * small hash table finds a socket's place in the array.
 */
#include "poller.h"

#include <stdlib.h>

struct poller {
    WSAPOLLFD *fds; /* what WSAPoll() is given: one entry per watched socket */
    void **data;    /* data[i] goes with fds[i] */
    int count, capacity;
    /* Open addressing: table[h] holds 1 + an index into fds, 0 for empty; its size is a power of two. */
    int *table;
    int table_size;
    int next; /* where the last wait's reports left off in fds */
};

static SHORT wsapoll_events(unsigned events)
{
    return (SHORT)((events & POLLER_READ ? POLLRDNORM : 0) | (events & POLLER_WRITE ? POLLWRNORM : 0));
}

static int hash_of(const struct poller *poller, socket_t sock)
{
    /* Windows hands out socket values in steps of four: drop those bits before mixing. */
    unsigned long long key = (unsigned long long)sock >> 2;
    return (int)((key * 11400714819323198485ull) >> 40) & (poller->table_size - 1);
}

/* The place in table where sock is, or where it would go. */
static int find(const struct poller *poller, socket_t sock)
{
    int at = hash_of(poller, sock);
    while (poller->table[at] != 0 && poller->fds[poller->table[at] - 1].fd != sock)
        at = (at + 1) & (poller->table_size - 1);
    return at;
}

/* Rebuilds the table at a size that keeps it at most half full. Returns 0, or -1. */
static int rehash(struct poller *poller, int need)
{
    int size = 64;
    while (size < 2 * need)
        size *= 2;
    if (size <= poller->table_size && poller->table != NULL)
        return 0;
    int *table = calloc((size_t)size, sizeof *table);
    if (table == NULL)
        return -1;
    free(poller->table);
    poller->table = table;
    poller->table_size = size;
    for (int i = 0; i < poller->count; i++)
        poller->table[find(poller, poller->fds[i].fd)] = i + 1;
    return 0;
}

struct poller *poller_create(int expected)
{
    struct poller *poller = calloc(1, sizeof *poller);
    if (poller == NULL || rehash(poller, expected > 0 ? expected : 1) != 0) {
        poller_destroy(poller);
        return NULL;
    }
    return poller;
}

int poller_add(struct poller *poller, socket_t sock, unsigned events, void *data)
{
    if (poller->count + 1 > poller->capacity) {
        int capacity = poller->capacity > 0 ? 2 * poller->capacity : 64;
        WSAPOLLFD *fds = realloc(poller->fds, (size_t)capacity * sizeof *fds);
        if (fds == NULL)
            return -1;
        poller->fds = fds;
        void **data_array = realloc(poller->data, (size_t)capacity * sizeof *data_array);
        if (data_array == NULL)
            return -1;
        poller->data = data_array;
        poller->capacity = capacity;
    }
    if (rehash(poller, poller->count + 1) != 0)
        return -1;
    int at = find(poller, sock);
    if (poller->table[at] != 0) {
        WSASetLastError(WSAEINVAL); /* watched already */
        return -1;
    }
    int slot = poller->count++;
    poller->fds[slot] = (WSAPOLLFD){.fd = sock, .events = wsapoll_events(events)};
    poller->data[slot] = data;
    poller->table[at] = slot + 1;
    return 0;
}

int poller_modify(struct poller *poller, socket_t sock, unsigned events, void *data)
{
    int at = find(poller, sock);
    if (poller->table[at] == 0) {
        WSASetLastError(WSAENOTSOCK);
        return -1;
    }
    int slot = poller->table[at] - 1;
    poller->fds[slot].events = wsapoll_events(events);
    poller->data[slot] = data;
    return 0;
}

int poller_remove(struct poller *poller, socket_t sock)
{
    int at = find(poller, sock);
    if (poller->table[at] == 0) {
        WSASetLastError(WSAENOTSOCK);
        return -1;
    }
    int slot = poller->table[at] - 1;
    /* Its table entry goes first, and the entries after it are put back where a search finds them... */
    poller->table[at] = 0;
    for (int next = (at + 1) & (poller->table_size - 1); poller->table[next] != 0;
         next = (next + 1) & (poller->table_size - 1)) {
        int moving = poller->table[next];
        poller->table[next] = 0;
        poller->table[find(poller, poller->fds[moving - 1].fd)] = moving;
    }
    /* ...then the last entry of the array fills the hole, and its table entry follows it. */
    int last = --poller->count;
    if (slot != last) {
        int moved_at = find(poller, poller->fds[last].fd);
        poller->fds[slot] = poller->fds[last];
        poller->data[slot] = poller->data[last];
        poller->table[moved_at] = slot + 1;
    }
    return 0;
}

int poller_wait(struct poller *poller, struct poller_event *events, int max, int timeout_ms)
{
    if (poller->count == 0) { /* WSAPoll() needs at least one socket */
        Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
        return 0;
    }
    int ready = WSAPoll(poller->fds, (ULONG)poller->count, timeout_ms);
    if (ready == SOCKET_ERROR)
        return -1;
    /* Report from where the last wait left off, so that with more ready than max none waits for ever. */
    int found = 0;
    for (int seen = 0; seen < poller->count && found < max && found < ready; seen++) {
        int slot = (poller->next + seen) % poller->count;
        SHORT got = poller->fds[slot].revents;
        if (got == 0)
            continue;
        bool broken = (got & (POLLERR | POLLHUP | POLLNVAL)) != 0;
        events[found].data = poller->data[slot];
        events[found].events = (got & POLLRDNORM || broken ? POLLER_READ : 0u) |
                               (got & POLLWRNORM || broken ? POLLER_WRITE : 0u);
        found++;
    }
    poller->next = (poller->next + 1) % poller->count;
    return found;
}

void poller_destroy(struct poller *poller)
{
    if (poller == NULL)
        return;
    free(poller->fds);
    free(poller->data);
    free(poller->table);
    free(poller);
}

const char *poller_name(void)
{
    return "WSAPoll";
}
