/*
 * loadgen.c - a load generator for any line protocol, and a lesson in
 * writing one client that juggles many connections.
 *
 * It opens C connections to HOST:PORT. In the closed-loop mode each
 * connection sends a line, waits for one reply line (whatever its text),
 * records how long that took, and repeats N times. With --pipeline K it
 * sends K lines in one send() instead, waits for all K reply lines, and
 * records how long the whole batch took: a server that answers one line at
 * a time well but holds back the replies to lines that came together shows
 * only then. In the idle mode it only
 * holds C connections open for a while, and counts as errors those the
 * server closed or answered meanwhile. Either way it reports connections,
 * lines sent, replies, errors, connect time, lines per second and latency
 * (p50, p99, max in microseconds) as one line for people and one
 * "RESULT key=value ..." line for scripts.
 *
 * Where the course's servers use a thread per client, this uses one thread
 * and epoll (Linux): each connection is a small state record, and the loop
 * asks the kernel which of them can make progress. It was poll() at first;
 * but poll() hands the kernel the whole list on every call, so at 1000
 * connections the load generator spent more time asking than the server
 * spent answering, and measured itself. epoll keeps the list in the kernel
 * and returns only the ready connections. docs/benchmarks.md has the figures.
 *
 * Run:  make -C tools && tools/loadgen --port 9090 --connections 100 --requests 1000
 *       tools/loadgen --port 6379 --line PING        (a Redis server: +PONG is one line)
 *       tools/loadgen --port 9090 --connections 10 --pipeline 16
 *       tools/loadgen --port 9090 --connections 1000 --idle 5
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <netdb.h>
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
    "usage: loadgen [--host HOST] [--port PORT] [--connections C] [--requests N] [--pipeline K]\n"
    "               [--line TEXT] [--idle SECONDS] [--timeout SECONDS]\n"
    "  --connections C  connections to open (default 1)\n"
    "  --requests N     lines each connection sends (default 1000), rounded up to a multiple of K\n"
    "  --pipeline K     lines per send(), 1 to 1000 (default 1): each connection sends K lines at once,\n"
    "                   then waits for their K reply lines before it sends the next K; latency is per batch\n"
    "  --line TEXT      the line to send, \"\\n\" added (default \"hello\"); any reply line counts, but\n"
    "                   a read with more reply lines than lines in flight is an error\n"
    "  --idle SECONDS   only hold the connections open this long, sending nothing\n"
    "  --timeout SECS   give up on replies, or on a connect or a send, after this long (default 60)\n"
    "exit status: 0 every line answered or every connection held, 1 any error, 2 bad arguments\n";

/* The most lines in one send(): their replies must fit in the socket buffers while the batch is sent. */
#define PIPELINE_MAX 1000

/* What each connection sends at once: `lines` copies of the line, each ending in "\n". */
struct batch {
    const char *bytes;
    size_t len;
    long lines;
};

/* One connection: where it stands in its request/reply loop. */
struct conn {
    int fd;
    long remaining;     /* batches still to send after the one in flight */
    long awaiting;      /* reply lines still due for the batch in flight */
    int64_t sent_at_us; /* when the batch in flight left */
};

struct stats {
    long connections, sent, replies, batches, errors;
    double connect_ms, seconds;
    uint32_t *latencies_us; /* one per batch answered in full */
};

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static _Noreturn void usage_error(const char *message, const char *value)
{
    fprintf(stderr, "loadgen: %s '%s'\n%s", message, value, usage_text);
    exit(2);
}

static long parse_count(const char *text, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || errno != 0 || *end != '\0' || value < min || value > max)
        usage_error("invalid number", text);
    return value;
}

/* As many open files as the hard limit allows: one per connection. */
static void raise_file_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

/*
 * Connects one socket to the first address, from *first on, that takes it ("localhost" may give ::1 first,
 * with the server on 127.0.0.1 only), and moves *first there so that the next connection starts with the
 * address that worked; returns the socket, or -1. Blocking: connecting is not what is measured per line.
 */
static int connect_to(const struct addrinfo **first, int timeout_s)
{
    for (const struct addrinfo *address = *first; address != NULL; address = address->ai_next) {
        int fd = socket(address->ai_family, address->ai_socktype, address->ai_protocol);
        if (fd < 0)
            continue;
        /* Bounds send(): a line longer than the send buffer, to a server that stops reading, would block it
         * for ever. On Linux it bounds connect() too, which a full listen queue can otherwise hold up. */
        struct timeval limit = {.tv_sec = timeout_s};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
        if (connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
            close(fd);
            continue;
        }
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on); /* one small line, one segment, now */
        *first = address;
        return fd;
    }
    return -1;
}

