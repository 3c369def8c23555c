/*
 * session.h - what the server says to one client, without any I/O.
 *
 * A session is fed the bytes a client sent and answers with bytes to send
 * and a verdict: go on, or close (and how). It never calls recv() or
 * send(), never reads a clock and never waits: the caller hands it the
 * time, and asks it for its next deadline. So it can be tested byte by
 * byte without a socket (tests/check_session.c), and any way of moving
 * bytes can drive it: this stage's event loop, and later stages' thread
 * pool, TLS and WebSocket.
 *
 * The protocol is final/'s (docs/protocol.md): every line gets "Hello
 * from server\n"; "exit" ends the session; a line longer than the limit
 * gets "ERR line too long\n"; a client silent for too long, or too slow to
 * finish a line, gets "ERR idle timeout\n" or "ERR line timeout\n".
 */
#ifndef SESSION_H
#define SESSION_H

#include "outbuf.h"

#include <stdbool.h>
#include <stddef.h>

/* The limits every session of a server keeps to (the server's options). */
struct session_limits {
    size_t max_line;   /* the longest line answered, without its "\r\n" (--max-line) */
    long long idle_ms; /* a client silent this long is closed (0: never) */
    long long line_ms; /* a line must be finished this long after its first byte (0: never) */
};

enum session_verdict {
    SESSION_OPEN,    /* go on: send what was queued, read more */
    SESSION_DONE,    /* the client said "exit": send what was queued, then close */
    SESSION_REFUSED, /* an ERR line was queued: send it, end the stream, close (see `why`) */
};

struct session {
    const struct session_limits *limits;
    char *partial;           /* an unfinished line, kept between receives; NULL while there is none */
    size_t partial_len;      /* bytes of it */
    size_t partial_cap;      /* bytes allocated for it */
    long long idle_deadline; /* when the client will have been silent too long (0: never) */
    long long line_deadline; /* when its unfinished line will have taken too long (0: none) */
    unsigned long lines;     /* lines answered */
    char why[64];            /* after SESSION_REFUSED: why, for the log */
};

/* Starts a session at now (milliseconds on the caller's clock). */
void session_start(struct session *session, const struct session_limits *limits, long long now);

/*
 * Feeds len received bytes to the session at now, and appends the replies
 * to out (how much out may hold is the caller's business). Lines after an
 * "exit" or a refusal in the same bytes are not answered. Returns the
 * verdict.
 */
enum session_verdict session_feed(struct session *session, const char *bytes, size_t len, long long now,
                                  struct outbuf *out);

/* The next moment at which session_expire() has something to say, or 0 for none. */
long long session_deadline(const struct session *session);

/*
 * The deadline has passed (now >= session_deadline()): appends the verdict
 * line to out and returns SESSION_REFUSED, with `why` set; or, when no
 * deadline has passed after all, SESSION_OPEN.
 */
enum session_verdict session_expire(struct session *session, long long now, struct outbuf *out);

/* The server is stopping: appends the notice "server shutting down\n". */
void session_stop(struct session *session, struct outbuf *out);

/* Frees what the session holds. */
void session_end(struct session *session);

#endif
