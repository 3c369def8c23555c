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

/*
 * Reads a decimal number the way Redis's string2ll() does: an optional
 * '-', then digits, no '+', no spaces, no leading zero (but "0", and so no
 * "-0"). Returns false for anything else, and for more than 18 digits.
 */
static bool parse_length(const char *digits, size_t len, long long *value)
{
    bool negative = len > 0 && digits[0] == '-';
    size_t i = negative ? 1 : 0;
    if (i == len || (digits[i] == '0' && (len - i > 1 || negative)))
        return false; /* "", "-", "01", "-0" */
    if (len - i > 18)
        return false; /* more digits than a long long surely holds, and than any length a request may have */
    long long n = 0;
    for (; i < len; i++) {
        if (digits[i] < '0' || digits[i] > '9')
            return false;
        n = n * 10 + (digits[i] - '0');
    }
    *value = negative ? -n : n;
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
    if (!parse_length(bytes + start, end - start, value))
        return refuse(why, why_len, "%s", invalid);
    *pos = end + 2;
    return RESP_REQUEST;
}

/* Describes a byte for an error line: itself if printable, else its hex code. */
static void describe_byte(unsigned char byte, char *out, size_t out_len)
{
    if (isprint(byte))
        snprintf(out, out_len, "'%c'", byte);
    else
        snprintf(out, out_len, "0x%02x", byte);
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
        if (bytes[pos] != '$') {
            char got[8];
            describe_byte((unsigned char)bytes[pos], got, sizeof got);
            return refuse(why, why_len, "expected '$', got %s", got);
        }
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

/* Whether a byte separates the words of an inline command (as isspace() says, in any locale). */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
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
        while (pos < line_len && !is_blank(bytes[pos]))
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

/* The line of a reply element at bytes[pos]: where its "\r\n" starts, or 0 if it has not come yet. */
static size_t reply_line_end(const char *bytes, size_t len, size_t pos)
{
    for (size_t i = pos; i + 1 < len; i++)
        if (bytes[i] == '\r' && bytes[i + 1] == '\n')
            return i;
    return 0;
}

/* An integer reply: any long long, in decimal (parse_length() stops at 18 digits). */
static bool parse_integer(const char *digits, size_t len, long long *value)
{
    bool negative = len > 0 && digits[0] == '-';
    size_t i = negative ? 1 : 0;
    if (i == len)
        return false;
    unsigned long long n = 0, limit = negative ? 9223372036854775808ull : 9223372036854775807ull;
    for (; i < len; i++) {
        if (digits[i] < '0' || digits[i] > '9')
            return false;
        unsigned digit = (unsigned)(digits[i] - '0');
        if (n > (limit - digit) / 10)
            return false;
        n = n * 10 + digit;
    }
    *value = negative ? (long long)(0 - n) : (long long)n;
    return true;
}

/*
 * Walks the elements without recursion: remaining[d] counts the elements
 * still owed to the array open at depth d. A reply is whole when the
 * outermost count reaches zero.
 */
enum resp_result resp_reply_size(const char *bytes, size_t len, size_t *size)
{
    long long remaining[RESP_REPLY_DEPTH_MAX + 1] = {1};
    size_t depth = 0, pos = 0;
    while (depth > 0 || remaining[0] > 0) {
        if (remaining[depth] == 0) {
            depth--; /* this array is complete: back to the one holding it */
            continue;
        }
        if (pos == len)
            return RESP_INCOMPLETE;
        char type = bytes[pos];
        if (type != '+' && type != '-' && type != ':' && type != '$' && type != '*')
            return RESP_PROTOCOL_ERROR;
        size_t end = reply_line_end(bytes, len, pos + 1);
        if (end == 0)
            return RESP_INCOMPLETE;
        long long n = 0;
        if ((type == ':' && !parse_integer(bytes + pos + 1, end - pos - 1, &n)) ||
            ((type == '$' || type == '*') && !parse_length(bytes + pos + 1, end - pos - 1, &n)))
            return RESP_PROTOCOL_ERROR;
        pos = end + 2;
        remaining[depth]--;
        if (type == '$' && n >= 0) {
            if (len - pos < 2 || len - pos - 2 < (unsigned long long)n)
                return RESP_INCOMPLETE;
            pos += (size_t)n;
            if (bytes[pos] != '\r' || bytes[pos + 1] != '\n')
                return RESP_PROTOCOL_ERROR;
            pos += 2;
        } else if (type == '*' && n > 0) {
            if (depth == RESP_REPLY_DEPTH_MAX)
                return RESP_PROTOCOL_ERROR;
            remaining[++depth] = n;
        }
    }
    *size = pos;
    return RESP_REQUEST;
}