/* Held connections the server closed, reset or spoke on ("ERR server full") while they idled: not held. */
static long count_not_held(const struct conn *conns, long count)
{
    long lost = 0;
    char byte;
    for (long i = 0; i < count; i++) {
        ssize_t got = recv(conns[i].fd, &byte, 1, MSG_DONTWAIT);
        if (!(got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
            lost++; /* only "nothing to read yet" means the connection is still open and quiet */
    }
    return lost;
}

/* Sends a whole batch in one call: lines that leave together, as a pipelining client sends them. */
static int send_batch(struct conn *c, const struct batch *batch)
{
    c->sent_at_us = now_us();
    c->awaiting = batch->lines;
    return send(c->fd, batch->bytes, batch->len, MSG_NOSIGNAL) == (ssize_t)batch->len ? 0 : -1;
}

/* The reply lines that end in these bytes: one '\n' each, wherever the reads cut them. */
static long count_line_ends(const char *bytes, size_t len)
{
    long ends = 0;
    const char *at = bytes, *end = bytes + len;
    while ((at = memchr(at, '\n', (size_t)(end - at))) != NULL) {
        ends++;
        at++; /* past this one: each pass moves on, and at == end finds nothing */
    }
    return ends;
}

/* Stops watching a connection that is finished or broken. */
static void forget(int epoll_fd, struct conn *c, long *active)
{
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    (*active)--;
}

/* The closed loop: every connection has one batch in flight until it has sent them all. */
static void run_requests(struct conn *conns, long count, const struct batch *batch, int timeout_s,
                         struct stats *stats)
{
    int epoll_fd = epoll_create1(0);
    if (epoll_fd < 0) {
        stats->errors += count;
        return;
    }
    long active = 0;
    for (long i = 0; i < count; i++) {
        if (send_batch(&conns[i], batch) != 0) {
            stats->errors++;
            continue;
        }
        stats->sent += batch->lines;
        struct epoll_event watch = {.events = EPOLLIN, .data.u64 = (uint64_t)i}; /* which conn, when ready */
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, conns[i].fd, &watch) != 0) {
            stats->errors++; /* sent, but its reply could never be seen */
            continue;
        }
        active++;
    }

    char buf[4096];
    struct epoll_event ready[256];
    int64_t give_up = now_us() + (int64_t)timeout_s * 1000000;
    while (active > 0 && now_us() < give_up) {
        int n = epoll_wait(epoll_fd, ready, (int)(sizeof ready / sizeof ready[0]), 1000);
        if (n < 0 && errno != EINTR)
            break;
        for (int k = 0; k < n; k++) {
            struct conn *c = &conns[ready[k].data.u64];
            ssize_t got = recv(c->fd, buf, sizeof buf, 0);
            if (got <= 0) {
                stats->errors++; /* the server closed or reset a connection mid-loop */
                forget(epoll_fd, c, &active);
                continue;
            }
            /* A reply is one line, and only one batch is in flight: every '\n' ends one of its replies. Its
             * replies may come in several reads; the next batch leaves only once they have all come. */
            long ends = count_line_ends(buf, (size_t)got);
            if (ends > c->awaiting) {
                /* More reply lines than lines in flight: not a line server, or out of step. Extra lines read
                 * after a batch's last reply would pass as the next batch's: only a read shows this. */
                stats->errors++;
                forget(epoll_fd, c, &active);
                continue;
            }
            stats->replies += ends;
            c->awaiting -= ends;
            if (c->awaiting > 0)
                continue;
            stats->latencies_us[stats->batches++] = (uint32_t)(now_us() - c->sent_at_us);
            if (c->remaining == 0) {
                forget(epoll_fd, c, &active);
            } else if (send_batch(c, batch) == 0) {
                c->remaining--;
                stats->sent += batch->lines;
            } else {
                stats->errors++;
                forget(epoll_fd, c, &active);
            }
        }
    }
    close(epoll_fd);
    stats->errors += active; /* still waiting when time ran out */
}

