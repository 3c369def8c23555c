/*
 * server.c - lesson 08: a web page talks to the server, over WebSocket.
 *
 * Everything lesson 07 does is here, on the RESP ports. With --http-port
 * (and --https-port, with 07's certificates), one more listener takes
 * browsers: each connection gets a WebSocket object (ws.h) between its
 * socket (or its TLS) and its session. First it speaks HTTP/1.1: a GET
 * for one of the page's files is answered from memory (pages.h), and
 * GET /ws upgrades it. Then each message from the page is fed to the
 * session as the bytes of its requests (unframe()), and what the session
 * answers goes back in binary messages at most WS_AHEAD bytes ahead of
 * the socket (frame()). The session is the same as redis-cli's: a page
 * that SUBSCRIBEs hears redis-cli's PUBLISH. The layers are
 *
 *     session <-> WebSocket <-> TLS <-> socket
 *
 * each without I/O, each optional but the session; plain_output() and
 * plain_sent() are where the one above meets the one below. A connection
 * that has not upgraded within --http-timeout is closed; a close from the
 * page is answered and the connection closed; the stop's notice is the
 * last message before a close with code 1001 (going away).
 *
 * Run:   make && ./server --http-port 8080, then open http://127.0.0.1:8080/
 *        (with TLS: make certs, --https-port 8443 --tls-cert-file certs/server.crt
 *         --tls-key-file certs/server.key, and https://localhost:8443/)
 * Read:  README.md, then ws.h and ws.c, pages.h, web/app.js, and
 *        `make diff FROM=07 TO=08` at the top of the course.
 */
#include "cli.h"
#include "hub.h"
#include "job.h"
#include "log.h"
#include "net.h"
#include "pages.h"
#include "platform.h"
#include "poller.h"
#include "pool.h"
#include "session.h"
#include "timers.h"
#include "tls.h"
#include "ws.h"

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
#define DEFAULT_MAX_QUEUE         1024    /* jobs waiting for a worker; more are refused */
#define MAX_WORKERS               256     /* --workers at most; the default is the processors, up to this */
#define DEFAULT_TLS_HANDSHAKE_S   10      /* a TLS handshake that never ends would hold its memory for ever */
#define DEFAULT_HTTP_TIMEOUT_S    10      /* a web connection must upgrade to WebSocket within this */
#define MAX_HTTP_HEAD             8192    /* bytes of an HTTP request's line and headers */

/* How long to stop accepting when the process is out of descriptors (as memcached does). */
#define ACCEPT_PAUSE_MS 100

/* How long a client closed with an error may go on sending before its socket is closed anyway. */
#define LINGER_MS 2000

/* Plaintext encrypted ahead of the socket, per TLS client: the rest waits in its session, where the limits
 * see it.
 */
#define TLS_AHEAD 16384

/* The session's output put into WebSocket frames ahead of the socket (or the TLS), per web client: the same
 * rule. */
#define WS_AHEAD 16384

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
    "  --workers N             threads that run slow commands, 0 to run them on the loop (default %d: the "
    "processors)\n"
    "  --max-queue N           slow commands waiting for a worker; more are refused (default %d)\n"
    "  --tls-port PORT         also serve TLS on this port, 0 for any free port (default: no TLS)\n"
    "  --tls-cert-file FILE    the server's certificate (chain), PEM\n"
    "  --tls-key-file FILE     its private key, PEM\n"
    "  --tls-ca-cert-file FILE the CAs whose certificates clients may show, PEM\n"
    "  --tls-auth-clients yes|no  clients must show a certificate from those CAs (default no)\n"
    "  --tls-handshake-timeout SECS  close a TLS client whose handshake takes longer (default %d)\n"
    "  --http-port PORT        also serve the page and its WebSocket on this port (default: no web)\n"
    "  --https-port PORT       the same over TLS, with the certificate above (default: none)\n"
    "  --web-folder DIR        where the page's files are read from at start (default: web beside the "
    "program)\n"
    "  --http-timeout SECS     close a web connection that has not upgraded to WebSocket by then (default "
    "%d)\n"
    "  --help                  print this help and exit\n"
    "Ctrl+C stops the server gracefully; a second Ctrl+C ends it at once.\n";

static const char full_reply[] = "-ERR max number of clients reached\r\n"; /* Redis's words */
static const char busy_reply[] = "-ERR server busy\r\n";
static const char web_busy_reply[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                     "Connection: close\r\n\r\n"; /* the web port's words for both */

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
    long workers;
    long max_queue;
    long tls_handshake_timeout_s;
    long http_timeout_s;
};

/* The ports: RESP in plaintext and over TLS, the web's over HTTP and over HTTPS. All but the first are
 * optional. */
enum port { PORT_RESP, PORT_TLS, PORT_HTTP, PORT_HTTPS, PORT_COUNT };

struct listener {
    socket_t sock; /* SOCKET_INVALID when not asked for, or once the stop has closed it */
    bool tls;      /* its clients speak TLS */
    bool web;      /* its clients speak HTTP, then WebSocket */
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
    struct tls *tls; /* its TLS, on the TLS port (NULL on the plain one): bytes on the wire are records */
    long long handshake_until; /* when its TLS handshake must be done by */
    bool said_goodbye;         /* its TLS close_notify is queued: nothing more is encrypted */
    struct ws *ws;             /* its WebSocket, on the web ports (NULL on the others): HTTP, then frames */
    bool upgraded;             /* its GET /ws was accepted: messages from now on */
    long long message_since;   /* when its unfinished message began (0: none): --request-timeout */
    char peer[NET_ADDR_TEXT];  /* "host:port", for the log */
};

