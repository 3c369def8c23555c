/*
 * resp.c - RESP2 requests parsed without I/O: see resp.h.
 *
 * Each call starts again at the first byte of the request. An unfinished
 * request is parsed again when more bytes arrive; that costs a few header
 * bytes per argument, never the arguments themselves, and it keeps the
 * parser free of state, so the same bytes always give the same answer.
 */
#include "resp.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Writes "Protocol error: ..." into why and returns RESP_PROTOCOL_ERROR. */
static enum resp_result refuse(char *why, size_t why_len, const char *format, ...)
{
    int used = snprintf(why, why_len, "Protocol error: ");
    va_list ap;
    va_start(ap, format);
    if (used >= 0 && (size_t)used < why_len)
        vsnprintf(why + used, why_len - (size_t)used, format, ap);
    va_end(ap);
    return RESP_PROTOCOL_ERROR;
}

bool resp_integer(const char *digits, size_t len, long long *value)
{
    bool negative = len > 0 && digits[0] == '-';
    size_t i = negative ? 1 : 0;
    if (i == len || (digits[i] == '0' && (len - i > 1 || negative)))
        return false; /* "", "-", "01", "-0" */
    unsigned long long n = 0,
                       limit = negative ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; i < len; i++) {
        if (digits[i] < '0' || digits[i] > '9')
            return false;
        unsigned digit = (unsigned)(digits[i] - '0');
        if (n > (limit - digit) / 10)
            return false; /* past the range of a long long */
        n = n * 10 + digit;
    }
    *value = negative && n > 0 ? -(long long)(n - 1) - 1 : (long long)n;
    return true;
}

/*
 * Reads the line "<marker><number>\r\n" at bytes[*pos] (the marker is
 * already checked). On RESP_REQUEST, *value is the number and *pos is past
 * the CRLF. too_big names the error for a line longer than max_inline,
 * invalid the one for a number that is not one.
 */
static enum resp_result parse_header(const char *bytes, size_t len, size_t *pos,
                                     const struct resp_limits *limits, long long *value, const char *too_big,
                                     const char *invalid, char *why, size_t why_len)
{
    size_t start = *pos + 1;
    size_t room = len - start;
    size_t look = room < limits->max_inline + 1 ? room : limits->max_inline + 1;
    const char *cr = memchr(bytes + start, '\r', look);
    if (cr == NULL)
        return room > limits->max_inline ? refuse(why, why_len, "%s", too_big) : RESP_INCOMPLETE;
    size_t end = (size_t)(cr - bytes);
    if (end + 1 == len)
        return RESP_INCOMPLETE; /* the '\n' has not come yet */
    if (bytes[end + 1] != '\n')
        return refuse(why, why_len, "expected '\\r\\n' after a length");
    if (!resp_integer(bytes + start, end - start, value))
        return refuse(why, why_len, "%s", invalid);
    *pos = end + 2;
    return RESP_REQUEST;
}

/* "*<count>\r\n" then count times "$<length>\r\n<bytes>\r\n". */
static enum resp_result parse_array(const char *bytes, size_t len, const struct resp_limits *limits,
                                    struct resp_arg *args, size_t *argc, size_t *used, char *why,
                                    size_t why_len)
{
    size_t pos = 0;
    long long count;
    enum resp_result result = parse_header(bytes, len, &pos, limits, &count, "too big mbulk count string",
                                           "invalid multibulk length", why, why_len);
    if (result != RESP_REQUEST)
        return result;
    if (count > (long long)limits->max_args)
        return refuse(why, why_len, "invalid multibulk length");
    size_t n = count > 0 ? (size_t)count : 0; /* "*0" and "*-1" are empty requests, skipped as Redis does */
    for (size_t i = 0; i < n; i++) {
        if (pos == len)
            return RESP_INCOMPLETE;
        /* The byte as it came, as Redis says it; reply_error() keeps the line one line. */
        if (bytes[pos] != '$')
            return refuse(why, why_len, "expected '$', got '%c'", bytes[pos]);
        long long bulk;
        result = parse_header(bytes, len, &pos, limits, &bulk, "too big bulk count string",
                              "invalid bulk length", why, why_len);
        if (result != RESP_REQUEST)
            return result;
        if (bulk < 0 || (unsigned long long)bulk > limits->max_bulk)
            return refuse(why, why_len, "invalid bulk length");
        size_t size = (size_t)bulk;
        if (len - pos < 2 || len - pos - 2 < size) /* not len - pos < size + 2, which a huge size wraps */
            return RESP_INCOMPLETE;
        if (bytes[pos + size] != '\r' || bytes[pos + size + 1] != '\n')
            return refuse(why, why_len, "expected '\\r\\n' after a bulk string of %zu bytes", size);
        args[i].bytes = bytes + pos;
        args[i].len = size;
        pos += size + 2;
    }
    *argc = n;
    *used = pos;
    return RESP_REQUEST;
}

