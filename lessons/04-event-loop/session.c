/*
 * session.c - see session.h. A line is answered where it lies in the
 * bytes received; only what cannot be answered yet is copied, into
 * `held`: an unfinished line, to be completed by the next receive, or the
 * lines after the high-water mark, to be answered as the client reads. An
 * idle client holds no such buffer at all.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char reply[] = "Hello from server\n";
static const char too_long_reply[] = "ERR line too long\n";
static const char idle_reply[] = "ERR idle timeout\n";
static const char line_timeout_reply[] = "ERR line timeout\n";
static const char shutdown_notice[] = "server shutting down\n";

void session_start(struct session *session, const struct session_limits *limits, long long now)
{
    *session = (struct session){.limits = limits, .out = OUTBUF_EMPTY};
    session->idle_deadline = limits->idle_ms > 0 ? now + limits->idle_ms : 0;
}

/* Queues an ERR line and keeps why, for the log: the client will be closed after it. */
static enum session_verdict refuse(struct session *session, const char *error_line, size_t len,
                                   const char *why)
{
    snprintf(session->why, sizeof session->why, "%s", why);
    outbuf_append(&session->out, error_line, len);
    return SESSION_REFUSED;
}

static enum session_verdict refuse_too_long(struct session *session)
{
    enum session_verdict verdict = refuse(session, too_long_reply, sizeof too_long_reply - 1, "");
    snprintf(session->why, sizeof session->why, "line longer than %zu bytes", session->limits->max_line);
    return verdict;
}

/* Answers one complete line (without its '\n'). */
static enum session_verdict answer(struct session *session, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--; /* a '\r' just before the '\n' is not part of the line */
    if (len > session->limits->max_line)
        return refuse_too_long(session);
    if (len == 4 && memcmp(line, "exit", 4) == 0)
        return SESSION_DONE; /* whatever came after "exit" is not answered */
    outbuf_append(&session->out, reply, sizeof reply - 1);
    session->requests++;
    return SESSION_OPEN;
}

/* Backpressure: whether the client must read some of its output before another request is answered. */
static bool must_wait(const struct session *session)
{
    return outbuf_pending(&session->out) > session->limits->high_water;
}

/*
 * Answers the whole lines at the start of bytes[0, len) until the output
 * passes the high-water mark, a line ends the session, or only an
 * unfinished line is left. Returns the verdict; *used is the bytes taken.
 */
static enum session_verdict answer_lines(struct session *session, const char *bytes, size_t len, size_t *used)
{
    enum session_verdict verdict = SESSION_OPEN;
    size_t pos = 0;
    session->paused = false;
    while (verdict == SESSION_OPEN && pos < len) {
        const char *newline = memchr(bytes + pos, '\n', len - pos);
        if (newline == NULL) {
            /* max_line + 2 bytes without '\n' hold a line over the limit, even if the last one is its '\r'.
             */
            if (len - pos > session->limits->max_line + 1)
                verdict = refuse_too_long(session);
            break;
        }
        if (must_wait(session)) {
            session->paused = true; /* the client must read first: this line and the rest wait */
            break;
        }
        size_t take = (size_t)(newline - (bytes + pos));
        verdict = answer(session, bytes + pos, take);
        pos += take + 1;
    }
    *used = pos;
    return verdict;
}

/* Keeps bytes that cannot be answered yet, after those already held. Returns false when out of memory. */
static bool hold(struct session *session, const char *bytes, size_t len)
{
    if (session->held_len + len > session->held_cap) {
        size_t cap = session->held_cap > 0 ? session->held_cap : session->limits->max_line + 2;
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

/* Answers what is held, as far as it can, and keeps the rest. */
static enum session_verdict answer_held(struct session *session)
{
    size_t used = 0;
    enum session_verdict verdict = answer_lines(session, session->held, session->held_len, &used);
    session->held_len -= used;
    memmove(session->held, session->held + used, session->held_len);
    return verdict;
}

/* After answering at now: what a session that ends drops, the buffer an idle one gives back, the deadlines.
 */
static void settle(struct session *session, enum session_verdict verdict, long long now, bool answered)
{
    const struct session_limits *limits = session->limits;
    if (verdict != SESSION_OPEN) {
        session->held_len = 0; /* it ends: what follows is never answered */
        session->paused = false;
    }
    if (session->held_len == 0 && session->held != NULL) {
        free(session->held);
        session->held = NULL;
        session->held_cap = 0;
    }
    /* The line clock starts with a line's first byte, and again whenever lines complete. */
    if (session->held_len == 0 || session->paused || limits->line_ms == 0)
        session->line_deadline = 0;
    else if (session->line_deadline == 0 || answered)
        session->line_deadline = now + limits->line_ms;
}

enum session_verdict session_feed(struct session *session, const char *bytes, size_t len, long long now)
{
    unsigned long before = session->requests;
    enum session_verdict verdict = SESSION_OPEN;
    if (session->held_len == 0) {
        size_t used = 0;
        verdict = answer_lines(session, bytes, len, &used); /* nothing waits before them: where they lie */
        if (verdict == SESSION_OPEN && used < len && !hold(session, bytes + used, len - used))
            session->broken = "out of memory for what it sent";
    } else if (!hold(session, bytes, len)) {
        session->broken = "out of memory for what it sent";
    } else if (!session->paused) {
        verdict = answer_held(session); /* an unfinished line, completed or continued by these bytes */
    }
    if (session->limits->idle_ms > 0)
        session->idle_deadline = now + session->limits->idle_ms; /* any bytes are a sign of life */
    settle(session, verdict, now, session->requests != before);
    return verdict;
}

bool session_wants_input(const struct session *session)
{
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
    if (outbuf_pending(&session->out) == 0 && session->limits->idle_ms > 0)
        session->idle_deadline = now + session->limits->idle_ms; /* owed nothing now: the idle clock starts */
    if (!session->paused || must_wait(session))
        return SESSION_OPEN;
    unsigned long before = session->requests;
    enum session_verdict verdict = answer_held(session);
    settle(session, verdict, now, session->requests != before);
    return verdict;
}

const char *session_broken(const struct session *session)
{
    if (session->broken != NULL)
        return session->broken;
    return outbuf_failed(&session->out) ? "out of memory for its replies" : NULL;
}

long long session_deadline(const struct session *session)
{
    if (outbuf_pending(&session->out) > 0)
        return 0; /* the client owes a read: the driver's send timeout watches that */
    long long idle = session->idle_deadline, line = session->line_deadline;
    if (idle == 0 || (line != 0 && line < idle))
        return line;
    return idle;
}

enum session_verdict session_expire(struct session *session, long long now)
{
    if (outbuf_pending(&session->out) > 0)
        return SESSION_OPEN;
    if (session->line_deadline != 0 && now >= session->line_deadline)
        return refuse(session, line_timeout_reply, sizeof line_timeout_reply - 1,
                      "line not finished in time");
    if (session->idle_deadline != 0 && now >= session->idle_deadline)
        return refuse(session, idle_reply, sizeof idle_reply - 1, "idle too long");
    return SESSION_OPEN;
}

void session_stop(struct session *session)
{
    session->held_len = 0;
    session->paused = false;
    outbuf_append(&session->out, shutdown_notice, sizeof shutdown_notice - 1);
}

void session_end(struct session *session)
{
    free(session->held);
    session->held = NULL;
    session->held_len = session->held_cap = 0;
    outbuf_release(&session->out);
}
