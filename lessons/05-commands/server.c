/*
 * server.c - lesson 05: commands in RESP, on lesson 04's event loop.
 *
 * The loop, the poller, the timers, the limits and the graceful stop are
 * lesson 04's. What a client says is no longer a line that gets "Hello
 * from server" but a command (PING, ECHO, TIME, CLIENT, INFO, SUBSCRIBE,
 * PUBLISH, ...) in RESP2, Redis's protocol, so that redis-cli,
 * redis-benchmark and any Redis client library can talk to it. All of
 * that lives in the session (session.h: the framing, resp.h: the parser,
 * commands.h: the commands), which never touches a socket; this file only
 * moves bytes, as in lesson 04.
 *
 * One thing is new for the loop: a client can now be owed bytes that no
 * request of its own asked for. A PUBLISH from one client appends a
 * message to the output of every subscriber (hub.h), and the hub tells
 * the loop through output_ready(): the subscriber joins the connections
 * with something to send, sent before the loop waits again. A message
 * cannot wait for its subscriber to read, so it has a limit of its own:
 * one that would take a client's output past --max-output closes it.
 *
 * Run:   make && ./server            (then redis-cli -p 9090, or ./client)
 *        redis-benchmark -p 9090 -t ping_inline,ping_mbulk -q
 * Read:  README.md, then session.h, resp.h, commands.c, hub.h, and
 *        `make diff FROM=04 TO=05` at the top of the course.
 */
#include "cli.h"
#include "hub.h"
#include "log.h"
#include "net.h"
#include "platform.h"
#include "poller.h"
#include "session.h"
#include "timers.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The limits, their defaults, and the flags that change them (documented in docs/protocol.md). */
#define DEFAULT_MAX_CLIENTS       1024
#define DEFAULT_IDLE_TIMEOUT_S    300     /* a client that sends nothing for this long is closed */
#define DEFAULT_REQUEST_TIMEOUT_S 30      /* a request must be complete this long after its first byte */
#define DEFAULT_SEND_TIMEOUT_S    10      /* a reply that finds no room for this long closes the client */
#define DEFAULT_MAX_OUTPUT        1048576 /* a message that would leave more than this unread closes a client */
#define DEFAULT_MAX_ARGS          1024    /* arguments in one request */
#define DEFAULT_MAX_BULK          524288  /* bytes in one bulk string */
#define DEFAULT_MAX_INLINE        65536   /* bytes in one inline command (Redis's PROTO_INLINE_MAX_SIZE) */
#define DEFAULT_MAX_QUERY         1048576 /* bytes of one client's unfinished request or transaction */
#define DEFAULT_MAX_SUBSCRIPTIONS 100000  /* channels one client may subscribe to */

/* How long to stop accepting when the process is out of descriptors (as memcached does). */
#define ACCEPT_PAUSE_MS 100

/* How long a client closed with an error may go on sending before its socket is closed anyway. */
#define LINGER_MS 2000

/* At the end, how long the log may take to reach stderr: a stderr nobody reads must not hold up the exit. */
#define LOG_STOP_WAIT_MS 1000

/* One recv() per client per wake-up, of at most this much: a client that floods gets its turn, not all of
 * them. */
#define READ_BUDGET 65536

/* The most connections accepted per wake-up (Redis: MAX_ACCEPTS_PER_CALL): the clients already here get
 * their turn too; the listener stays readable, and the next wake-up accepts the rest. */
#define ACCEPTS_PER_WAKE 1000

/*
 * Backpressure: past this many bytes of a client's output unsent, its
 * session answers no more requests, and the loop reads no more of them.
 * They wait in the kernel instead, its window fills, and its own sends
 * stall. As it reads, the session goes on.
 */
#define OUTPUT_HIGH_WATER 65536

/* The most events one wait reports; the rest come with the next. */
#define EVENTS_PER_WAIT 512

