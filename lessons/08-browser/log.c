/*
 * log.c - see log.h. The queue is a ring of bytes: log_event() appends
 * whole lines at its tail under the lock, the writer takes bytes from its
 * head, and writes them with the lock given back, so that only the writer
 * ever waits on stderr.
 */
#include "log.h"

#include "platform.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* The longest log line; a longer one is cut, never overflowed. */
#define LOG_LINE_MAX 512

/* How many bytes of lines may wait for stderr: some 1000 lines. */
#define LOG_QUEUE_BYTES 65536

static struct {
    mutex_t lock;
    cond_t changed; /* lines queued, the queue emptied, the writer stopped */
    char ring[LOG_QUEUE_BYTES];
    size_t head;           /* the first byte not yet written */
    size_t len;            /* bytes queued from head on, wrapping around */
    unsigned long dropped; /* lines that found the queue full, not reported yet */
    bool stopping;         /* log_stop() was called: write what is left, then end */
    bool writer_done;      /* the writer has ended */
    thread_t writer;
} queue;

static void log_vformat(char *buf, size_t len, const char *when, const char *who, const char *format,
                        va_list args)
{
    int prefix = snprintf(buf, len, "%s %s ", when, who);
    if (prefix < 0 || (size_t)prefix >= len)
        return;
    vsnprintf(buf + prefix, len - (size_t)prefix, format, args);
}

void log_format(char *buf, size_t len, const char *when, const char *who, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    log_vformat(buf, len, when, who, format, args);
    va_end(args);
}

/* Appends len bytes at the ring's tail; the caller holds the lock and has checked that they fit. */
static void ring_put(const char *bytes, size_t len)
{
    size_t tail = (queue.head + queue.len) % LOG_QUEUE_BYTES;
    size_t first = len < LOG_QUEUE_BYTES - tail ? len : LOG_QUEUE_BYTES - tail;
    memcpy(queue.ring + tail, bytes, first);
    memcpy(queue.ring, bytes + first, len - first); /* the part that wraps around, if any */
    queue.len += len;
}

/* Takes up to cap bytes from the ring's head (no further than its end); the caller holds the lock. */
static size_t ring_take(char *out, size_t cap)
{
    size_t take = queue.len < cap ? queue.len : cap;
    if (take > LOG_QUEUE_BYTES - queue.head)
        take = LOG_QUEUE_BYTES - queue.head;
    memcpy(out, queue.ring + queue.head, take);
    queue.head = (queue.head + take) % LOG_QUEUE_BYTES;
    queue.len -= take;
    return take;
}

/* Formats "time who message\n" into line; returns its length. */
static size_t format_line(char *line, const char *who, const char *format, va_list args)
{
    char when[32];
    format_local_time(when, sizeof when);
    log_vformat(line, LOG_LINE_MAX - 1, when, who, format, args);
    size_t len = strlen(line);
    line[len++] = '\n';
    return len;
}

/* format_line() with the arguments given directly. */
static size_t format_event(char *line, const char *who, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    size_t len = format_line(line, who, format, args);
    va_end(args);
    return len;
}

/* The writer thread: writes the queue to stderr as it fills, until log_stop() and an empty queue. */
static void write_queue(void *unused)
{
    (void)unused;
    char chunk[4096];
    mutex_lock(&queue.lock);
    for (;;) {
        while (queue.len == 0 && queue.dropped == 0 && !queue.stopping)
            cond_wait(&queue.changed, &queue.lock, -1);
        if (queue.len == 0 && queue.dropped == 0)
            break; /* stopping, and everything is written */
        size_t len = ring_take(chunk, sizeof chunk);
        /* The lines were dropped after those queued before them: report them once those are out. */
        unsigned long dropped = queue.len == 0 ? queue.dropped : 0;
        queue.dropped -= dropped;
        mutex_unlock(&queue.lock);
        stderr_write_all(chunk, len); /* the one place that waits on stderr, with no lock held */
        if (dropped > 0) {
            /* The writer's own line, written at once: a queue that was full may be full again. */
            char note[LOG_LINE_MAX];
            stderr_write_all(note, format_event(note, "server",
                                                "log: %lu lines dropped, stderr did not keep up", dropped));
        }
        mutex_lock(&queue.lock);
        cond_broadcast(&queue.changed);
    }
    queue.writer_done = true;
    cond_broadcast(&queue.changed);
    mutex_unlock(&queue.lock);
}

int log_start(void)
{
    mutex_init(&queue.lock);
    cond_init(&queue.changed);
    return thread_start(&queue.writer, write_queue, NULL);
}

void log_event(const char *who, const char *format, ...)
{
    char line[LOG_LINE_MAX];
    va_list args;
    va_start(args, format);
    size_t len = format_line(line, who, format, args);
    va_end(args);

    mutex_lock(&queue.lock);
    if (queue.len + len <= LOG_QUEUE_BYTES)
        ring_put(line, len);
    else
        queue.dropped++; /* stderr is not keeping up: losing a line beats stopping the server */
    cond_broadcast(&queue.changed);
    mutex_unlock(&queue.lock);
}

int log_stop(int timeout_ms)
{
    long long give_up_at = monotonic_ms() + timeout_ms;
    mutex_lock(&queue.lock);
    queue.stopping = true;
    cond_broadcast(&queue.changed);
    while (!queue.writer_done) {
        long long left = give_up_at - monotonic_ms();
        if (left <= 0)
            break;
        cond_wait(&queue.changed, &queue.lock, (int)left);
    }
    bool done = queue.writer_done;
    mutex_unlock(&queue.lock);
    if (!done)
        return -1; /* the writer still waits on stderr: its lock and thread are left to the process exit */
    thread_join(queue.writer);
    cond_destroy(&queue.changed);
    mutex_destroy(&queue.lock);
    return 0;
}
