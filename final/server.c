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
 * It is lesson 03 with the original's reply, the log and the summary:
 * `make diff FROM=03 TO=final` shows exactly that.
 *
 * Who owns what: the main thread owns the listening socket and the list of
 * clients; each client thread owns its own socket and its own counters.
 *
 * Run:   make && ./server            (then ./client in other terminals, then Ctrl+C)
 * Read:  README.md and docs/architecture.md.
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

static const char usage_text[] =
    "usage: server [--host HOST] [--port PORT]\n"
    "  --host HOST  address to listen on (default " DEFAULT_HOST ")\n"
    "  --port PORT  port to listen on, 0 for any free port (default " DEFAULT_PORT ")\n"
    "  --help       print this help and exit\n"
    "Ctrl+C stops the server gracefully; a second Ctrl+C ends it at once.\n";

static const char reply[] = "Hello from server\n";
static const char too_long_reply[] = "ERR line too long\n";
static const char shutdown_notice[] = "server shutting down\n";

/* At a stop, how many more reads a client gets: one that never stops sending cannot hold us up. */
#define GOODBYE_MAX_READS 16

/* One connected client. The main thread links it into the list; its thread owns `sock`. */
struct client {
    socket_t sock;
    char peer[NET_ADDR_TEXT]; /* "host:port", for the log */
    thread_t thread;
    unsigned long lines_answered; /* written by the client's thread only; read after the join */
    bool finished;                /* set by the client's thread as it ends; guarded by the list's lock */
    struct client *next;          /* in the list of clients; guarded by the list's lock */
    struct client_list *list;
};

/* Every client whose thread has not been joined yet, and the totals of those joined. */
struct client_list {
    mutex_t lock;
    struct client *first;
    unsigned long clients_served; /* main thread only */
    unsigned long lines_answered; /* main thread only: summed as each client is joined */
};

enum step { KEEP_SERVING, CLIENT_DONE, NOTHING_WAITING };

/* Receives once and answers every complete line. NOTHING_WAITING: a non-blocking socket had nothing. */
static enum step receive_and_answer(struct client *client, struct line_framer *framer)
{
    socket_t sock = client->sock;
    size_t room;
    char *space = framer_space(framer, &room);
    long got = net_recv(sock, space, room);
    if (got < 0 && sock_error_is_would_block(sock_last_error()))
        return NOTHING_WAITING;
    if (got <= 0)
        return CLIENT_DONE; /* 0: the client closed its side; -1: the connection broke */
    framer_commit(framer, (size_t)got);

    char *line;
    size_t len;
    enum framer_status status;
    while ((status = framer_next_line(framer, &line, &len)) == FRAMER_LINE) {
        if (len == 4 && memcmp(line, "exit", 4) == 0)
            return CLIENT_DONE; /* whatever came after "exit" is not answered */
        /* One send() per reply: never split a reply into pieces the client sees apart. */
        if (net_send_all(sock, reply, sizeof reply - 1) != 0)
            return CLIENT_DONE;
        client->lines_answered++;
    }
    if (status == FRAMER_TOO_LONG) {
        log_event(client->peer, "error: line longer than %d bytes, closing", LINE_MAX_BYTES);
        net_send_all(sock, too_long_reply, sizeof too_long_reply - 1);
        return CLIENT_DONE;
    }
    return KEEP_SERVING;
}

/* The server is stopping: answer what the client had already sent, then tell it so. */
static void say_goodbye(struct client *client, struct line_framer *framer)
{
    socket_t sock = client->sock;
    /* Non-blocking: read only what has arrived, and never wait on a client that does not read. */
    sock_set_nonblocking(sock, true);
    for (int i = 0; i < GOODBYE_MAX_READS; i++) {
        enum step step = receive_and_answer(client, framer);
        if (step == CLIENT_DONE)
            return;
        if (step == NOTHING_WAITING)
            break;
    }
    net_send_all(sock, shutdown_notice, sizeof shutdown_notice - 1);
}