/* The usage, with the defaults filled in by main(). */
static const char usage_format[] =
    "usage: server [--host HOST] [--port PORT] [LIMITS]\n"
    "  --host HOST             address to listen on (default %s)\n"
    "  --port PORT             port to listen on, 0 for any free port (default %s)\n"
    "  --max-args N            most arguments in one request (default %d)\n"
    "  --max-bulk BYTES        longest bulk string (default %d)\n"
    "  --max-inline BYTES      longest inline command (default %d)\n"
    "  --max-query BYTES       most bytes kept of an unfinished request or transaction (default %d)\n"
    "  --max-clients N         clients served at once; more are refused (default %d)\n"
    "  --idle-timeout SECS     close a client silent this long, 0 for never; not subscribers (default %d)\n"
    "  --request-timeout SECS  close a client whose request takes longer, 0 for never (default %d)\n"
    "  --send-timeout SECS     close a client that does not read its replies, 0 for never (default %d)\n"
    "  --max-output BYTES      close a subscriber whose messages would leave more unread (default %d)\n"
    "  --max-subscriptions N   most channels one client may subscribe to (default %d)\n"
    "  --help                  print this help and exit\n"
    "Ctrl+C stops the server gracefully; a second Ctrl+C ends it at once.\n";

static const char full_reply[] = "-ERR max number of clients reached\r\n"; /* Redis's words */
static const char busy_reply[] = "-ERR server busy\r\n";

struct limits {
    long max_args;
    long max_bulk;
    long max_inline;
    long max_query;
    long max_clients;
    long idle_timeout_s;
    long request_timeout_s;
    long send_timeout_s;
    long max_output;
    long max_subscriptions;
};

/* Where a connection is in its life: each is what a thread per client knew by where it was in its code. */
enum conn_state {
    OPEN,      /* reading requests and answering them */
    DRAINING,  /* the client is done (its goodbye, or the end of its stream): send what is queued, then close
                */
    REFUSING,  /* an error is queued: send it, end the stream, then linger */
    LINGERING, /* the stream is ended: read and drop what still comes, until it closes or LINGER_MS */
    STOPPING,  /* the server stops: send what is queued and the notice, then close */
};

/* One client. */
struct conn {
    socket_t sock;
    enum conn_state state;
    struct session session;   /* the protocol: requests in, its output out */
    unsigned watched;         /* what the poller watches the socket for */
    long long stalled_since;  /* when a send last found no room with bytes unsent (0: none unsent) */
    size_t stall_queue;       /* kernel_queue() when the send clock last started */
    long long linger_until;   /* while LINGERING */
    struct timer timer;       /* the nearest of its deadlines */
    struct conn *prev, *next; /* the open connections, for the stop */
    struct conn *send_next;   /* in the loop's list of connections with something to send, while to_send */
    bool to_send;             /* it is in that list */
    bool closed;              /* closed during this wake-up: its other events are stale */
    char peer[NET_ADDR_TEXT]; /* "host:port", for the log */
};

/* What the loop keeps: everything. */
struct loop {
    struct limits limits;
    struct session_limits session_limits;
    struct poller *poller;
    socket_t listener;       /* SOCKET_INVALID once the stop has closed it */
    long long accept_resume; /* when accepting resumes after running out of descriptors (0: not paused) */
    struct timers timers;
    struct conn *first;   /* every open connection */
    struct conn *closed;  /* connections closed during this wake-up, freed after it */
    struct conn *to_send; /* connections with something to send, sent before the next wait */
    struct hub hub;       /* what the sessions share: the clients, the channels, the counters */
    bool stopping;
    long long stop_deadline; /* once stopping: when every connection left is closed anyway */
    unsigned long clients_refused;
    char listener_mark, stop_mark; /* their addresses tell the listener's and the stop's events apart */
    char received[READ_BUDGET];    /* what one recv() reads into, for every client in turn */
};

/* The struct conn that holds this timer. */
static struct conn *conn_of(struct timer *timer)
{
    return (struct conn *)(void *)((char *)timer - offsetof(struct conn, timer));
}

