/*
 * outbuf.h - bytes waiting to be sent: appended at the end, sent from the
 * front. A non-blocking send() takes what fits in the socket's buffer and
 * says "would block" for the rest; what it did not take waits here until
 * the socket has room again. It holds no memory while it is empty, so an
 * idle connection costs nothing. How much it may hold is its owner's
 * business: the server closes a client that leaves too much unread.
 */
#ifndef OUTBUF_H
#define OUTBUF_H

#include <stddef.h>

struct outbuf {
    char *bytes;  /* from malloc(); NULL while nothing was ever held */
    size_t start; /* the first byte not sent yet */
    size_t len;   /* bytes held from start on */
    size_t cap;   /* bytes allocated */
};

/* An empty buffer. */
#define OUTBUF_EMPTY                                                                                         \
    {                                                                                                        \
        NULL, 0, 0, 0                                                                                        \
    }

/* Appends len bytes. Returns 0, or -1 when out of memory (the buffer is as it was). */
int outbuf_append(struct outbuf *out, const void *bytes, size_t len);

/* The bytes waiting, and how many (outbuf_pending()). */
const char *outbuf_data(const struct outbuf *out);
size_t outbuf_pending(const struct outbuf *out);

/* Forgets the first count bytes: they were sent. */
void outbuf_consume(struct outbuf *out, size_t count);

/* Frees what the buffer holds; it is empty again. */
void outbuf_release(struct outbuf *out);

#endif
