/*
 * client.c - lessons 05 to 07: a client for the server's commands, in the manner
 * of redis-cli. Each line typed (or piped) on stdin is a command: its
 * words are sent as a RESP array of bulk strings, and each reply is
 * printed as redis-cli prints it:
 *
 *   > PING                 > ECHO "two words"       > SUBSCRIBE news
 *   PONG                   "two words"              1) "subscribe"
 *                                                   2) "news"
 *   > CLIENT ID            > FOO                    3) (integer) 1
 *   (integer) 7            (error) ERR unknown ...
 *
 * Words are split on blanks; "double quotes" keep blanks inside a word,
 * and in them \" and \\ stand for " and \. As in lesson 04's client, a
 * thread reads the keyboard and the main thread prints what the server
 * sends when it arrives: the replies, and the messages of the channels it
 * subscribed to, which come whenever someone publishes.
 *
 * Lesson 07 adds --tls: the client checks the server's certificate
 * against --tls-ca-cert-file (or the system's CAs) and its name, and then
 * both threads share one TLS object under the link's lock (struct link).
 *
 * Run:   ./client                    (connects to 127.0.0.1:9090)
 *        printf 'PING\nECHO hi\n' | ./client --port 9090
 *        ./client --port 6380 --tls --tls-ca-cert-file certs/ca.crt
 * Type "exit" or QUIT, or end the input (Ctrl+D; Ctrl+Z then Enter on
 * Windows), to leave.
 * Read:  resp.h (resp_read_element()), then redis-cli's own output for the
 *        same commands; for --tls, tls.h and the link's functions below.
 */
#include "cli.h"
#include "net.h"
#include "outbuf.h"
#include "platform.h"
#include "resp.h"
#include "tls.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char usage_text[] =
    "usage: client [--host HOST] [--port PORT] [--tls [--tls-ca-cert-file FILE] [--tls-cert-file FILE "
    "--tls-key-file FILE]]\n"
    "  --host HOST              server to connect to (default " DEFAULT_HOST ")\n"
    "  --port PORT              server port (default " DEFAULT_PORT ")\n"
    "  --tls                    speak TLS, and check the server's certificate and that it names HOST\n"
    "  --tls-ca-cert-file FILE  the CAs to check it with, PEM (default: the system's)\n"
    "  --tls-cert-file FILE     a certificate to show the server, PEM (with --tls-key-file)\n"
    "  --tls-key-file FILE      its private key, PEM\n"
    "  --help                   print this help and exit\n";

/* The longest line typed, and the most words in it. */
#define TYPED_MAX 65536
#define WORDS_MAX 1024

/* The largest element of a reply the client takes: a server that sends more in one is not this course's. */
#define REPLY_MAX (64u * 1024 * 1024)

/*
 * The connection to the server: its socket, and with --tls its TLS
 * (tls.h). The keyboard thread only sends and the main thread only
 * receives, but a TLS object is one state for both directions: they use
 * it under `lock`, and send or receive on the socket with the lock given
 * back, so that neither waits for the other's socket.
 */
struct link {
    socket_t sock;
    struct tls *tls; /* NULL: plaintext */
    mutex_t lock;
};

/* The conversation with the server: what the two threads share, and what the main thread knows of the screen.
 */
struct talk {
    struct link server;
    bool interactive;       /* stdin is a terminal: show a prompt */
    atomic_bool input_done; /* the keyboard thread has sent all it ever will */
    atomic_long
        replies_owed; /* replies the commands sent are owed: one each, one a channel for (UN)SUBSCRIBE */
    /* When the keyboard thread may end (see keyboard_done()): */
    mutex_t lock;
    cond_t changed;
    bool may_end; /* main will join it */
    /* The main thread's alone: */
    bool prompt_showing; /* "> " was the last thing printed */
};

/* Bytes read from stdin and not used yet. */
struct typed {
    size_t start, end;
    bool ended; /* stdin is at its end */
    char bytes[TYPED_MAX];
};

/*
 * Takes the next line of input into line, without its "\n" or "\r\n".
 * Returns its length, or -1 at the end of the input, or -2 for a line
 * longer than cap (skipped).
 */