/* The struct conn that holds this session. */
static struct conn *conn_of_session(struct session *session)
{
    return (struct conn *)(void *)((char *)session - offsetof(struct conn, session));
}

/* Closes a connection now, logs it, and leaves its memory to free_closed(): events for it may follow. */
static void conn_close(struct loop *loop, struct conn *conn)
{
    poller_remove(loop->poller, conn->sock);
    sock_close(conn->sock);
    timers_cancel(&loop->timers, &conn->timer);
    log_event(conn->peer, "disconnected after %lu requests", conn->session.requests);
    session_end(&conn->session);
    if (conn->prev != NULL)
        conn->prev->next = conn->next;
    else
        loop->first = conn->next;
    if (conn->next != NULL)
        conn->next->prev = conn->prev;
    conn->closed = true;
    conn->next = loop->closed;
    loop->closed = conn;
}

/* Closes a connection the loop cannot go on serving, and says why. */
static void give_up(struct loop *loop, struct conn *conn, const char *why)
{
    log_event(conn->peer, "error: %s, closing", why);
    conn_close(loop, conn);
}

/* Frees the connections closed during this wake-up, once no event can name them any more. */
static void free_closed(struct loop *loop)
{
    while (loop->closed != NULL) {
        struct conn *next = loop->closed->next;
        free(loop->closed);
        loop->closed = next;
    }
}

/* Tells the poller what to watch the socket for, when that changed. Returns 0, or -1. */
static int watch(struct loop *loop, struct conn *conn, unsigned events)
{
    if (events == conn->watched)
        return 0;
    conn->watched = events;
    return poller_modify(loop->poller, conn->sock, events, conn);
}

/* The nearest of the connection's deadlines, or 0 for none. */
static long long conn_due(const struct loop *loop, const struct conn *conn)
{
    long long due = conn->state == OPEN ? session_deadline(&conn->session) : 0;
    if (conn->state == LINGERING)
        due = conn->linger_until;
    if (conn->stalled_since != 0 && loop->limits.send_timeout_s > 0) {
        long long give_up_at = conn->stalled_since + loop->limits.send_timeout_s * 1000;
        if (due == 0 || give_up_at < due)
            due = give_up_at;
    }
    return due;
}

/*
 * Keeps the connection's timer at or before its nearest deadline. A later
 * deadline (every request moves the idle one) leaves the timer where it
 * is: when it goes off, expire() finds the deadline has moved and sets it
 * again. So a busy client costs the heap nothing per request. Returns 0,
 * or -1 when the heap has no memory: then the connection has no deadline,
 * and must not stay.
 */
static int arm(struct loop *loop, struct conn *conn)
{
    long long due = conn_due(loop, conn);
    if (due == 0)
        timers_cancel(&loop->timers, &conn->timer);
    else if (conn->timer.slot == 0 || due < conn->timer.due)
        return timers_set(&loop->timers, &conn->timer, due);
    return 0;
}

/* Puts the connection in the list of those with something to send (or a state to act on) before the next
 * wait. */
static void queue_send(struct loop *loop, struct conn *conn)
{
    if (conn->to_send)
        return;
    conn->to_send = true;
    conn->send_next = loop->to_send;
    loop->to_send = conn;
}

/* Acts on the session's verdict about what it was just fed, or what it answered as its output drained. */
static void judge(struct conn *conn, enum session_verdict verdict)
{
    switch (verdict) {
    case SESSION_OPEN:
        break;
    case SESSION_DONE:
        conn->state = DRAINING;
        break;
    case SESSION_REFUSED:
        log_event(conn->peer, "error: %s, closing", conn->session.why);
        conn->state = REFUSING;
        break;
    }
}

/*
 * The bytes the kernel holds for the client unacknowledged, or SIZE_MAX
 * when the system cannot tell. A send() that succeeds is not the only sign
 * that a client reads: Linux grows a socket's send buffer to megabytes, then
 * reports room only once a good part of it is free, so a client that reads
 * a few KB/s sees no send() succeed for minutes while this count shrinks.
 */
