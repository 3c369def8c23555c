/*
 * outbuf.h - bytes waiting to be sent: appended at the end, sent from the
 * front. A non-blocking send() takes what fits in the socket's buffer and
 * says "would block" for the rest; what it did not take waits here until
 * the socket has room again. It holds no memory until it is first used,
 * then at most its first 4 KiB while it is empty: a burst's memory goes
 * back as soon as the burst is sent. How much it may hold is its owner's
 * business.
 *
 * An append that finds no memory fails the buffer for good (as Go's
 * bufio.Writer keeps its first error): it takes nothing more, so a reply
 * is never sent with a hole in it, and its owner learns of it once, from
 * outbuf_failed(), wherever it looks.
 */
#ifndef OUTBUF_H
#define OUTBUF_H

#include <stdbool.h>
#include <stddef.h>

struct outbuf {
    char *bytes;  /* from malloc(); NULL while nothing is held */
    size_t start; /* the first byte not sent yet */
    size_t len;   /* bytes held from start on */
    size_t cap;   /* bytes allocated */
    bool failed;  /* an append found no memory: what is held is no longer whole */
};

/* An empty buffer. */
#define OUTBUF_EMPTY                                                                                         \
    {                                                                                                        \
        NULL, 0, 0, 0, false                                                                                 \
    }

/* Appends len bytes. Returns 0, or -1 when out of memory or failed before: nothing is appended. */
int outbuf_append(struct outbuf *out, const void *bytes, size_t len);

/* Whether an append has failed: the owner should drop the connection rather than send a broken stream. */
bool outbuf_failed(const struct outbuf *out);

/* The bytes waiting, and how many (outbuf_pending()). */
const char *outbuf_data(const struct outbuf *out);
size_t outbuf_pending(const struct outbuf *out);

/* Forgets the first count bytes: they were sent. Once none is left, a buffer grown past its first 4 KiB gives
 * its memory back. */
void outbuf_consume(struct outbuf *out, size_t count);

/* Frees what the buffer holds; it is empty again, and no longer failed. */
void outbuf_release(struct outbuf *out);

#endif
