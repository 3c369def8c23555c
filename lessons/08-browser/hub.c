/*
 * hub.c - see hub.h. Three hash tables of chained buckets, written once:
 * the sessions by CLIENT ID, the channels by name, the subscriptions by
 * (session, channel). A channel keeps its subscribers in a list in the
 * order they came (PUBLISH walks it), and a session its subscriptions
 * (UNSUBSCRIBE without a channel walks that), so that every change costs
 * what it touches, never a search.
 */
#include "hub.h"

#include "reply.h"
#include "session.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The fewest buckets a table has once it holds anything. */
#define TABLE_MIN 64

struct channel {
    struct hub_entry entry;            /* in hub->channels; its key is name */
    struct subscription *first, *last; /* its subscribers, in the order they came */
    size_t len;                        /* of the name */
    char name[];                       /* len bytes (any bytes: a name is binary-safe), allocated with it */
};

struct subscription {
    struct hub_entry entry; /* in hub->subscriptions; its key is pair */
    struct {
        struct session *session;
        struct channel *channel;
    } pair;
    struct subscription *prev, *next;             /* in the channel's list */
    struct subscription *older_mine, *newer_mine; /* in the session's list */
};

void hub_init(struct hub *hub, long long now, void (*output_ready)(void *driver, struct session *session),
              void *driver)
{
    *hub = (struct hub){.output_ready = output_ready, .driver = driver, .started_ms = now, .next_id = 1};
}

/* --- the tables ------------------------------------------------------------------------------- */

/* FNV-1a: a plain, fast hash; the keys are chosen by clients, so a table grows with what it holds. */
static size_t hash(const void *key, size_t len)
{
    const unsigned char *bytes = key;
    size_t h = (size_t)14695981039346656037ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ bytes[i]) * (size_t)1099511628211ull;
    return h;
}

