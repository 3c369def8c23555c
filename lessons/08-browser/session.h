/*
 * session.h - what the server says to one client, without any I/O: RESP
 * requests in, RESP replies and a verdict out.
 *
 * As in lesson 04, a session is fed the bytes a client sent, answers into
 * its own output, holds requests back while that output is over the
 * high-water mark, and never touches a socket or a clock: the driver
 * hands it the time and asks for its next deadline. What changed is the
 * protocol (docs/protocol.md): each request is a command, parsed by resp.c
 * in either framing and run by commands.c; and a session may now be
 * given output no request of its own asked for: a PUBLISH to a channel it
 * subscribed to (session_push(), called by the hub). That output cannot
 * wait for the client to read, so it has a limit of its own, checked where
 * it is appended: --max-output.
 *
 * Lesson 06 adds slow commands (DEBUG SLEEP, PRIMES). Their command makes
 * a job (job.h) and hands it to the session (session_defer()), and the
 * session stops there: it runs no request after it until the job's reply
 * comes back (session_finish_job()), so replies stay in the order of the
 * requests, as in Redis. The driver takes the job (session_take_job()),
 * has it run off the loop, and brings the reply back to the session by
 * its CLIENT ID (hub_session()): a client that left meanwhile is not
 * there, and its reply is dropped.
 */
#ifndef SESSION_H
#define SESSION_H

#include "hub.h"
#include "job.h"
#include "outbuf.h"
#include "reply.h"
#include "resp.h"

#include <stdbool.h>
#include <stddef.h>

/* The limits every session of a server keeps to (the server's options). */
struct session_limits {
    struct resp_limits
        resp;          /* arguments, bulk strings and inline lines (--max-args, --max-bulk, --max-inline) */
    size_t max_query;  /* the most bytes of an unfinished request, or of a transaction (--max-query) */
    long long idle_ms; /* a client silent this long, and owed nothing, is closed (0: never); subscribers are
                          exempt */
    long long request_ms; /* a request must be finished this long after its first byte (0: never) */
    size_t high_water;    /* past this many bytes unsent, no more requests are run until the client reads */
    size_t max_output; /* a message that would take the output past this closes the client (--max-output) */
    size_t max_subscriptions; /* the most channels one client may subscribe to (--max-subscriptions) */
};

enum session_verdict {
    SESSION_OPEN,    /* go on: send its output, read more when it wants input */
    SESSION_DONE,    /* QUIT or "exit": send its output, then close */
    SESSION_REFUSED, /* an error ends its output: send it, end the stream, close (see `why`) */
};

/* The longest client name (CLIENT SETNAME). */
#define SESSION_NAME_MAX 64

struct session {
    struct hub *hub;
    const struct session_limits *limits;
    struct session *prev, *next; /* in the hub's list of every session */
    unsigned long long id;       /* CLIENT ID: 1, 2, ... in the order clients came */
    struct hub_entry by_id;      /* in the hub's table of sessions, keyed by id */
    const char *peer;            /* "host:port": the driver's, which outlives the session */
    char name[SESSION_NAME_MAX + 1];
    enum resp_version resp; /* RESP2, or RESP3 after HELLO 3 */
    struct outbuf out;      /* what it has said (replies, messages) and the driver has not taken yet */
    size_t in_transit;    /* bytes of it the driver took and has not sent yet (TLS records): they count too */
    char *held;           /* bytes fed and not run yet; NULL while there are none */
    size_t held_len;      /* an unfinished request, or requests held back while out is over the mark */
    size_t held_cap;      /* bytes allocated for them */
    bool paused;          /* out went over the mark with whole requests held: session_sent() goes on */
    size_t channel_count; /* channels it subscribed to; while there is one, it is in subscribe mode */
    struct subscription *oldest, *newest; /* its subscriptions, in order (the hub's) */
    bool in_multi;                        /* between MULTI and EXEC or DISCARD */
    bool multi_failed;                    /* a command could not be queued: EXEC will refuse */
    struct outbuf queued;                 /* the commands queued since MULTI, as RESP arrays */
    size_t queued_count;
    bool awaiting_job;          /* a slow command's reply is still to come: no request runs meanwhile */
    struct job *new_job;        /* its job, until the driver takes it (session_take_job()); NULL after */
    long long started;          /* when it connected */
    long long last_request;     /* when its last request was run */
    long long idle_deadline;    /* when the client will have been silent too long (0: never) */
    long long request_deadline; /* when its unfinished request will have taken too long (0: none) */
    unsigned long requests;     /* requests run */
    char last_command[24];      /* the name of the last one, for CLIENT LIST */
    const char *broken;         /* why it cannot go on (see session_broken()); NULL while it can */
    char why[96];               /* after SESSION_REFUSED: why, for the log */
};

