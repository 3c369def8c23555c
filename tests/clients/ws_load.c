/*
 * ws_load.c - WebSocket round trips per second, for scripts/bench (the part "web"): lesson 08's /ws and a
 * Node `ws` echo server (tests/clients/ws_echo_server.js) are driven by this one program, the same way.
 *
 * It opens C connections to HOST:PORT and upgrades each (GET PATH, RFC 6455). Then each connection sends one
 * message (a masked binary frame, or text with --text), waits until the whole expected reply has come back
 * (any number of server frames; their payload bytes are compared with --expect), and sends the next: one
 * message in flight per connection, so this measures round trips, not pipelining. Round trips finished during
 * the first --warmup seconds are not counted; those finished in the next --seconds are, with their latency.
 * Then it stops, whatever is in flight.
 *
 * One thread and epoll, as tools/loadgen: the client should cost no more per round trip than a server.
 *
 * Output: one line for people and one "RESULT key=value ..." line for scripts (round_trips_per_sec, p50_us,
 * p99_us, errors, ...). Exit status 0 when no connection failed, 1 otherwise, 2 for bad arguments.
 *
 *   cc -O2 -o build/ws_load tests/clients/ws_load.c
 *   build/ws_load --port 8080 --connections 100 --message 'PING\r\n' --expect '+PONG\r\n'  (lesson 08)
 *   build/ws_load --port 8081 --connections 100 --message 'PING\r\n'                       (an echo server)
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: ws_load [--host ADDR] --port PORT [--path PATH] [--connections C] [--message TEXT]\n"
    "               [--expect TEXT] [--text] [--warmup SECONDS] [--seconds SECONDS] [--timeout SECONDS]\n"
    "  --host ADDR       an IPv4 address (default 127.0.0.1)\n"
    "  --path PATH       the WebSocket's path (default /ws)\n"
    "  --connections C   connections, each with one message in flight (default 1)\n"
    "  --message TEXT    each message's payload; \\r \\n \\\\ are escapes (default \"PING\\r\\n\")\n"
    "  --expect TEXT     the whole reply's payload, in one frame or several (default: the message, echoed)\n"
    "  --text            send text frames (default binary)\n"
    "  --warmup SECONDS  round trips not counted, first (default 1)\n"
    "  --seconds SECONDS round trips counted, then (default 2)\n"
    "  --timeout SECONDS for connecting and upgrading each connection (default 10)\n";

/* The key of RFC 6455's example, and the accept it must get: no SHA-1 needed to check the upgrade. */
#define KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define MAX_PAYLOAD 65535

struct conn {
    int fd;
    int64_t sent_at_us;     /* when the message in flight left */
    size_t got;             /* bytes of the expected reply received so far */
    int waiting;            /* a message is in flight */
    unsigned char head[14]; /* a server frame's header, as it comes */
    int head_have;
    uint64_t payload_left; /* of the current server frame, after its header */
    int opcode;            /* of the current server frame */
};

struct stats {
    long connections, errors, counted, warm, stalled;
    size_t latencies_len, latencies_cap;
    uint32_t *latencies_us;
    double connect_ms;
};

static unsigned char message[MAX_PAYLOAD], expect[MAX_PAYLOAD];
static size_t message_len, expect_len;
static int opcode_out = 2;
static uint64_t rng = 0x9e3779b97f4a7c15u;

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static _Noreturn void usage_error(const char *why, const char *value)
{
    fprintf(stderr, "ws_load: %s '%s'\n%s", why, value, usage_text);
    exit(2);
}

static double parse_number(const char *text, double min, double max)
{
    char *end = NULL;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || !(value >= min && value <= max))
        usage_error("invalid number", text);
    return value;
}

/* TEXT with \r, \n and \\ turned into their bytes. */
static size_t unescape(const char *text, unsigned char *out)
{
    size_t len = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (len == MAX_PAYLOAD)
            usage_error("too long (at most 65535 bytes)", text);
        if (*p == '\\' && (p[1] == 'r' || p[1] == 'n' || p[1] == '\\')) {
            p++;
            out[len++] = *p == 'r' ? '\r' : *p == 'n' ? '\n' : '\\';
        } else {
            out[len++] = (unsigned char)*p;
        }
    }
    return len;
}

static void raise_file_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

/* A blocking connect and upgrade, both bounded by timeout_s; returns the socket, non-blocking, or -1. */
static int open_websocket(const struct sockaddr_in *address, const char *host, int port, const char *path,
                          int timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval limit = {.tv_sec = timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    if (connect(fd, (const struct sockaddr *)address, sizeof *address) != 0)
        goto fail;
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    char request[1024];
    int len = snprintf(request, sizeof request,
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                       path, host, port);
    if (len <= 0 || (size_t)len >= sizeof request || send(fd, request, (size_t)len, MSG_NOSIGNAL) != len)
        goto fail;
    /* The response ends with a blank line, and the server says nothing more before the first message: reading
     * up to that line reads nothing of what follows. */
    char response[4096];
    size_t have = 0;
    for (;;) {
        ssize_t got = recv(fd, response + have, sizeof response - 1 - have, 0);
        if (got <= 0)
            goto fail;
        have += (size_t)got;
        response[have] = '\0';
        if (strstr(response, "\r\n\r\n") != NULL)
            break;
        if (have == sizeof response - 1)
            goto fail;
    }
    if (strncmp(response, "HTTP/1.1 101", 12) != 0 || strstr(response, ACCEPT) == NULL) {
        fprintf(stderr, "ws_load: the upgrade was refused: %.*s\n", (int)strcspn(response, "\r\n"), response);
        goto fail;
    }
    struct timeval forever = {0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &forever, sizeof forever);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof forever);
    return fd;
fail:
    close(fd);
    return -1;
}

