/*
 * fuzz_ws.c - libFuzzer target: the web connection (ws.c), whole and in
 * chunks.
 *
 * The first input byte seeds the chunk sizes and says whether the stream
 * starts with a valid upgrade (then the rest is frames) or is the request
 * itself. The stream is fed twice: all at once, and in chunks as recv()
 * would give it. Both must see the same events, the same messages and
 * paths byte for byte, and the same output, and end the same way.
 *
 * Run:  make fuzz FUZZ_SECONDS=60     (from the top of the course)
 */
#include "ws.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char UPGRADE[] =
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/* What a stream did: a hash of its events (messages and paths included) and one of its output, and its end.
 */
struct outcome {
    uint64_t events, output;
    enum ws_event end;
};

static void mix(uint64_t *hash, const void *bytes, size_t len)
{
    const uint8_t *p = bytes;
    for (size_t i = 0; i < len; i++)
        *hash = (*hash ^ p[i]) * 1099511628211ull;
}

/* Takes every event the bytes fed so far hold (the end, WS_CLOSE or WS_ERROR, once), and the output. */
static void drain(struct ws *ws, struct outcome *out)
{
    while (out->end == WS_MORE) {
        enum ws_event event = ws_next(ws);
        if (event == WS_MORE)
            break;
        mix(&out->events, &event, sizeof event);
        if (event == WS_TEXT || event == WS_BINARY) {
            size_t len;
            const char *message = ws_message(ws, &len);
            mix(&out->events, message, len);
        }
        if (event == WS_REQUEST) {
            const char *path = ws_path(ws);
            mix(&out->events, path, strlen(path));
            ws_respond(ws, 404, "text/plain", "no", 2);
        }
        if (event == WS_CLOSE || event == WS_ERROR)
            out->end = event;
    }
    size_t len;
    const char *bytes = ws_output(ws, &len);
    mix(&out->output, bytes != NULL ? bytes : "", len);
    ws_sent(ws, len);
}

static void run(const uint8_t *data, size_t size, uint8_t seed, bool chunked, struct outcome *out)
{
    const struct ws_limits limits = {512, 4096, NULL};
    struct ws *ws = ws_new(&limits);
    if (ws == NULL)
        abort();
    memset(out, 0, sizeof *out);
    unsigned state = seed;
    for (size_t pos = 0; pos < size;) {
        size_t chunk = size - pos;
        if (chunked) {
            state = state * 1103515245u + 12345u;
            chunk = 1 + (state >> 16) % 17;
            if (chunk > size - pos)
                chunk = size - pos;
        }
        if (ws_feed(ws, (const char *)data + pos, chunk) != 0)
            abort();
        pos += chunk;
        drain(ws, out);
    }
    drain(ws, out);
    ws_free(ws);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t seed = data[0];
    size_t len = size - 1;
    uint8_t *stream = malloc(sizeof UPGRADE + len);
    if (stream == NULL)
        abort();
    size_t start = 0;
    if (seed & 1) { /* frames after a valid upgrade */
        memcpy(stream, UPGRADE, sizeof UPGRADE - 1);
        start = sizeof UPGRADE - 1;
    }
    memcpy(stream + start, data + 1, len);
    struct outcome whole, chunked;
    run(stream, start + len, seed, false, &whole);
    run(stream, start + len, seed, true, &chunked);
    free(stream);
    if (whole.events != chunked.events || whole.output != chunked.output || whole.end != chunked.end)
        abort(); /* how the bytes were cut changed what they meant */
    return 0;
}
