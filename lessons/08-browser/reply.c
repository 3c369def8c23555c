/*
 * reply.c - see reply.h. A reply's header is formatted on the stack and
 * appended with its bytes; an append that finds no memory loses the
 * reply, as everywhere in the server (the client then waits for it, and
 * its deadlines close it).
 */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The longest error line: commands.c cuts a client's bytes quoted in one well within it, as Redis does. */
#define ERROR_MAX 512

/* Appends "<type><text>\r\n". */
static void line(struct outbuf *out, char type, const char *text, size_t len)
{
    char buf[ERROR_MAX + 3];
    if (len > ERROR_MAX)
        len = ERROR_MAX;
    buf[0] = type;
    memcpy(buf + 1, text, len);
    memcpy(buf + 1 + len, "\r\n", 2);
    outbuf_append(out, buf, len + 3);
}

void reply_simple(struct outbuf *out, const char *text)
{
    line(out, '+', text, strlen(text));
}

void reply_error(struct outbuf *out, const char *format, ...)
{
    char text[ERROR_MAX + 1];
    va_list ap;
    va_start(ap, format);
    int len = vsnprintf(text, sizeof text, format, ap);
    va_end(ap);
    if (len < 0)
        return;
    size_t kept = (size_t)len < ERROR_MAX ? (size_t)len : ERROR_MAX;
    for (size_t i = 0; i < kept; i++)
        if (text[i] == '\r' || text[i] == '\n')
            text[i] = ' ';
    line(out, '-', text, kept);
}

void reply_integer(struct outbuf *out, long long n)
{
    char text[24];
    int len = snprintf(text, sizeof text, "%lld", n);
    line(out, ':', text, (size_t)len);
}

void reply_bulk(struct outbuf *out, const char *bytes, size_t len)
{
    char header[32];
    int header_len = snprintf(header, sizeof header, "$%zu\r\n", len);
    char small[128]; /* most replies are short: header, bytes and "\r\n" in one append */
    if ((size_t)header_len + len + 2 <= sizeof small) {
        memcpy(small, header, (size_t)header_len);
        memcpy(small + header_len, bytes, len);
        memcpy(small + header_len + len, "\r\n", 2);
        outbuf_append(out, small, (size_t)header_len + len + 2);
        return;
    }
    outbuf_append(out, header, (size_t)header_len);
    outbuf_append(out, bytes, len);
    outbuf_append(out, "\r\n", 2);
}

void reply_bulk_text(struct outbuf *out, const char *text)
{
    reply_bulk(out, text, strlen(text));
}

void reply_null(struct outbuf *out, enum resp_version resp)
{
    if (resp == RESP3)
        outbuf_append(out, "_\r\n", 3);
    else
        outbuf_append(out, "$-1\r\n", 5);
}

/* "<type><count>\r\n", the header of an aggregate. */
static void aggregate(struct outbuf *out, char type, size_t count)
{
    char text[24];
    int len = snprintf(text, sizeof text, "%zu", count);
    line(out, type, text, (size_t)len);
}

void reply_array(struct outbuf *out, size_t count)
{
    aggregate(out, '*', count);
}

void reply_map(struct outbuf *out, enum resp_version resp, size_t pairs)
{
    if (resp == RESP3)
        aggregate(out, '%', pairs);
    else
        aggregate(out, '*', 2 * pairs);
}

void reply_push(struct outbuf *out, enum resp_version resp, size_t count)
{
    aggregate(out, resp == RESP3 ? '>' : '*', count);
}

void reply_verbatim(struct outbuf *out, enum resp_version resp, const char *bytes, size_t len)
{
    if (resp != RESP3) {
        reply_bulk(out, bytes, len);
        return;
    }
    char header[40];
    int header_len = snprintf(header, sizeof header, "=%zu\r\ntxt:", len + 4);
    outbuf_append(out, header, (size_t)header_len);
    outbuf_append(out, bytes, len);
    outbuf_append(out, "\r\n", 2);
}