static struct hub_entry *table_find(const struct hub_table *table, const void *key, size_t len)
{
    if (table->buckets == NULL)
        return NULL;
    size_t h = hash(key, len);
    for (struct hub_entry *e = table->buckets[h & (table->size - 1)]; e != NULL; e = e->next)
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

/* Moves every entry into a table of size buckets. Returns 0, or -1 when out of memory (nothing changed). */
static int table_resize(struct hub_table *table, size_t size)
{
    struct hub_entry **buckets = calloc(size, sizeof *buckets);
    if (buckets == NULL)
        return -1;
    for (size_t i = 0; i < table->size; i++) {
        while (table->buckets[i] != NULL) {
            struct hub_entry *e = table->buckets[i];
            table->buckets[i] = e->next;
            e->next = buckets[e->hash & (size - 1)];
            buckets[e->hash & (size - 1)] = e;
        }
    }
    free(table->buckets);
    table->buckets = buckets;
    table->size = size;
    return 0;
}

/* Adds an entry whose key is set. Returns 0, or -1 when out of memory (it is not added). */
static int table_add(struct hub_table *table, struct hub_entry *entry)
{
    if (table->count >= table->size && table_resize(table, table->size ? table->size * 2 : TABLE_MIN) != 0)
        return -1;
    entry->hash = hash(entry->key, entry->len);
    struct hub_entry **bucket = &table->buckets[entry->hash & (table->size - 1)];
    entry->next = *bucket;
    *bucket = entry;
    table->count++;
    return 0;
}

/* Takes an entry out; a table far bigger than what it holds shrinks (if there is no memory, it stays). */
static void table_remove(struct hub_table *table, struct hub_entry *entry)
{
    struct hub_entry **link = &table->buckets[entry->hash & (table->size - 1)];
    while (*link != entry)
        link = &(*link)->next;
    *link = entry->next;
    table->count--;
    if (table->count == 0) {
        free(table->buckets);
        *table = (struct hub_table){0};
    } else if (table->size > TABLE_MIN && table->count < table->size / 8) {
        table_resize(table, table->size / 2);
    }
}

/* --- the sessions ----------------------------------------------------------------------------- */

int hub_add(struct hub *hub, struct session *session)
{
    session->id = hub->next_id;
    session->by_id = (struct hub_entry){.key = &session->id, .len = sizeof session->id};
    if (table_add(&hub->sessions, &session->by_id) != 0)
        return -1;
    hub->next_id++;
    session->prev = NULL;
    session->next = hub->first;
    if (hub->first != NULL)
        hub->first->prev = session;
    hub->first = session;
    hub->clients++;
    hub->connections_received++;
    return 0;
}

void hub_remove(struct hub *hub, struct session *session)
{
    hub_unsubscribe_all(hub, session);
    table_remove(&hub->sessions, &session->by_id);
    if (session->prev != NULL)
        session->prev->next = session->next;
    else
        hub->first = session->next;
    if (session->next != NULL)
        session->next->prev = session->prev;
    hub->clients--;
}

struct session *hub_session(const struct hub *hub, unsigned long long id)
{
    struct hub_entry *entry = table_find(&hub->sessions, &id, sizeof id);
    return entry == NULL ? NULL : (struct session *)(void *)((char *)entry - offsetof(struct session, by_id));
}

/* --- the channels ----------------------------------------------------------------------------- */

static struct subscription *find_subscription(const struct hub *hub, struct session *session,
                                              struct channel *channel)
{
    struct subscription probe = {.pair = {session, channel}};
    return (struct subscription *)table_find(&hub->subscriptions, &probe.pair, sizeof probe.pair);
}

/* The channel of this name, made (empty, in the table) if there is none. NULL when out of memory. */
static struct channel *channel_named(struct hub *hub, const char *name, size_t len)
{
    struct channel *channel = (struct channel *)table_find(&hub->channels, name, len);
    if (channel != NULL)
        return channel;
    channel = calloc(1, sizeof *channel + len);
    if (channel == NULL)
        return NULL;
    memcpy(channel->name, name, len);
    channel->len = len;
    channel->entry.key = channel->name;
    channel->entry.len = len;
    if (table_add(&hub->channels, &channel->entry) != 0) {
        free(channel);
        return NULL;
    }
    return channel;
}

/* Takes a channel without subscribers out of the table and frees it. */
static void drop_if_empty(struct hub *hub, struct channel *channel)
{
    if (channel->first != NULL)
        return;
    table_remove(&hub->channels, &channel->entry);
    free(channel);
}

enum hub_subscribed hub_subscribe(struct hub *hub, struct session *session, const char *name, size_t len,
                                  size_t max)
{
    struct channel *channel = channel_named(hub, name, len);
    if (channel == NULL)
        return HUB_NO_MEMORY;
    if (find_subscription(hub, session, channel) != NULL)
        return HUB_ALREADY;
    enum hub_subscribed result = HUB_FULL;
    struct subscription *sub = NULL;
    if (session->channel_count < max) {
        result = HUB_NO_MEMORY;
        sub = calloc(1, sizeof *sub);
    }
    if (sub != NULL) {
        sub->pair.session = session;
        sub->pair.channel = channel;
        sub->entry.key = &sub->pair;
        sub->entry.len = sizeof sub->pair;
        if (table_add(&hub->subscriptions, &sub->entry) != 0) {
            free(sub);
            sub = NULL;
        }
    }
    if (sub == NULL) {
        drop_if_empty(hub, channel); /* made for nothing */
        return result;
    }
    /* At the end of both lists: PUBLISH reaches subscribers, and UNSUBSCRIBE leaves channels, in order. */
    sub->prev = channel->last;
    if (channel->last != NULL)
        channel->last->next = sub;
    else
        channel->first = sub;
    channel->last = sub;
    sub->older_mine = session->newest;
    if (session->newest != NULL)
        session->newest->newer_mine = sub;
    else
        session->oldest = sub;
    session->newest = sub;
    session->channel_count++;
    return HUB_ADDED;
}

/* Undoes one subscription: out of both lists and the table; a channel left without subscribers goes. */
static void cancel(struct hub *hub, struct subscription *sub)
{
    struct channel *channel = sub->pair.channel;
    struct session *session = sub->pair.session;
    if (sub->prev != NULL)
        sub->prev->next = sub->next;
    else
        channel->first = sub->next;
    if (sub->next != NULL)
        sub->next->prev = sub->prev;
    else
        channel->last = sub->prev;
    if (sub->older_mine != NULL)
        sub->older_mine->newer_mine = sub->newer_mine;
    else
        session->oldest = sub->newer_mine;
    if (sub->newer_mine != NULL)
        sub->newer_mine->older_mine = sub->older_mine;
    else
        session->newest = sub->older_mine;
    session->channel_count--;
    table_remove(&hub->subscriptions, &sub->entry);
    free(sub);
    drop_if_empty(hub, channel);
}

void hub_unsubscribe(struct hub *hub, struct session *session, const char *name, size_t len)
{
    struct channel *channel = (struct channel *)table_find(&hub->channels, name, len);
    struct subscription *sub = channel != NULL ? find_subscription(hub, session, channel) : NULL;
    if (sub != NULL)
        cancel(hub, sub);
}

void hub_unsubscribe_all(struct hub *hub, struct session *session)
{
    while (session->oldest != NULL)
        cancel(hub, session->oldest);
}

const char *hub_oldest_channel(const struct session *session, size_t *len)
{
    if (session->oldest == NULL)
        return NULL;
    *len = session->oldest->pair.channel->len;
    return session->oldest->pair.channel->name;
}

/* Formats the message as a subscriber of this protocol reads it: ["message", channel, message], a push. */
static void format_message(struct outbuf *push, enum resp_version resp, const char *name, size_t name_len,
                           const char *message, size_t len)
{
    reply_push(push, resp, 3);
    reply_bulk(push, "message", 7);
    reply_bulk(push, name, name_len);
    reply_bulk(push, message, len);
}

long hub_publish(struct hub *hub, const char *name, size_t name_len, const char *message, size_t len)
{
    struct channel *channel = (struct channel *)table_find(&hub->channels, name, name_len);
    if (channel == NULL)
        return 0;
    /* Formatted once for all its subscribers of each protocol (they differ in the first byte). */
    struct outbuf push[2] = {OUTBUF_EMPTY, OUTBUF_EMPTY};
    long reached = 0;
    for (struct subscription *sub = channel->first; sub != NULL; sub = sub->next) {
        struct session *subscriber = sub->pair.session;
        struct outbuf *formatted = &push[subscriber->resp == RESP3];
        if (outbuf_pending(formatted) == 0)
            format_message(formatted, subscriber->resp, name, name_len, message, len);
        if (!outbuf_failed(formatted))
            reached += session_push(subscriber, outbuf_data(formatted), outbuf_pending(formatted));
        if (hub->output_ready != NULL)
            hub->output_ready(hub->driver, subscriber); /* it has news to send, or must be closed */
    }
    outbuf_release(&push[0]);
    outbuf_release(&push[1]);
    hub->messages_delivered += (unsigned long long)reached;
    return reached;
}

void hub_free(struct hub *hub)
{
    /* Every session has left, and taken its subscriptions, and so every channel, along. */
    free(hub->channels.buckets);
    free(hub->subscriptions.buckets);
    free(hub->sessions.buckets);
    hub->channels = hub->subscriptions = hub->sessions = (struct hub_table){0};
}