/* One masked frame holding the message, with a fresh mask (RFC 6455 asks for an unpredictable one; a
 * xorshift is enough for servers that only unmask). */
static int send_message(struct conn *c)
{
    unsigned char frame[MAX_PAYLOAD + 8];
    size_t at = 0;
    frame[at++] = (unsigned char)(0x80 | opcode_out);
    if (message_len < 126) {
        frame[at++] = (unsigned char)(0x80 | message_len);
    } else {
        frame[at++] = 0x80 | 126;
        frame[at++] = (unsigned char)(message_len >> 8);
        frame[at++] = (unsigned char)message_len;
    }
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    unsigned char *mask = frame + at;
    memcpy(mask, &rng, 4);
    at += 4;
    for (size_t i = 0; i < message_len; i++)
        frame[at + i] = message[i] ^ mask[i & 3];
    at += message_len;
    c->sent_at_us = now_us();
    c->got = 0;
    c->waiting = 1;
    return send(c->fd, frame, at, MSG_NOSIGNAL) == (ssize_t)at ? 0 : -1;
}

/*
 * What one read brought, through the frames' headers and payloads: returns 1 when the reply is whole, 0 when
 * more is due, -1 when the server broke step (a masked frame, a close, more or other bytes than expected).
 */
static int take(struct conn *c, const unsigned char *bytes, size_t len)
{
    size_t at = 0;
    while (at < len) {
        if (c->payload_left == 0 && c->head_have < 14) {
            c->head[c->head_have++] = bytes[at++];
            if (c->head_have < 2)
                continue;
            if (c->head[1] & 0x80)
                return -1; /* a server's frames are never masked */
            unsigned len7 = c->head[1] & 0x7f;
            int need = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
            if (c->head_have < need)
                continue;
            uint64_t size = len7;
            if (len7 == 126)
                size = (uint64_t)c->head[2] << 8 | c->head[3];
            else if (len7 == 127)
                for (int i = 2; i < 10; i++)
                    size = size << 8 | c->head[i];
            c->opcode = c->head[0] & 0x0f;
            c->head_have = 0;
            if (c->opcode == 8)
                return -1; /* the server closed */
            c->payload_left = size;
            if (size > 0)
                c->head_have = 14; /* in a payload now */
            continue;
        }
        size_t n = len - at < c->payload_left ? len - at : (size_t)c->payload_left;
        if (c->opcode <= 2) { /* continuation, text or binary: part of the reply */
            if (!c->waiting || n > expect_len - c->got || memcmp(bytes + at, expect + c->got, n) != 0)
                return -1;
            c->got += n;
        } /* else a ping or a pong: skipped (neither server sends one unasked) */
        at += n;
        c->payload_left -= n;
        if (c->payload_left == 0)
            c->head_have = 0;
    }
    return c->waiting && c->got == expect_len && c->payload_left == 0 ? 1 : 0;
}

static void record(struct stats *stats, uint32_t latency_us)
{
    if (stats->latencies_len == stats->latencies_cap) {
        size_t cap = stats->latencies_cap ? stats->latencies_cap * 2 : 65536;
        uint32_t *grown = realloc(stats->latencies_us, cap * sizeof *grown);
        if (grown == NULL)
            return; /* counted all the same, without its latency */
        stats->latencies_us = grown;
        stats->latencies_cap = cap;
    }
    stats->latencies_us[stats->latencies_len++] = latency_us;
}

