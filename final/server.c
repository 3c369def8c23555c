/*
 * server.c - final: the complete multithreaded TCP server of the course.
 *
 * The system of the original design: many clients at once, one thread per
 * client; every line gets "Hello from server"; the line "exit" closes that
 * client's connection; Ctrl+C stops accepting, tells every client, closes
 * every socket, joins every thread, frees everything and prints a summary.
 * Each connect, disconnect and error is logged to stderr with the time and
 * the client's address.
 *
 * It is lesson 03 with the original's reply, the log, the summary, and the
 * limits a server facing the open network needs: how many clients, how long
 * one may stay idle or take to finish a line, how long a reply may wait for
 * a client that does not read. `make diff FROM=03 TO=final` shows all that.
 *
 * Who owns what: the main thread owns the listening socket and the list of
 * clients; each client thread owns its own socket, its counters and its
 * send limit. Every thread waits in poll() beside the stop waker, so a stop
 * reaches each of them through the wait it is in; no thread touches
 * another's socket.
 *
 * Speed: the replies to all the lines of one receive leave in one send(),
 * and no lock is taken per line (docs/benchmarks.md has the figures).
 *
 * Run:   make && ./server            (then ./client in other terminals, then Ctrl+C)
 *        ./server --help             (the limits and their defaults)
 * Read:  README.md, docs/architecture.md and docs/reliability.md.
 */
#include "cli.h"
#include "line_framer.h"
#include "log.h"
#include "net.h"
#include "platform.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The limits, their defaults, and the flags that change them (documented in docs/protocol.md). */
#define DEFAULT_MAX_CLIENTS    1024
#define DEFAULT_IDLE_TIMEOUT_S 300 /* a client that sends nothing for this long is closed */
#define DEFAULT_LINE_TIMEOUT_S 30  /* a line must be complete this long after its first byte */
#define DEFAULT_SEND_TIMEOUT_S 10  /* a reply that finds no room for this long closes the client */

/* How long to stop accepting when the process is out of descriptors (as memcached does). */
#define ACCEPT_PAUSE_MS 100

/* How long a client closed with an ERR line may go on sending before its socket is closed anyway. */
#define VERDICT_LINGER_MS 2000

/* At a stop, how many more reads a client gets: one that never stops sending cannot hold us up. */
#define GOODBYE_MAX_READS 16

/* At the end, how long the log may take to reach stderr: a stderr nobody reads must not hold up the exit. */
#define LOG_STOP_WAIT_MS 1000

/* The usage, with the defaults filled in by main(). */
static const char usage_format[] =
    "usage: server [--host HOST] [--port PORT] [LIMITS]\n"
    "  --host HOST          address to listen on (default %s)\n"
    "  --port PORT          port to listen on, 0 for any free port (default %s)\n"
    "  --max-line BYTES     longest line accepted; longer get 'ERR line too long' (default and most %d)\n"
    "  --max-clients N      clients served at once; more get 'ERR server full' (default %d)\n"
    "  --idle-timeout SECS  close a client silent this long, 0 for never (default %d)\n"
    "  --line-timeout SECS  close a client whose line takes longer, 0 for never (default %d)\n"
    "  --send-timeout SECS  close a client that does not read its replies, 0 for never (default %d)\n"
    "  --help               print this help and exit\n"
    "Ctrl+C stops the server gracefully; a second Ctrl+C ends it at once.\n";

static const char reply[] = "Hello from server\n";
static const char too_long_reply[] = "ERR line too long\n";
static const char idle_reply[] = "ERR idle timeout\n";
static const char line_timeout_reply[] = "ERR line timeout\n";
static const char full_reply[] = "ERR server full\n";
static const char busy_reply[] = "ERR server busy\n";
static const char shutdown_notice[] = "server shutting down\n";

struct limits {
    long max_line;
    long max_clients;
    long idle_timeout_s;
    long line_timeout_s;
    long send_timeout_s;
};

struct server;

/* One connected client. The main thread links it into the list; its thread owns the rest. */
struct client {
    socket_t sock;
    char peer[NET_ADDR_TEXT]; /* "host:port", for the log */
    thread_t thread;
    struct send_limit send_limit; /* how long its replies may wait for room; a stop shortens it */
    unsigned long lines_answered; /* written by the client's thread only; read after the join */
    bool finished;                /* set as its thread ends; guarded by the server's lock */
    struct client *next;          /* in the list of clients; guarded by the server's lock */
    struct server *server;
};

