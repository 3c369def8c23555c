/*
 * line_framer.h - turns a TCP byte stream into lines.
 *
 * TCP delivers bytes, not messages: one recv() may hold half a line or three
 * lines. The framer keeps the bytes received so far and hands out each
 * complete line exactly once, whatever the chunking. A line ends in '\n'; a
 * '\r' just before it is dropped, so telnet and Windows clients work.
 *
 * Use: recv() straight into framer_space(), framer_commit() the byte count,
 * then call framer_next_line() until it stops returning FRAMER_LINE.
 */
#ifndef LINE_FRAMER_H
#define LINE_FRAMER_H

#include <stddef.h>

/* The longest line a framer can accept, in bytes, not counting its "\r\n" or "\n". */
#define LINE_MAX_BYTES 4096

enum framer_status {
    FRAMER_LINE,      /* a complete line was taken out */
    FRAMER_NEED_MORE, /* no complete line yet: receive more bytes */
    FRAMER_TOO_LONG,  /* a line exceeds LINE_MAX_BYTES: give up on this stream */
};

struct line_framer {
    /* Room for the longest line plus "\r\n"; lines are cut in place. */
    char buf[LINE_MAX_BYTES + 2];
    size_t start;   /* first byte not yet handed out */
    size_t end;     /* one past the last byte received */
    size_t scanned; /* bytes after start already known to hold no '\n' */
    size_t limit;   /* the longest line accepted: LINE_MAX_BYTES unless lowered */
    int too_long;   /* sticky: once too long, always too long */
};

/* Makes the framer empty, accepting lines of up to LINE_MAX_BYTES. */
void framer_init(struct line_framer *framer);

/* Lowers the longest line accepted to `limit` bytes (1 to LINE_MAX_BYTES; --max-line). */
void framer_set_limit(struct line_framer *framer, size_t limit);

/* Where the next received bytes go; *room is how many fit (never 0 after FRAMER_NEED_MORE). */
char *framer_space(struct line_framer *framer, size_t *room);

/* Records that `count` bytes were written at framer_space(). */
void framer_commit(struct line_framer *framer, size_t count);

/* How many bytes of an unfinished line the framer holds (0: it ended on a line end). */
size_t framer_pending(const struct line_framer *framer);

/*
 * Takes the next complete line out of the framer. On FRAMER_LINE, *line
 * points to its bytes (NUL-terminated, without "\r\n"; the line itself may
 * contain NUL bytes, so use *len) and stays valid until the next call.
 */
enum framer_status framer_next_line(struct line_framer *framer, char **line, size_t *len);

#endif
