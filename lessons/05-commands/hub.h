/*
 * hub.h - what the sessions of one server share, without any I/O: the
 * list of clients (CLIENT LIST), the channels of the chat (SUBSCRIBE,
 * PUBLISH) and the counters (INFO).
 *
 * PUBLISH in one session puts a message into other sessions' mailboxes.
 * The hub cannot send it (it has no sockets), so it tells the driver
 * through the wake() it was given: "this session has mail". The driver
 * sends each mailbox after the wake-up's events, and a session fed before
 * that puts its mail ahead of its new replies itself. So the event loop of
 * lesson 04 stays the only code that touches sockets, and a test can be a
 * driver of its own (tests/check_session.c, its case "pubsub").
 *
 * A mailbox holds at most max_mailbox bytes: one PUBLISH may write to a
 * thousand mailboxes, and a subscriber that does not read must not grow
 * the server without bound. A message that does not fit is not queued;
 * the session is marked (mail_overflow) and the driver closes it.
 */
#ifndef HUB_H
#define HUB_H

#include <stddef.h>

struct session;
struct channel;

struct hub {
    struct session *first;  /* every session, newest first */
    size_t clients;         /* how many */
    size_t max_mailbox;     /* the most bytes a session's mailbox may hold (0: no limit) */
    struct channel **table; /* the channels, hashed by name; NULL until the first SUBSCRIBE */
    size_t buckets;         /* the table's size, a power of two */
    size_t channel_count;   /* channels with at least one subscriber */
    /* Called when a session's mailbox was empty and a PUBLISH filled it or marked it full; must end no
     * session. */
    void (*wake)(void *driver, struct session *session);
    void *driver;                     /* wake()'s first argument */
    long long (*wall_clock_us)(void); /* microseconds since 1970 (TIME) */
    long long started_ms;             /* when the server started, on the sessions' clock (uptime) */
    unsigned long long next_id;       /* the next CLIENT ID */
    unsigned long long connections_received, commands_processed, messages_delivered;
};

/* Starts an empty hub at now. */
void hub_init(struct hub *hub, long long now, void (*wake)(void *driver, struct session *session),
              void *driver, long long (*wall_clock_us)(void));

/* Takes the session out of every channel it subscribed to (it is ending). */
void hub_leave(struct hub *hub, struct session *session);

/* Subscribes the session to a channel (nothing if it already is). Returns 0, or -1 when out of memory. */
int hub_subscribe(struct hub *hub, struct session *session, const char *name, size_t len);

/* Unsubscribes it (nothing if it is not). */
void hub_unsubscribe(struct hub *hub, struct session *session, const char *name, size_t len);

/* The name of a channel (a session's channels[i]): its bytes, and their number in *len. */
const char *hub_channel_name(const struct channel *channel, size_t *len);

/*
 * Puts the message into the mailbox of every subscriber of the channel,
 * or marks one whose mailbox is full (mail_overflow). Returns how many
 * received it.
 */
long hub_publish(struct hub *hub, const char *name, size_t name_len, const char *message, size_t len);

/* Frees what the hub holds; every session must have left. */
void hub_free(struct hub *hub);

#endif