/* What the main thread keeps: the limits, every client not yet joined, and the totals. */
struct server {
    struct limits limits;
    mutex_t lock;
    struct client *first;
    long connected;      /* clients whose threads still serve them; guarded by the lock */
    struct waker reaper; /* raised by each client thread as it ends: the main thread joins it at once */
    /* The rest belong to the main thread alone. */
    unsigned long clients_served;
    unsigned long clients_refused;
    unsigned long lines_answered; /* summed as each client is joined */
};

enum step { KEEP_SERVING, CLIENT_DONE, LINE_TOO_LONG, NOTHING_WAITING };

/* A one-line verdict goes out at once or not at all: a client about to be closed gets no wait. */
static int send_verdict(socket_t sock, const char *verdict, size_t len)
{
    struct send_limit no_wait = {.stall_ms = 0};
    return net_send_all(sock, verdict, len, &no_wait);
}

/*
 * Sends a one-line verdict and logs why the client is being closed. Then
 * lingers, so that the verdict is not lost to a reset.
 */
static void close_with(struct client *client, const char *verdict, size_t len, const char *why)
{
    log_event(client->peer, "error: %s, closing", why);
    send_verdict(client->sock, verdict, len);
    net_linger(client->sock, VERDICT_LINGER_MS);
}

/*
 * Replies waiting to go out. The answers to all the lines of one receive
 * leave together in one send(): one system call instead of one per line,
 * and no reply held back by Nagle's algorithm (lesson 01's README: "Nagle
 * and delayed ACK").
 */
struct outbox {
    size_t len;
    unsigned long replies; /* how many replies the bytes hold: answered once they are sent */
    char bytes[4 * LINE_MAX_BYTES];
};

/*
 * Sends what the outbox holds, as the client's send limit allows, and
 * empties it. Returns 0, or -1 when the client is to be closed (and says
 * why in the log if it is not reading).
 */
static int outbox_send(struct client *client, struct outbox *out)
{
    int sent = net_send_all(client->sock, out->bytes, out->len, &client->send_limit);
    if (sent == 0)
        client->lines_answered += out->replies;
    else if (sent == NET_SEND_TIMED_OUT)
        log_event(client->peer, "error: not reading its replies, closing");
    else if (sent == NET_SEND_STOPPED)
        log_event(client->peer, "error: not reading its replies at the stop, closing");
    out->len = 0;
    out->replies = 0;
    return sent == 0 ? 0 : -1;
}

/* Adds the reply to one line to the outbox, first sending what it holds if it is full. Returns 0, or -1. */
static int outbox_add_reply(struct client *client, struct outbox *out)
{
    if (out->len + sizeof reply - 1 > sizeof out->bytes && outbox_send(client, out) != 0)
        return -1;
    memcpy(out->bytes + out->len, reply, sizeof reply - 1);
    out->len += sizeof reply - 1;
    out->replies++;
    return 0;
}

/* Answers every complete line the framer holds, into the outbox. */
static enum step answer_lines(struct client *client, struct line_framer *framer, struct outbox *out)
{
    char *line;
    size_t len;
    enum framer_status status;
    while ((status = framer_next_line(framer, &line, &len)) == FRAMER_LINE) {
        if (len == 4 && memcmp(line, "exit", 4) == 0)
            return CLIENT_DONE; /* whatever came after "exit" is not answered */
        if (outbox_add_reply(client, out) != 0)
            return CLIENT_DONE;
    }
    return status == FRAMER_TOO_LONG ? LINE_TOO_LONG : KEEP_SERVING;
}

/* Receives what has arrived (the socket is non-blocking) and answers every complete line, in one send. */
static enum step receive_and_answer(struct client *client, struct line_framer *framer, struct outbox *out)
{
    size_t room;
    char *space = framer_space(framer, &room);
    long got = net_recv(client->sock, space, room);
    if (got < 0 && sock_error_is_would_block(sock_last_error()))
        return NOTHING_WAITING;
    if (got <= 0)
        return CLIENT_DONE; /* 0: the client closed its side; -1: the connection broke or was reset */
    framer_commit(framer, (size_t)got);
    enum step step = answer_lines(client, framer, out);
    /* Even when the client is done: the lines before its "exit" still get their answers. */
    if (outbox_send(client, out) != 0)
        return CLIENT_DONE;
    if (step == LINE_TOO_LONG) {
        char why[64];
        snprintf(why, sizeof why, "line longer than %ld bytes", client->server->limits.max_line);
        close_with(client, too_long_reply, sizeof too_long_reply - 1, why);
        return CLIENT_DONE;
    }
    return step;
}

