/*
 * fuzz_resp.c - libFuzzer target: the RESP parser, whole and in chunks.
 *
 * The first input byte seeds the chunk sizes and the limits; the rest is
 * the stream. The stream is parsed twice: all at once, and as recv()
 * would deliver it, in chunks, each parse given a buffer of exactly the
 * bytes held (so ASan sees any read past them). Both must find the same
 * requests, byte for byte, and end the same way; every argument must lie
 * inside the bytes parsed, and a request must use at least one byte.
 *
 * Run:  make fuzz FUZZ_SECONDS=60     (from the top of the course)
 */
#include "resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 8

/* What parsing a stream found: a hash of the requests and how it ended. */
struct outcome {
    uint64_t hash;
    unsigned long requests;
    enum resp_result end; /* RESP_INCOMPLETE (all parsed, or a request unfinished) or RESP_PROTOCOL_ERROR */
};

static void mix(uint64_t *hash, const void *bytes, size_t len)
{
    const uint8_t *p = bytes;
    for (size_t i = 0; i < len; i++)
        *hash = (*hash ^ p[i]) * 1099511628211ull;
}

/* Parses what is held until a request is unfinished or refused; returns the bytes it took. */
static size_t parse_held(const uint8_t *held, size_t len, const struct resp_limits *limits,
                         struct outcome *out)
{
    uint8_t *exact = malloc(len > 0 ? len : 1);
    if (exact == NULL)
        abort();
    memcpy(exact, held, len);
    size_t pos = 0;
    for (;;) {
        struct resp_arg args[MAX_ARGS];
        size_t argc = 0, used = 0;
        char why[128];
        enum resp_result r =
            resp_parse((const char *)exact + pos, len - pos, limits, args, &argc, &used, why, sizeof why);
        if (r != RESP_REQUEST) {
            out->end = r;
            break;
        }
        if (used == 0 || used > len - pos || argc > limits->max_args)
            abort();
        for (size_t i = 0; i < argc; i++) {
            const uint8_t *a = (const uint8_t *)args[i].bytes;
            if (a < exact + pos || a + args[i].len > exact + pos + used)
                abort(); /* an argument outside the request */
            mix(&out->hash, &args[i].len, sizeof args[i].len);
            mix(&out->hash, a, args[i].len);
        }
        mix(&out->hash, "|", 1);
        out->requests++;
        pos += used;
    }
    free(exact);
    return pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned seed = data[0];
    data++;
    size--;
    struct resp_limits limits = {.max_args = 1 + seed % MAX_ARGS,
                                 .max_bulk = 1 + (seed >> 3) % 40,
                                 .max_inline = 4 + (seed >> 2) % 60};

    struct outcome whole = {.hash = 14695981039346656037ull, .requests = 0, .end = RESP_INCOMPLETE};
    parse_held(data, size, &limits, &whole);

    struct outcome chunked = {.hash = 14695981039346656037ull, .requests = 0, .end = RESP_INCOMPLETE};
    size_t start = 0, fed = 0; /* the bytes held are data[start, fed) */
    while (fed < size && chunked.end != RESP_PROTOCOL_ERROR) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = 1 + (seed >> 16) % 48;
        fed += chunk < size - fed ? chunk : size - fed;
        start += parse_held(data + start, fed - start, &limits, &chunked);
    }
    if (chunked.requests != whole.requests || chunked.hash != whole.hash || chunked.end != whole.end)
        abort(); /* the chunks changed what the stream says */
    return 0;
}
