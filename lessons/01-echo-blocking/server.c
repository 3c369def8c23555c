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

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: server [--host HOST] [--port PORT]\n"
    "  --host HOST  address to listen on (default " DEFAULT_HOST ")\n"
    "  --port PORT  port to listen on, 0 for any free port (default " DEFAULT_PORT ")\n"
    "  --help       print this help and exit\n";

static const char too_long_reply[] = "ERR line too long\n";

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

/* Serves one client until it sends "exit", goes away or breaks the rules. */
static void serve_client(socket_t client)
{
    struct line_framer framer;
    framer_init(&framer);
    struct outbox out;
    out.len = 0; /* not "= {0}": that would write all 16 KiB, making every client's stack that much bigger */

    for (;;) {
        size_t room;
        char *space = framer_space(&framer, &room);
        long got = net_recv(client, space, room);
        if (got <= 0)
            return; /* 0: the client closed its side; -1: the connection broke */
        framer_commit(&framer, (size_t)got);
        bool go_on = answer_lines(client, &framer, &out);
        /* Even when the client is done: the lines before its "exit" still get their answers. */
        if (outbox_send(client, &out) != 0 || !go_on)
            return;
    }
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

/* Accepts clients one after another, for ever, and serves each until it leaves. */
static void serve_clients(socket_t listener)
{
    for (;;) {
        char peer[NET_ADDR_TEXT];
        socket_t client = net_accept(listener, peer, sizeof peer);
        if (client == SOCKET_INVALID) {
            int code = sock_last_error();
            char reason[NET_ERR_TEXT];
            if (!sock_error_is_interrupt(code))
                fprintf(stderr, "server: accept: %s\n", sock_strerror(code, reason, sizeof reason));
            continue;
        }
        fprintf(stderr, "server: %s connected\n", peer);
        /* While this call runs, nobody else is served: lesson 02 fixes that. */
        serve_client(client);
        sock_close(client);
        fprintf(stderr, "server: %s disconnected\n", peer);
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
    socket_t listener = net_listen(opts.host, opts.port, err, sizeof err);
    if (listener == SOCKET_INVALID)
        die("cannot listen on %s:%s: %s", opts.host, opts.port, err);
    if (announce(listener) != 0)
        die("cannot read the listening address");
    serve_clients(listener); /* for ever: Ctrl+C ends this server (lesson 03 stops it gracefully) */
    sock_close(listener);
    net_cleanup();
    return EXIT_OK;
}