/*
 * The server is stopping: answer what the client had already sent, then
 * tell it so. From here every send shares the stop's second
 * (net_send_limit_stop()), and so do these reads: a client that never
 * stops sending, or never reads, cannot hold the stop up.
 */
static void say_goodbye(struct client *client, struct line_framer *framer, struct outbox *out)
{
    net_send_limit_stop(&client->send_limit);
    for (int i = 0; i < GOODBYE_MAX_READS && monotonic_ms() < client->send_limit.give_up_at; i++) {
        enum step step = receive_and_answer(client, framer, out);
        if (step == CLIENT_DONE)
            return;
        if (step == NOTHING_WAITING)
            break;
    }
    net_send_all(client->sock, shutdown_notice, sizeof shutdown_notice - 1, &client->send_limit);
}

/* The earlier of two deadlines, where 0 means "none". */
static long long earliest(long long a, long long b)
{
    if (a == 0)
        return b;
    if (b == 0)
        return a;
    return a < b ? a : b;
}

/* Serves one client until it leaves, breaks the rules, runs out of time, or the server stops. */
static void serve_client(struct client *client)
{
    const struct limits *limits = &client->server->limits;
    struct line_framer framer;
    framer_init(&framer);
    framer_set_limit(&framer, (size_t)limits->max_line);
    struct outbox out;
    out.len = 0; /* not "= {0}": that would write all 16 KiB, making every client's stack that much bigger */
    out.replies = 0;
    long long now = monotonic_ms();
    long long idle_deadline = limits->idle_timeout_s > 0 ? now + limits->idle_timeout_s * 1000 : 0;
    long long line_deadline = 0; /* set while a line is unfinished: slowloris protection */

    for (;;) {
        long long deadline = earliest(idle_deadline, line_deadline);
        if (deadline != 0 && now >= deadline) {
            if (deadline == line_deadline)
                close_with(client, line_timeout_reply, sizeof line_timeout_reply - 1,
                           "line not finished in time");
            else
                close_with(client, idle_reply, sizeof idle_reply - 1, "idle too long");
            return;
        }
        /* Wait for the client, the nearer deadline, or Ctrl+C, whichever comes first. */
        enum wake_reason woke = sock_wait_readable(client->sock, deadline == 0 ? -1 : (int)(deadline - now));
        if (woke == WOKE_STOP) {
            say_goodbye(client, &framer, &out);
            return;
        }
        if (woke == WOKE_ERROR) {
            char reason[NET_ERR_TEXT];
            log_event(client->peer, "error: waiting for it: %s, closing",
                      sock_strerror(sock_last_error(), reason, sizeof reason));
            return;
        }
        unsigned long lines_before = client->lines_answered;
        enum step step = woke == WOKE_READABLE ? receive_and_answer(client, &framer, &out) : NOTHING_WAITING;
        if (step == CLIENT_DONE)
            return;
        now = monotonic_ms();
        if (step == NOTHING_WAITING)
            continue; /* a deadline, or a wake-up with nothing to read: the top of the loop says which */

        if (limits->idle_timeout_s > 0)
            idle_deadline = now + limits->idle_timeout_s * 1000;
        /* The line clock starts with the first byte of a line, and restarts when lines complete. */
        bool line_completed = client->lines_answered != lines_before;
        if (framer_pending(&framer) == 0 || limits->line_timeout_s == 0)
            line_deadline = 0;
        else if (line_deadline == 0 || line_completed)
            line_deadline = now + limits->line_timeout_s * 1000;
    }
}

