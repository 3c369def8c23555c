/*
 * log.h - one line to stderr per event, with the time and the client.
 *
 *   2026-11-24 09:03:01 127.0.0.1:51234 connected
 *
 * Each line is written with one call, so lines from different threads never
 * mix. stderr is unbuffered, so the lines appear as they happen.
 */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

/* Formats one log line (without its '\n') into buf: time, who, then the message. */
void log_format(char *buf, size_t len, const char *when, const char *who, const char *format, ...);

/* Writes "time who message" to stderr; who is a client's "host:port" or "server". */
void log_event(const char *who, const char *format, ...);

#endif
