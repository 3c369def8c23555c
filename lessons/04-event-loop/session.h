/*
 * session.h - what the server says to one client, without any I/O.
 *
 * A session is fed the bytes a client sent; it answers into its own
 * output, which the driver sends, and says what comes next: go on, or
 * close (and how). It never calls recv() or send(), never reads a clock
 * and never waits: the caller hands it the time, and asks it for its next
 * deadline. So it can be tested byte by byte without a socket
 * (tests/check_session.c), and any way of moving bytes can drive it: this
 * stage's event loop, and later stages' thread pool, TLS and WebSocket.
 *
 * The session owns its output (as a Redis client owns its reply buffer):
 * whatever it has to say goes to one place, in order, and the driver asks
 * for it (session_output()) and says how much the socket took
 * (session_sent()). Backpressure lives here too: once more than
 * `high_water` bytes wait unsent, the session answers nothing more, and
 * holds what it was fed, until the client has read enough. A client that
 * reads slowly is slowed down, never dropped; one that does not read at
 * all holds at most the high-water mark and one reply, and the driver's
 * send timeout ends it.
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
    long long idle_ms; /* a client silent this long, and owed nothing, is closed (0: never) */
    long long line_ms; /* a line must be finished this long after its first byte (0: never) */
    size_t high_water; /* past this many bytes unsent, no more lines are answered until the client reads */
};

enum session_verdict {
    SESSION_OPEN,    /* go on: send its output, read more when it wants input */
    SESSION_DONE,    /* the client said "exit": send its output, then close */
    SESSION_REFUSED, /* an ERR line ends its output: send it, end the stream, close (see `why`) */
};

struct session {
    const struct session_limits *limits;
    struct outbuf out;       /* what it has said and the driver has not sent yet */
    char *held;              /* bytes fed and not answered yet; NULL while there are none */
    size_t held_len;         /* an unfinished line, or lines held back while out is over the mark */
    size_t held_cap;         /* bytes allocated for them */
    bool paused;             /* out went over the mark with whole lines held: session_sent() goes on */
    long long idle_deadline; /* when the client will have been silent too long (0: never) */
    long long line_deadline; /* when its unfinished line will have taken too long (0: none) */
    unsigned long requests;  /* lines answered: each line is a request */
    const char *broken;      /* why it cannot go on (see session_broken()); NULL while it can */
    char why[64];            /* after SESSION_REFUSED: why, for the log */
};

/* Starts a session at now (milliseconds on the caller's clock). */
void session_start(struct session *session, const struct session_limits *limits, long long now);

/*
 * Feeds len received bytes to the session at now. It answers into its
 * output the lines it can (none once it is over the high-water mark:
 * those wait, held) and holds an unfinished one. Lines after an "exit" or
 * a refusal in the same bytes are not answered. Returns the verdict.
 */
enum session_verdict session_feed(struct session *session, const char *bytes, size_t len, long long now);

/* Whether the driver should read for it: not while its output is over the mark, or it holds lines back. */
bool session_wants_input(const struct session *session);

/* What it has to say that the driver has not sent yet: *len bytes (0: nothing). */
const char *session_output(const struct session *session, size_t *len);

/*
 * The driver sent the first len bytes of its output, at now. Once what is
 * left is under the high-water mark, the lines held back are answered.
 * Returns the verdict.
 */
enum session_verdict session_sent(struct session *session, size_t len, long long now);

/*
 * Why the session cannot go on and must be closed at once, with nothing
 * more sent (no memory for its output, or for what it was fed); NULL while
 * it can. The driver asks after each call that feeds or answers.
 */
const char *session_broken(const struct session *session);

/*
 * The next moment at which session_expire() has something to say, or 0 for
 * none. While output waits unsent the client owes a read, not a request:
 * then the driver's send timeout watches it, and no deadline is here.
 */
long long session_deadline(const struct session *session);

/*
 * The deadline has passed (now >= session_deadline()): queues the ERR line
 * and returns SESSION_REFUSED, with `why` set; or, when no deadline has
 * passed after all, SESSION_OPEN.
 */
enum session_verdict session_expire(struct session *session, long long now);

/* The server is stopping: queues the notice "server shutting down\n"; lines held back are not answered. */
void session_stop(struct session *session);

/* Frees what the session holds. */
void session_end(struct session *session);

#endif
