/*
 * reply.h - replies in RESP2, appended to an output buffer.
 *
 * Every reply says what it is by its first byte, and ends with "\r\n":
 *
 *   +PONG            a simple string (no CR or LF inside)
 *   -ERR unknown...  an error
 *   :42              an integer
 *   $5\r\nhello      a bulk string: its length, then that many bytes, any bytes
 *   $-1              the null bulk string: no value
 *   *3 ...           an array: its length, then that many replies
 *
 * A client that said HELLO 3 speaks RESP3, which gives some of them types
 * of their own: a null is "_", a map "%2 ..." (an array of pairs in
 * RESP2), text for a person "=15\r\ntxt:..." (a bulk string in RESP2),
 * and a message nobody asked for, such as a published one, a push
 * ">3 ..." (an array in RESP2, which is why a RESP2 subscriber may run
 * only the commands whose replies cannot be mistaken for one). The
 * functions that differ take the connection's version.
 *
 * Only the format lives here; which reply a command gives is commands.c's.
 */
#ifndef REPLY_H
#define REPLY_H

#include "outbuf.h"

#include <stddef.h>

/* The protocol versions HELLO may choose; every connection starts in RESP2. */
enum resp_version { RESP2 = 2, RESP3 = 3 };

/* "+text\r\n": text must hold no '\r' or '\n'. */
void reply_simple(struct outbuf *out, const char *text);

/* "-text\r\n", text from a printf() format; a CR or LF in it becomes a space, so the error stays one line. */
void reply_error(struct outbuf *out, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ":n\r\n" */
void reply_integer(struct outbuf *out, long long n);

/* "$len\r\n", the bytes, "\r\n". */
void reply_bulk(struct outbuf *out, const char *bytes, size_t len);

/* reply_bulk() of a NUL-terminated string. */
void reply_bulk_text(struct outbuf *out, const char *text);

/* "$-1\r\n", or in RESP3 "_\r\n" */
void reply_null(struct outbuf *out, enum resp_version resp);

/* "*count\r\n": the next count replies are its elements. */
void reply_array(struct outbuf *out, size_t count);

/* "%pairs\r\n", or in RESP2 "*<2 * pairs>\r\n": the next 2 * pairs replies are keys and values. */
void reply_map(struct outbuf *out, enum resp_version resp, size_t pairs);

/* ">count\r\n", or in RESP2 "*count\r\n": a message no request asked for, of count elements. */
void reply_push(struct outbuf *out, enum resp_version resp, size_t count);

/* Text for a person (INFO, CLIENT LIST): "=<len + 4>\r\ntxt:" and the bytes, or in RESP2 a bulk string. */
void reply_verbatim(struct outbuf *out, enum resp_version resp, const char *bytes, size_t len);

#endif