static size_t kernel_queue(const struct conn *conn)
{
    size_t bytes;
    return sock_unacked_bytes(conn->sock, &bytes) == 0 ? bytes : SIZE_MAX;
}

/*
 * The send clock has run out: whether the client took some of its replies
 * meanwhile, its kernel queue shorter than when the clock started. Then it
 * is slowed, not dropped: the clock starts again, at the new level. Where
 * the system cannot tell (Windows), only a send() that succeeds stops it.
 */
static bool still_taking(struct conn *conn, long long now)
{
    size_t queued = kernel_queue(conn);
    if (queued >= conn->stall_queue)
        return false;
    conn->stall_queue = queued;
    conn->stalled_since = now;
    return true;
}

/*
 * Sends what fits of the session's output. Each send tells the session
 * how much went, and it may answer requests it held back meanwhile.
 * Returns false when the connection broke.
 */
static bool send_some(struct conn *conn, long long now)
{
    size_t len;
    const char *bytes;
    while ((bytes = session_output(&conn->session, &len)) != NULL) {
        long sent = sock_send(conn->sock, bytes, len);
        if (sent < 0) {
            int code = sock_last_error();
            if (sock_error_is_interrupt(code))
                continue;
            if (!sock_error_is_would_block(code))
                return false;
            if (conn->stalled_since == 0) { /* no room: the send clock starts, the kernel's queue measured */
                conn->stalled_since = now;
                conn->stall_queue = kernel_queue(conn);
            }
            return true;
        }
        conn->stalled_since = 0; /* progress: the clock stops */
        judge(conn, session_sent(&conn->session, (size_t)sent, now));
    }
    return true;
}

/*
 * Sends what the session has to say, unless it is broken: then it is
 * closed, and nothing more is sent. What does not fit waits in the
 * session's output, and the poller watches for room; once all is out, the
 * state says what comes next.
 */
static void flush(struct loop *loop, struct conn *conn, long long now)
{
    if (session_broken(&conn->session) == NULL && !send_some(conn, now)) {
        conn_close(loop, conn); /* broken or reset: nobody left to answer */
        return;
    }
    const char *broken = session_broken(&conn->session); /* then it is sent nothing more */
    if (broken != NULL) {
        give_up(loop, conn, broken);
        return;
    }
    size_t unsent;
    session_output(&conn->session, &unsent);
    unsigned events = POLLER_READ;
    if (unsent > 0) {
        /* Watch for room; read on only while the session wants more. */
        bool read_on = conn->state == OPEN && session_wants_input(&conn->session);
        events = POLLER_WRITE | (read_on ? POLLER_READ : 0u);
    } else if (conn->state == DRAINING || conn->state == STOPPING) {
        conn_close(loop, conn);
        return;
    } else if (conn->state == REFUSING) {
        /* Not close(): unread bytes would turn it into a reset, which can cost the client its error. */
        sock_stop_sending(conn->sock);
        conn->state = LINGERING;
        conn->linger_until = now + LINGER_MS;
    }
    if (watch(loop, conn, events) != 0)
        give_up(loop, conn, "cannot watch its socket");
    else if (arm(loop, conn) != 0)
        give_up(loop, conn, "out of memory for its deadlines");
}

/* Sends, before the loop waits again, for every connection queued during this wake-up. */
static void send_pending(struct loop *loop, long long now)
{
    while (loop->to_send != NULL) {
        struct conn *conn = loop->to_send;
        loop->to_send = conn->send_next;
        conn->to_send = false;
        if (!conn->closed)
            flush(loop, conn, now);
    }
}

/*
 * One recv() into the loop's buffer, at most READ_BUDGET bytes: what is
 * left waits for the next wake-up, and the poller says so again (its
 * readiness is level-triggered). The session answers the requests into
 * its output, sent before the loop waits again.
 */
