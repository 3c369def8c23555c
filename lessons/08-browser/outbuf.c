/*
 * outbuf.c - see outbuf.h.
 */
#include "outbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The first allocation: most replies of a wake-up fit in it. */
#define OUTBUF_FIRST_CAP 4096

/* Makes room for len more bytes after what is held. Returns 0, or -1 when there is no memory for them. */
static int make_room(struct outbuf *out, size_t len)
{
    if (len > SIZE_MAX / 2 - out->len)
        return -1; /* more than any buffer can hold: doubling would wrap */
    if (out->start + out->len + len <= out->cap)
        return 0;
    if (out->start > 0) { /* slide what waits to the front before asking for more */
        memmove(out->bytes, out->bytes + out->start, out->len);
        out->start = 0;
    }
    size_t cap = out->cap > 0 ? out->cap : OUTBUF_FIRST_CAP;
    while (cap < out->len + len)
        cap *= 2;
    if (cap > out->cap) {
        char *bigger = realloc(out->bytes, cap);
        if (bigger == NULL)
            return -1;
        out->bytes = bigger;
        out->cap = cap;
    }
    return 0;
}

int outbuf_append(struct outbuf *out, const void *bytes, size_t len)
{
    if (out->failed)
        return -1;
    if (make_room(out, len) != 0) {
        out->failed = true;
        return -1;
    }
    memcpy(out->bytes + out->start + out->len, bytes, len);
    out->len += len;
    return 0;
}

bool outbuf_failed(const struct outbuf *out)
{
    return out->failed;
}

const char *outbuf_data(const struct outbuf *out)
{
    return out->len > 0 ? out->bytes + out->start : NULL;
}

size_t outbuf_pending(const struct outbuf *out)
{
    return out->len;
}

void outbuf_consume(struct outbuf *out, size_t count)
{
    out->start += count;
    out->len -= count;
    if (out->len > 0)
        return;
    out->start = 0;
    /*
     * All sent. A burst's big buffer gives its memory back; the first
     * allocation stays for the next replies: freeing it after every
     * request made malloc() move the heap's end (brk()) and fault fresh
     * pages in twice per request, which halved lesson 04's throughput.
     */
    if (out->cap > OUTBUF_FIRST_CAP) {
        free(out->bytes);
        out->bytes = NULL;
        out->cap = 0;
    }
}

void outbuf_release(struct outbuf *out)
{
    free(out->bytes);
    *out = (struct outbuf)OUTBUF_EMPTY;
}
