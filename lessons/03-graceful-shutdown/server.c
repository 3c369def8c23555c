/*
 * server.c - lesson 03: a thread per client, and a graceful Ctrl+C.
 *
 * Lesson 02 started a detached thread per client, so nothing could end them
 * cleanly: Ctrl+C simply killed the process. Here Ctrl+C asks for a stop.
 * The main thread stops accepting and closes the listening socket. Every
 * client thread wakes up, answers the lines its client had already sent,
 * sends "server shutting down", and closes its socket. The main thread
 * joins every thread, frees every record and exits 0.
 *
 * Who owns what: the main thread owns the listening socket and the list of
 * clients; each client thread owns its own socket. No thread ever closes a
 * socket that another thread might be using.
 *
 * Run:   make && ./server            (then ./client in other terminals, then Ctrl+C)
 * Read:  README.md, then `make diff FROM=02 TO=03` at the top of the course,
 *        and the "Stopping" part of platform_posix.c / platform_win32.c.
 * Next:  final/ is the complete system.
 */
#include "cli.h"
#include "line_framer.h"
#include "net.h"
#include "platform.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: server [--host HOST] [--port PORT]\n"
    "  --host HOST  address to listen on (default " DEFAULT_HOST ")\n"
    "  --port PORT  port to listen on, 0 for any free port (default " DEFAULT_PORT ")\n"
    "  --help       print this help and exit\n"
    "Ctrl+C stops the server gracefully; a second Ctrl+C ends it at once.\n";

static const char too_long_reply[] = "ERR line too long\n";
static const char shutdown_notice[] = "server shutting down\n";

/* How long to wait before trying again when waiting for clients failed. */
#define ACCEPT_PAUSE_MS 100

/* At a stop, how many more reads a client gets: one that never stops sending cannot hold us up. */
#define GOODBYE_MAX_READS 16

/* One connected client. The main thread links it into the list; its thread owns `sock`. */
struct client {
    socket_t sock;
    char peer[NET_ADDR_TEXT]; /* "host:port", for the log */
    thread_t thread;
    bool finished;       /* set by the client's thread as it ends; guarded by the list's lock */
    struct client *next; /* in the list of clients; guarded by the list's lock */
    struct client_list *list;
};

/* Every client whose thread has not been joined yet. */
struct client_list {
    mutex_t lock;
    struct client *first;
    struct waker reaper; /* raised by each client thread as it ends: the main thread joins it at once */
};

enum step { KEEP_SERVING, CLIENT_DONE, NOTHING_WAITING };

/*
 * Replies waiting to go out. The answers to all the lines of one receive
 * leave together in one send(): one system call instead of one per line,
 * and no reply held back by Nagle's algorithm (README: "Nagle and delayed
 * ACK").
 */
struct outbox {
    size_t len;
    char bytes[4 * LINE_MAX_BYTES];
};

/* Sends what the outbox holds and empties it. Returns 0, or -1 if the client is gone. */
static int outbox_send(socket_t client, struct outbox *out)
{
    int rc = net_send_all(client, out->bytes, out->len);
    out->len = 0;
    return rc;
}

/* Adds a reply to the outbox, first sending what it holds if the reply would not fit. Returns 0, or -1. */
static int outbox_add(socket_t client, struct outbox *out, const char *reply, size_t len)
{
    if (out->len + len > sizeof out->bytes && outbox_send(client, out) != 0)
        return -1;
    /* A reply is at most a line and its '\n', so it always fits in an empty outbox. */
    memcpy(out->bytes + out->len, reply, len);
    out->len += len;
    return 0;
}

/*
 * Answers every complete line the framer holds, into the outbox: each line
 * goes back with its '\n'. Returns true to go on serving, false once the
 * client is done ("exit", a line too long, or a failed send).
 */
