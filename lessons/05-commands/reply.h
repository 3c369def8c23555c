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
 * Only the format lives here; which reply a command gives is commands.c's.
 */
#ifndef REPLY_H
#define REPLY_H

#include "outbuf.h"

#include <stddef.h>

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

/* "$-1\r\n" */
void reply_null(struct outbuf *out);

/* "*count\r\n": the next count replies are its elements. */
void reply_array(struct outbuf *out, size_t count);

#endif
