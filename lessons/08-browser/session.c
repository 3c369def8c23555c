/*
 * session.c - see session.h. A request is run where it lies in the bytes
 * received; only what cannot be run yet is copied, into `held`: an
 * unfinished request, to be completed by the next receive (Redis's query
 * buffer, parsed at a moving position), or the requests after the
 * high-water mark, to be run as the client reads. An idle client holds no
 * buffer at all.
 */
#include "session.h"

#include "commands.h"
#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The most arguments a request may have, whatever --max-args says: the parser's array lives on the stack. */
#define SESSION_ARGS_MAX 1024

int session_start(struct session *session, struct hub *hub, const struct session_limits *limits,
                  const char *peer, long long now)
{
    *session = (struct session){.hub = hub,
                                .limits = limits,
                                .peer = peer,
                                .resp = RESP2,
                                .out = OUTBUF_EMPTY,
                                .queued = OUTBUF_EMPTY,
                                .started = now,
                                .last_request = now};
    session->idle_deadline = limits->idle_ms > 0 ? now + limits->idle_ms : 0;
    return hub_add(hub, session);
}

/* Queues an error and keeps why, for the log: the client will be closed after it. */
static enum session_verdict refuse(struct session *session, const char *error)
{
    snprintf(session->why, sizeof session->why, "%s", error);
    reply_error(&session->out, "ERR %s", error);
    return SESSION_REFUSED;
}

/* Backpressure: whether the client must read some of its output before another request is run. */
static bool must_wait(const struct session *session)
{
    return outbuf_pending(&session->out) > session->limits->high_water;
}

/*
 * Parses and runs the requests at the start of bytes[0, len) until the
 * output passes the high-water mark, a request ends the session or waits
 * for a job, or only an unfinished one is left. Returns the verdict; *used is the bytes taken.
 */
static enum session_verdict run_requests(struct session *session, const char *bytes, size_t len,
                                         long long now, size_t *used)
{
    struct resp_arg args[SESSION_ARGS_MAX];
    struct resp_limits limits = session->limits->resp;
    if (limits.max_args > SESSION_ARGS_MAX)
        limits.max_args = SESSION_ARGS_MAX;
    enum session_verdict verdict = SESSION_OPEN;
    size_t pos = 0;
    session->paused = false;
    while (verdict == SESSION_OPEN && pos < len && !session->awaiting_job &&
           session_broken(session) == NULL) {
        size_t argc = 0, took = 0;
        char why[80];
        enum resp_result r = resp_parse(bytes + pos, len - pos, &limits, args, &argc, &took, why, sizeof why);
        if (r == RESP_INCOMPLETE)
            break;
        if (r == RESP_PROTOCOL_ERROR) {
            verdict = refuse(session, why); /* what follows cannot be framed: nothing more is run */
            break;
        }
        if (argc > 0 && must_wait(session)) {
            session->paused = true; /* the client must read first: this request and the rest wait */
            break;
        }
        pos += took;
        if (argc > 0)
            verdict = command_run(session, args, argc, now);
    }
    *used = pos;
    return verdict;
}

/* Keeps bytes that cannot be run yet, after those already held. Returns false when out of memory. */
static bool hold(struct session *session, const char *bytes, size_t len)
{
    if (session->held_len + len > session->held_cap) {
        size_t cap = session->held_cap > 0 ? session->held_cap : 256;
        while (cap < session->held_len + len)
            cap *= 2;
        char *bigger = realloc(session->held, cap);
        if (bigger == NULL)
            return false;
        session->held = bigger;
        session->held_cap = cap;
    }
    memcpy(session->held + session->held_len, bytes, len);
    session->held_len += len;
    return true;
}

/* Runs what is held, as far as it can, and keeps the rest. */
static enum session_verdict run_held(struct session *session, long long now)
{
    size_t used = 0;
    enum session_verdict verdict = run_requests(session, session->held, session->held_len, now, &used);
    session->held_len -= used;
    memmove(session->held, session->held + used, session->held_len);
    return verdict;
}

/*
 * Whether what is held, one unfinished request (unless requests are held
 * back, or wait behind a job), has grown past --max-query.
 */
static bool unfinished_too_long(const struct session *session)
{
    return !session->paused && !session->awaiting_job && session->held_len > session->limits->max_query;
}

/* When a client that sends nothing more at now will have been idle too long: never, for a subscriber. */
static long long idle_deadline(const struct session *session, long long now)
{
    /* A subscriber waits for messages and may stay silent as long as it likes, as in Redis. */
    return session->limits->idle_ms > 0 && session->channel_count == 0 ? now + session->limits->idle_ms : 0;
}

/*
 * After running requests at now: a session that ends drops what it holds
 * and leaves its channels (it can receive nothing more, and PUBLISH must
 * not count it); an idle one gives its buffer back; the request clock
 * starts with a request's first byte, and again whenever requests finish.
 */
static void settle(struct session *session, enum session_verdict verdict, long long now, bool ran)
{
    const struct session_limits *limits = session->limits;
    if (verdict != SESSION_OPEN) {
        session->held_len = 0;
        session->paused = false;
        hub_unsubscribe_all(session->hub, session);
    }
    if (session->held_len == 0 && session->held != NULL) {
        free(session->held);
        session->held = NULL;
        session->held_cap = 0;
    }
    if (session->held_len == 0 || session->paused || session->awaiting_job || limits->request_ms == 0)
        session->request_deadline = 0;
    else if (session->request_deadline == 0 || ran)
        session->request_deadline = now + limits->request_ms;
}

