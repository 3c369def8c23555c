/*
 * hub.h - what the sessions of one server share, without any I/O: the
 * list of clients (CLIENT LIST), the channels of the chat (SUBSCRIBE,
 * PUBLISH) and the counters (INFO).
 *
 * PUBLISH in one session is output for other sessions: the hub appends
 * the message to each subscriber's own output (session_push()), where its
 * replies go too, so everything a client is sent has one home and one
 * order. The hub cannot send it (it has no sockets), so it tells the
 * driver through the output_ready() it was given: "this session has
 * something to send". The driver sends it before it waits again, as it
 * sends replies; so the event loop of lesson 04 stays the only code that
 * touches sockets, and a test can be a driver of its own
 * (tests/check_session.c, its case "pubsub").
 *
 * A subscription is one node in two lists, its channel's and its
 * session's, and in one hash table keyed by the pair: so subscribing,
 * unsubscribing and leaving cost the same for a client's 100,000th channel
 * as for its first, and a PUBLISH costs what it delivers.
 */
#ifndef HUB_H
#define HUB_H

#include "job.h"

#include <stddef.h>

struct session;
struct subscription;

/* An entry of a hash table: each kind of entry (a channel, a subscription) begins with one. */
struct hub_entry {
    struct hub_entry *next; /* in its bucket */
    size_t hash;            /* of its key */
    const void *key;        /* key bytes, inside the entry */
    size_t len;
};

/* A hash table of chained buckets, a power of two of them, that grows and shrinks with what it holds. */
struct hub_table {
    struct hub_entry **buckets; /* NULL until the first entry */
    size_t size, count;
};

struct hub {
    struct session *first;          /* every session, newest first */
    size_t clients;                 /* how many */
    struct hub_table sessions;      /* every session, by CLIENT ID: where a job's reply goes */
    struct hub_table channels;      /* channels with at least one subscriber, by name */
    struct hub_table subscriptions; /* every subscription, by (session, channel) */
    /* Called when a PUBLISH gave a session output to send, or made it too much; must end no session. */
    void (*output_ready)(void *driver, struct session *session);
    void *driver; /* output_ready()'s and job_counts()'s first argument */
    /* Fills in what INFO says of the jobs (NULL: the driver runs none). */
    void (*job_counts)(void *driver, struct job_counts *counts);
    long long wall_clock_us;    /* microseconds since 1970, as the driver read them at this wake-up (TIME) */
    long long started_ms;       /* when the server started, on the sessions' clock (uptime) */
    unsigned long long next_id; /* the next CLIENT ID */
    unsigned long long connections_received, commands_processed, messages_delivered;
};

enum hub_subscribed {
    HUB_ADDED,     /* it is subscribed now */
    HUB_ALREADY,   /* it was already: nothing changed */
    HUB_FULL,      /* it may subscribe to no more channels (max, given by the caller) */
    HUB_NO_MEMORY, /* no memory for it: nothing changed */
};

/* Starts an empty hub at now. */
void hub_init(struct hub *hub, long long now, void (*output_ready)(void *driver, struct session *session),
              void *driver);

/*
 * A session joins the hub, and gets its CLIENT ID (session_start() calls
 * it); returns 0, or -1 when out of memory. It leaves, and every channel,
 * with hub_remove().
 */
int hub_add(struct hub *hub, struct session *session);
void hub_remove(struct hub *hub, struct session *session);

/* The session with this CLIENT ID, or NULL when it has left (an id is never given again). */
struct session *hub_session(const struct hub *hub, unsigned long long id);

/* Subscribes the session to a channel, unless it has max channels already. */
enum hub_subscribed hub_subscribe(struct hub *hub, struct session *session, const char *name, size_t len,
                                  size_t max);

/* Unsubscribes it (nothing if it was not subscribed). */
void hub_unsubscribe(struct hub *hub, struct session *session, const char *name, size_t len);

/* Unsubscribes it from every channel: it can no longer receive (it ends, or its verdict is in). */
void hub_unsubscribe_all(struct hub *hub, struct session *session);

/* The name of the first channel the session subscribed to of those it still has, or NULL; *len its length. */
const char *hub_oldest_channel(const struct session *session, size_t *len);

/*
 * Appends the message to the output of every subscriber of the channel
 * (session_push()), and calls output_ready() for each. Returns how many
 * received it: one whose output would grow past its limit does not.
 */
long hub_publish(struct hub *hub, const char *name, size_t name_len, const char *message, size_t len);

/* Frees what the hub holds; every session must have left. */
void hub_free(struct hub *hub);

#endif
