/*
 * session.c - see session.h. A request is run where it lies in the bytes
 * received; only an unfinished one is copied, into `query`, to be
 * completed by the next receive (Redis's query buffer, parsed at a moving
 * position). An idle client holds no query buffer.
 */
#include "session.h"

#include "commands.h"
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most arguments a request may have, whatever --max-args says: the parser's array lives on the stack. */
#define SESSION_ARGS_MAX 1024

void session_start(struct session *session, struct hub *hub, const struct session_limits *limits,
                   const char *peer, long long now)
{
    *session = (struct session){.hub = hub,
                                .limits = limits,
                                .id = hub->next_id++,
                                .started = now,
                                .last_request = now,
                                .mailbox = OUTBUF_EMPTY};
    snprintf(session->peer, sizeof session->peer, "%s", peer);
    session->idle_deadline = limits->idle_ms > 0 ? now + limits->idle_ms : 0;
    session->next = hub->first;
    if (hub->first != NULL)
        hub->first->prev = session;
    hub->first = session;
    hub->clients++;
    hub->connections_received++;
}

/* Queues an error and keeps why, for the log: the client will be closed after it. */
static enum session_verdict refuse(struct session *session, struct outbuf *out, const char *error)
{
    snprintf(session->why, sizeof session->why, "%s", error);
    reply_error(out, "ERR %s", error);
    return SESSION_REFUSED;
}

/* Keeps the bytes of an unfinished request for the next receive. Returns false past --max-query. */
static bool keep(struct session *session, const char *bytes, size_t len)
{
    if (session->query_len + len > session->limits->max_query)
        return false;
    if (session->query_len + len > session->query_cap) {
        size_t cap = session->query_cap > 0 ? session->query_cap : 256;
        while (cap < session->query_len + len)
            cap *= 2;
        char *bigger = realloc(session->query, cap);
        if (bigger == NULL)
            return false;
        session->query = bigger;
        session->query_cap = cap;
    }
    memcpy(session->query + session->query_len, bytes, len);
    session->query_len += len;
    return true;
}

/*
 * Parses and runs the requests in bytes[0, len) until one is unfinished,
 * refused or ends the session. Returns the verdict; *used is what the
 * requests run took.
 */
static enum session_verdict run_requests(struct session *session, const char *bytes, size_t len,
                                         long long now, struct outbuf *out, size_t *used)
{
    struct resp_arg args[SESSION_ARGS_MAX];
    struct resp_limits limits = session->limits->resp;
    if (limits.max_args > SESSION_ARGS_MAX)
        limits.max_args = SESSION_ARGS_MAX;
    enum session_verdict verdict = SESSION_OPEN;
    size_t pos = 0;
    while (verdict == SESSION_OPEN && pos < len) {
        size_t argc = 0, took = 0;
        char why[80];
        enum resp_result r = resp_parse(bytes + pos, len - pos, &limits, args, &argc, &took, why, sizeof why);
        if (r == RESP_INCOMPLETE)
            break;
        if (r == RESP_PROTOCOL_ERROR)
            return refuse(session, out, why); /* what follows cannot be framed: nothing more is run */
        pos += took;
        if (argc > 0)
            verdict = command_run(session, args, argc, now, out);
    }
    *used = pos;
    return verdict;
}

/* Moves the deadlines after the client sent something at now; `finished` says whether requests completed. */
static void move_deadlines(struct session *session, long long now, bool finished)
{
    const struct session_limits *limits = session->limits;
    /* A subscriber waits for messages and may stay silent as long as it likes, as in Redis. */
    session->idle_deadline = limits->idle_ms > 0 && session->channel_count == 0 ? now + limits->idle_ms : 0;
    if (session->query_len == 0 || limits->request_ms == 0)
        session->request_deadline = 0;
    else if (session->request_deadline == 0 || finished)
        session->request_deadline = now + limits->request_ms;
}

/*
 * Called here first in session_feed(), session_expire() and session_stop():
 * a subscriber must see a message published before its UNSUBSCRIBE before
 * that UNSUBSCRIBE's reply, or it would read it as a reply.
 */
int session_take_mail(struct session *session, struct outbuf *out)
{
    struct outbuf *mailbox = &session->mailbox;
    int stored =
        outbuf_pending(mailbox) == 0 ? 0 : outbuf_append(out, outbuf_data(mailbox), outbuf_pending(mailbox));
    outbuf_consume(mailbox, outbuf_pending(mailbox));
    return stored;
}

enum session_verdict session_feed(struct session *session, const char *bytes, size_t len, long long now,
                                  struct outbuf *out)
{
    unsigned long before = session->commands;
    enum session_verdict verdict = SESSION_OPEN;
    session_take_mail(session, out);
    while (verdict == SESSION_OPEN && len > 0) {
        size_t used = 0;
        if (session->query_len == 0) {
            verdict = run_requests(session, bytes, len, now, out, &used); /* where they lie: no copy */
            bytes += used;
            len -= used;
            if (verdict != SESSION_OPEN || len == 0)
                break;
        }
        /* An unfinished request: add what fits of the rest to it, and parse it again. */
        size_t room = session->limits->max_query - session->query_len;
        size_t take = len < room ? len : room;
        if (take == 0 || !keep(session, bytes, take)) {
            verdict = refuse(session, out, "Protocol error: query buffer limit reached");
            break;
        }
        bytes += take;
        len -= take;
        verdict = run_requests(session, session->query, session->query_len, now, out, &used);
        session->query_len -= used;
        memmove(session->query, session->query + used, session->query_len);
    }
    if (verdict != SESSION_OPEN)
        session->query_len = 0; /* the session ends: what follows is never run */
    if (session->query_len == 0 && session->query != NULL) {
        free(session->query); /* nothing unfinished: an idle client holds no buffer */
        session->query = NULL;
        session->query_cap = 0;
    }
    move_deadlines(session, now, session->commands != before);
    return verdict;
}

long long session_deadline(const struct session *session)
{
    long long idle = session->idle_deadline, request = session->request_deadline;
    if (idle == 0 || (request != 0 && request < idle))
        return request;
    return idle;
}

enum session_verdict session_expire(struct session *session, long long now, struct outbuf *out)
{
    session_take_mail(session, out);
    if (session->request_deadline != 0 && now >= session->request_deadline)
        return refuse(session, out, "request timeout");
    if (session->idle_deadline != 0 && now >= session->idle_deadline)
        return refuse(session, out, "idle timeout");
    return SESSION_OPEN;
}

void session_stop(struct session *session, struct outbuf *out)
{
    session_take_mail(session, out);
    reply_error(out, "ERR server shutting down");
}

void session_end(struct session *session)
{
    struct hub *hub = session->hub;
    hub_leave(hub, session);
    if (session->prev != NULL)
        session->prev->next = session->next;
    else
        hub->first = session->next;
    if (session->next != NULL)
        session->next->prev = session->prev;
    hub->clients--;
    free(session->query);
    session->query = NULL;
    session->query_len = session->query_cap = 0;
    outbuf_release(&session->mailbox);
}
