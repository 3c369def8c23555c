/*
 * server.c - lesson 01: a blocking echo server, one client at a time.
 *
 * It listens on 127.0.0.1:9090, accepts one client, sends back every line
 * that client sends, and only when that client leaves does it accept the
 * next one. The line "exit" closes the connection.
 *
 * Run:   make && ./server            (then ./client in a second terminal)
 *        ./server --port 0           (any free port; the real one is printed)
 * Read:  README.md, then line_framer.h (how bytes become lines), net.c
 *        (the socket helpers) and platform.h (POSIX vs Winsock).
 * Next:  lessons/02-threads serves many clients at once.
 */
#include "cli.h"
#include "line_framer.h"
#include "net.h"
#include "platform.h"

#include <stdio.h>
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
        socket_t client = accept(listener, NULL, NULL);
        if (client == SOCKET_INVALID) {
            int code = sock_last_error();
            if (!sock_error_is_interrupt(code))
                fprintf(stderr, "server: accept: %s\n", sock_strerror(code, err, sizeof err));
            continue;
        }
        char peer[NET_ADDR_TEXT] = "?";
        net_peer_address(client, peer, sizeof peer);
        fprintf(stderr, "server: %s connected\n", peer);
        /* While this call runs, nobody else is served: lesson 02 fixes that. */
        serve_client(client);
        sock_close(client);
        fprintf(stderr, "server: %s disconnected\n", peer);
    }
}
