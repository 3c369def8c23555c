/*
 * resp.h - requests in RESP2, the protocol of Redis, parsed without I/O.
 *
 * A client sends a request in one of two framings, and the first byte
 * says which:
 *
 *   "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n"   an array of bulk strings: framed
 *                                        by length, so any byte (a CRLF,
 *                                        a NUL) may sit in an argument
 *   "ECHO hello\r\n"                     an inline command: framed by a
 *                                        delimiter, the end of the line,
 *                                        and split on blanks (space, tab,
 *                                        CR, VT, FF)
 *
 * resp_parse() looks at the bytes received so far and says: here is one
 * whole request (its arguments point into those bytes), or not enough yet,
 * or this is not RESP. It never copies, never allocates and never reads
 * past len, so one buffer serves both framings and the caller decides
 * when to drop what was parsed (Redis keeps a moving position into its
 * query buffer the same way). The grammar, the limits and the errors are
 * in docs/protocol.md; tests/check_resp.c feeds it every split of every
 * kind of request and every kind of malformed one.
 */
#ifndef RESP_H
#define RESP_H

#include <stddef.h>

/* The limits a request must keep to; a request beyond one is a protocol error. */
struct resp_limits {
    size_t max_args;   /* the most arguments in one request (an array's elements, an inline line's words) */
    size_t max_bulk;   /* the longest bulk string */
    size_t max_inline; /* the longest inline line, and the longest "*<count>" or "$<length>" line */
};

/* One argument: bytes inside the buffer given to resp_parse(), not NUL-terminated. */
struct resp_arg {
    const char *bytes;
    size_t len;
};

enum resp_result {
    RESP_REQUEST,        /* one whole request: *argc arguments (0 for an empty line or "*0"), *used bytes */
    RESP_INCOMPLETE,     /* not a whole request yet: receive more, keep these bytes, parse again */
    RESP_PROTOCOL_ERROR, /* not RESP: why says what (Redis's words); answer it and close */
};

/*
 * Parses the request at the start of bytes[0, len). args has room for
 * limits->max_args arguments. On RESP_PROTOCOL_ERROR, why holds a line
 * such as "invalid bulk length"; on the other results it is left alone.
 */
enum resp_result resp_parse(const char *bytes, size_t len, const struct resp_limits *limits,
                            struct resp_arg *args, size_t *argc, size_t *used, char *why, size_t why_len);

/* The deepest nesting of arrays in a reply that resp_reply_size() accepts. */
#define RESP_REPLY_DEPTH_MAX 16

/*
 * The other direction, for a client: whether bytes[0, len) begins with a
 * whole reply (a simple string, error, integer, bulk string or array of
 * replies), and how long it is. RESP_REQUEST: *size bytes make one reply;
 * RESP_INCOMPLETE: receive more; RESP_PROTOCOL_ERROR: not RESP, or nested
 * deeper than RESP_REPLY_DEPTH_MAX.
 */
enum resp_result resp_reply_size(const char *bytes, size_t len, size_t *size);

#endif
