/*
 * client.c - final: the course's client. It sends the lines typed (or piped)
 * on stdin, and prints what the server sends as soon as it arrives: the
 * replies, and the lines the server sends on its own, such as "server
 * shutting down" or "ERR idle timeout".
 *
 * So it waits on two things at once, the keyboard and the server. A thread
 * of its own reads stdin and sends each line; the main thread receives and
 * prints. (POSIX could poll() stdin beside the socket, but Windows cannot
 * wait on a console and a socket in one call: a thread that may sleep in
 * its read is the portable way.) When the server closes the connection, the
 * main thread says so and the program ends at once, even with the keyboard
 * thread still waiting for a line that now has nowhere to go.
 *
 * Run:   ./client                    (connects to 127.0.0.1:9090)
 *        printf 'hi\nexit\n' | ./client --port 9090
 * Type "exit", or end the input (Ctrl+D; Ctrl+Z then Enter on Windows), to
 * leave. A prompt is shown only when stdin is a terminal, so scripts see
 * replies alone.
 * Read:  lessons/01-echo-blocking/client.c first: the same client, one line
 *        and one reply at a time.
 */
#include "cli.h"
#include "line_framer.h"
#include "net.h"
#include "platform.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char usage_text[] = "usage: client [--host HOST] [--port PORT]\n"
                                 "  --host HOST  server to connect to (default " DEFAULT_HOST ")\n"
                                 "  --port PORT  server port (default " DEFAULT_PORT ")\n"
                                 "  --help       print this help and exit\n";

/* What the two threads share, and what the main thread knows of the screen. */
struct session {
    socket_t server;
    bool interactive;       /* stdin is a terminal: show a prompt */
    atomic_bool input_done; /* the keyboard thread has sent all it ever will ("exit", or the end of stdin) */
    atomic_long lines_sent; /* lines sent, "exit" left out: each is owed a reply */
    /* When the keyboard thread may end (see keyboard_done()): */
    mutex_t lock;
    cond_t changed;
    bool may_end; /* main will join it */
    /* The main thread's alone: */
    bool prompt_showing; /* "> " was the last thing printed */
    bool line_open;      /* the last thing printed did not end its line */
};

/* Bytes read from stdin and not sent yet. */
struct typed {
    size_t start, end;
    bool ended; /* stdin is at its end */
    char bytes[LINE_MAX_BYTES + 2];
};

/*
 * Takes the next piece of input into line: up to and including a '\n', or
 * as much as fits (a line longer than any the server accepts goes in
 * pieces). Reads stdin only when nothing is held. Returns the length, 0 at
 * the end of the input.
 */
static size_t next_input(struct typed *in, char *line, size_t cap)
{
    if (in->start == in->end && !in->ended) {
        long got = stdin_read(in->bytes, sizeof in->bytes);
        in->start = 0;
        in->end = got > 0 ? (size_t)got : 0;
        in->ended = got <= 0;
    }
    size_t held = in->end - in->start;
    const char *newline = memchr(in->bytes + in->start, '\n', held);
    size_t take = newline != NULL ? (size_t)(newline - (in->bytes + in->start)) + 1 : held;
    if (take > cap)
        take = cap;
    memcpy(line, in->bytes + in->start, take);
    in->start += take;
    return take;
}

/* True for "exit\n" or "exit\r\n": the line that ends the session. */
static bool is_exit_line(const char *line, size_t len)
{
    return (len == 5 && memcmp(line, "exit\n", 5) == 0) || (len == 6 && memcmp(line, "exit\r\n", 6) == 0);
}

/*
 * The keyboard thread's last act, once it has sent all it will and said
 * so (input_done): it ends only when main says it will join it. A thread
 * that ends while the process exits races with exit()'s own clean-up
 * (under AddressSanitizer, glibc's _dl_fini() crashed), so when the
 * server went first and main leaves without joining, this thread waits
 * here, or in its read, until the process is gone.
 */
static void keyboard_done(struct session *session)
{
    mutex_lock(&session->lock);
    while (!session->may_end)
        cond_wait(&session->changed, &session->lock, -1);
    mutex_unlock(&session->lock);
}

/*
 * The keyboard thread: sends each line of stdin as it comes, until "exit"
 * or the end of the input, then ends the stream towards the server (it
 * still sends what it owes, then closes). A failed send ends it too: the
 * main thread will hear why from the server's side.
 */