enum session_verdict session_feed(struct session *session, const char *bytes, size_t len, long long now)
{
    unsigned long before = session->requests;
    enum session_verdict verdict = SESSION_OPEN;
    if (session->held_len == 0) {
        size_t used = 0;
        verdict =
            run_requests(session, bytes, len, now, &used); /* nothing waits before them: where they lie */
        if (verdict == SESSION_OPEN && used < len && !hold(session, bytes + used, len - used))
            session->broken = "out of memory for what it sent";
    } else if (!hold(session, bytes, len)) {
        session->broken = "out of memory for what it sent";
    } else if (!session->paused) {
        verdict = run_held(session, now); /* an unfinished request, completed or continued by these bytes */
    }
    if (verdict == SESSION_OPEN && unfinished_too_long(session))
        verdict = refuse(session, "Protocol error: query buffer limit reached");
    session->idle_deadline = idle_deadline(session, now); /* any bytes are a sign of life */
    settle(session, verdict, now, session->requests != before);
    return verdict;
}

bool session_wants_input(const struct session *session)
{
    if (session->awaiting_job)
        return session->held_len < session->limits->max_query;
    return !session->paused && !must_wait(session);
}

const char *session_output(const struct session *session, size_t *len)
{
    *len = outbuf_pending(&session->out);
    return outbuf_data(&session->out);
}

enum session_verdict session_sent(struct session *session, size_t len, long long now)
{
    outbuf_consume(&session->out, len);
    if (outbuf_pending(&session->out) == 0)
        session->idle_deadline = idle_deadline(session, now); /* owed nothing now: the idle clock starts */
    if (!session->paused || must_wait(session))
        return SESSION_OPEN;
    unsigned long before = session->requests;
    enum session_verdict verdict = run_held(session, now);
    settle(session, verdict, now, session->requests != before);
    return verdict;
}

/* What the session said that the client has not received: its output, and what the driver holds of it. */
static size_t unsent(const struct session *session)
{
    return outbuf_pending(&session->out) + session->in_transit;
}

int session_push(struct session *session, const char *bytes, size_t len)
{
    if (session_broken(session) != NULL)
        return 0;
    if (unsent(session) + len > session->limits->max_output) {
        snprintf(session->why, sizeof session->why, "leaves more than %zu bytes of messages unread",
                 session->limits->max_output);
        session->broken = session->why;
        return 0;
    }
    return outbuf_append(&session->out, bytes, len) == 0;
}

const char *session_broken(const struct session *session)
{
    if (session->broken != NULL)
        return session->broken;
    return outbuf_failed(&session->out) ? "out of memory for its replies" : NULL;
}

long long session_deadline(const struct session *session)
{
    if (session->awaiting_job)
        return 0; /* the server owes the client a reply: no clock runs against the client */
    if (unsent(session) > 0)
        return 0; /* the client owes a read: the driver's send timeout watches that */
    long long idle = session->idle_deadline, request = session->request_deadline;
    if (idle == 0 || (request != 0 && request < idle))
        return request;
    return idle;
}

enum session_verdict session_expire(struct session *session, long long now)
{
    enum session_verdict verdict = SESSION_OPEN;
    if (session->awaiting_job || unsent(session) > 0)
        return verdict;
    if (session->request_deadline != 0 && now >= session->request_deadline)
        verdict = refuse(session, "request timeout");
    else if (session->idle_deadline != 0 && now >= session->idle_deadline)
        verdict = refuse(session, "idle timeout");
    settle(session, verdict, now, false);
    return verdict;
}

void session_in_transit(struct session *session, size_t len)
{
    session->in_transit = len;
}

void session_stop(struct session *session)
{
    session->held_len = 0;
    session->paused = false;
    reply_error(&session->out, "ERR server shutting down");
}

void session_defer(struct session *session, struct job *job)
{
    session->new_job = job;
    session->awaiting_job = true;
}

bool session_awaits_job(const struct session *session)
{
    return session->awaiting_job;
}

struct job *session_take_job(struct session *session)
{
    struct job *job = session->new_job;
    session->new_job = NULL; /* the driver's now: the session keeps no pointer to what a worker changes */
    return job;
}

enum session_verdict session_finish_job(struct session *session, struct job *job, long long now)
{
    size_t len = outbuf_pending(&job->reply);
    outbuf_append(&session->out, outbuf_data(&job->reply), len); /* on failure, session_broken() says so */
    job_free(job);
    session->awaiting_job = false;
    /* The requests that came while it ran, in order; they may stop at the mark, or at another job. */
    unsigned long before = session->requests;
    enum session_verdict verdict = session->held_len > 0 ? run_held(session, now) : SESSION_OPEN;
    if (verdict == SESSION_OPEN && unfinished_too_long(session))
        verdict = refuse(session, "Protocol error: query buffer limit reached");
    settle(session, verdict, now, session->requests != before);
    return verdict;
}

void session_end(struct session *session)
{
    job_free(
        session->new_job); /* never handed over: still the session's (a job the driver took is its own) */
    session->new_job = NULL;
    hub_remove(session->hub, session);
    free(session->held);
    session->held = NULL;
    session->held_len = session->held_cap = 0;
    outbuf_release(&session->out);
    outbuf_release(&session->queued);
}
