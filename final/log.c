/*
 * log.c - see log.h.
 */
#include "log.h"

#include "platform.h"

#include <stdarg.h>
#include <stdio.h>

/* The longest log line; a longer one is cut, never overflowed. */
#define LOG_LINE_MAX 512

static void log_vformat(char *buf, size_t len, const char *when, const char *who, const char *format,
                        va_list args)
{
    int prefix = snprintf(buf, len, "%s %s ", when, who);
    if (prefix < 0 || (size_t)prefix >= len)
        return;
    vsnprintf(buf + prefix, len - (size_t)prefix, format, args);
}

void log_format(char *buf, size_t len, const char *when, const char *who, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    log_vformat(buf, len, when, who, format, args);
    va_end(args);
}

void log_event(const char *who, const char *format, ...)
{
    char when[32];
    char line[LOG_LINE_MAX];
    format_local_time(when, sizeof when);
    va_list args;
    va_start(args, format);
    log_vformat(line, sizeof line, when, who, format, args);
    va_end(args);
    fprintf(stderr, "%s\n", line);
}
