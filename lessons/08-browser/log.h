/*
 * log.h - one line to stderr per event, with the time and the client.
 *
 *   2026-11-24 09:03:01 127.0.0.1:51234 connected
 *
 * A server must never wait on its log. If stderr is a pipe that nobody
 * reads, or a terminal scrolled back and paused, a plain write blocks, and
 * every thread that logs would stop with it: no client served, no Ctrl+C
 * obeyed. So log_event() only copies the line into a bounded queue in
 * memory, and a thread of the log's own writes the queue to stderr. When
 * the queue is full the line is dropped and counted; once stderr takes
 * lines again, the log says how many it dropped.
 */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

/* Formats one log line (without its '\n') into buf: time, who, then the message. */
void log_format(char *buf, size_t len, const char *when, const char *who, const char *format, ...);

/* Starts the thread that writes the log to stderr. Returns 0, or -1. */
int log_start(void);

/* Queues "time who message" for stderr, never waiting for it; who is a client's "host:port" or "server". */
void log_event(const char *who, const char *format, ...);

/*
 * Stops the log once the writer has written what is queued, waiting at most
 * timeout_ms: a stderr that takes nothing must not hold up the exit.
 * Returns 0 when all was written, or -1 when the time ran out: the writer
 * still waits on stderr, and ends with the process, unless a later
 * log_stop() finds it done.
 */
int log_stop(int timeout_ms);

#endif