static void receive(struct loop *loop, struct conn *conn, long long now)
{
    long got = net_recv(conn->sock, loop->received, sizeof loop->received);
    if (got < 0) {
        if (!sock_error_is_would_block(sock_last_error()))
            conn_close(loop, conn); /* broken or reset: nobody left to answer */
        return;
    }
    if (got == 0)
        conn->state = DRAINING; /* the end of the stream: the client has said all it will */
    else
        judge(conn, session_feed(&conn->session, loop->received, (size_t)got, now));
    queue_send(loop, conn);
}

/* Reads and drops what a client still sends after its error, until it closes its side. */
static void drop_input(struct loop *loop, struct conn *conn)
{
    long got = net_recv(conn->sock, loop->received, sizeof loop->received);
    if (got == 0 || (got < 0 && !sock_error_is_would_block(sock_last_error())))
        conn_close(loop, conn);
}

/* A client's socket is ready: read, or send what waits, as its state wants. */
static void serve(struct loop *loop, struct conn *conn, unsigned events, long long now)
{
    if ((events & POLLER_READ) && conn->state == OPEN && session_wants_input(&conn->session))
        receive(loop, conn, now);
    else if ((events & POLLER_READ) && conn->state == LINGERING)
        drop_input(loop, conn);
    if (!conn->closed && (events & POLLER_WRITE))
        queue_send(loop, conn);
}

/* The hub's output_ready(): a PUBLISH gave the session output, or too much. Its connection will send it. */
static void output_ready(void *driver, struct session *session)
{
    queue_send(driver, conn_of_session(session));
}

/* Turns a client away at once with a one-line reply; never waits on it. */
static void turn_away(socket_t sock, const char *peer, const char *reply, size_t len, const char *why)
{
    log_event(peer, "error: %s, refusing", why);
    struct send_limit no_wait = {.stall_ms = 0};
    net_send_all(sock, reply, len, &no_wait);
    sock_close(sock);
}

/* Makes a struct conn for an accepted socket and starts watching it. Returns false if it could not. */
static bool admit(struct loop *loop, socket_t sock, const char *peer, long long now)
{
    struct conn *conn = calloc(1, sizeof *conn);
    if (conn == NULL)
        return false;
    conn->sock = sock;
    conn->state = OPEN;
    conn->watched = POLLER_READ;
    snprintf(conn->peer, sizeof conn->peer, "%s", peer);
    if (poller_add(loop->poller, sock, POLLER_READ, conn) != 0) {
        free(conn);
        return false;
    }
    session_start(&conn->session, &loop->hub, &loop->session_limits, conn->peer, now);
    conn->next = loop->first;
    if (loop->first != NULL)
        loop->first->prev = conn;
    loop->first = conn;
    log_event(conn->peer, "connected");
    if (arm(loop, conn) != 0)
        give_up(loop, conn, "out of memory for its deadlines");
    return true;
}

/* Accepts the connections that wait, until accept() would block or ACCEPTS_PER_WAKE are taken. */
static void accept_clients(struct loop *loop, long long now)
{
    for (int taken = 0; taken < ACCEPTS_PER_WAKE; taken++) {
        char peer[NET_ADDR_TEXT];
        socket_t sock = net_accept(loop->listener, peer, sizeof peer);
        if (sock == SOCKET_INVALID) {
            int code = sock_last_error();
            if (sock_error_is_would_block(code))
                return; /* all taken */
            if (sock_error_is_interrupt(code))
                continue;
            char reason[NET_ERR_TEXT];
            log_event("server", "error: accept: %s", sock_strerror(code, reason, sizeof reason));
            if (sock_error_is_out_of_resources(code)) {
                /* The connection stays queued, and the listener readable: stop watching it for a moment. */
                poller_modify(loop->poller, loop->listener, 0, &loop->listener_mark);
                loop->accept_resume = now + ACCEPT_PAUSE_MS;
                return;
            }
            continue; /* a client that left before we took it, say */
        }
        if (sock_set_nonblocking(sock, true) != 0) {
            turn_away(sock, peer, busy_reply, sizeof busy_reply - 1, "cannot set up its socket");
        } else if (loop->hub.clients >= (size_t)loop->limits.max_clients) {
            loop->clients_refused++;
            turn_away(sock, peer, full_reply, sizeof full_reply - 1, "server full");
        } else if (!admit(loop, sock, peer, now)) {
            turn_away(sock, peer, busy_reply, sizeof busy_reply - 1, "out of memory");
        }
    }
}

