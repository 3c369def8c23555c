/*
 * fuzz_line_framer.c - libFuzzer target: the framer against a reference.
 *
 * The first input byte seeds the chunk sizes and the line limit; the rest
 * is the stream. The
 * stream goes through the framer in those chunks, exactly as recv() would
 * deliver it, and every line must equal what a plain, obviously correct
 * scan of the whole stream says it should be. Sanitizers (ASan, UBSan)
 * catch any read or write out of bounds on the way.
 *
 * Run:  make fuzz FUZZ_SECONDS=60     (from the top of the course)
 */
#include "line_framer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The reference: the next line of data[*pos..size), as the protocol defines it. */
static enum framer_status reference_line(const uint8_t *data, size_t size, size_t limit, size_t *pos,
                                         const uint8_t **line, size_t *len)
{
    const uint8_t *start = data + *pos;
    const uint8_t *newline = memchr(start, '\n', size - *pos);
    if (newline == NULL)
        /* The framer gives up once its buffer is full without a line end. */
        return size - *pos >= limit + 2 ? FRAMER_TOO_LONG : FRAMER_NEED_MORE;
    size_t line_len = (size_t)(newline - start);
    if (line_len > limit + 1)
        return FRAMER_TOO_LONG; /* never fits, even the framer cannot hold it */
    if (line_len > 0 && start[line_len - 1] == '\r')
        line_len--;
    if (line_len > limit)
        return FRAMER_TOO_LONG;
    *line = start;
    *len = line_len;
    *pos += (size_t)(newline - start) + 1;
    return FRAMER_LINE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    data++;
    size--;

    static struct line_framer framer;
    framer_init(&framer);
    /* Half the inputs use the full limit, half a small one (--max-line), both from the seed. */
    size_t limit = (seed & 1) ? LINE_MAX_BYTES : 1 + (seed >> 1) % 64;
    framer_set_limit(&framer, limit);
    size_t fed = 0;      /* bytes given to the framer so far */
    size_t expected = 0; /* where the reference stands in the stream */
    enum framer_status ref_status = FRAMER_NEED_MORE;

    while (fed < size) {
        size_t room;
        char *space = framer_space(&framer, &room);
        if (room == 0)
            abort(); /* the framer promised room after FRAMER_NEED_MORE */
        seed = seed * 1103515245u + 12345u;
        size_t chunk = 1 + (seed >> 16) % 64;
        if (chunk > room)
            chunk = room;
        if (chunk > size - fed)
            chunk = size - fed;
        memcpy(space, data + fed, chunk);
        framer_commit(&framer, chunk);
        fed += chunk;

        char *line;
        size_t len;
        enum framer_status status;
        while ((status = framer_next_line(&framer, &line, &len)) == FRAMER_LINE) {
            const uint8_t *ref_line;
            size_t ref_len;
            ref_status = reference_line(data, fed, limit, &expected, &ref_line, &ref_len);
            if (ref_status != FRAMER_LINE || ref_len != len || memcmp(ref_line, line, len) != 0 ||
                line[len] != '\0')
                abort(); /* the framer and the reference disagree on a line */
        }
        if (status == FRAMER_TOO_LONG) {
            const uint8_t *ref_line;
            size_t ref_len;
            if (reference_line(data, fed, limit, &expected, &ref_line, &ref_len) != FRAMER_TOO_LONG)
                abort(); /* the framer refused a line the protocol allows */
            return 0;
        }
    }
    /* All fed: the reference must have no complete line left that the framer missed. */
    const uint8_t *ref_line;
    size_t ref_len;
    enum framer_status left = reference_line(data, size, limit, &expected, &ref_line, &ref_len);
    if (left == FRAMER_LINE)
        abort();
    return 0;
}
