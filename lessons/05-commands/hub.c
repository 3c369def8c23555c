/*
 * hub.c - see hub.h. The channels are a hash table of chained buckets
 * that doubles when it gets crowded; each channel keeps an array of its
 * subscribers, and each session an array of its channels, so that both
 * PUBLISH and a leaving client cost what they touch, not every channel.
 */
#include "hub.h"

#include "reply.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>

struct channel {
    struct channel *next;         /* in its bucket */
    struct session **subscribers; /* in the order they subscribed */
    size_t count, cap;
    size_t len;  /* of the name */
    char name[]; /* len bytes (any bytes: a name is binary-safe), allocated with the struct */
};

void hub_init(struct hub *hub, long long now, void (*wake)(void *driver, struct session *session),
              void *driver, long long (*wall_clock_us)(void))
{
    *hub = (struct hub){
        .wake = wake, .driver = driver, .wall_clock_us = wall_clock_us, .started_ms = now, .next_id = 1};
}

/* FNV-1a: a plain, fast hash; a channel's name is chosen by clients, so the table grows with it. */
static size_t hash(const char *bytes, size_t len)
{
    size_t h = (size_t)14695981039346656037ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)bytes[i]) * (size_t)1099511628211ull;
    return h;
}

/* The bucket where the channel of this name is, or would be. */
static struct channel **bucket(struct hub *hub, const char *name, size_t len)
{
    return &hub->table[hash(name, len) & (hub->buckets - 1)];
}

static struct channel *find(struct hub *hub, const char *name, size_t len)
{
    if (hub->table == NULL)
        return NULL;
    for (struct channel *c = *bucket(hub, name, len); c != NULL; c = c->next)
        if (c->len == len && memcmp(c->name, name, len) == 0)
            return c;
    return NULL;
}

/* Doubles the table (or makes the first), when channels outnumber buckets. Returns 0, or -1. */
static int grow(struct hub *hub)
{
    size_t buckets = hub->buckets == 0 ? 64 : hub->buckets * 2;
    struct channel **table = calloc(buckets, sizeof *table);
    if (table == NULL)
        return -1;
    struct channel **old = hub->table;
    size_t old_buckets = hub->buckets;
    hub->table = table;
    hub->buckets = buckets;
    for (size_t i = 0; i < old_buckets; i++) {
        while (old[i] != NULL) {
            struct channel *c = old[i];
            old[i] = c->next;
            struct channel **b = bucket(hub, c->name, c->len);
            c->next = *b;
            *b = c;
        }
    }
    free(old);
    return 0;
}

/* The next size of an array that doubles, from 4. */
static size_t doubled(size_t cap)
{
    return cap == 0 ? 4 : cap * 2;
}

/* Makes room for one more subscriber of the channel, and one more channel of the session. Returns 0, or -1.
 */
static int make_room(struct channel *channel, struct session *session)
{
    if (channel->count == channel->cap) {
        struct session **grown = realloc(channel->subscribers, doubled(channel->cap) * sizeof *grown);
        if (grown == NULL)
            return -1;
        channel->subscribers = grown;
        channel->cap = doubled(channel->cap);
    }
    if (session->channel_count == session->channel_cap) {
        struct channel **grown = realloc(session->channels, doubled(session->channel_cap) * sizeof *grown);
        if (grown == NULL)
            return -1;
        session->channels = grown;
        session->channel_cap = doubled(session->channel_cap);
    }
    return 0;
}

/* Takes an empty channel out of the table and frees it. */
static void drop_channel(struct hub *hub, struct channel *channel)
{
    struct channel **link = bucket(hub, channel->name, channel->len);
    while (*link != channel)
        link = &(*link)->next;
    *link = channel->next;
    free(channel->subscribers);
    free(channel);
    hub->channel_count--;
}

int hub_subscribe(struct hub *hub, struct session *session, const char *name, size_t len)
{
    struct channel *channel = find(hub, name, len);
    if (channel == NULL) {
        if (hub->channel_count >= hub->buckets && grow(hub) != 0)
            return -1;
        channel = calloc(1, sizeof *channel + len);
        if (channel == NULL)
            return -1;
        memcpy(channel->name, name, len);
        channel->len = len;
        struct channel **b = bucket(hub, name, len);
        channel->next = *b;
        *b = channel;
        hub->channel_count++;
    }
    for (size_t i = 0; i < session->channel_count; i++)
        if (session->channels[i] == channel)
            return 0; /* already subscribed */
    if (make_room(channel, session) != 0) {
        if (channel->count == 0)
            drop_channel(hub, channel);
        return -1;
    }
    channel->subscribers[channel->count++] = session;
    session->channels[session->channel_count++] = channel;
    return 0;
}

/* Takes the session out of one channel it subscribed to, keeping the order of the others. */
static void leave_channel(struct hub *hub, struct session *session, struct channel *channel)
{
    size_t i = 0;
    while (channel->subscribers[i] != session)
        i++;
    channel->count--;
    memmove(&channel->subscribers[i], &channel->subscribers[i + 1],
            (channel->count - i) * sizeof(struct session *));
    size_t j = 0;
    while (session->channels[j] != channel)
        j++;
    session->channel_count--;
    memmove(&session->channels[j], &session->channels[j + 1],
            (session->channel_count - j) * sizeof(struct channel *));
    if (channel->count == 0)
        drop_channel(hub, channel);
}

void hub_unsubscribe(struct hub *hub, struct session *session, const char *name, size_t len)
{
    struct channel *channel = find(hub, name, len);
    for (size_t i = 0; channel != NULL && i < session->channel_count; i++)
        if (session->channels[i] == channel) {
            leave_channel(hub, session, channel);
            return;
        }
}

void hub_leave(struct hub *hub, struct session *session)
{
    while (session->channel_count > 0)
        leave_channel(hub, session, session->channels[session->channel_count - 1]);
    free(session->channels);
    session->channels = NULL;
    session->channel_cap = 0;
}

const char *hub_channel_name(const struct channel *channel, size_t *len)
{
    *len = channel->len;
    return channel->name;
}

long hub_publish(struct hub *hub, const char *name, size_t name_len, const char *message, size_t len)
{
    struct channel *channel = find(hub, name, name_len);
    if (channel == NULL)
        return 0;
    /* The push message, formatted once for every subscriber. */
    struct outbuf push = OUTBUF_EMPTY;
    reply_array(&push, 3);
    reply_bulk(&push, "message", 7);
    reply_bulk(&push, name, name_len);
    reply_bulk(&push, message, len);
    long reached = 0;
    for (size_t i = 0; i < channel->count; i++) {
        struct session *subscriber = channel->subscribers[i];
        size_t held = outbuf_pending(&subscriber->mailbox);
        bool full = hub->max_mailbox != 0 && held + outbuf_pending(&push) > hub->max_mailbox;
        if (full)
            subscriber->mail_overflow = true;
        else if (outbuf_append(&subscriber->mailbox, outbuf_data(&push), outbuf_pending(&push)) == 0)
            reached++;
        if (held == 0 && hub->wake != NULL)
            hub->wake(hub->driver, subscriber); /* its mailbox has news, or it must be closed */
    }
    outbuf_release(&push);
    hub->messages_delivered += (unsigned long long)reached;
    return reached;
}

void hub_free(struct hub *hub)
{
    for (size_t i = 0; i < hub->buckets; i++)
        while (hub->table[i] != NULL)
            drop_channel(hub, hub->table[i]); /* none should be left: every session has left */
    free(hub->table);
    hub->table = NULL;
    hub->buckets = 0;
}