/* The deadlines that have come: whose they are, and what each one means. */
static void expire(struct loop *loop, long long now)
{
    struct timer *timer;
    while ((timer = timers_take_due(&loop->timers, now)) != NULL) {
        struct conn *conn = conn_of(timer);
        long long due = conn_due(loop, conn);
        if (due == 0)
            continue;
        if (due > now) { /* the deadline moved since the timer was set: set it again */
            if (timers_set(&loop->timers, &conn->timer, due) != 0)
                give_up(loop, conn, "out of memory for its deadlines");
            continue;
        }
        if (conn->stalled_since != 0 && loop->limits.send_timeout_s > 0 &&
            now >= conn->stalled_since + loop->limits.send_timeout_s * 1000) {
            if (!still_taking(conn, now))
                give_up(loop, conn, "not reading its replies");
            else if (arm(loop, conn) != 0) /* its clock started again */
                give_up(loop, conn, "out of memory for its deadlines");
        } else if (conn->state == LINGERING) {
            conn_close(loop, conn);
        } else if (conn->state == OPEN) {
            judge(conn, session_expire(&conn->session, now));
            queue_send(loop, conn);
        }
    }
}

/*
 * Ctrl+C: stop accepting, then give every client what it is owed: the
 * answers to what it has already sent, and the notice. A client that takes
 * them all is closed then; none is waited for past a second from now.
 */
static void begin_stop(struct loop *loop, long long now)
{
    loop->stopping = true;
    loop->stop_deadline = now + NET_STOP_SEND_WAIT_MS;
    poller_remove(loop->poller, stop_descriptor()); /* it stays readable: watched, it would wake every wait */
    poller_remove(loop->poller, loop->listener);
    sock_close(loop->listener);
    loop->listener = SOCKET_INVALID;
    log_event("server", "stopping: no new clients, telling the connected ones");
    /* First what each client sent before the stop gets its answer... */
    for (struct conn *conn = loop->first, *next; conn != NULL; conn = next) {
        next = conn->next;
        if (conn->state == LINGERING)
            conn_close(loop, conn); /* it has had its error; the rest of its linger is not owed */
        else if (conn->state == OPEN && session_wants_input(&conn->session))
            receive(loop, conn, now);
    }
    /* ... then the notice, to every client still open. */
    for (struct conn *conn = loop->first; conn != NULL; conn = conn->next) {
        if (conn->state != OPEN)
            continue; /* it said goodbye, or was refused: it is on its way out already */
        conn->state = STOPPING;
        session_stop(&conn->session);
        queue_send(loop, conn);
    }
}

/* After the stop's second: whoever is left has not taken its replies, and is closed anyway. */
static void end_stop(struct loop *loop)
{
    while (loop->first != NULL) {
        size_t unsent;
        if (session_output(&loop->first->session, &unsent) != NULL)
            log_event(loop->first->peer, "error: not reading its replies at the stop, closing");
        conn_close(loop, loop->first);
    }
}

/* How long the next wait may last: until the nearest deadline, the end of a pause or the stop's second. */
static int wait_ms(const struct loop *loop, long long now)
{
    long long until = timers_next(&loop->timers);
    long long others[2] = {loop->accept_resume, loop->stopping ? loop->stop_deadline : 0};
    for (int i = 0; i < 2; i++)
        if (others[i] != 0 && (until == 0 || others[i] < until))
            until = others[i];
    if (until == 0)
        return -1;
    return until <= now ? 0 : (int)(until - now);
}

