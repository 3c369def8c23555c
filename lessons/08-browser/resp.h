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
 *                                        and split on blanks (a space, a
 *                                        tab or a CR ends a word; VT and FF
 *                                        are skipped only before one, as
 *                                        in Redis)
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

#include <stdbool.h>
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

/*
 * A decimal integer as Redis reads one (its string2ll()): an optional '-',
 * then digits, no '+', no blank, no leading zero (but "0", and so no
 * "-0"), within a long long. Returns false for anything else.
 */
bool resp_integer(const char *digits, size_t len, long long *value);

/* The deepest nesting of arrays in a reply that resp_read_element() follows. */
#define RESP_REPLY_DEPTH_MAX 16

/*
 * The other direction, for a client: replies, read one element at a time
 * (as hiredis's reader does), so that each is looked at once, as soon as
 * it is whole, and a long reply is printed while it arrives.
 */
struct resp_element {
    char type;   /* '+', '-', ':', '$' or '*' */
    long long n; /* ':' its value; '$' its length and '*' its count, -1 for null */
    const char
        *bytes; /* '+', '-': the text; '$': the bytes (inside the caller's buffer, not NUL-terminated) */
    size_t len;
    size_t depth;    /* how many arrays hold it: 0 for a reply on its own */
    long long index; /* its place in the array that holds it, from 1; 0 at depth 0 */
};

/* Where a reader is in a reply: what each array still open owes. Starts zeroed: {0}. */
struct resp_reader {
    size_t depth;                              /* arrays open */
    long long left[RESP_REPLY_DEPTH_MAX + 1];  /* elements still owed to the array open at each depth */
    long long count[RESP_REPLY_DEPTH_MAX + 1]; /* and how many it has */
};

enum resp_read {
    RESP_ELEMENT, /* one whole element: *used bytes */
    RESP_MORE,    /* not a whole element yet: receive more, keep these bytes, read again */
    RESP_NOT_RESP /* not a reply in RESP2, or nested deeper than RESP_REPLY_DEPTH_MAX */
};

/*
 * Reads the element at the start of bytes[0, len) into *element. On
 * RESP_MORE and RESP_NOT_RESP the reader is as it was.
 */
enum resp_read resp_read_element(struct resp_reader *reader, const char *bytes, size_t len,
                                 struct resp_element *element, size_t *used);

/* Whether the elements read so far make whole replies: no array is still owed elements. */
bool resp_reply_done(const struct resp_reader *reader);

#endif