static long next_line(struct typed *in, char *line, size_t cap)
{
    size_t len = 0;
    bool too_long = false;
    for (;;) {
        if (in->start == in->end) {
            if (in->ended)
                return len > 0 ? (long)len : -1; /* a last line without its "\n" still counts */
            long got = stdin_read(in->bytes, sizeof in->bytes);
            in->start = 0;
            in->end = got > 0 ? (size_t)got : 0;
            in->ended = got <= 0;
            continue;
        }
        char c = in->bytes[in->start++];
        if (c == '\n')
            break;
        if (len < cap)
            line[len++] = c;
        else
            too_long = true;
    }
    if (len > 0 && line[len - 1] == '\r')
        len--;
    return too_long ? -2 : (long)len;
}

/*
 * Splits a line into words, in place: blanks separate them, "double
 * quotes" keep blanks, and inside them \" and \\ stand for " and \.
 * Returns the number of words, or -1 for an unclosed quote.
 */
static int split_words(char *line, size_t len, struct resp_arg *words, int max)
{
    int n = 0;
    size_t pos = 0;
    while (pos < len) {
        while (pos < len && (line[pos] == ' ' || line[pos] == '\t'))
            pos++;
        if (pos == len)
            break;
        if (n == max)
            return -1;
        char *out = line + pos; /* the word is rewritten over itself: it never grows */
        words[n].bytes = out;
        size_t w = 0;
        bool quoted = false;
        for (; pos < len && (quoted || (line[pos] != ' ' && line[pos] != '\t')); pos++) {
            if (line[pos] == '"') {
                quoted = !quoted;
            } else if (quoted && line[pos] == '\\' && pos + 1 < len &&
                       (line[pos + 1] == '"' || line[pos + 1] == '\\')) {
                out[w++] = line[++pos];
            } else {
                out[w++] = line[pos];
            }
        }
        if (quoted)
            return -1;
        words[n++].len = w;
    }
    return n;
}

/* Appends the words as a RESP array of bulk strings: "*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n". */
static int encode(struct outbuf *out, const struct resp_arg *words, int n)
{
    char header[32];
    int len = snprintf(header, sizeof header, "*%d\r\n", n);
    int failed = outbuf_append(out, header, (size_t)len);
    for (int i = 0; i < n; i++) {
        len = snprintf(header, sizeof header, "$%zu\r\n", words[i].len);
        failed |= outbuf_append(out, header, (size_t)len);
        failed |= outbuf_append(out, words[i].bytes, words[i].len);
        failed |= outbuf_append(out, "\r\n", 2);
    }
    return failed;
}

/* Whether a word is this command name, in any case (the server reads names so). */
static bool is_command(const struct resp_arg *word, const char *name)
{
    return word->len == strlen(name) && strncasecmp(word->bytes, name, word->len) == 0;
}

/* Whether the words are a command that ends the session: QUIT or "exit". */
static bool is_goodbye(const struct resp_arg *words, int n)
{
    return n == 1 && (is_command(&words[0], "quit") || is_command(&words[0], "exit"));
}

/*
 * How many replies the server owes for a command: none for "exit", one
 * confirmation a channel for SUBSCRIBE and UNSUBSCRIBE (at least one for
 * UNSUBSCRIBE from all), one for anything else. The messages of channels
 * come on top, so this tells a server that closed early only roughly.
 */
static long replies_owed(const struct resp_arg *words, int n)
{
    if (is_command(&words[0], "exit"))
        return 0;
    if (is_command(&words[0], "subscribe") || is_command(&words[0], "unsubscribe"))
        return n > 1 ? n - 1 : 1;
    return 1;
}

/* --- the link: plaintext, or TLS ------------------------------------------------------------------ */

/* Sends all of out on a blocking socket, however long it takes. Returns 0, or -1 when the connection broke.
 */
static int send_out(socket_t sock, const struct outbuf *out)
{
    struct send_limit no_limit = {.stall_ms = -1};
    return outbuf_pending(out) == 0 ? 0
                                    : net_send_all(sock, outbuf_data(out), outbuf_pending(out), &no_limit);
}

/* Takes what the TLS object has to send into out (under the lock). Returns 0, or -1 when out of memory. */
static int take_records(struct link *link, struct outbuf *out)
{
    size_t len;
    const char *records = tls_output(link->tls, &len);
    if (records == NULL)
        return 0;
    int result = outbuf_append(out, records, len);
    tls_sent(link->tls, len);
    return result;
}

