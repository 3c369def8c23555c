/*
 * session.h - what the server says to one client, without any I/O: RESP
 * requests in, RESP replies and a verdict out.
 *
 * As in lesson 04, a session is fed the bytes a client sent and never
 * touches a socket or a clock: the driver hands it the time and asks for
 * its next deadline. What changed is the protocol (docs/protocol.md):
 * each request is a command, parsed by resp.c in either framing and run
 * by commands.c, and a session may now hear from other sessions through
 * the hub (a PUBLISH to a channel it subscribed to), which leaves the
 * message in its mailbox for the driver to send.
 */
#ifndef SESSION_H
#define SESSION_H

#include "hub.h"
#include "outbuf.h"
#include "resp.h"

#include <stdbool.h>
#include <stddef.h>

/* The limits every session of a server keeps to (the server's options). */
struct session_limits {
    struct resp_limits
        resp;          /* arguments, bulk strings and inline lines (--max-args, --max-bulk, --max-inline) */
    size_t max_query;  /* the most unparsed bytes kept for an unfinished request (--max-query) */
    long long idle_ms; /* a client silent this long is closed (0: never); subscribers are exempt */
    long long request_ms; /* a request must be finished this long after its first byte (0: never) */
};

enum session_verdict {
    SESSION_OPEN,    /* go on: send what was queued, read more */
    SESSION_DONE,    /* QUIT or "exit": send what was queued, then close */
    SESSION_REFUSED, /* an error was queued: send it, end the stream, close (see `why`) */
};

/* The longest client name (CLIENT SETNAME) and peer address kept. */
#define SESSION_NAME_MAX 64
#define SESSION_PEER_MAX 64

struct session {
    struct hub *hub;
    const struct session_limits *limits;
    struct session *prev, *next; /* in the hub's list of every session */
    unsigned long long id;       /* CLIENT ID: 1, 2, ... in the order clients came */
    char peer[SESSION_PEER_MAX]; /* "host:port" */
    char name[SESSION_NAME_MAX + 1];
    char *query;      /* an unfinished request, kept between receives; NULL while there is none */
    size_t query_len; /* bytes of it */
    size_t query_cap; /* bytes allocated for it */
    struct channel *
        *channels; /* the channels it subscribed to; while there is one, it is in subscribe mode */
    size_t channel_count, channel_cap;
    struct outbuf mailbox;      /* messages published to its channels, not sent yet (see hub.h) */
    bool mail_overflow;         /* a message did not fit in the mailbox: the driver closes the session */
    long long started;          /* when it connected */
    long long last_request;     /* when its last request was run */
    long long idle_deadline;    /* when the client will have been silent too long (0: never) */
    long long request_deadline; /* when its unfinished request will have taken too long (0: none) */
    unsigned long commands;     /* requests run */
    char last_command[24];      /* the name of the last one, for CLIENT LIST */
    char why[96];               /* after SESSION_REFUSED: why, for the log */
};

/* Starts a session of the hub at now, for the client at peer. */
void session_start(struct session *session, struct hub *hub, const struct session_limits *limits,
                   const char *peer, long long now);

/*
 * Feeds len received bytes to the session at now, and appends the
 * replies to out. Requests after a QUIT or a refusal in the same bytes are
 * not run. Returns the verdict.
 */
enum session_verdict session_feed(struct session *session, const char *bytes, size_t len, long long now,
                                  struct outbuf *out);

/* The next moment at which session_expire() has something to say, or 0 for none. */
long long session_deadline(const struct session *session);

/*
 * The deadline has passed (now >= session_deadline()): appends the error
 * to out and returns SESSION_REFUSED, with `why` set; or, when no
 * deadline has passed after all, SESSION_OPEN.
 */
enum session_verdict session_expire(struct session *session, long long now, struct outbuf *out);

/*
 * Moves the messages waiting in the mailbox to the end of out, to go out
 * like replies. Returns 0, or -1 when out of memory: they are dropped, and
 * the caller should close the session.
 */
int session_take_mail(struct session *session, struct outbuf *out);

/* The server is stopping: appends the notice "-ERR server shutting down". */
void session_stop(struct session *session, struct outbuf *out);

/* Leaves the hub and frees what the session holds, its mailbox included. */
void session_end(struct session *session);

#endif