/* Serves one client until it leaves, breaks the rules, or the server stops. */
static void serve_client(struct client *client)
{
    struct line_framer framer;
    framer_init(&framer);
    for (;;) {
        /* Wait for the client or for Ctrl+C, whichever comes first. */
        enum wake_reason woke = sock_wait_readable(client->sock, -1);
        if (woke == WOKE_STOP) {
            say_goodbye(client, &framer);
            return;
        }
        if (woke == WOKE_ERROR || receive_and_answer(client, &framer) == CLIENT_DONE)
            return;
    }
}

/* A client's thread: serves it, closes its socket and marks itself finished for the main thread. */
static void client_thread(void *arg)
{
    struct client *client = arg;
    serve_client(client);
    sock_close(client->sock);
    log_event(client->peer, "disconnected after %lu lines", client->lines_answered);
    mutex_lock(&client->list->lock);
    client->finished = true;
    mutex_unlock(&client->list->lock);
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
        list->lines_answered += done->lines_answered;
        free(done);
        done = next;
    }
}

/* Accepts a waiting connection and starts its thread. Errors are logged; the server goes on. */
static void accept_client(socket_t listener, struct client_list *list)
{
    socket_t sock = accept(listener, NULL, NULL);
    if (sock == SOCKET_INVALID) {
        int code = sock_last_error();
        /* The listener is non-blocking: "would block" means the client left before we got to it. */
        if (!sock_error_is_would_block(code) && !sock_error_is_interrupt(code)) {
            char reason[NET_ERR_TEXT];
            log_event("server", "error: accept: %s", sock_strerror(code, reason, sizeof reason));
        }
        return;
    }
    /* Windows hands out accepted sockets non-blocking like their listener; make sure. */
    sock_set_nonblocking(sock, false);

    struct client *client = calloc(1, sizeof *client);
    if (client == NULL) {
        log_event("server", "error: out of memory, turning a client away");
        sock_close(sock);
        return;
    }
    client->sock = sock;
    client->list = list;
    snprintf(client->peer, sizeof client->peer, "?");
    net_peer_address(sock, client->peer, sizeof client->peer);
    log_event(client->peer, "connected");

    /* Link it in before its thread starts, so that the thread finds the list ready. */
    mutex_lock(&list->lock);
    if (thread_start(&client->thread, client_thread, client) != 0) {
        mutex_unlock(&list->lock);
        log_event(client->peer, "error: cannot start a thread, closing");
        sock_close(sock);
        free(client);
        return;
    }
    client->next = list->first;
    list->first = client;
    mutex_unlock(&list->lock);
    list->clients_served++;
}

int main(int argc, char **argv)
{
    program_name = "server";
    struct options opts;
    char err[NET_ERR_TEXT];
    if (parse_options(argc, argv, &opts, err, sizeof err) != PARSE_OK)
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
    sock_set_nonblocking(listener, true);

    char address[NET_ADDR_TEXT];
    if (net_local_address(listener, address, sizeof address) != 0)
        die("cannot read the listening address");
    /* One flushed line: scripts and tests wait for it instead of sleeping. */
    printf("listening on %s\n", address);
    fflush(stdout);

    struct client_list clients = {.first = NULL, .clients_served = 0, .lines_answered = 0};
    mutex_init(&clients.lock);

    for (;;) {
        enum wake_reason woke = sock_wait_readable(listener, -1);
        if (woke == WOKE_STOP)
            break;
        if (woke == WOKE_READABLE)
            accept_client(listener, &clients);
        join_clients(&clients, false); /* reclaim the threads of clients who left */
    }

    /* Stop accepting first, so no client arrives while the others are told to leave. */
    sock_close(listener);
    log_event("server", "stopping: no new clients, telling the connected ones");
    join_clients(&clients, true);
    mutex_destroy(&clients.lock);
    stop_handler_remove();
    net_cleanup();
    log_event("server", "stopped: %lu clients served, %lu lines answered", clients.clients_served,
              clients.lines_answered);
    return EXIT_OK;
}
