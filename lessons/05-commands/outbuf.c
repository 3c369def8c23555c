/*
 * outbuf.c - see outbuf.h.
 */
#include "outbuf.h"

#include <stdlib.h>
#include <string.h>

int outbuf_append(struct outbuf *out, const void *bytes, size_t len)
{
    if (out->start + out->len + len > out->cap) {
        if (out->start > 0) { /* slide what waits to the front before asking for more */
            memmove(out->bytes, out->bytes + out->start, out->len);
            out->start = 0;
        }
        size_t cap = out->cap > 0 ? out->cap : 4096;
        while (cap < out->len + len)
            cap *= 2;
        if (cap > out->cap) {
            char *bigger = realloc(out->bytes, cap);
            if (bigger == NULL)
                return -1;
            out->bytes = bigger;
            out->cap = cap;
        }
    }
    memcpy(out->bytes + out->start + out->len, bytes, len);
    out->len += len;
    return 0;
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
    if (out->len == 0)
        out->start = 0;
}

void outbuf_release(struct outbuf *out)
{
    free(out->bytes);
    *out = (struct outbuf)OUTBUF_EMPTY;
}
