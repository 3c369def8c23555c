/*
 * session.c - see session.h. A line is answered where it lies in the
 * bytes received; only an unfinished one is copied, into `partial`, to be
 * completed by the next receive. An idle client holds no line buffer.
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
    *session = (struct session){.limits = limits};
    session->idle_deadline = limits->idle_ms > 0 ? now + limits->idle_ms : 0;
}

/* Queues a verdict line and keeps why, for the log: the client will be closed after it. */
static enum session_verdict refuse(struct session *session, struct outbuf *out, const char *verdict,
                                   size_t len, const char *why)
{
    snprintf(session->why, sizeof session->why, "%s", why);
    outbuf_append(out, verdict, len);
    return SESSION_REFUSED;
}

static enum session_verdict refuse_too_long(struct session *session, struct outbuf *out)
{
    enum session_verdict verdict = refuse(session, out, too_long_reply, sizeof too_long_reply - 1, "");
    snprintf(session->why, sizeof session->why, "line longer than %zu bytes", session->limits->max_line);
    return verdict;
}

/* Keeps the bytes of an unfinished line for the next receive. Returns false when it is already too long. */
static bool keep_partial(struct session *session, const char *bytes, size_t len)
{
    /* max_line + 2 bytes without '\n' hold a line over the limit, even if the last one is its '\r'. */
    if (session->partial_len + len > session->limits->max_line + 1)
        return false;
    if (session->partial_len + len > session->partial_cap) {
        size_t cap = session->limits->max_line + 2; /* the most a line ever needs: allocated once */
        char *bigger = realloc(session->partial, cap);
        if (bigger == NULL)
            return false;
        session->partial = bigger;
        session->partial_cap = cap;
    }
    memcpy(session->partial + session->partial_len, bytes, len);
    session->partial_len += len;
    return true;
}

/* Answers one complete line (without its '\n'). */
static enum session_verdict answer(struct session *session, const char *line, size_t len, struct outbuf *out)
{
    if (len > 0 && line[len - 1] == '\r')
        len--; /* a '\r' just before the '\n' is not part of the line */
    if (len > session->limits->max_line)
        return refuse_too_long(session, out);
    if (len == 4 && memcmp(line, "exit", 4) == 0)
        return SESSION_DONE; /* whatever came after "exit" is not answered */
    outbuf_append(out, reply, sizeof reply - 1);
    session->lines++;
    return SESSION_OPEN;
}

enum session_verdict session_feed(struct session *session, const char *bytes, size_t len, long long now,
                                  struct outbuf *out)
{
    const struct session_limits *limits = session->limits;
    unsigned long lines_before = session->lines;
    enum session_verdict verdict = SESSION_OPEN;
    while (len > 0 && verdict == SESSION_OPEN) {
        const char *newline = memchr(bytes, '\n', len);
        if (newline == NULL) {
            if (!keep_partial(session, bytes, len))
                verdict = refuse_too_long(session, out);
            break;
        }
        size_t take = (size_t)(newline - bytes); /* the line's bytes in this receive, '\n' left out */
        if (session->partial_len == 0) {
            verdict = answer(session, bytes, take, out); /* where it lies: no copy */
        } else if (session->partial_len + take > limits->max_line + 1) {
            verdict = refuse_too_long(session, out);
        } else {
            keep_partial(session, bytes, take); /* fits: checked just above */
            verdict = answer(session, session->partial, session->partial_len, out);
            session->partial_len = 0;
        }
        bytes += take + 1;
        len -= take + 1;
    }
    if (session->partial_len == 0 && session->partial != NULL) {
        free(session->partial); /* no unfinished line: an idle client holds no buffer */
        session->partial = NULL;
        session->partial_cap = 0;
    }
    /* Any bytes are a sign of life; the line clock starts with a line's first byte, again when lines
     * complete. */
    if (limits->idle_ms > 0)
        session->idle_deadline = now + limits->idle_ms;
    if (session->partial_len == 0 || limits->line_ms == 0)
        session->line_deadline = 0;
    else if (session->line_deadline == 0 || session->lines != lines_before)
        session->line_deadline = now + limits->line_ms;
    return verdict;
}

long long session_deadline(const struct session *session)
{
    long long idle = session->idle_deadline, line = session->line_deadline;
    if (idle == 0 || (line != 0 && line < idle))
        return line;
    return idle;
}

enum session_verdict session_expire(struct session *session, long long now, struct outbuf *out)
{
    if (session->line_deadline != 0 && now >= session->line_deadline)
        return refuse(session, out, line_timeout_reply, sizeof line_timeout_reply - 1,
                      "line not finished in time");
    if (session->idle_deadline != 0 && now >= session->idle_deadline)
        return refuse(session, out, idle_reply, sizeof idle_reply - 1, "idle too long");
    return SESSION_OPEN;
}

void session_stop(struct session *session, struct outbuf *out)
{
    (void)session;
    outbuf_append(out, shutdown_notice, sizeof shutdown_notice - 1);
}

void session_end(struct session *session)
{
    free(session->partial);
    session->partial = NULL;
    session->partial_len = session->partial_cap = 0;
}