/*
 * Starts a session of the hub at now, for the client at peer (a string
 * that outlives the session). Returns 0, or -1 when out of memory (then
 * there is nothing to end).
 */
int session_start(struct session *session, struct hub *hub, const struct session_limits *limits,
                  const char *peer, long long now);

/*
 * Feeds len received bytes to the session at now. It runs the requests it
 * can, answering into its output (none once it is over the high-water
 * mark: those wait, held), and holds an unfinished one. Requests after a
 * QUIT or a refusal in the same bytes are not run. Returns the verdict.
 */
enum session_verdict session_feed(struct session *session, const char *bytes, size_t len, long long now);

/*
 * Whether the driver should read for it: not while its output is over the
 * mark, or it holds requests back; while it waits for a job, only until
 * --max-query bytes wait behind it (reading on, the driver hears a client
 * that leaves).
 */
bool session_wants_input(const struct session *session);

/* What it has to say that the driver has not sent yet: *len bytes (0: nothing). */
const char *session_output(const struct session *session, size_t *len);

/*
 * The driver took the first len bytes of its output, at now: sent them,
 * or (lesson 07) encrypted them to send. Once what is left is under the
 * high-water mark, the requests held back are run. Returns the verdict.
 */
enum session_verdict session_sent(struct session *session, size_t len, long long now);

/*
 * The driver holds len bytes of what it took of the output and has not
 * sent yet (lesson 07: encrypted, in TLS records). They count against
 * --max-output as the output does, and the client owes a read for them.
 */
void session_in_transit(struct session *session, size_t len);

/*
 * A message no request of this session asked for (the hub's PUBLISH):
 * appended to its output, unless that would take the output past
 * --max-output, which breaks the session. Returns 1 when it was appended,
 * 0 when not (a session that is broken, or has had its verdict, gets
 * nothing more).
 */
int session_push(struct session *session, const char *bytes, size_t len);

/*
 * Why the session cannot go on and must be closed at once, with nothing
 * more sent (its output would pass --max-output, or found no memory);
 * NULL while it can. The driver asks after each call that feeds, answers
 * or pushes.
 */
const char *session_broken(const struct session *session);

/*
 * The next moment at which session_expire() has something to say, or 0 for
 * none. While output waits unsent the client owes a read, not a request:
 * then the driver's send timeout watches it, and no deadline is here.
 */
long long session_deadline(const struct session *session);

/*
 * The deadline has passed (now >= session_deadline()): queues the error
 * and returns SESSION_REFUSED, with `why` set; or, when no deadline has
 * passed after all, SESSION_OPEN.
 */
enum session_verdict session_expire(struct session *session, long long now);

/*
 * The server is stopping: queues the notice "-ERR server shutting down";
 * requests held back are not run. Call it once the job it waits for, if
 * any, has finished: the notice comes last.
 */
void session_stop(struct session *session);

/*
 * A command's reply will be this job's (commands.c calls it): the session
 * keeps the job, and runs no more requests until session_finish_job().
 */
void session_defer(struct session *session, struct job *job);

/* Whether a job's reply is still to come: the driver must not close the session's client for being done. */
bool session_awaits_job(const struct session *session);

/* The job the driver is to run for it, once (NULL: none new); the driver owns it until it finishes. */
struct job *session_take_job(struct session *session);

/*
 * The job it took has finished at now: its reply joins the output, the
 * job is freed, and the requests that waited behind it are run. Returns
 * the verdict.
 */
enum session_verdict session_finish_job(struct session *session, struct job *job, long long now);

/* Leaves the hub and frees what the session holds (not a job the driver took: that is the driver's). */
void session_end(struct session *session);

#endif