/* Sends len bytes to the server: encrypted first with --tls. Returns 0, or -1 when the connection broke. */
static int link_send(struct link *link, const char *bytes, size_t len)
{
    if (link->tls == NULL) {
        struct send_limit no_limit = {.stall_ms = -1};
        return net_send_all(link->sock, bytes, len, &no_limit);
    }
    struct outbuf records = OUTBUF_EMPTY;
    mutex_lock(&link->lock);
    int result = tls_write(link->tls, bytes, len) < 0 || take_records(link, &records) != 0 ? -1 : 0;
    mutex_unlock(&link->lock);
    if (result == 0)
        result = send_out(link->sock, &records);
    outbuf_release(&records);
    return result;
}

/*
 * Receives up to cap bytes from the server: with --tls, the plaintext of
 * its records, reading the socket until a record is whole. Returns how
 * many, 0 when it ended the stream, or -1 when it broke (with TLS, say
 * why on stderr). Only the main thread receives: a record that asks for
 * an answer (none does from this course's server) has it sent with the
 * next command.
 */
static long link_recv(struct link *link, char *buf, size_t cap)
{
    if (link->tls == NULL)
        return net_recv(link->sock, buf, cap);
    long got = 0;
    bool ended = false;
    for (;;) {
        mutex_lock(&link->lock);
        got = tls_read(link->tls, buf, cap);
        ended = tls_peer_closed(link->tls);
        mutex_unlock(&link->lock);
        if (got != 0 || ended)
            break; /* plaintext, its close_notify, or a broken stream */
        char records[16384];
        long n = net_recv(link->sock, records, sizeof records);
        if (n <= 0)
            return n; /* the stream ended (without a close_notify), or broke */
        mutex_lock(&link->lock);
        got = tls_feed(link->tls, records, (size_t)n);
        mutex_unlock(&link->lock);
        if (got != 0)
            break;
    }
    if (got < 0)
        fprintf(stderr, "client: %s\n", tls_error(link->tls));
    return got;
}

/* Ends the stream towards the server: with TLS, a close_notify first, so the server knows it was not cut. */
static void link_goodbye(struct link *link)
{
    if (link->tls != NULL) {
        struct outbuf records = OUTBUF_EMPTY;
        mutex_lock(&link->lock);
        tls_close(link->tls);
        int taken = take_records(link, &records);
        mutex_unlock(&link->lock);
        if (taken == 0)
            send_out(link->sock, &records);
        outbuf_release(&records);
    }
    sock_stop_sending(link->sock);
}

/*
 * The TLS handshake, before either thread starts: hello, then as many
 * rounds as it takes. Returns 0, or -1 with the reason in err (a
 * certificate that does not verify, or names another host).
 */
static int handshake(struct link *link, char *err, size_t err_len)
{
    struct outbuf records = OUTBUF_EMPTY;
    int result = tls_feed(link->tls, NULL, 0); /* the client speaks first */
    while (result == 0 && !tls_handshake_done(link->tls)) {
        outbuf_consume(&records, outbuf_pending(&records));
        if (take_records(link, &records) != 0 || send_out(link->sock, &records) != 0) {
            result = -1;
            snprintf(err, err_len, "the connection broke during the TLS handshake");
            break;
        }
        char bytes[16384];
        long got = net_recv(link->sock, bytes, sizeof bytes);
        if (got <= 0) {
            result = -1;
            snprintf(err, err_len, "the server closed the connection during the TLS handshake");
            break;
        }
        result = tls_feed(link->tls, bytes, (size_t)got);
    }
    if (result != 0 && tls_error(link->tls)[0] != '\0')
        snprintf(err, err_len, "%s", tls_error(link->tls));
    /* Its last flight (a TLS 1.2 client's Finished) goes out with the first command, or now. */
    outbuf_consume(&records, outbuf_pending(&records));
    if (result == 0)
        result = take_records(link, &records) != 0 ? -1 : send_out(link->sock, &records);
    outbuf_release(&records);
    return result;
}

/*
 * The keyboard thread's last act, once it has sent all it will and said
 * so (input_done): it ends only when main says it will join it. A thread
 * that ends while the process exits races with exit()'s own clean-up
 * (under AddressSanitizer, glibc's _dl_fini() crashed), so when the
 * server went first and main leaves without joining, this thread waits
 * here, or in its read, until the process is gone.
 */
static void keyboard_done(struct talk *talk)
{
    mutex_lock(&talk->lock);
    while (!talk->may_end)
        cond_wait(&talk->changed, &talk->lock, -1);
    mutex_unlock(&talk->lock);
}