static bool answer_lines(socket_t client, struct line_framer *framer, struct outbox *out)
{
    char *line;
    size_t len;
    enum framer_status status;
    while ((status = framer_next_line(framer, &line, &len)) == FRAMER_LINE) {
        if (len == 4 && memcmp(line, "exit", 4) == 0)
            return false; /* whatever came after "exit" is not answered */
        line[len] = '\n'; /* the framer cut the line here; put an end back on */
        if (outbox_add(client, out, line, len + 1) != 0)
            return false;
    }
    if (status == FRAMER_TOO_LONG) {
        outbox_add(client, out, too_long_reply, sizeof too_long_reply - 1);
        return false;
    }
    return true;
}

/*
 * Receives once and answers every complete line, in one send. Returns
 * KEEP_SERVING, CLIENT_DONE, or NOTHING_WAITING when a non-blocking socket
 * had nothing to read.
 */
static enum step receive_and_answer(socket_t sock, struct line_framer *framer, struct outbox *out)
{
    size_t room;
    char *space = framer_space(framer, &room);
    long got = net_recv(sock, space, room);
    if (got < 0 && sock_error_is_would_block(sock_last_error()))
        return NOTHING_WAITING;
    if (got <= 0)
        return CLIENT_DONE; /* 0: the client closed its side; -1: the connection broke */
    framer_commit(framer, (size_t)got);
    bool go_on = answer_lines(sock, framer, out);
    /* Even when the client is done: the lines before its "exit" still get their answers. */
    if (outbox_send(sock, out) != 0 || !go_on)
        return CLIENT_DONE;
    return KEEP_SERVING;
}

/* The server is stopping: answer what the client had already sent, then tell it so. */
static void say_goodbye(socket_t sock, struct line_framer *framer, struct outbox *out)
{
    /* Non-blocking: read only what has arrived, and never wait on a client that does not read. */
    sock_set_nonblocking(sock, true);
    for (int i = 0; i < GOODBYE_MAX_READS; i++) {
        enum step step = receive_and_answer(sock, framer, out);
        if (step == CLIENT_DONE)
            return;
        if (step == NOTHING_WAITING)
            break;
    }
    net_send_all(sock, shutdown_notice, sizeof shutdown_notice - 1);
}

/* Serves one client until it leaves, breaks the rules, or the server stops. */
static void serve_client(socket_t sock)
{
    struct line_framer framer;
    framer_init(&framer);
    struct outbox out;
    out.len = 0; /* not "= {0}": that would write all 16 KiB, making every client's stack that much bigger */
    for (;;) {
        /* Wait for the client or for Ctrl+C, whichever comes first. */
        enum wake_reason woke = sock_wait_readable(sock, -1);
        if (woke == WOKE_STOP) {
            say_goodbye(sock, &framer, &out);
            return;
        }
        if (woke == WOKE_ERROR || receive_and_answer(sock, &framer, &out) == CLIENT_DONE)
            return;
    }
}

/* A client's thread: serves it, closes its socket and marks itself finished for the main thread. */
static void client_thread(void *arg)
{
    struct client *client = arg;
    serve_client(client->sock);
    sock_close(client->sock);
    fprintf(stderr, "server: %s disconnected\n", client->peer);
    mutex_lock(&client->list->lock);
    client->finished = true;
    mutex_unlock(&client->list->lock);
    /* Without this, a finished thread (and its stack) would wait for the next client to be reclaimed. */
    waker_raise(&client->list->reaper);
}

/*
 * Joins and frees the clients whose threads have finished, or every client
 * when `all` is true (their threads are ending because of the stop).
 */
static void join_clients(struct client_list *list, bool all)
{
    struct client *done = NULL;
    mutex_lock(&list->lock);
    for (struct client **link = &list->first; *link != NULL;) {
        struct client *client = *link;
        if (all || client->finished) {
            *link = client->next; /* unlink it, keep walking from the same link */
            client->next = done;
            done = client;
        } else {
            link = &client->next;
        }
    }
    mutex_unlock(&list->lock);

    /* Join outside the lock: a finishing thread needs the lock to say it is done. */
    while (done != NULL) {
        struct client *next = done->next;
        thread_join(done->thread);
        free(done);
        done = next;
    }
}