/*
 * Makes the listener non-blocking and a poller that watches it and the
 * stop. Returns 0, or -1 with the reason in err.
 */
static int start_watching(struct loop *loop, char *err, size_t err_len)
{
    /* Non-blocking, like every socket here: accept() until it says "would block". */
    if (sock_set_nonblocking(loop->listener, true) != 0) {
        snprintf(err, err_len, "cannot make the listening socket non-blocking");
        return -1;
    }
    loop->poller = poller_create(64);
    if (loop->poller == NULL) {
        snprintf(err, err_len, "cannot create the poller (%s)", poller_name());
        return -1;
    }
    /* The loop owns its stop: it hears it as one more descriptor becoming readable. */
    if (poller_add(loop->poller, loop->listener, POLLER_READ, &loop->listener_mark) != 0 ||
        poller_add(loop->poller, stop_descriptor(), POLLER_READ, &loop->stop_mark) != 0) {
        snprintf(err, err_len, "cannot watch the listener and the stop with %s", poller_name());
        return -1;
    }
    return 0;
}

/* The loop: wait, dispatch, expire, send; until the stop has been given its time and every client is gone. */
static void run(struct loop *loop)
{
    struct poller_event events[EVENTS_PER_WAIT];
    long long now = monotonic_ms();
    while (!loop->stopping || (loop->first != NULL && now < loop->stop_deadline)) {
        int ready = poller_wait(loop->poller, events, EVENTS_PER_WAIT, wait_ms(loop, now));
        now = monotonic_ms();
        loop->hub.wall_clock_us = wall_clock_us(); /* TIME's, read once a wake-up as Redis caches its own */
        if (ready < 0) {
            /* Nothing this loop can mend: say so, and pause rather than spin (Ctrl+C still ends the pause).
             */
            char reason[NET_ERR_TEXT];
            log_event("server", "error: waiting for events: %s",
                      sock_strerror(sock_last_error(), reason, sizeof reason));
            if (wait_for_stop(ACCEPT_PAUSE_MS) == WOKE_STOP && !loop->stopping)
                begin_stop(loop, now);
            continue;
        }
        for (int i = 0; i < ready; i++) {
            void *data = events[i].data;
            if (data == &loop->stop_mark) {
                if (!loop->stopping)
                    begin_stop(loop, now);
            } else if (data == &loop->listener_mark) {
                if (!loop->stopping)
                    accept_clients(loop, now);
            } else if (!((struct conn *)data)->closed) {
                serve(loop, data, events[i].events, now);
            }
        }
        expire(loop, now);
        send_pending(loop, now);
        if (loop->accept_resume != 0 && now >= loop->accept_resume && !loop->stopping) {
            loop->accept_resume = 0;
            poller_modify(loop->poller, loop->listener, POLLER_READ, &loop->listener_mark);
        }
        free_closed(loop);
    }
    end_stop(loop);
    free_closed(loop);
}