/* What the loop keeps: everything. */
struct loop {
    struct limits limits;
    struct session_limits session_limits;
    struct poller *poller;
    struct listener listeners[PORT_COUNT];
    struct tls_context *tls_context; /* the certificate, the key, what clients must show */
    struct ws_limits ws_limits;      /* what a web client may send */
    struct pages pages;              /* the page's files, in memory */
    unsigned long tls_unclean;       /* TLS clients that closed without a close_notify */
    long long accept_resume; /* when accepting resumes after running out of descriptors (0: not paused) */
    struct timers timers;
    struct conn *first;     /* every open connection */
    struct conn *closed;    /* connections closed during this wake-up, freed after it */
    struct conn *to_send;   /* connections with something to send, sent before the next wait */
    struct hub hub;         /* what the sessions share: the clients, the channels, the counters */
    struct pool *pool;      /* the workers that run jobs; NULL with --workers 0, and once stopped */
    struct job_counts jobs; /* while there is no pool: the jobs the loop ran itself */
    bool stopping;
    long long stop_deadline; /* once stopping: when every connection left is closed anyway */
    unsigned long clients_refused;
    char stop_mark, pool_mark;   /* their addresses (and the listeners') tell these events apart */
    char received[READ_BUDGET];  /* what one recv() reads into, for every client in turn */
    char plaintext[READ_BUDGET]; /* what a TLS client's records decrypt to, fed to its session */
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
    if (conn->ws != NULL && !conn->upgraded)
        log_event(conn->peer, "disconnected (a page's connection)");
    else
        log_event(conn->peer, "disconnected after %lu requests", conn->session.requests);
    session_end(&conn->session);
    tls_free(conn->tls);
    conn->tls = NULL;
    ws_free(conn->ws);
    conn->ws = NULL;
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

/*
 * Tells the poller what to watch the socket for, when that changed.
 * Watching nothing (a client that waits for its job and is read no more)
 * is not being in the poller at all: a poller reports errors and hang-ups
 * (WSAPoll() a peer's end of stream too) whatever it was asked for, and
 * would wake the loop for them at every wait until the job ends. A client
 * that resets meanwhile is found out when its reply is sent. Returns 0, or
 * -1.
 */
static int watch(struct loop *loop, struct conn *conn, unsigned events)
{
    if (events == conn->watched)
        return 0;
    unsigned before = conn->watched;
    conn->watched = events;
    if (events == 0)
        return poller_remove(loop->poller, conn->sock);
    if (before == 0)
        return poller_add(loop->poller, conn->sock, events, conn);
    return poller_modify(loop->poller, conn->sock, events, conn);
}

/* Whether the connection is still being set up: its TLS handshake, or a web client's upgrade, is not done. */
static bool setting_up(const struct conn *conn)
{
    return (conn->tls != NULL && !tls_handshake_done(conn->tls)) || (conn->ws != NULL && !conn->upgraded);
}

/*
 * Whether the connection takes input now: it is open, its session wants
 * more, and a web client's own answers (pages, pongs) are not piling up
 * unread: a client that asks and never reads must not fill the memory.
 */
static bool wants_input(const struct conn *conn)
{
    size_t answers = 0;
    if (conn->ws != NULL)
        ws_output(conn->ws, &answers);
    return conn->state == OPEN && session_wants_input(&conn->session) && answers < OUTPUT_HIGH_WATER;
}

/* The nearest of the connection's deadlines, or 0 for none. */
static long long conn_due(const struct loop *loop, const struct conn *conn)
{
    long long due = conn->state == OPEN ? session_deadline(&conn->session) : 0;
    if (conn->state == LINGERING)
        due = conn->linger_until;
    if (setting_up(conn) && (due == 0 || conn->handshake_until < due))
        due = conn->handshake_until;
    if (conn->message_since != 0 && loop->limits.request_timeout_s > 0) {
        long long give_up_at = conn->message_since + loop->limits.request_timeout_s * 1000;
        if (due == 0 || give_up_at < due)
            due = give_up_at;
    }
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

/* A runner for the loop itself (--workers 0): a job's sleep is the loop's, and only a stop ends it early. */
static bool pause_loop(void *arg, long long ms)
{
    (void)arg;
    return wait_for_stop((int)ms) != WOKE_STOP;
}

static bool loop_stopped(void *arg)
{
    (void)arg;
    return wait_for_stop(0) == WOKE_STOP;
}

/* A runner for jobs asked for once the stop has begun: each is cancelled before it starts. */
static bool no_pause(void *arg, long long ms)
{
    (void)arg, (void)ms;
    return false;
}

static bool always_stopped(void *arg)
{
    (void)arg;
    return true;
}

/*
 * Starts the job the session waits for, if it has a new one: on a worker,
 * or at once on the loop when there are none (or the stop has begun, and
 * it is cancelled). A job run here is finished here, and its session may
 * then run requests that make another job: so, until none is left.
 */
static void start_jobs(struct loop *loop, struct conn *conn, long long now)
{
    static const struct job_runner on_the_loop = {.pause = pause_loop, .cancelled = loop_stopped};
    static const struct job_runner cancelled = {.pause = no_pause, .cancelled = always_stopped};
    struct job *job;
    while ((job = session_take_job(&conn->session)) != NULL) {
        if (loop->pool != NULL) {
            if (pool_submit(loop->pool, job) == 0)
                return;      /* a worker has it; its reply comes back through deliver() */
            job_refuse(job); /* the queue is full: the client hears so at once, the loop never waits */
        } else {
            job_run(job, loop->stopping ? &cancelled : &on_the_loop);
            loop->jobs.finished++;
        }
        judge(conn, session_finish_job(&conn->session, job, now));
    }
}

/*
 * A TLS client's stream is broken (a bad record, a failed handshake, a
 * certificate refused): its alert, if there is one, is offered to the
 * socket once, and it is closed. Nothing in plaintext can be said to it.
 */
static void tls_broken(struct loop *loop, struct conn *conn)
{
    size_t len;
    const char *alert = tls_output(conn->tls, &len);
    if (alert != NULL)
        sock_send(conn->sock, alert, len); /* best effort: it may not fit, and the client may be gone */
    char why[256];
    snprintf(why, sizeof why, "%s", tls_error(conn->tls));
    give_up(loop, conn, why);
}

/*
 * What goes below the session, to the TLS or the socket: a web client's
 * WebSocket output (pages, frames, pongs, its close), or the session's own.
 */
static const char *plain_output(const struct conn *conn, size_t *len)
{
    return conn->ws != NULL ? ws_output(conn->ws, len) : session_output(&conn->session, len);
}

/* The first len bytes of plain_output() went below (sent, or encrypted: for the layer above, the same). */
static void plain_sent(struct loop *loop, struct conn *conn, size_t len, long long now)
{
    if (conn->ws != NULL) {
        ws_sent(conn->ws, len);
        return;
    }
    judge(conn, session_sent(&conn->session, len, now));
    start_jobs(loop, conn, now); /* the requests it ran may have made one */
}

/* The bytes below the session, on their way: a web client's frames, a TLS client's records. */
static size_t below(const struct conn *conn)
{
    size_t framed = 0, records = 0;
    if (conn->ws != NULL)
        ws_output(conn->ws, &framed);
    if (conn->tls != NULL)
        tls_output(conn->tls, &records);
    return framed + records;
}

/*
 * Puts what the session has to say into binary WebSocket messages, while
 * fewer than `ahead` bytes of frames wait below (WS_AHEAD, as the loop
 * sends): the rest stays in the session's output, where the high-water
 * mark and --max-output see it. Binary, because a reply may hold any
 * bytes and a text message must be UTF-8; where one message ends means
 * nothing to RESP, and the page's reader puts replies together across
 * them. Returns 0, or -1 when out of memory.
 */
static int frame(struct loop *loop, struct conn *conn, size_t ahead, long long now)
{
    size_t waiting, len;
    const char *plain;
    while (ws_open(conn->ws) && (ws_output(conn->ws, &waiting), waiting) < ahead &&
           (plain = session_output(&conn->session, &len)) != NULL) {
        size_t piece = len < WS_AHEAD ? len : WS_AHEAD;
        if (ws_send_binary(conn->ws, plain, piece) != 0)
            return -1;
        judge(conn, session_sent(&conn->session, piece, now));
        start_jobs(loop, conn, now); /* the requests it ran may have made one */
    }
    return 0;
}

/*
 * Encrypts what the layer above has to say (plain_output()) into TLS
 * records, while at most TLS_AHEAD bytes of them wait for the socket: the
 * rest stays above, where the limits see it. Each piece taken is, for the
 * layer above, sent. Returns 0, or -1 when the stream broke.
 */
static int encrypt(struct loop *loop, struct conn *conn, long long now)
{
    size_t waiting, len;
    const char *plain;
    while (!conn->said_goodbye && tls_handshake_done(conn->tls) &&
           (tls_output(conn->tls, &waiting), waiting) < TLS_AHEAD &&
           (plain = plain_output(conn, &len)) != NULL) {
        size_t piece = len < TLS_AHEAD ? len : TLS_AHEAD;
        if (tls_write(conn->tls, plain, piece) < 0)
            return -1;
        plain_sent(loop, conn, piece, now);
    }
    return 0;
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
 * Sends what fits of the session's output (of a web client: of its
 * frames; of a TLS client: of its records; made as they go). Each send
 * tells the layer above how much went, and the session may answer
 * requests it held back meanwhile, one of them a slow command: its job is
 * started at once. Returns false when the connection broke (a TLS
 * client's stream too: tls_error() says so).
 */
static bool send_some(struct loop *loop, struct conn *conn, long long now)
{
    size_t len;
    const char *bytes;
    start_jobs(loop, conn, now);
    for (;;) {
        if (conn->ws != NULL && frame(loop, conn, WS_AHEAD, now) != 0)
            return false;
        if (conn->tls != NULL && encrypt(loop, conn, now) != 0)
            return false;
        session_in_transit(&conn->session, below(conn)); /* what waits below counts against its limits too */
        bytes = conn->tls != NULL ? tls_output(conn->tls, &len) : plain_output(conn, &len);
        if (bytes == NULL)
            break;
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
        if (conn->tls != NULL) {
            tls_sent(conn->tls, (size_t)sent); /* the records: the layer above was told as they were made */
            continue;
        }
        plain_sent(loop, conn, (size_t)sent, now);
    }
    return true;
}

/*
 * The bytes the connection still has to send: the session's output (a web
 * client's only while its WebSocket takes messages: after a close, the
 * rest is never sent), and what waits below it.
 */
static size_t unsent(const struct conn *conn)
{
    size_t plain = 0;
    if (conn->ws == NULL || ws_open(conn->ws))
        session_output(&conn->session, &plain);
    return plain + below(conn);
}

/* Answers a web client's GET for one of the page's files (or the 404), and logs it. */
static void answer_page(struct loop *loop, struct conn *conn)
{
    static const char not_found[] = "no such page here: try /\n";
    const struct page *page = pages_find(&loop->pages, ws_path(conn->ws));
    int status = page != NULL ? 200 : 404;
    int failed = page != NULL ? ws_respond(conn->ws, 200, page->type, page->body, page->len)
                              : ws_respond(conn->ws, 404, "text/plain; charset=utf-8", not_found,
                                           sizeof not_found - 1);
    log_event(conn->peer, "GET %s: %d", ws_path(conn->ws), status);
    if (failed != 0) {
        log_event(conn->peer, "error: out of memory for its page, closing");
        conn->state = REFUSING;
    }
}

/*
 * Takes what a web client sent, while it takes input: a GET for a page is
 * answered from memory, GET /ws is the upgrade, and each message, text or
 * binary, is fed to the session as the bytes of its requests, as if they
 * had come on the RESP port. The page's close ends it; a broken rule is
 * logged, and its answer (an HTTP error, or a close frame) is the last
 * thing sent. Returns the messages and requests taken.
 */
static size_t unframe(struct loop *loop, struct conn *conn, long long now)
{
    size_t taken = 0;
    while (wants_input(conn)) {
        /* The replies to the messages before go out before whatever the next frame makes the WebSocket say
         * itself: a close, its answer or an error's, ends the messages, and replies framed after it are lost.
         * So all of them are framed now (wants_input() keeps the frames waiting below a bound). */
        if (frame(loop, conn, SIZE_MAX, now) != 0) {
            log_event(conn->peer, "error: out of memory for its replies, closing");
            conn->state = REFUSING;
            break;
        }
        enum ws_event event = ws_next(conn->ws);
        if (event == WS_MORE)
            break;
        taken++;
        if (event == WS_REQUEST) {
            answer_page(loop, conn);
        } else if (event == WS_OPEN) {
            conn->upgraded = true;
            log_event(conn->peer, "upgraded to WebSocket");
        } else if (event == WS_TEXT || event == WS_BINARY) {
            size_t len;
            const char *message = ws_message(conn->ws, &len);
            judge(conn, session_feed(&conn->session, message, len, now));
        } else if (event == WS_CLOSE && conn->upgraded) {
            conn->state = DRAINING; /* its close is answered in the output: send it, then close */
        } else if (event == WS_CLOSE) {
            /* A page was the last answer (Connection: close): send it, end the stream, and read what the
             * browser may still send until it closes, as an error's answer is (a close() with bytes unread
             * would be a reset, which can cost the browser the page). */
            conn->state = REFUSING;
        } else {
            log_event(conn->peer, "error: %s, closing", ws_error(conn->ws));
            conn->state = REFUSING;
        }
    }
    return taken;
}

/* Gives bytes a client sent to the layer above the socket (or the TLS): its WebSocket, or its session. */
static void take(struct loop *loop, struct conn *conn, const char *bytes, size_t len, long long now)
{
    if (conn->ws == NULL) {
        judge(conn, session_feed(&conn->session, bytes, len, now));
    } else if (ws_feed(conn->ws, bytes, len) != 0) {
        log_event(conn->peer, "error: out of memory for its input, closing");
        conn->state = REFUSING;
    } else {
        unframe(loop, conn, now);
    }
}

/* Whether bytes received wait inside a layer (TLS, WebSocket), that no socket event will announce again. */
static bool has_input(const struct conn *conn)
{
    return (conn->tls != NULL && tls_has_input(conn->tls)) || (conn->ws != NULL && ws_has_input(conn->ws));
}

/*
 * Feeds the session the plaintext that a TLS client's records hold, while
 * it wants input: what one receive brought, and what waited inside the
 * TLS object while the session wanted no more (no socket event will say
 * it is there). Returns the bytes fed.
 */
static size_t decrypt(struct loop *loop, struct conn *conn, long long now)
{
    size_t fed = 0;
    while (wants_input(conn)) {
        long got = tls_read(conn->tls, loop->plaintext, sizeof loop->plaintext);
        if (got <= 0)
            break; /* none whole yet, its close_notify, or a broken stream (tls_error() says) */
        fed += (size_t)got;
        take(loop, conn, loop->plaintext, (size_t)got, now);
    }
    if (conn->state == OPEN && tls_peer_closed(conn->tls))
        conn->state = DRAINING; /* its close_notify: it has said all it will */
    return fed;
}

/*
 * Sends what the session has to say (taking first what waits inside a
 * client's layers: a TLS client's records, a web client's messages; and
 * again while sending lets its session take more). Returns false when the
 * connection broke; a TLS stream that broke says so in tls_error().
 */
static bool decrypt_and_send(struct loop *loop, struct conn *conn, long long now)
{
    for (;;) {
        bool could_take = wants_input(conn);
        size_t fed = conn->ws != NULL ? unframe(loop, conn, now) : 0;
        fed += conn->tls != NULL ? decrypt(loop, conn, now) : 0;
        if (session_broken(&conn->session) == NULL && !send_some(loop, conn, now))
            return false;
        if (conn->tls != NULL && tls_error(conn->tls)[0] != '\0')
            return false;
        /* Sending may have let the session take input again, with requests waiting inside a layer and no
         * socket event to come for them: look again, unless it could take input and nothing whole was there.
         */
        bool again = wants_input(conn) && (!could_take || fed > 0);
        if (!again || !has_input(conn))
            return true;
    }
}

/*
 * A client that is done (its goodbye, the end of its stream, an error, or
 * the stop), owed nothing more, is told so by each layer, top down: a web
 * client gets a close frame (1001, going away, at the stop), then a TLS
 * client a close_notify, so that it knows the stream ended and was not
 * cut. Returns false when the connection broke sending them.
 */
static bool say_goodbye(struct loop *loop, struct conn *conn, long long now)
{
    if (unsent(conn) > 0 || session_awaits_job(&conn->session) || conn->state == OPEN ||
        conn->state == LINGERING)
        return true;
    if (conn->ws != NULL && ws_open(conn->ws)) {
        bool stop = conn->state == STOPPING;
        ws_close(conn->ws, stop ? 1001 : 1000, stop ? "the server is stopping" : "");
        if (!send_some(loop, conn, now))
            return false;
        if (unsent(conn) > 0)
            return true; /* the close_notify goes after the close frame, once that has gone */
    }
    if (conn->tls == NULL || conn->said_goodbye || !tls_handshake_done(conn->tls))
        return true;
    tls_close(conn->tls);
    conn->said_goodbye = true;
    return send_some(loop, conn, now);
}

/*
 * Starts the session's jobs and sends what it has to say, unless it is
 * broken: then it is closed, and nothing more is sent. What does not fit
 * waits, and the poller watches for room; once all is out, and no job's
 * reply is to come, a TLS client is sent its close_notify, and the state
 * says what comes next.
 */
static void flush(struct loop *loop, struct conn *conn, long long now)
{
    if (!decrypt_and_send(loop, conn, now) || !say_goodbye(loop, conn, now)) {
        if (conn->tls != NULL && tls_error(conn->tls)[0] != '\0')
            tls_broken(loop, conn);
        else
            conn_close(loop, conn); /* broken or reset: nobody left to answer */
        return;
    }
    const char *broken = session_broken(&conn->session); /* then it is sent nothing more */
    if (broken != NULL) {
        give_up(loop, conn, broken);
        return;
    }
    bool owed = session_awaits_job(&conn->session); /* a reply is still to come */
    size_t left = unsent(conn);
    bool done = left == 0 && !owed && (conn->state == DRAINING || conn->state == STOPPING);
    /* A web client whose close we sent, and whose close has not come, is let answer it before TCP ends. */
    bool answer_owed = conn->ws != NULL && conn->upgraded && !ws_finished(conn->ws);
    if (done && !answer_owed) {
        conn_close(loop, conn);
        return;
    }
    if (left == 0 && (conn->state == REFUSING || done)) {
        /* Not close(): unread bytes would turn it into a reset, which can cost the client its error. */
        sock_stop_sending(conn->sock);
        conn->state = LINGERING;
        conn->linger_until = now + LINGER_MS;
    }
    /* A web client in the middle of a message, while nothing of ours holds it up, has --request-timeout to
     * finish it, as a RESP client has to finish a request (the session's deadline cannot see inside frames).
     */
    bool mid_message = conn->upgraded && wants_input(conn) && ws_mid_message(conn->ws);
    if (!mid_message)
        conn->message_since = 0;
    else if (conn->message_since == 0)
        conn->message_since = now;
    /* Watch for room while output waits; read while the session wants more, or to drop what a lingerer sends.
     */
    bool read_on = conn->state == LINGERING || wants_input(conn);
    unsigned events = (left > 0 ? POLLER_WRITE : 0u) | (read_on ? POLLER_READ : 0u);
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
    if (got == 0) {
        /* The end of the stream: the client has said all it will. Over TLS it should have said so first. */
        if (conn->tls != NULL && tls_handshake_done(conn->tls) && !tls_peer_closed(conn->tls)) {
            log_event(conn->peer, "closed its TLS stream without a close_notify");
            loop->tls_unclean++;
        }
        conn->state = DRAINING;
    } else if (conn->tls == NULL) {
        take(loop, conn, loop->received, (size_t)got, now);
    } else if (tls_feed(conn->tls, loop->received, (size_t)got) != 0 ||
               (decrypt(loop, conn, now), tls_error(conn->tls)[0] != '\0')) {
        tls_broken(loop, conn);
        return;
    }
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
    if ((events & POLLER_READ) && wants_input(conn))
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

/*
 * Gives each finished job's reply to the client that asked, found by its
 * CLIENT ID; a client that left meanwhile is not found (an id is never
 * given again, where a socket number is at once), and its reply is dropped.
 */
static void deliver(struct loop *loop, struct job *jobs, long long now)
{
    while (jobs != NULL) {
        struct job *job = jobs;
        jobs = job->next;
        struct session *session = hub_session(&loop->hub, job->client);
        if (session == NULL) {
            job_free(job);
            continue;
        }
        struct conn *conn = conn_of_session(session);
        judge(conn, session_finish_job(session, job, now));
        queue_send(loop, conn);
    }
}

/* The hub's job_counts(), for INFO: the pool's, or the loop's own while there is no pool. */
static void count_jobs(void *driver, struct job_counts *counts)
{
    struct loop *loop = driver;
    if (loop->pool != NULL)
        pool_counts(loop->pool, counts);
    else
        *counts = loop->jobs;
}

/* Turns a client away at once with a one-line reply; never waits on it. */
static void turn_away(socket_t sock, const char *peer, const char *reply, size_t len, const char *why)
{
    log_event(peer, "error: %s, refusing", why);
    struct send_limit no_wait = {.stall_ms = 0};
    net_send_all(sock, reply, len, &no_wait);
    sock_close(sock);
}

/* Frees what admit() made for a connection it could not finish admitting. */
static void unadmit(struct conn *conn)
{
    tls_free(conn->tls);
    ws_free(conn->ws);
    free(conn);
}

/*
 * Makes a struct conn for an accepted socket (with a TLS object for the
 * TLS ports, whose handshake must end within --tls-handshake-timeout, and
 * a WebSocket object for the web ports, which must upgrade within
 * --http-timeout) and starts watching it. Returns false if it could not.
 */
static bool admit(struct loop *loop, socket_t sock, const char *peer, const struct listener *listener,
                  long long now)
{
    struct conn *conn = calloc(1, sizeof *conn);
    if (conn == NULL)
        return false;
    char err[NET_ERR_TEXT];
    if ((listener->tls && (conn->tls = tls_accept(loop->tls_context, err, sizeof err)) == NULL) ||
        (listener->web && (conn->ws = ws_new(&loop->ws_limits)) == NULL)) {
        unadmit(conn);
        return false;
    }
    long timeout_s = listener->web ? loop->limits.http_timeout_s : loop->limits.tls_handshake_timeout_s;
    conn->handshake_until = now + timeout_s * 1000;
    conn->sock = sock;
    conn->state = OPEN;
    conn->watched = POLLER_READ;
    snprintf(conn->peer, sizeof conn->peer, "%s", peer);
    if (poller_add(loop->poller, sock, POLLER_READ, conn) != 0) {
        unadmit(conn);
        return false;
    }
    if (session_start(&conn->session, &loop->hub, &loop->session_limits, conn->peer, now) != 0) {
        poller_remove(loop->poller, sock);
        unadmit(conn);
        return false;
    }
    conn->next = loop->first;
    if (loop->first != NULL)
        loop->first->prev = conn;
    loop->first = conn;
    log_event(conn->peer, "connected");
    if (arm(loop, conn) != 0)
        give_up(loop, conn, "out of memory for its deadlines");
    return true;
}

/* Stops watching the listeners for a moment (paused), or watches them again. */
static void watch_listeners(struct loop *loop, bool paused)
{
    for (int i = 0; i < PORT_COUNT; i++)
        if (loop->listeners[i].sock != SOCKET_INVALID)
            poller_modify(loop->poller, loop->listeners[i].sock, paused ? 0 : POLLER_READ,
                          &loop->listeners[i]);
}

/*
 * Accepts the connections that wait on a listener, until accept() would
 * block or ACCEPTS_PER_WAKE are taken. A client turned away is told in
 * its port's words: in RESP, in HTTP, or (over TLS) not at all, for it
 * could not read plaintext.
 */
static void accept_clients(struct loop *loop, const struct listener *listener, long long now)
{
    const char *full = listener->web ? web_busy_reply : full_reply;
    const char *busy = listener->web ? web_busy_reply : busy_reply;
    size_t full_len = listener->tls ? 0 : strlen(full), busy_len = listener->tls ? 0 : strlen(busy);
    for (int taken = 0; taken < ACCEPTS_PER_WAKE; taken++) {
        char peer[NET_ADDR_TEXT];
        socket_t sock = net_accept(listener->sock, peer, sizeof peer);
        if (sock == SOCKET_INVALID) {
            int code = sock_last_error();
            if (sock_error_is_would_block(code))
                return; /* all taken */
            if (sock_error_is_interrupt(code))
                continue;
            char reason[NET_ERR_TEXT];
            log_event("server", "error: accept: %s", sock_strerror(code, reason, sizeof reason));
            if (sock_error_is_out_of_resources(code)) {
                /* The connection stays queued, and the listener readable: stop watching them for a moment. */
                watch_listeners(loop, true);
                loop->accept_resume = now + ACCEPT_PAUSE_MS;
                return;
            }
            continue; /* a client that left before we took it, say */
        }
        if (sock_set_nonblocking(sock, true) != 0) {
            turn_away(sock, peer, busy, busy_len, "cannot set up its socket");
        } else if (loop->hub.clients >= (size_t)loop->limits.max_clients) {
            loop->clients_refused++;
            turn_away(sock, peer, full, full_len, "server full");
        } else if (!admit(loop, sock, peer, listener, now)) {
            turn_away(sock, peer, busy, busy_len, "out of memory");
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
        if (setting_up(conn) && now >= conn->handshake_until) {
            if (conn->tls != NULL && !tls_handshake_done(conn->tls)) {
                give_up(loop, conn, "TLS handshake not finished in time");
            } else { /* a browser keeps a page's connection open for the next one: no error */
                log_event(conn->peer, "no WebSocket upgrade within --http-timeout, closing");
                conn_close(loop, conn);
            }
        } else if (conn->message_since != 0 && loop->limits.request_timeout_s > 0 &&
                   now >= conn->message_since + loop->limits.request_timeout_s * 1000) {
            log_event(conn->peer, "error: WebSocket message not finished in time, closing");
            ws_close(conn->ws, 1008, "message not finished in time"); /* 1008: a policy broken */
            conn->message_since = 0;
            conn->state = REFUSING;
            queue_send(loop, conn);
        } else if (conn->stalled_since != 0 && loop->limits.send_timeout_s > 0 &&
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

/* Stops the workers: a sleeping job wakes at once, a counting one stops at its next piece; a queued one never
 * starts. Each one's reply, its result or "cancelled", goes to its client. */
static void stop_pool(struct loop *loop, long long now)
{
    if (loop->pool == NULL)
        return;
    poller_remove(loop->poller, pool_descriptor(loop->pool));
    pool_counts(loop->pool, &loop->jobs);
    struct job *left = pool_stop(loop->pool);
    loop->pool = NULL;
    /* Every job queued or running is finished now, run or cancelled: the counts go on from there. */
    loop->jobs.finished += loop->jobs.queued + loop->jobs.running;
    loop->jobs.queued = loop->jobs.running = 0;
    deliver(loop, left, now);
}

/*
 * Ctrl+C: stop accepting and stop the workers, then give every client
 * what it is owed: its job's reply, the answers to what it has already
 * sent, and the notice. A client that takes them all is closed then; none
 * is waited for past a second from now.
 */
static void begin_stop(struct loop *loop, long long now)
{
    loop->stopping = true;
    loop->stop_deadline = now + NET_STOP_SEND_WAIT_MS;
    poller_remove(loop->poller, stop_descriptor()); /* it stays readable: watched, it would wake every wait */
    for (int i = 0; i < PORT_COUNT; i++) {
        struct listener *listener = &loop->listeners[i];
        if (listener->sock != SOCKET_INVALID) {
            poller_remove(loop->poller, listener->sock);
            sock_close(listener->sock);
            listener->sock = SOCKET_INVALID;
        }
    }
    log_event("server", "stopping: no new clients, telling the connected ones");
    stop_pool(loop, now);
    /* First what each client sent before the stop gets its answer (a job asked for now is cancelled)... */
    for (struct conn *conn = loop->first, *next; conn != NULL; conn = next) {
        next = conn->next;
        if (conn->state == LINGERING)
            conn_close(loop, conn); /* it has had its error; the rest of its linger is not owed */
        else if (setting_up(conn))
            conn_close(loop,
                       conn); /* nothing can be said to it yet (or a page's, ever): not even the notice */
        else if (wants_input(conn))
            receive(loop, conn, now);
    }
    /* ... then the notice, to every client still open. */
    for (struct conn *conn = loop->first; conn != NULL; conn = conn->next) {
        if (conn->state != OPEN)
            continue;                /* it said goodbye, or was refused: it is on its way out already */
        start_jobs(loop, conn, now); /* the notice comes after every reply */
        if (conn->state != OPEN)
            continue; /* what ran after a job said goodbye (QUIT): no notice after its +OK */
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
 * Makes the listeners non-blocking and a poller that watches them and the
 * stop. Returns 0, or -1 with the reason in err.
 */
static int start_watching(struct loop *loop, char *err, size_t err_len)
{
    loop->poller = poller_create(64);
    if (loop->poller == NULL) {
        snprintf(err, err_len, "cannot create the poller (%s)", poller_name());
        return -1;
    }
    /* Non-blocking, like every socket here: accept() until it says "would block". */
    for (int i = 0; i < PORT_COUNT; i++) {
        struct listener *listener = &loop->listeners[i];
        if (listener->sock != SOCKET_INVALID &&
            (sock_set_nonblocking(listener->sock, true) != 0 ||
             poller_add(loop->poller, listener->sock, POLLER_READ, listener) != 0)) {
            snprintf(err, err_len, "cannot watch a listening socket with %s", poller_name());
            return -1;
        }
    }
    /* The loop owns its stop: it hears it as one more descriptor becoming readable. */
    if (poller_add(loop->poller, stop_descriptor(), POLLER_READ, &loop->stop_mark) != 0) {
        snprintf(err, err_len, "cannot watch the stop with %s", poller_name());
        return -1;
    }
    /* And finished jobs: the pool's waker is one more descriptor too. */
    if (loop->pool != NULL &&
        poller_add(loop->poller, pool_descriptor(loop->pool), POLLER_READ, &loop->pool_mark) != 0) {
        snprintf(err, err_len, "cannot watch the pool with %s", poller_name());
        return -1;
    }
    return 0;
}

/* The listener an event is for, or NULL: the event is another's. */
static const struct listener *listener_of(const struct loop *loop, const void *data)
{
    for (int i = 0; i < PORT_COUNT; i++)
        if (data == &loop->listeners[i])
            return &loop->listeners[i];
    return NULL;
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
            const struct listener *listener = listener_of(loop, data);
            if (data == &loop->stop_mark) {
                if (!loop->stopping)
                    begin_stop(loop, now);
            } else if (listener != NULL) {
                if (!loop->stopping)
                    accept_clients(loop, listener, now);
            } else if (data == &loop->pool_mark) {
                if (loop->pool != NULL)
                    deliver(loop, pool_take_done(loop->pool), now);
            } else if (!((struct conn *)data)->closed) {
                serve(loop, data, events[i].events, now);
            }
        }
        expire(loop, now);
        send_pending(loop, now);
        if (loop->accept_resume != 0 && now >= loop->accept_resume && !loop->stopping) {
            loop->accept_resume = 0;
            watch_listeners(loop, false);
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
                                   .max_subscriptions = DEFAULT_MAX_SUBSCRIPTIONS,
                                   .workers = cpu_count() < MAX_WORKERS ? cpu_count() : MAX_WORKERS,
                                   .max_queue = DEFAULT_MAX_QUEUE,
                                   .tls_handshake_timeout_s = DEFAULT_TLS_HANDSHAKE_S,
                                   .http_timeout_s = DEFAULT_HTTP_TIMEOUT_S};
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
        {"--workers", 0, MAX_WORKERS, &limits->workers},
        {"--max-queue", 1, 1000000, &limits->max_queue},
        {"--tls-handshake-timeout", 1, 3600, &limits->tls_handshake_timeout_s},
        {"--http-timeout", 1, 3600, &limits->http_timeout_s},
    };
    char usage_text[sizeof usage_format + 200];
    snprintf(usage_text, sizeof usage_text, usage_format, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_MAX_ARGS,
             DEFAULT_MAX_BULK, DEFAULT_MAX_INLINE, DEFAULT_MAX_QUERY, DEFAULT_MAX_CLIENTS,
             DEFAULT_IDLE_TIMEOUT_S, DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_SEND_TIMEOUT_S, DEFAULT_MAX_OUTPUT,
             DEFAULT_MAX_SUBSCRIPTIONS, (int)limits->workers, DEFAULT_MAX_QUEUE, DEFAULT_TLS_HANDSHAKE_S,
             DEFAULT_HTTP_TIMEOUT_S);
    const char *ports[PORT_COUNT] = {NULL}, *auth_clients = "no", *web_folder = NULL;
    struct tls_options tls = {0};
    const struct text_option tls_options[] = {
        {"--tls-port", &ports[PORT_TLS]},     {"--http-port", &ports[PORT_HTTP]},
        {"--https-port", &ports[PORT_HTTPS]}, {"--web-folder", &web_folder},
        {"--tls-cert-file", &tls.cert_file},  {"--tls-key-file", &tls.key_file},
        {"--tls-ca-cert-file", &tls.ca_file}, {"--tls-auth-clients", &auth_clients},
    };
    const struct extra_options extra = {.numbers = limit_options,
                                        .number_count = sizeof limit_options / sizeof limit_options[0],
                                        .texts = tls_options,
                                        .text_count = sizeof tls_options / sizeof tls_options[0]};
    struct options opts;
    char err[NET_ERR_TEXT];
    if (parse_options(argc, argv, &opts, &extra, err, sizeof err) != PARSE_OK)
        usage_error(usage_text, "%s", err);
    if (opts.help) {
        fputs(usage_text, stdout);
        free(loop);
        return EXIT_OK;
    }
    static const char *const port_flags[PORT_COUNT] = {"--port", "--tls-port", "--http-port", "--https-port"};
    for (int i = PORT_TLS; i < PORT_COUNT; i++) {
        unsigned port_number;
        if (ports[i] != NULL && parse_port(ports[i], &port_number) != 0)
            usage_error(usage_text, "invalid %s '%s': expected a number from 0 to 65535", port_flags[i],
                        ports[i]);
    }
    bool serves_tls = ports[PORT_TLS] != NULL || ports[PORT_HTTPS] != NULL;
    if (serves_tls && (tls.cert_file == NULL || tls.key_file == NULL))
        usage_error(usage_text, "--tls-port and --https-port need --tls-cert-file and --tls-key-file");
    if (strcmp(auth_clients, "yes") != 0 && strcmp(auth_clients, "no") != 0)
        usage_error(usage_text, "invalid --tls-auth-clients '%s': expected yes or no", auth_clients);
    tls.verify_peer = strcmp(auth_clients, "yes") == 0;
    if (tls.verify_peer && tls.ca_file == NULL)
        usage_error(usage_text, "--tls-auth-clients yes needs --tls-ca-cert-file");
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
    loop->hub.job_counts = count_jobs;

    if (net_startup() != 0)
        die("cannot start the socket library");
    if (stop_handler_install() != 0)
        die("cannot install the Ctrl+C handler");
    if (serves_tls) {
        /* A certificate that cannot be read, or a key that is not its own, is said now, not at the first
         * client. */
        loop->tls_context = tls_context_server(&tls, err, sizeof err);
        if (loop->tls_context == NULL)
            die("cannot serve TLS: %s", err);
    }
    if (ports[PORT_HTTP] != NULL || ports[PORT_HTTPS] != NULL) {
        /* The page's files, read now: a wrong folder is said at start, and no request ever waits on a disk.
         */
        char folder[1024];
        if (web_folder == NULL)
            pages_folder_beside(argv[0], folder, sizeof folder);
        else
            snprintf(folder, sizeof folder, "%s", web_folder);
        if (pages_load(&loop->pages, folder, err, sizeof err) != 0)
            die("cannot serve the page: %s (--web-folder says where it is)", err);
        loop->ws_limits =
            (struct ws_limits){.max_head = MAX_HTTP_HEAD, .max_message = (size_t)limits->max_query};
    }
    ports[PORT_RESP] = opts.port;
    for (int i = 0; i < PORT_COUNT; i++) {
        loop->listeners[i] = (struct listener){.sock = SOCKET_INVALID,
                                               .tls = i == PORT_TLS || i == PORT_HTTPS,
                                               .web = i == PORT_HTTP || i == PORT_HTTPS};
        if (ports[i] == NULL)
            continue;
        loop->listeners[i].sock = net_listen(opts.host, ports[i], err, sizeof err);
        if (loop->listeners[i].sock == SOCKET_INVALID)
            die("cannot listen on %s:%s: %s", opts.host, ports[i], err);
    }
    if (limits->workers > 0) {
        loop->pool = pool_start((int)limits->workers, (size_t)limits->max_queue, err, sizeof err);
        if (loop->pool == NULL)
            die("%s", err);
    }
    loop->jobs.workers = (int)limits->workers;
    if (start_watching(loop, err, sizeof err) != 0)
        die("%s", err);
    ignore_broken_pipes(); /* a client gone, or stderr piped into a program that ended, must not end the
                              server */
    if (log_start() != 0)
        die("cannot start the log's thread");

    /* One flushed line a port: scripts and tests wait for them instead of sleeping. */
    static const char *const port_names[PORT_COUNT] = {"", " for TLS", " for HTTP", " for HTTPS"};
    for (int i = 0; i < PORT_COUNT; i++) {
        char address[NET_ADDR_TEXT];
        if (loop->listeners[i].sock == SOCKET_INVALID)
            continue;
        if (net_local_address(loop->listeners[i].sock, address, sizeof address) != 0)
            die("cannot read the listening address");
        printf("listening%s on %s\n", port_names[i], address);
    }
    fflush(stdout);

    run(loop);
    log_event("server", "stopped: %llu clients served, %llu requests answered, %lu refused (server full)",
              loop->hub.connections_received, loop->hub.commands_processed, loop->clients_refused);
    if (loop->tls_context != NULL)
        log_event("server", "TLS: %lu clients closed without a close_notify", loop->tls_unclean);
    log_stop(LOG_STOP_WAIT_MS);
    poller_destroy(loop->poller);
    timers_free(&loop->timers);
    hub_free(&loop->hub);
    tls_context_free(loop->tls_context);
    pages_free(&loop->pages);
    free(loop);
    stop_handler_remove();
    net_cleanup();
    return EXIT_OK;
}