/*
 * Redis's rules for the words of an inline command (its sdssplitargs()):
 * any blank may come before a word (isspace(), in any locale), but only a
 * space, a tab or a CR ends one; a VT or an FF after a word's first byte
 * is part of it.
 */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool ends_word(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* One line, "\r\n" or "\n" at its end, split into words on blanks. */
static enum resp_result parse_inline(const char *bytes, size_t len, const struct resp_limits *limits,
                                     struct resp_arg *args, size_t *argc, size_t *used, char *why,
                                     size_t why_len)
{
    size_t look = len < limits->max_inline + 2 ? len : limits->max_inline + 2; /* the line, '\r' and '\n' */
    const char *newline = memchr(bytes, '\n', look);
    if (newline == NULL)
        return len >= limits->max_inline + 2 ? refuse(why, why_len, "too big inline request")
                                             : RESP_INCOMPLETE;
    size_t end = (size_t)(newline - bytes);
    size_t line_len = end > 0 && bytes[end - 1] == '\r' ? end - 1 : end;
    if (line_len > limits->max_inline)
        return refuse(why, why_len, "too big inline request");
    size_t n = 0;
    for (size_t pos = 0; pos < line_len;) {
        while (pos < line_len && is_blank(bytes[pos]))
            pos++;
        if (pos == line_len)
            break;
        size_t start = pos;
        while (pos < line_len && !ends_word(bytes[pos]))
            pos++;
        if (n == limits->max_args)
            return refuse(why, why_len, "too many arguments in an inline request");
        args[n].bytes = bytes + start;
        args[n].len = pos - start;
        n++;
    }
    *argc = n;
    *used = end + 1;
    return RESP_REQUEST;
}

enum resp_result resp_parse(const char *bytes, size_t len, const struct resp_limits *limits,
                            struct resp_arg *args, size_t *argc, size_t *used, char *why, size_t why_len)
{
    if (len == 0)
        return RESP_INCOMPLETE;
    if (bytes[0] == '*')
        return parse_array(bytes, len, limits, args, argc, used, why, why_len);
    return parse_inline(bytes, len, limits, args, argc, used, why, why_len);
}

/* Where the "\r\n" that ends the line starting at bytes[pos] is, or 0 if it has not come yet. */
static size_t reply_line_end(const char *bytes, size_t len, size_t pos)
{
    const char *cr = pos < len ? memchr(bytes + pos, '\r', len - pos) : NULL;
    while (cr != NULL && (size_t)(cr - bytes) + 1 < len && cr[1] != '\n')
        cr = memchr(cr + 1, '\r', len - (size_t)(cr + 1 - bytes));
    if (cr == NULL || (size_t)(cr - bytes) + 1 >= len)
        return 0;
    return (size_t)(cr - bytes);
}

enum resp_read resp_read_element(struct resp_reader *reader, const char *bytes, size_t len,
                                 struct resp_element *element, size_t *used)
{
    if (len == 0)
        return RESP_MORE;
    char type = bytes[0];
    if (type != '+' && type != '-' && type != ':' && type != '$' && type != '*')
        return RESP_NOT_RESP;
    size_t end = reply_line_end(bytes, len, 1);
    if (end == 0)
        return RESP_MORE;
    struct resp_element e = {.type = type, .bytes = bytes + 1, .len = end - 1};
    if (type == ':' || type == '$' || type == '*') {
        if (!resp_integer(bytes + 1, end - 1, &e.n) || (type != ':' && e.n < -1))
            return RESP_NOT_RESP;
        e.bytes = NULL;
        e.len = 0;
    }
    size_t pos = end + 2;
    if (type == '$' && e.n >= 0) {
        size_t size = (size_t)e.n;
        if (len - pos < 2 || len - pos - 2 < size) /* not len - pos < size + 2, which a huge size wraps */
            return RESP_MORE;
        if (bytes[pos + size] != '\r' || bytes[pos + size + 1] != '\n')
            return RESP_NOT_RESP;
        e.bytes = bytes + pos;
        e.len = size;
        pos += size + 2;
    }
    if (type == '*' && e.n > 0 && reader->depth == RESP_REPLY_DEPTH_MAX)
        return RESP_NOT_RESP;
    /* A whole element: it takes its place in the array that holds it, and may open one or close some. */
    e.depth = reader->depth;
    if (reader->depth > 0) {
        e.index = reader->count[reader->depth] - reader->left[reader->depth] + 1;
        reader->left[reader->depth]--;
    }
    if (type == '*' && e.n > 0) {
        reader->depth++;
        reader->left[reader->depth] = reader->count[reader->depth] = e.n;
    }
    while (reader->depth > 0 && reader->left[reader->depth] == 0)
        reader->depth--;
    *element = e;
    *used = pos;
    return RESP_ELEMENT;
}

bool resp_reply_done(const struct resp_reader *reader)
{
    return reader->depth == 0;
}