int main(int argc, char **argv)
{
    program_name = "server";
    struct loop *loop = calloc(1, sizeof *loop);
    if (loop == NULL)
        die("out of memory");
    loop->limits = (struct limits){.max_args = DEFAULT_MAX_ARGS,
                                   .max_bulk = DEFAULT_MAX_BULK,
                                   .max_inline = DEFAULT_MAX_INLINE,
                                   .max_query = DEFAULT_MAX_QUERY,
                                   .max_clients = DEFAULT_MAX_CLIENTS,
                                   .idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S,
                                   .request_timeout_s = DEFAULT_REQUEST_TIMEOUT_S,
                                   .send_timeout_s = DEFAULT_SEND_TIMEOUT_S,
                                   .max_output = DEFAULT_MAX_OUTPUT,
                                   .max_subscriptions = DEFAULT_MAX_SUBSCRIPTIONS};
    struct limits *limits = &loop->limits;
    const struct number_option limit_options[] = {
        {"--max-args", 1, 1024, &limits->max_args},
        {"--max-bulk", 1, 536870912, &limits->max_bulk},
        {"--max-inline", 16, 1048576, &limits->max_inline},
        {"--max-query", 1024, 1073741824, &limits->max_query},
        {"--max-clients", 1, 1000000, &limits->max_clients},
        {"--idle-timeout", 0, 86400, &limits->idle_timeout_s},
        {"--request-timeout", 0, 86400, &limits->request_timeout_s},
        {"--send-timeout", 0, 86400, &limits->send_timeout_s},
        {"--max-output", 4096, 1073741824, &limits->max_output},
        {"--max-subscriptions", 1, 100000000, &limits->max_subscriptions},
    };
    char usage_text[sizeof usage_format + 160];
    snprintf(usage_text, sizeof usage_text, usage_format, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_MAX_ARGS,
             DEFAULT_MAX_BULK, DEFAULT_MAX_INLINE, DEFAULT_MAX_QUERY, DEFAULT_MAX_CLIENTS,
             DEFAULT_IDLE_TIMEOUT_S, DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_SEND_TIMEOUT_S, DEFAULT_MAX_OUTPUT,
             DEFAULT_MAX_SUBSCRIPTIONS);
    struct options opts;
    char err[NET_ERR_TEXT];
    if (parse_options(argc, argv, &opts, limit_options, sizeof limit_options / sizeof limit_options[0], err,
                      sizeof err) != PARSE_OK)
        usage_error(usage_text, "%s", err);
    if (opts.help) {
        fputs(usage_text, stdout);
        free(loop);
        return EXIT_OK;
    }
    /* An unfinished request with a bulk string of the longest may wait; the query buffer must hold one. */
    if (limits->max_query < limits->max_bulk + 64 || limits->max_query < limits->max_inline + 2)
        usage_error(usage_text, "--max-query must be at least --max-bulk + 64 and --max-inline + 2");
    loop->session_limits = (struct session_limits){.resp = {.max_args = (size_t)limits->max_args,
                                                            .max_bulk = (size_t)limits->max_bulk,
                                                            .max_inline = (size_t)limits->max_inline},
                                                   .max_query = (size_t)limits->max_query,
                                                   .idle_ms = limits->idle_timeout_s * 1000,
                                                   .request_ms = limits->request_timeout_s * 1000,
                                                   .high_water = OUTPUT_HIGH_WATER,
                                                   .max_output = (size_t)limits->max_output,
                                                   .max_subscriptions = (size_t)limits->max_subscriptions};
    hub_init(&loop->hub, monotonic_ms(), output_ready, loop);

    if (net_startup() != 0)
        die("cannot start the socket library");
    if (stop_handler_install() != 0)
        die("cannot install the Ctrl+C handler");
    loop->listener = net_listen(opts.host, opts.port, err, sizeof err);
    if (loop->listener == SOCKET_INVALID)
        die("cannot listen on %s:%s: %s", opts.host, opts.port, err);
    if (start_watching(loop, err, sizeof err) != 0)
        die("%s", err);
    ignore_broken_pipes(); /* a client gone, or stderr piped into a program that ended, must not end the
                              server */
    if (log_start() != 0)
        die("cannot start the log's thread");

    char address[NET_ADDR_TEXT];
    if (net_local_address(loop->listener, address, sizeof address) != 0)
        die("cannot read the listening address");
    /* One flushed line: scripts and tests wait for it instead of sleeping. */
    printf("listening on %s\n", address);
    fflush(stdout);

    run(loop);
    log_event("server", "stopped: %llu clients served, %llu requests answered, %lu refused (server full)",
              loop->hub.connections_received, loop->hub.commands_processed, loop->clients_refused);
    log_stop(LOG_STOP_WAIT_MS);
    poller_destroy(loop->poller);
    timers_free(&loop->timers);
    hub_free(&loop->hub);
    free(loop);
    stop_handler_remove();
    net_cleanup();
    return EXIT_OK;
}
