/*
 * client.c - the course's client: sends lines typed (or piped) on stdin to the
 * server and prints each reply, waiting for it before sending the next line.
 *
 * Run:   ./client                    (connects to 127.0.0.1:9090)
 *        printf 'hi\nexit\n' | ./client --port 9090
 * Type "exit", or end the input (Ctrl+D; Ctrl+Z then Enter on Windows), to
 * leave. A prompt is shown only when stdin is a terminal, so scripts see
 * replies alone.
 * Read:  server.c first; this is its mirror image.
 */
#include "cli.h"
#include "line_framer.h"
#include "net.h"
#include "platform.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char usage_text[] = "usage: client [--host HOST] [--port PORT]\n"
                                 "  --host HOST  server to connect to (default " DEFAULT_HOST ")\n"
                                 "  --port PORT  server port (default " DEFAULT_PORT ")\n"
                                 "  --help       print this help and exit\n";

/* Bytes received from the server and not printed yet: the start of the next reply. */
struct received {
    size_t start, end;
    char bytes[4096];
};

/*
 * Waits for one reply line and prints it, '\n' included. A reply may be
 * longer than the buffer: it is printed piece by piece as it arrives.
 * Returns 0, or -1 when the server closed the connection first.
 */
static int print_reply(socket_t server, struct received *in)
{
    for (;;) {
        if (in->start == in->end) {
            long got = net_recv(server, in->bytes, sizeof in->bytes);
            if (got <= 0)
                return -1;
            in->start = 0;
            in->end = (size_t)got;
        }
        const char *next = in->bytes + in->start;
        size_t held = in->end - in->start;
        const char *newline = memchr(next, '\n', held);
        size_t take = newline != NULL ? (size_t)(newline - next) + 1 : held;
        fwrite(next, 1, take, stdout);
        in->start += take;
        if (newline != NULL) {
            fflush(stdout);
            return 0;
        }
    }
}

/*
 * Reads stdin up to and including the next '\n', at most cap bytes, into
 * buf. Returns how many bytes it read, 0 at end of input. Unlike fgets()
 * with strlen(), it keeps NUL bytes: a line may hold any byte.
 */
static size_t read_input_line(char *buf, size_t cap)
{
    size_t len = 0;
    int c;
    while (len < cap && (c = getchar()) != EOF) {
        buf[len++] = (char)c;
        if (c == '\n')
            break;
    }
    return len;
}

/* True for "exit\n" or "exit\r\n": the line that ends the session. */
static bool is_exit_line(const char *line, size_t len)
{
    return (len == 5 && memcmp(line, "exit\n", 5) == 0) || (len == 6 && memcmp(line, "exit\r\n", 6) == 0);
}

/*
 * Sends each line of stdin to the server and prints its reply, until "exit"
 * or the end of the input. Returns the exit status: EXIT_OK, or
 * EXIT_RUNTIME when the server went away first.
 */
static int converse(socket_t server, bool interactive)
{
    struct received replies = {.start = 0, .end = 0};
    /* One line of input, and the '\n' it may lack at end of input. */
    char input[LINE_MAX_BYTES + 2];
    bool mid_line = false; /* the last chunk sent was not the end of its line */
    for (;;) {
        if (interactive && !mid_line) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        size_t len = read_input_line(input, LINE_MAX_BYTES + 1);
        if (len == 0 && !mid_line)
            return EXIT_OK; /* end of input: leave as "exit" does */
        bool line_done = len > 0 && input[len - 1] == '\n';
        /* len 0 here: a long last line filled its final read exactly, and the end of input shows only now. */
        if (!line_done && (len == 0 || feof(stdin))) {
            input[len++] = '\n'; /* the last line had no end; give it one */
            line_done = true;
        }
        if (net_send_all(server, input, len) != 0) {
            /* It may have said why before it hung up ("ERR line too long"): show that first. */
            print_reply(server, &replies);
            fprintf(stderr, "client: the server went away\n");
            return EXIT_RUNTIME;
        }
        if (!line_done) {
            mid_line = true; /* longer than any line the server takes: send the rest, it will say so */
            continue;
        }
        if (!mid_line && is_exit_line(input, len))
            return EXIT_OK;
        mid_line = false;
        if (print_reply(server, &replies) != 0) {
            fprintf(stderr, "client: the server closed the connection\n");
            return EXIT_RUNTIME;
        }
    }
}

int main(int argc, char **argv)
{
    program_name = "client";
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
    socket_t server = net_connect(opts.host, opts.port, err, sizeof err);
    if (server == SOCKET_INVALID)
        die("cannot connect to %s:%s: %s", opts.host, opts.port, err);

    bool interactive = stdin_is_terminal();
    if (!interactive)
        stdin_keep_bytes();
    int status = converse(server, interactive);
    sock_close(server);
    net_cleanup();
    return status;
}