static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static uint32_t percentile(const uint32_t *sorted, size_t count, double p)
{
    return count == 0 ? 0 : sorted[(size_t)(p * (double)(count - 1) + 0.5)];
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *path = "/ws", *expect_text = NULL;
    int port = 0;
    long count = 1;
    double warmup_s = 1, seconds = 2, timeout_s = 10;
    message_len = unescape("PING\\r\\n", message);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(arg, "--text") == 0) {
            opcode_out = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage_error("missing value or unknown argument", arg);
        const char *value = argv[++i];
        if (strcmp(arg, "--host") == 0)
            host = value;
        else if (strcmp(arg, "--port") == 0)
            port = (int)parse_number(value, 1, 65535);
        else if (strcmp(arg, "--path") == 0)
            path = value;
        else if (strcmp(arg, "--connections") == 0)
            count = (long)parse_number(value, 1, 100000);
        else if (strcmp(arg, "--message") == 0)
            message_len = unescape(value, message);
        else if (strcmp(arg, "--expect") == 0)
            expect_text = value;
        else if (strcmp(arg, "--warmup") == 0)
            warmup_s = parse_number(value, 0, 3600);
        else if (strcmp(arg, "--seconds") == 0)
            seconds = parse_number(value, 0.01, 3600);
        else if (strcmp(arg, "--timeout") == 0)
            timeout_s = parse_number(value, 1, 3600);
        else
            usage_error("unknown argument", arg);
    }
    if (port == 0)
        usage_error("no --port", "");
    if (message_len == 0)
        usage_error("an empty --message", "");
    if (expect_text != NULL) {
        expect_len = unescape(expect_text, expect);
    } else {
        memcpy(expect, message, message_len);
        expect_len = message_len;
    }
    if (expect_len == 0)
        usage_error("an empty --expect", "");
    raise_file_limit();

    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1)
        usage_error("not an IPv4 address", host);

    struct conn *conns = calloc((size_t)count, sizeof *conns);
    struct stats stats = {0};
    if (conns == NULL) {
        fputs("ws_load: out of memory\n", stderr);
        return 1;
    }
    int64_t began = now_us();
    long opened = 0;
    for (long i = 0; i < count; i++) {
        int fd = open_websocket(&address, host, port, path, (int)timeout_s);
        if (fd < 0)
            stats.errors++;
        else
            conns[opened++].fd = fd;
    }
    stats.connections = opened;
    stats.connect_ms = (double)(now_us() - began) / 1000.0;

    int epoll_fd = epoll_create1(0);
    if (epoll_fd < 0) {
        perror("ws_load: epoll_create1");
        return 1;
    }
    long active = 0;
    for (long i = 0; i < opened; i++) {
        struct epoll_event watch = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, conns[i].fd, &watch) != 0 || send_message(&conns[i]) != 0) {
            stats.errors++;
            continue;
        }
        active++;
    }

    int64_t start = now_us();
    int64_t counting = start + (int64_t)(warmup_s * 1e6), end = counting + (int64_t)(seconds * 1e6);
    unsigned char buf[65536];
    struct epoll_event ready[256];
    for (int64_t now = start; active > 0 && now < end; now = now_us()) {
        int wait_ms = (int)((end - now + 999) / 1000);
        int n = epoll_wait(epoll_fd, ready, (int)(sizeof ready / sizeof ready[0]), wait_ms);
        if (n < 0 && errno != EINTR)
            break;
        for (int k = 0; k < n; k++) {
            struct conn *c = &conns[ready[k].data.u64];
            ssize_t got = recv(c->fd, buf, sizeof buf, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            int whole = got > 0 ? take(c, buf, (size_t)got) : -1;
            if (whole < 0) {
                stats.errors++; /* the server closed, reset, or answered out of step */
                epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
                c->waiting = 0;
                active--;
                continue;
            }
            if (whole == 0)
                continue;
            int64_t done = now_us();
            c->waiting = 0;
            if (done >= counting && done < end) {
                stats.counted++;
                record(&stats, (uint32_t)(done - c->sent_at_us));
            } else if (done < counting) {
                stats.warm++;
            }
            if (done < end && send_message(c) != 0) {
                stats.errors++;
                epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
                active--;
            }
        }
    }
    int64_t stopped = now_us();
    /* A message in flight for over a second at the end: a reply the server lost (not an error of the run's
     * count, which stopped anyway, but worth a look). */
    for (long i = 0; i < opened; i++)
        if (conns[i].waiting && stopped - conns[i].sent_at_us > 1000000)
            stats.stalled++;
    for (long i = 0; i < opened; i++)
        close(conns[i].fd);
    close(epoll_fd);

    double measured = (double)(end - counting) / 1e6;
    double rate = (double)stats.counted / measured;
    qsort(stats.latencies_us, stats.latencies_len, sizeof *stats.latencies_us, by_value);
    uint32_t p50 = percentile(stats.latencies_us, stats.latencies_len, 0.50);
    uint32_t p99 = percentile(stats.latencies_us, stats.latencies_len, 0.99);
    uint32_t max = stats.latencies_len ? stats.latencies_us[stats.latencies_len - 1] : 0;
    printf("%ld connections upgraded in %.1f ms, %ld errors, %ld stalled; %ld round trips in %.2f s "
           "after %ld in %.2f s of warm-up: %.0f round trips/s; latency p50 %u us, p99 %u us, max %u us\n",
           stats.connections, stats.connect_ms, stats.errors, stats.stalled, stats.counted, measured,
           stats.warm, warmup_s, rate, p50, p99, max);
    printf("RESULT connections=%ld errors=%ld stalled=%ld connect_ms=%.1f round_trips=%ld seconds=%.3f "
           "round_trips_per_sec=%.0f p50_us=%u p99_us=%u max_us=%u\n",
           stats.connections, stats.errors, stats.stalled, stats.connect_ms, stats.counted, measured, rate,
           p50, p99, max);
    free(stats.latencies_us);
    free(conns);
    return stats.errors == 0 ? 0 : 1;
}