static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static uint32_t percentile(const uint32_t *sorted, long count, double p)
{
    if (count == 0)
        return 0;
    long index = (long)(p * (double)(count - 1) + 0.5);
    return sorted[index];
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = "9090", *text = "hello";
    long count = 1, requests = 1000, pipeline = 1, idle_s = -1, timeout_s = 60;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (i + 1 >= argc)
            usage_error("missing value or unknown argument", arg);
        const char *value = argv[++i];
        if (strcmp(arg, "--host") == 0)
            host = value;
        else if (strcmp(arg, "--port") == 0) {
            parse_count(value, 1, 65535); /* a port number, though getaddrinfo takes it as text */
            port = value;
        } else if (strcmp(arg, "--line") == 0)
            text = value;
        else if (strcmp(arg, "--connections") == 0)
            count = parse_count(value, 1, 1000000);
        else if (strcmp(arg, "--requests") == 0)
            requests = parse_count(value, 1, 1000000000);
        else if (strcmp(arg, "--pipeline") == 0)
            pipeline = parse_count(value, 1, PIPELINE_MAX);
        else if (strcmp(arg, "--idle") == 0)
            idle_s = parse_count(value, 0, 86400);
        else if (strcmp(arg, "--timeout") == 0)
            timeout_s = parse_count(value, 1, 86400);
        else
            usage_error("unknown argument", arg);
    }
    raise_file_limit();

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *address = NULL;
    int rc = getaddrinfo(host, port, &hints, &address);
    if (rc != 0) {
        fprintf(stderr, "loadgen: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return 1;
    }

    long batches = (requests + pipeline - 1) / pipeline; /* per connection: N rounded up to a multiple of K */
    size_t len = strlen(text) + 1;
    char *lines = malloc(len * (size_t)pipeline + 1);
    struct conn *conns = calloc((size_t)count, sizeof *conns);
    struct stats stats = {0};
    long max_batches = idle_s >= 0 ? 1 : count * batches;
    stats.latencies_us = malloc((size_t)max_batches * sizeof *stats.latencies_us);
    if (lines == NULL || conns == NULL || stats.latencies_us == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    for (long i = 0; i < pipeline; i++)
        snprintf(lines + (size_t)i * len, len + 1, "%s\n", text);
    struct batch batch = {.bytes = lines, .len = len * (size_t)pipeline, .lines = pipeline};

    int64_t start = now_us();
    long opened = 0;
    const struct addrinfo *working = address;
    for (long i = 0; i < count; i++) {
        conns[opened].fd = connect_to(&working, (int)timeout_s);
        conns[opened].remaining = batches - 1;
        if (conns[opened].fd < 0)
            stats.errors++;
        else
            opened++;
    }
    stats.connections = opened;
    stats.connect_ms = (double)(now_us() - start) / 1000.0;

    if (idle_s >= 0) {
        /* Scripts wait for this line before measuring the server. */
        printf("holding %ld connections\n", opened);
        fflush(stdout);
        sleep((unsigned)idle_s); /* holding is the job here: nothing to wait for */
        stats.errors += count_not_held(conns, opened);
    } else {
        start = now_us();
        run_requests(conns, opened, &batch, (int)timeout_s, &stats);
        stats.seconds = (double)(now_us() - start) / 1e6;
    }
    for (long i = 0; i < opened; i++)
        close(conns[i].fd);

    qsort(stats.latencies_us, (size_t)stats.batches, sizeof *stats.latencies_us, by_value);
    uint32_t p50 = percentile(stats.latencies_us, stats.batches, 0.50);
    uint32_t p99 = percentile(stats.latencies_us, stats.batches, 0.99);
    uint32_t max = stats.batches ? stats.latencies_us[stats.batches - 1] : 0;
    double rate = stats.seconds > 0 ? (double)stats.replies / stats.seconds : 0;
    printf("%ld connections, %ld lines sent, %ld replies, %ld errors; connect %.1f ms; %.0f lines/s; "
           "latency per batch of %ld line%s p50 %u us, p99 %u us, max %u us\n",
           stats.connections, stats.sent, stats.replies, stats.errors, stats.connect_ms, rate, pipeline,
           pipeline == 1 ? "" : "s", p50, p99, max);
    /* The latencies are per batch of `pipeline` lines: with pipeline=1, per line. */
    printf("RESULT connections=%ld lines_sent=%ld replies=%ld errors=%ld connect_ms=%.1f lines_per_sec=%.0f "
           "pipeline=%ld batches=%ld p50_us=%u p99_us=%u max_us=%u\n",
           stats.connections, stats.sent, stats.replies, stats.errors, stats.connect_ms, rate, pipeline,
           stats.batches, p50, p99, max);

    freeaddrinfo(address);
    free(lines);
    free(conns);
    free(stats.latencies_us);
    return stats.errors == 0 ? 0 : 1;
}