/* A client's thread: serves it, closes its socket, then tells the main thread it can be joined. */
static void client_thread(void *arg)
{
    struct client *client = arg;
    serve_client(client);
    sock_close(client->sock);
    log_event(client->peer, "disconnected after %lu lines", client->lines_answered);
    mutex_lock(&client->server->lock);
    client->finished =
        true; /* the main thread may unlink it now, and frees it once this thread has returned */
    client->server->connected--;
    mutex_unlock(&client->server->lock);
    /* Without this, the ended thread (and its stack) would wait for the next client to be reclaimed. */
    waker_raise(&client->server->reaper);
}

/*
 * Joins and frees the clients whose threads have finished, or every client
 * when `all` is true (their threads are ending because of the stop).
 */
static void join_clients(struct server *server, bool all)
{
    struct client *done = NULL;
    mutex_lock(&server->lock);
    for (struct client **link = &server->first; *link != NULL;) {
        struct client *client = *link;
        if (all || client->finished) {
            *link = client->next; /* unlink it, keep walking from the same link */
            client->next = done;
            done = client;
        } else {
            link = &client->next;
        }
    }
    mutex_unlock(&server->lock);

    /* Join outside the lock: a finishing thread needs the lock to say it is done. */
    while (done != NULL) {
        struct client *next = done->next;
        thread_join(done->thread);
        server->lines_answered += done->lines_answered;
        free(done);
        done = next;
    }
}

/* Turns a client away at once with a one-line reason; never waits on it. */
static void refuse(socket_t sock, const char *peer, const char *verdict, size_t len, const char *why)
{
    log_event(peer, "error: %s, refusing", why);
    send_verdict(sock, verdict, len);
    sock_close(sock);
}

/*
 * --max-clients: when that many clients are connected, turns this one away
 * with "ERR server full" and counts it. Returns true if it did.
 */
static bool turned_away_when_full(struct server *server, socket_t sock, const char *peer)
{
    mutex_lock(&server->lock);
    bool full = server->connected >= server->limits.max_clients;
    mutex_unlock(&server->lock);
    if (full) {
        server->clients_refused++;
        refuse(sock, peer, full_reply, sizeof full_reply - 1, "server full");
    }
    return full;
}

/* How long a reply may wait for room, in milliseconds, as a send_limit takes it. */
static int send_stall_ms(const struct limits *limits)
{
    return limits->send_timeout_s == 0 ? -1 : (int)(limits->send_timeout_s * 1000);
}

/* Accepts a waiting connection and starts its thread. Errors are logged; the server goes on. */
static void accept_client(socket_t listener, struct server *server)
{
    char peer[NET_ADDR_TEXT];
    socket_t sock = net_accept(listener, peer, sizeof peer);
    if (sock == SOCKET_INVALID) {
        int code = sock_last_error();
        /* The listener is non-blocking: "would block" means the client left before we got to it. */
        if (sock_error_is_would_block(code) || sock_error_is_interrupt(code))
            return;
        char reason[NET_ERR_TEXT];
        log_event("server", "error: accept: %s", sock_strerror(code, reason, sizeof reason));
        /* Out of descriptors: the connection stays queued and the listener stays readable. Pause, don't spin.
         */
        if (sock_error_is_out_of_resources(code))
            wait_for_stop(ACCEPT_PAUSE_MS);
        return;
    }
    /*
     * Non-blocking, like the listener: the thread waits in poll() for the
     * client, a deadline or a stop, never inside recv() or send(), so
     * nothing can pin it.
     */
    if (sock_set_nonblocking(sock, true) != 0) {
        refuse(sock, peer, busy_reply, sizeof busy_reply - 1, "cannot set up its socket");
        return;
    }

    if (turned_away_when_full(server, sock, peer))
        return;

    struct client *client = calloc(1, sizeof *client);
    if (client == NULL) {
        refuse(sock, peer, busy_reply, sizeof busy_reply - 1, "out of memory");
        return;
    }
    client->sock = sock;
    client->server = server;
    client->send_limit.stall_ms = send_stall_ms(&server->limits);
    snprintf(client->peer, sizeof client->peer, "%s", peer);
    log_event(client->peer, "connected");

    /* Link it in before its thread starts, so that the thread finds the list ready. */
    mutex_lock(&server->lock);
    if (thread_start(&client->thread, client_thread, client) != 0) {
        mutex_unlock(&server->lock);
        free(client);
        refuse(sock, peer, busy_reply, sizeof busy_reply - 1, "cannot start a thread");
        return;
    }
    client->next = server->first;
    server->first = client;
    server->connected++;
    mutex_unlock(&server->lock);
    server->clients_served++;
}