/* Accepts a waiting connection and starts its thread. Errors are logged; the server goes on. */
static void accept_client(socket_t listener, struct client_list *list)
{
    char peer[NET_ADDR_TEXT];
    socket_t sock = net_accept(listener, peer, sizeof peer);
    if (sock == SOCKET_INVALID) {
        int code = sock_last_error();
        /* The listener is non-blocking: "would block" means the client left before we got to it. */
        if (!sock_error_is_would_block(code) && !sock_error_is_interrupt(code)) {
            char reason[NET_ERR_TEXT];
            fprintf(stderr, "server: accept: %s\n", sock_strerror(code, reason, sizeof reason));
        }
        return;
    }
    /* Windows hands out accepted sockets non-blocking like their listener; make sure. */
    sock_set_nonblocking(sock, false);

    struct client *client = calloc(1, sizeof *client);
    if (client == NULL) {
        fprintf(stderr, "server: out of memory, turning a client away\n");
        sock_close(sock);
        return;
    }
    client->sock = sock;
    client->list = list;
    snprintf(client->peer, sizeof client->peer, "%s", peer);
    fprintf(stderr, "server: %s connected\n", client->peer);

    /* Link it in before its thread starts, so that the thread finds the list ready. */
    mutex_lock(&list->lock);
    if (thread_start(&client->thread, client_thread, client) != 0) {
        mutex_unlock(&list->lock);
        fprintf(stderr, "server: cannot start a thread for %s\n", client->peer);
        sock_close(sock);
        free(client);
        return;
    }
    client->next = list->first;
    list->first = client;
    mutex_unlock(&list->lock);
}

/*
 * Prints "listening on HOST:PORT" with the address actually bound, and
 * flushes it: scripts and tests wait for this one line instead of
 * sleeping. Returns 0, or -1.
 */
static int announce(socket_t listener)
{
    char address[NET_ADDR_TEXT];
    if (net_local_address(listener, address, sizeof address) != 0)
        return -1;
    printf("listening on %s\n", address);
    fflush(stdout);
    return 0;
}

/*
 * Accepts clients, and joins the threads of those who left, until Ctrl+C:
 * it waits on the listener, the reaper waker and the stop all at once.
 */
static void serve_until_stopped(socket_t listener, struct client_list *clients)
{
    for (;;) {
        enum wake_reason woke = sock_wait_readable_or_woken(listener, &clients->reaper, -1);
        if (woke == WOKE_ERROR) {
            /* Nothing this loop can mend: say so, and pause rather than spin (Ctrl+C still ends the pause).
             */
            char reason[NET_ERR_TEXT];
            fprintf(stderr, "server: waiting for clients: %s\n",
                    sock_strerror(sock_last_error(), reason, sizeof reason));
            woke = wait_for_stop(ACCEPT_PAUSE_MS);
        }
        if (woke == WOKE_STOP)
            return;
        if (woke == WOKE_WAKER) {
            waker_clear(&clients->reaper); /* first: a thread that ends after this raises it again */
            join_clients(clients, false);
        }
        if (woke == WOKE_READABLE)
            accept_client(listener, clients);
    }
}

int main(int argc, char **argv)
{
    program_name = "server";
    struct options opts;
    char err[NET_ERR_TEXT];
    if (parse_options(argc, argv, &opts, NULL, 0, err, sizeof err) != PARSE_OK)
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
    struct client_list clients = {.first = NULL};
    if (waker_open(&clients.reaper) != 0)
        die("cannot open the waker for finished threads");
    if (announce(listener) != 0)
        die("cannot read the listening address");

    mutex_init(&clients.lock);
    serve_until_stopped(listener, &clients);
    /* Stop accepting first, so no client arrives while the others are told to leave. */
    sock_close(listener);
    fprintf(stderr, "server: stopping\n");
    join_clients(&clients, true);
    mutex_destroy(&clients.lock);
    waker_close(&clients.reaper);
    stop_handler_remove();
    net_cleanup();
    fprintf(stderr, "server: stopped\n");
    return EXIT_OK;
}
