/*
 * line_framer.c - see line_framer.h. A fixed buffer, no allocation: a
 * client can never make the server hold more than LINE_MAX_BYTES + 2 bytes.
 */
#include "line_framer.h"

#include <string.h>

void framer_init(struct line_framer *framer)
{
    framer->start = 0;
    framer->end = 0;
    framer->scanned = 0;
    framer->limit = LINE_MAX_BYTES;
    framer->too_long = 0;
}

void framer_set_limit(struct line_framer *framer, size_t limit)
{
    framer->limit = limit < 1 ? 1 : limit > LINE_MAX_BYTES ? LINE_MAX_BYTES : limit;
}

char *framer_space(struct line_framer *framer, size_t *room)
{
    /* Slide the unfinished line to the front so the free space is in one piece. */
    if (framer->start > 0) {
        size_t held = framer->end - framer->start;
        memmove(framer->buf, framer->buf + framer->start, held);
        framer->start = 0;
        framer->end = held;
    }
    *room = sizeof framer->buf - framer->end;
    return framer->buf + framer->end;
}

void framer_commit(struct line_framer *framer, size_t count)
{
    framer->end += count;
}

size_t framer_pending(const struct line_framer *framer)
{
    return framer->end - framer->start;
}

enum framer_status framer_next_line(struct line_framer *framer, char **line, size_t *len)
{
    if (framer->too_long)
        return FRAMER_TOO_LONG;

    char *first = framer->buf + framer->start;
    size_t held = framer->end - framer->start;
    /* Search only the bytes not searched before: a slow sender costs O(n), not O(n^2). */
    char *newline = memchr(first + framer->scanned, '\n', held - framer->scanned);
    if (newline == NULL) {
        framer->scanned = held;
        /* limit + 2 bytes without '\n' hold at least limit + 1 bytes of line, even if the last is '\r'. */
        if (held >= framer->limit + 2) {
            framer->too_long = 1;
            return FRAMER_TOO_LONG;
        }
        return FRAMER_NEED_MORE;
    }

    size_t line_len = (size_t)(newline - first);
    if (line_len > 0 && first[line_len - 1] == '\r')
        line_len--;
    if (line_len > framer->limit) {
        framer->too_long = 1;
        return FRAMER_TOO_LONG;
    }

    first[line_len] = '\0'; /* overwrites the '\r' or the '\n' */
    framer->start += (size_t)(newline - first) + 1;
    framer->scanned = 0;
    *line = first;
    *len = line_len;
    return FRAMER_LINE;
}