int main(int argc, char **argv)
{
    program_name = "server";
    struct server server = {
        .limits = {.max_line = LINE_MAX_BYTES,
                   .max_clients = DEFAULT_MAX_CLIENTS,
                   .idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S,
                   .line_timeout_s = DEFAULT_LINE_TIMEOUT_S,
                   .send_timeout_s = DEFAULT_SEND_TIMEOUT_S},
    };
    const struct number_option limit_options[] = {
        {"--max-line", 1, LINE_MAX_BYTES, &server.limits.max_line},
        {"--max-clients", 1, 1000000, &server.limits.max_clients},
        {"--idle-timeout", 0, 86400, &server.limits.idle_timeout_s},
        {"--line-timeout", 0, 86400, &server.limits.line_timeout_s},
        {"--send-timeout", 0, 86400, &server.limits.send_timeout_s},
    };
    char usage_text[sizeof usage_format + 64];
    snprintf(usage_text, sizeof usage_text, usage_format, DEFAULT_HOST, DEFAULT_PORT, LINE_MAX_BYTES,
             DEFAULT_MAX_CLIENTS, DEFAULT_IDLE_TIMEOUT_S, DEFAULT_LINE_TIMEOUT_S, DEFAULT_SEND_TIMEOUT_S);
    struct options opts;
    char err[NET_ERR_TEXT];
    if (parse_options(argc, argv, &opts, limit_options, sizeof limit_options / sizeof limit_options[0], err,
                      sizeof err) != PARSE_OK)
        usage_error(usage_text, "%s", err);
    if (opts.help) {
        fputs(usage_text, stdout);
        return EXIT_OK;
    }

    if (net_startup() != 0)
        die("cannot start the socket library");
    if (stop_handler_install() != 0)
        die("cannot install the Ctrl+C handler");
    socket_t listener = net_listen(opts.host, opts.port, err, sizeof err);
    if (listener == SOCKET_INVALID)
        die("cannot listen on %s:%s: %s", opts.host, opts.port, err);
    /* Non-blocking, so that accept() never waits on a client who left between the wake-up and the call. */
    if (sock_set_nonblocking(listener, true) != 0)
        die("cannot make the listening socket non-blocking");
    if (waker_open(&server.reaper) != 0)
        die("cannot open the waker for finished threads");
    ignore_broken_pipes(); /* stderr piped into a program that ended must not end the server */
    if (log_start() != 0)
        die("cannot start the log's thread");

    char address[NET_ADDR_TEXT];
    if (net_local_address(listener, address, sizeof address) != 0)
        die("cannot read the listening address");
    /* One flushed line: scripts and tests wait for it instead of sleeping. */
    printf("listening on %s\n", address);
    fflush(stdout);

    mutex_init(&server.lock);
    for (;;) {
        enum wake_reason woke = sock_wait_readable_or_woken(listener, &server.reaper, -1);
        if (woke == WOKE_ERROR) {
            /* Nothing this loop can mend: say so, and pause rather than spin (Ctrl+C still ends the pause).
             */
            char reason[NET_ERR_TEXT];
            log_event("server", "error: waiting for clients: %s",
                      sock_strerror(sock_last_error(), reason, sizeof reason));
            woke = wait_for_stop(ACCEPT_PAUSE_MS);
        }
        if (woke == WOKE_STOP)
            break;
        if (woke == WOKE_WAKER) {
            waker_clear(&server.reaper); /* first: a thread that ends after this raises it again */
            join_clients(&server, false);
        }
        if (woke == WOKE_READABLE)
            accept_client(listener, &server);
    }

    /* Stop accepting first, so no client arrives while the others are told to leave. */
    sock_close(listener);
    log_event("server", "stopping: no new clients, telling the connected ones");
    join_clients(&server, true); /* each client's thread has seen the stop in its own wait */
    mutex_destroy(&server.lock);
    waker_close(&server.reaper);
    log_event("server", "stopped: %lu clients served, %lu lines answered, %lu refused (server full)",
              server.clients_served, server.lines_answered, server.clients_refused);
    log_stop(LOG_STOP_WAIT_MS);
    stop_handler_remove();
    net_cleanup();
    return EXIT_OK;
}