/*
 * The keyboard thread: sends each line of stdin as a command as it comes,
 * until QUIT, "exit" or the end of the input, then ends the stream towards
 * the server. A failed send ends it too: the main thread will hear why
 * from the server's side.
 */
static void send_typed_commands(void *arg)
{
    struct talk *talk = arg;
    static struct typed in; /* 64 KiB: too big for a thread's stack on some systems */
    static char line[TYPED_MAX];
    static struct resp_arg words[WORDS_MAX];
    struct outbuf request = OUTBUF_EMPTY;
    for (;;) {
        long len = next_line(&in, line, sizeof line);
        if (len == -1)
            break;
        int n = len < 0 ? -1 : split_words(line, (size_t)len, words, WORDS_MAX);
        if (n < 0) {
            fprintf(stderr, "client: %s\n",
                    len == -2 ? "line too long" : "unbalanced quotes or too many words");
            continue;
        }
        if (n == 0)
            continue;
        bool leaving = is_goodbye(words, n);
        if (leaving)
            atomic_store(&talk->input_done, true); /* before the server can answer by closing */
        atomic_fetch_add(&talk->replies_owed, replies_owed(words, n));
        outbuf_consume(&request, outbuf_pending(&request));
        if (encode(&request, words, n) != 0 ||
            link_send(&talk->server, outbuf_data(&request), outbuf_pending(&request)) != 0 || leaving)
            break;
    }
    outbuf_release(&request);
    atomic_store(&talk->input_done, true); /* before the server can see the end, and close */
    link_goodbye(&talk->server);           /* the server answers what it has, then closes: main sees it */
    keyboard_done(talk);
}

/* Prints the prompt when the user may type: interactive, and input still to come. */
static void prompt(struct talk *talk)
{
    if (!talk->interactive || atomic_load(&talk->input_done))
        return;
    fputs("> ", stdout);
    talk->prompt_showing = true;
}

/* Whether a bulk string is lines of text (INFO, CLIENT LIST): printable, and ending with a line end. */
static bool is_text_lines(const char *bytes, size_t len)
{
    if (len == 0 || bytes[len - 1] != '\n')
        return false;
    for (size_t i = 0; i < len; i++)
        if ((bytes[i] < 32 || bytes[i] > 126) && bytes[i] != '\r' && bytes[i] != '\n')
            return false;
    return true;
}

/*
 * Prints a bulk string as redis-cli does: in quotes, with unprintable
 * bytes escaped; but lines of text as they are (redis-cli does so for INFO
 * and CLIENT LIST).
 */
static void print_bulk(const char *bytes, size_t len)
{
    if (is_text_lines(bytes, len)) {
        for (size_t i = 0; i < len; i++)
            if (bytes[i] != '\r')
                putchar(bytes[i]);
        return;
    }
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c < 32 || c > 126)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
    putchar('\n');
}

/* Where printing is in a reply: the column at which each open array's numbers start. */
struct printer {
    struct resp_reader reader;
    int column[RESP_REPLY_DEPTH_MAX + 1];
};

/*
 * Prints one element of a reply as redis-cli does: an array's elements
 * numbered "1) ", "2) ", the first on the line of the array's own number,
 * the others under it. An array prints nothing but its elements.
 */
static void print_element(struct printer *printer, const struct resp_element *e)
{
    int width = 0;
    if (e->depth > 0) {
        if (e->index > 1)
            printf("%*s", printer->column[e->depth], "");
        width = printf("%lld) ", e->index);
    }
    switch (e->type) {
    case '+':
    case '-':
        fputs(e->type == '-' ? "(error) " : "", stdout);
        fwrite(e->bytes, 1, e->len, stdout); /* fwrite(): a NUL in it is printed too */
        putchar('\n');
        break;
    case ':':
        printf("(integer) %lld\n", e->n);
        break;
    case '$':
        if (e->n < 0)
            puts("(nil)");
        else
            print_bulk(e->bytes, e->len);
        break;
    default: /* '*' */
        if (e->n > 0)
            printer->column[e->depth + 1] = printer->column[e->depth] + width; /* its elements follow */
        else
            puts(e->n == 0 ? "(empty array)" : "(nil)");
        break;
    }
}

/*
 * The main thread: prints each reply of the server as it arrives, element
 * by element, until it closes the connection. Returns the exit status:
 * EXIT_OK when the server closed after answering every command of an input
 * that had ended, EXIT_RUNTIME when it went away before that, or broke the
 * protocol.
 */
