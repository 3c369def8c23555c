/*
 * server.c - lesson 02: an echo server with one thread per client.
 *
 * Lesson 01 served one client at a time. Here the main thread only
 * accepts; each client gets a thread of its own that runs the same
 * serve_client() as before, so a slow client no longer blocks the others.
 * The line "exit" closes that client's connection.
 *
 * Run:   make && ./server            (then ./client in two more terminals)
 *        ./server --port 0           (any free port; the real one is printed)
 * Read:  README.md, then `make diff FROM=01 TO=02` at the top of the course,
 *        and thread_start_detached() in platform_posix.c / platform_win32.c.
 * Next:  lessons/03-graceful-shutdown: Ctrl+C that closes everything cleanly.
 */
#include "cli.h"
#include "line_framer.h"
#include "net.h"
#include "platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: server [--host HOST] [--port PORT]\n"
    "  --host HOST  address to listen on (default " DEFAULT_HOST ")\n"
    "  --port PORT  port to listen on, 0 for any free port (default " DEFAULT_PORT ")\n"
    "  --help       print this help and exit\n";

static const char too_long_reply[] = "ERR line too long\n";

/* Answers one line: sends it back with its '\n'. Returns 0, or -1 if the client is gone. */
static int answer_line(socket_t client, char *line, size_t len)
{
    line[len] = '\n'; /* the framer cut the line here; put an end back on */
    return net_send_all(client, line, len + 1);
}

/* What a client's thread needs; the thread owns it and frees it. */
struct client {
    socket_t sock;
    char peer[NET_ADDR_TEXT]; /* "host:port", for the log */
};

/* Serves one client until it sends "exit", goes away or breaks the rules. */
static void serve_client(socket_t client)
{
    struct line_framer framer;
    framer_init(&framer);

    for (;;) {
        size_t room;
        char *space = framer_space(&framer, &room);
        long got = net_recv(client, space, room);
        if (got <= 0)
            return; /* 0: the client closed its side; -1: the connection broke */
        framer_commit(&framer, (size_t)got);

        char *line;
        size_t len;
        enum framer_status status;
        while ((status = framer_next_line(&framer, &line, &len)) == FRAMER_LINE) {
            if (len == 4 && memcmp(line, "exit", 4) == 0)
                return; /* whatever came after "exit" is not answered */
            if (answer_line(client, line, len) != 0)
                return;
        }
        if (status == FRAMER_TOO_LONG) {
            net_send_all(client, too_long_reply, sizeof too_long_reply - 1);
            return;
        }
    }
}

/* A client's thread: serves it, then closes its socket and frees its record. */
static void client_thread(void *arg)
{
    struct client *client = arg;
    serve_client(client->sock);
    sock_close(client->sock);
    fprintf(stderr, "server: %s disconnected\n", client->peer);
    free(client);
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
    socket_t listener = net_listen(opts.host, opts.port, err, sizeof err);
    if (listener == SOCKET_INVALID)
        die("cannot listen on %s:%s: %s", opts.host, opts.port, err);

    char address[NET_ADDR_TEXT];
    if (net_local_address(listener, address, sizeof address) != 0)
        die("cannot read the listening address");
    /* One flushed line: scripts and tests wait for it instead of sleeping. */
    printf("listening on %s\n", address);
    fflush(stdout);

    for (;;) {
        socket_t sock = accept(listener, NULL, NULL);
        if (sock == SOCKET_INVALID) {
            int code = sock_last_error();
            if (!sock_error_is_interrupt(code))
                fprintf(stderr, "server: accept: %s\n", sock_strerror(code, err, sizeof err));
            continue;
        }
        struct client *client = malloc(sizeof *client);
        if (client == NULL) {
            fprintf(stderr, "server: out of memory, turning a client away\n");
            sock_close(sock);
            continue;
        }
        client->sock = sock;
        snprintf(client->peer, sizeof client->peer, "?");
        net_peer_address(sock, client->peer, sizeof client->peer);
        fprintf(stderr, "server: %s connected\n", client->peer);
        /*
         * The thread is detached: it cleans up after itself and nobody waits
         * for it. Simple, but nobody can tell it to stop either: lesson 03
         * keeps every thread so that Ctrl+C can end and join them all.
         */
        if (thread_start_detached(client_thread, client) != 0) {
            fprintf(stderr, "server: cannot start a thread for %s\n", client->peer);
            sock_close(sock);
            free(client);
        }
    }
}