static void send_typed_lines(void *arg)
{
    struct session *session = arg;
    struct send_limit no_limit = {.stall_ms = -1}; /* a blocking socket: a send waits as long as it takes */
    struct typed in = {.start = 0, .end = 0, .ended = false};
    char line[LINE_MAX_BYTES + 2];
    bool mid_line = false; /* the last piece sent was not the end of its line */
    for (;;) {
        size_t len = next_input(&in, line, LINE_MAX_BYTES + 1);
        if (len == 0 && !mid_line)
            break; /* the end of the input: leave as "exit" does */
        bool line_done = len > 0 && line[len - 1] == '\n';
        if (!line_done && in.ended && in.start == in.end) {
            line[len++] = '\n'; /* the last line had no end; give it one */
            line_done = true;
        }
        bool leaving = line_done && !mid_line && is_exit_line(line, len);
        if (leaving)
            atomic_store(&session->input_done, true); /* before the server can answer "exit" by closing */
        else if (line_done)
            atomic_fetch_add(&session->lines_sent, 1);
        if (net_send_all(session->server, line, len, &no_limit) != 0 || leaving)
            break;
        mid_line = !line_done;
    }
    atomic_store(&session->input_done, true); /* before the server can see the end, and close */
    sock_stop_sending(session->server);       /* the server answers what it has, then closes: main sees it */
    keyboard_done(session);
}

/* Prints the prompt when the user may type: interactive, and input still to come. */
static void prompt(struct session *session)
{
    if (!session->interactive || atomic_load(&session->input_done))
        return;
    fputs("> ", stdout);
    session->prompt_showing = session->line_open = true;
}

/*
 * Writes bytes from the server to stdout. A line the server sends while a
 * prompt waits for the user takes the prompt's place, and the prompt comes
 * back after it.
 */
static void show(struct session *session, const char *bytes, size_t len)
{
    if (session->prompt_showing)
        fputs("\r", stdout); /* back to the start of the prompt's line */
    fwrite(bytes, 1, len, stdout);
    session->prompt_showing = false;
    session->line_open = bytes[len - 1] != '\n';
    if (!session->line_open)
        prompt(session);
    fflush(stdout);
}

/*
 * The main thread: prints what the server sends until it closes the
 * connection. Returns the exit status: EXIT_OK when the server closed
 * after answering every line of an input that had ended, EXIT_RUNTIME when
 * it went away before that.
 */
static int print_until_closed(struct session *session)
{
    char bytes[4096];
    long replies = 0;
    for (;;) {
        long got = net_recv(session->server, bytes, sizeof bytes);
        if (got <= 0)
            break; /* 0: the server closed the connection; -1: it broke */
        for (long i = 0; i < got; i++)
            replies += bytes[i] == '\n';
        show(session, bytes, (size_t)got);
    }
    bool answered = atomic_load(&session->input_done) && replies >= atomic_load(&session->lines_sent);
    if (session->line_open)
        fputs("\n",
              stdout); /* after a prompt (Ctrl+D) or a cut reply: the shell's prompt gets a line of its own */
    fflush(stdout);
    if (answered)
        return EXIT_OK;
    fprintf(stderr, "client: the server closed the connection\n");
    return EXIT_RUNTIME;
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

    /* static: the keyboard thread may still wait in it while the program ends, after main() has returned */
    static struct session session;
    session.server = server;
    session.interactive = stdin_is_terminal();
    atomic_init(&session.input_done, false);
    mutex_init(&session.lock);
    cond_init(&session.changed);
    atomic_init(&session.lines_sent, 0);
    prompt(&session);
    fflush(stdout);
    thread_t keyboard;
    if (thread_start(&keyboard, send_typed_lines, &session) != 0)
        die("cannot start the thread that reads the keyboard");
    int status = print_until_closed(&session);
    /*
     * If the input had ended, the keyboard thread waits in keyboard_done():
     * let it end, join it, and clean up. If the server went first, the
     * thread may wait for a line for ever, and may yet send on the socket:
     * it is left where it is, the socket open (closing a socket another
     * thread uses is docs/classic-mistakes.md #9), and ending the program
     * ends both.
     */
    mutex_lock(&session.lock);
    session.may_end = atomic_load(&session.input_done);
    cond_broadcast(&session.changed);
    mutex_unlock(&session.lock);
    if (session.may_end) {
        thread_join(keyboard);
        sock_close(server);
        net_cleanup();
    }
    return status;
}