static int print_until_closed(struct talk *talk)
{
    struct outbuf received = OUTBUF_EMPTY;
    struct printer printer = {.reader = {0}};
    long replies = 0;
    enum resp_read r = RESP_MORE;
    char bytes[16384];
    for (;;) {
        long got = link_recv(&talk->server, bytes, sizeof bytes);
        if (got <= 0)
            break; /* 0: the server closed the connection; -1: it broke */
        if (outbuf_append(&received, bytes, (size_t)got) != 0)
            break;
        struct resp_element element;
        size_t used;
        while ((r = resp_read_element(&printer.reader, outbuf_data(&received), outbuf_pending(&received),
                                      &element, &used)) == RESP_ELEMENT) {
            if (talk->prompt_showing && element.depth == 0)
                fputs("\r", stdout); /* over the prompt: it comes back after the reply */
            talk->prompt_showing = false;
            print_element(&printer, &element);
            outbuf_consume(&received, used);
            if (resp_reply_done(&printer.reader)) {
                replies++;
                prompt(talk);
            }
        }
        fflush(stdout);
        if (r == RESP_NOT_RESP || outbuf_pending(&received) > REPLY_MAX)
            break;
    }
    outbuf_release(&received);
    if (talk->prompt_showing)
        fputs("\n", stdout); /* after a prompt (Ctrl+D): the shell's prompt gets a line of its own */
    fflush(stdout);
    if (r == RESP_NOT_RESP) {
        fprintf(stderr, "client: the server's reply is not RESP\n");
        return EXIT_RUNTIME;
    }
    if (atomic_load(&talk->input_done) && replies >= atomic_load(&talk->replies_owed))
        return EXIT_OK;
    fprintf(stderr, "client: the server closed the connection\n");
    return EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
    program_name = "client";
    bool use_tls = false;
    struct tls_options tls = {.verify_peer = true};
    const struct flag_option flags[] = {{"--tls", &use_tls}};
    const struct text_option texts[] = {{"--tls-ca-cert-file", &tls.ca_file},
                                        {"--tls-cert-file", &tls.cert_file},
                                        {"--tls-key-file", &tls.key_file}};
    const struct extra_options extra = {.texts = texts, .text_count = 3, .flags = flags, .flag_count = 1};
    struct options opts;
    char err[256];
    if (parse_options(argc, argv, &opts, &extra, err, sizeof err) != PARSE_OK)
        usage_error(usage_text, "%s", err);
    if ((tls.cert_file == NULL) != (tls.key_file == NULL))
        usage_error(usage_text, "--tls-cert-file and --tls-key-file go together");
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
    static struct talk talk;
    talk.server = (struct link){.sock = server};
    mutex_init(&talk.server.lock);
    if (use_tls) {
        /* The server's certificate must verify and name the host we asked for, or we say no more to it. */
        struct tls_context *context = tls_context_client(&tls, err, sizeof err);
        if (context == NULL)
            die("cannot use TLS: %s", err);
        talk.server.tls = tls_connect(context, opts.host, err, sizeof err);
        tls_context_free(context); /* the connection holds a reference of its own */
        if (talk.server.tls == NULL || handshake(&talk.server, err, sizeof err) != 0)
            die("cannot connect to %s:%s: %s", opts.host, opts.port, err);
    }
    talk.interactive = stdin_is_terminal();
    atomic_init(&talk.input_done, false);
    mutex_init(&talk.lock);
    cond_init(&talk.changed);
    atomic_init(&talk.replies_owed, 0);
    prompt(&talk);
    fflush(stdout);
    thread_t keyboard;
    if (thread_start(&keyboard, send_typed_commands, &talk) != 0)
        die("cannot start the thread that reads the keyboard");
    int status = print_until_closed(&talk);
    /*
     * If the input had ended, the keyboard thread waits in keyboard_done():
     * let it end, join it, and clean up. If the server went first, the
     * thread may wait for a line for ever, and may yet send on the socket:
     * it is left where it is, the socket open (closing a socket another
     * thread uses is docs/classic-mistakes.md #9), and ending the program
     * ends both.
     */
    mutex_lock(&talk.lock);
    talk.may_end = atomic_load(&talk.input_done);
    cond_broadcast(&talk.changed);
    mutex_unlock(&talk.lock);
    if (talk.may_end) {
        thread_join(keyboard);
        tls_free(talk.server.tls);
        sock_close(server);
        net_cleanup();
    }
    return status;
}
