/*
 * check_ws.c - the web connection without sockets: HTTP requests, the
 * upgrade (RFC 6455's own example), frames fed whole, a byte at a time and
 * many at once, and each rule whose breaking fails the connection, with
 * the close code the RFC gives it.
 */
#include "../ws.h"
#include "check_suites.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* max_head 4096, max_message 65536, and one origin allowed besides the page's own. */
static const struct ws_limits LIMITS = {4096, 1 << 16, "http://localhost:3000"};

static const char UPGRADE[] =
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:8080\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

/* The output so far, as a string (taken: ws_sent()). */
static const char *take_output(struct ws *ws)
{
    static char text[70000];
    size_t len;
    const char *out = ws_output(ws, &len);
    ck_assert_uint_lt(len, sizeof text);
    memcpy(text, out != NULL ? out : "", len);
    text[len] = '\0';
    ws_sent(ws, len);
    return text;
}

/* The next event must be want; if not, the message says what ws_error() thinks was broken. */
static void expect_event(struct ws *ws, enum ws_event want)
{
    enum ws_event got = ws_next(ws);
    ck_assert_msg(got == want, "ws_next() said %d, expected %d%s%s", got, want, got == WS_ERROR ? ": " : "",
                  got == WS_ERROR ? ws_error(ws) : "");
}

static struct ws *opened(void)
{
    struct ws *ws = ws_new(&LIMITS);
    ck_assert_ptr_nonnull(ws);
    ck_assert_int_eq(ws_feed(ws, UPGRADE, strlen(UPGRADE)), 0);
    expect_event(ws, WS_OPEN);
    take_output(ws);
    return ws;
}

/* A client's frame: masked with a fixed key, its length in the fewest bytes. Returns its size. */
static size_t client_frame(unsigned char *frame, bool fin, int opcode, const void *payload, size_t len)
{
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    frame[n++] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        frame[n++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xFFFF) {
        frame[n++] = 0x80 | 126;
        frame[n++] = (unsigned char)(len >> 8);
        frame[n++] = (unsigned char)len;
    } else {
        frame[n++] = 0x80 | 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            frame[n++] = (unsigned char)((uint64_t)len >> shift);
    }
    memcpy(frame + n, mask, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        frame[n + i] = ((const unsigned char *)payload)[i] ^ mask[i % 4];
    return n + len;
}

static void feed(struct ws *ws, const unsigned char *bytes, size_t len)
{
    ck_assert_int_eq(ws_feed(ws, (const char *)bytes, len), 0);
}

/* The close code of the close frame that ends the output. */
static int close_code_sent(struct ws *ws)
{
    size_t len;
    const unsigned char *out = (const unsigned char *)ws_output(ws, &len);
    ck_assert_msg(out != NULL && len >= 4 && out[len - 4] == 0x88 && out[len - 3] == 2,
                  "the output does not end with a close frame carrying a code (%zu bytes)", len);
    return (out[len - 2] << 8) | out[len - 1];
}

START_TEST(test_ws_upgrade_answers_with_the_accept_of_the_rfcs_own_example)
{
    struct ws *ws = ws_new(&LIMITS);
    ck_assert_int_eq(ws_feed(ws, UPGRADE, strlen(UPGRADE)), 0);
    expect_event(ws, WS_OPEN);
    const char *out = take_output(ws);
    ck_assert_msg(strncmp(out, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0, "the answer was: %s", out);
    ck_assert_msg(strstr(out, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL,
                  "RFC 6455's example key must give its example accept; the answer was: %s", out);
    ck_assert_msg(strstr(out, "Sec-WebSocket-Extensions") == NULL, "no extension was to be taken: %s", out);
    expect_event(ws, WS_MORE);
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_a_page_request_gives_its_path_without_the_query_and_its_response_ends_the_connection)
{
    struct ws *ws = ws_new(&LIMITS);
    const char *two = "GET /app.js?v=3 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(ws_feed(ws, two, strlen(two)), 0);
    expect_event(ws, WS_REQUEST);
    ck_assert_str_eq(ws_path(ws), "/app.js");
    ck_assert_int_eq(ws_respond(ws, 200, "text/javascript", "x", 1), 0);
    ck_assert(!ws_finished(ws)); /* not before the response is sent */
    const char *out = take_output(ws);
    ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0 &&
                      strstr(out, "Content-Length: 1\r\n") != NULL &&
                      strstr(out, "Connection: close\r\n") != NULL,
                  "the response was: %s", out);
    expect_event(ws, WS_CLOSE);
    ck_assert(ws_finished(ws));
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_header_names_are_read_in_any_case)
{
    struct ws *ws = ws_new(&LIMITS);
    const char *request = "GET /style.css HTTP/1.1\r\nhOsT: x\r\nACCEPT: text/css\r\n\r\n";
    ck_assert_int_eq(ws_feed(ws, request, strlen(request)), 0);
    enum ws_event event = ws_next(ws);
    ck_assert_msg(event == WS_REQUEST,
                  "\"hOsT:\" is a Host header (RFC 9110: names are case-insensitive); got "
                  "event %d: %s",
                  event, ws_error(ws));
    ck_assert_str_eq(ws_path(ws), "/style.css");
    ws_free(ws);
}
END_TEST

/* 300 characters: a path longer than any the server keeps. */
#define LONG_PATH_10 "aaaaaaaaaa"
#define LONG_PATH_100                                                                                        \
    LONG_PATH_10 LONG_PATH_10 LONG_PATH_10 LONG_PATH_10 LONG_PATH_10 LONG_PATH_10 LONG_PATH_10 LONG_PATH_10  \
        LONG_PATH_10 LONG_PATH_10
#define LONG_PATH LONG_PATH_100 LONG_PATH_100 LONG_PATH_100

/* A bad request, and the status it must get. */
struct bad_request {
    const char *request;
    const char *status;
};

/* Requests that break HTTP/1.1 itself. */
static const struct bad_request BAD_REQUESTS[] = {
    {"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "},
    {"POST / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 "},
    {"GET / HTTP/1.0\r\nHost: x\r\n\r\n", "HTTP/1.1 505 "},
    {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", "HTTP/1.1 400 "},
    {"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
    {"GET\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
    {"GET / HTTP/1.1\r\n: no name\r\nHost: x\r\n\r\n", "HTTP/1.1 400 "},
    {"GET /" LONG_PATH " HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 "}, /* longer than ws_path() holds */
};

/* Upgrades that break RFC 6455's handshake. */
static const struct bad_request BAD_UPGRADES[] = {
    {"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
     "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
     "HTTP/1.1 426 "},
    {"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
     "short\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     "HTTP/1.1 400 "},
    {"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     "HTTP/1.1 400 "},
    {"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: notupgrade\r\nSec-WebSocket-Key: "
     "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     "HTTP/1.1 400 "},
    {"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
     "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13abc\r\n\r\n",
     "HTTP/1.1 426 "},
    {"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
     "dGhlIHNhbXBsZSBub25j!Q==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     "HTTP/1.1 400 "},
    {"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
     "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
     "13\r\n\r\n",
     "HTTP/1.1 400 "},
};

static void check_refused(const struct bad_request *bad, int i)
{
    struct ws *ws = ws_new(&LIMITS);
    ck_assert_int_eq(ws_feed(ws, bad->request, strlen(bad->request)), 0);
    ck_assert_msg(ws_next(ws) == WS_ERROR, "request %d (%s) was not refused", i, bad->request);
    const char *out = take_output(ws);
    ck_assert_msg(strncmp(out, bad->status, strlen(bad->status)) == 0,
                  "request %d: expected \"%s...\", got \"%.40s\" (%s)", i, bad->status, out, ws_error(ws));
    if (strstr(bad->status, "426") != NULL)
        ck_assert_msg(strstr(out, "Sec-WebSocket-Version: 13\r\n") != NULL, "a 426 must say the version: %s",
                      out);
    ck_assert(ws_finished(ws));
    ws_free(ws);
}

START_TEST(test_ws_a_bad_request_gets_its_status_and_ends_the_connection)
{
    check_refused(&BAD_REQUESTS[_i], _i);
}
END_TEST

START_TEST(test_ws_a_bad_upgrade_gets_its_status_and_ends_the_connection)
{
    check_refused(&BAD_UPGRADES[_i], _i);
}
END_TEST

START_TEST(test_ws_upgrade_tokens_are_read_in_any_case_and_in_lists)
{
    const char *request = "GET /ws HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nupgrade: WebSocket\r\n"
                          "connection: keep-alive,upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "sec-websocket-version: 13\r\n\r\n";
    struct ws *ws = ws_new(&LIMITS);
    ck_assert_int_eq(ws_feed(ws, request, strlen(request)), 0);
    enum ws_event event = ws_next(ws);
    ck_assert_msg(event == WS_OPEN,
                  "\"upgrade: WebSocket\" and \"connection: keep-alive,upgrade\" ask for the "
                  "upgrade (tokens are case-insensitive, in comma lists); got event %d: %s",
                  event, ws_error(ws));
    ws_free(ws);
}
END_TEST

/* Origins a browser may send to a page's Host, and whether each may open its WebSocket. */
static const struct {
    const char *host;
    const char *origin_line;
    bool allowed;
} ORIGINS[] = {
    {"127.0.0.1:8080", "", true}, /* no Origin: not a browser */
    {"127.0.0.1:8080", "Origin: http://127.0.0.1:8080\r\n", true},
    {"127.0.0.1:8080", "Origin: https://127.0.0.1:8080\r\n", true},
    {"LOCALHOST:8080", "Origin: http://localhost:8080\r\n", true}, /* a host name is in any case */
    {"127.0.0.1:8080", "Origin: http://localhost:3000\r\n", true}, /* LIMITS.origin */
    {"127.0.0.1:8080", "Origin: http://localhost:3001\r\n", false},
    {"127.0.0.1:8080", "Origin: http://127.0.0.1:8081\r\n", false},
    {"127.0.0.1:8080", "Origin: http://127.0.0.1:8080.evil.example\r\n", false},
    {"127.0.0.1:8080", "Origin: ws://127.0.0.1:8080\r\n", false}, /* a page is http:// or https:// */
    {"127.0.0.1:8080", "Origin: null\r\n", false},
};

START_TEST(test_ws_only_the_pages_own_origin_or_none_may_upgrade)
{
    char request[512];
    snprintf(request, sizeof request,
             "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             ORIGINS[_i].host, ORIGINS[_i].origin_line);
    struct ws *ws = ws_new(&LIMITS);
    ck_assert_int_eq(ws_feed(ws, request, strlen(request)), 0);
    enum ws_event event = ws_next(ws);
    const char *out = take_output(ws);
    ck_assert_msg(event == (ORIGINS[_i].allowed ? WS_OPEN : WS_ERROR),
                  "Host %s, %s%s: expected %s, got \"%.40s\"", ORIGINS[_i].host, ORIGINS[_i].origin_line,
                  ORIGINS[_i].origin_line[0] ? "" : "(no Origin)", ORIGINS[_i].allowed ? "101" : "403", out);
    if (!ORIGINS[_i].allowed)
        ck_assert_msg(strncmp(out, "HTTP/1.1 403 ", 13) == 0, "expected a 403, got \"%.40s\"", out);
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_a_nul_byte_in_the_head_gets_400)
{
    static const char request[] = "GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n";
    struct ws *ws = ws_new(&LIMITS);
    ck_assert_int_eq(ws_feed(ws, request, sizeof request - 1), 0);
    expect_event(ws, WS_ERROR);
    const char *out = take_output(ws);
    ck_assert_msg(strncmp(out, "HTTP/1.1 400 ", 13) == 0, "a head with a NUL byte: got \"%.40s\"", out);
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_a_path_ends_at_its_query_or_its_fragment)
{
    static const char *const targets[] = {"/app.js?v=3", "/app.js#top", "/app.js?a#b", "/app.js"};
    for (int i = 0; i < 4; i++) {
        char request[128];
        snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", targets[i]);
        struct ws *ws = ws_new(&LIMITS);
        ck_assert_int_eq(ws_feed(ws, request, strlen(request)), 0);
        ck_assert_msg(ws_next(ws) == WS_REQUEST, "GET %s was not a page request (%s)", targets[i],
                      ws_error(ws));
        ck_assert_msg(strcmp(ws_path(ws), "/app.js") == 0, "GET %s: the path is \"%s\", not \"/app.js\"",
                      targets[i], ws_path(ws));
        ws_free(ws);
    }
}
END_TEST

/* A request whose head, without its blank line, is exactly len bytes. */
static size_t head_of(char *request, size_t cap, size_t len)
{
    static const char start[] = "GET / HTTP/1.1\r\nHost: x\r\nX-Fill: ";
    size_t fill = len - (sizeof start - 1);
    ck_assert_uint_lt(len + 4, cap);
    memcpy(request, start, sizeof start - 1);
    memset(request + sizeof start - 1, 'a', fill);
    memcpy(request + len, "\r\n\r\n", 4);
    return len + 4;
}

START_TEST(test_ws_a_head_of_max_head_bytes_is_read_and_one_byte_more_is_431)
{
    static char request[8192];
    for (size_t len = LIMITS.max_head - 1; len <= LIMITS.max_head + 3; len++) {
        size_t n = head_of(request, sizeof request, len);
        struct ws *ws = ws_new(&LIMITS);
        ck_assert_int_eq(ws_feed(ws, request, n), 0);
        enum ws_event event = ws_next(ws);
        const char *out = take_output(ws);
        if (len <= LIMITS.max_head)
            ck_assert_msg(event == WS_REQUEST,
                          "a head of %zu bytes (max_head %zu) must be read: got \"%.40s\"", len,
                          LIMITS.max_head, out);
        else
            ck_assert_msg(event == WS_ERROR && strncmp(out, "HTTP/1.1 431 ", 13) == 0,
                          "a head of %zu bytes (max_head %zu) must get 431: got \"%.40s\"", len,
                          LIMITS.max_head, out);
        ws_free(ws);
    }
}
END_TEST

START_TEST(test_ws_a_head_that_never_ends_is_refused_at_the_limit)
{
    struct ws *ws = ws_new(&LIMITS);
    const char *start = "GET / HTTP/1.1\r\nHost: x\r\nX-Long: ";
    ck_assert_int_eq(ws_feed(ws, start, strlen(start)), 0);
    expect_event(ws, WS_MORE);
    char filler[1024];
    memset(filler, 'a', sizeof filler);
    enum ws_event event = WS_MORE;
    for (int i = 0; i < 8 && event == WS_MORE; i++) {
        ck_assert_int_eq(ws_feed(ws, filler, sizeof filler), 0);
        event = ws_next(ws);
    }
    ck_assert_int_eq(event, WS_ERROR);
    ck_assert_msg(strncmp(take_output(ws), "HTTP/1.1 431 ", 13) == 0, "expected a 431");
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_a_text_frame_fed_one_byte_at_a_time_is_one_message)
{
    struct ws *ws = opened();
    unsigned char frame[64];
    size_t n = client_frame(frame, true, 1, "PING", 4);
    for (size_t i = 0; i < n; i++) {
        feed(ws, frame + i, 1);
        enum ws_event event = ws_next(ws);
        ck_assert_msg(event == (i + 1 < n ? WS_MORE : WS_TEXT), "after byte %zu of %zu: event %d", i + 1, n,
                      event);
    }
    size_t len;
    const char *text = ws_message(ws, &len);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(text, "PING", 4);
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_many_frames_in_one_feed_come_out_one_message_at_a_time)
{
    struct ws *ws = opened();
    unsigned char frames[256];
    size_t n = 0;
    n += client_frame(frames + n, true, 1, "one", 3);
    n += client_frame(frames + n, true, 9, "hb", 2); /* a ping between them */
    n += client_frame(frames + n, true, 2, "\x00\x01", 2);
    feed(ws, frames, n);
    size_t len;
    expect_event(ws, WS_TEXT);
    ck_assert_mem_eq(ws_message(ws, &len), "one", 3);
    expect_event(ws, WS_BINARY);
    ck_assert_mem_eq(ws_message(ws, &len), "\x00\x01", 2);
    ck_assert_uint_eq(len, 2);
    expect_event(ws, WS_MORE); /* the ping between them is control()'s: its pong, step 4's */
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_messages_with_16_and_64_bit_lengths_arrive_whole)
{
    static unsigned char payload[70000], frame[70016];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (unsigned char)('a' + i % 26);
    const size_t sizes[] = {125, 126, 300, 65535, 65536}; /* LIMITS.max_message is 65536 */
    for (int i = 0; i < 5; i++) {
        struct ws *ws = opened();
        size_t n = client_frame(frame, true, 2, payload, sizes[i]);
        feed(ws, frame, n);
        enum ws_event event = ws_next(ws);
        ck_assert_msg(event == WS_BINARY, "a message of %zu bytes: event %d (%s)", sizes[i], event,
                      ws_error(ws));
        size_t len;
        const char *message = ws_message(ws, &len);
        ck_assert_msg(len == sizes[i] && memcmp(message, payload, len) == 0,
                      "a message of %zu bytes came out as %zu bytes, or changed", sizes[i], len);
        ws_free(ws);
    }
}
END_TEST

START_TEST(test_ws_fragments_with_a_ping_between_them_make_one_message)
{
    struct ws *ws = opened();
    unsigned char frames[256];
    size_t n = 0;
    n += client_frame(frames + n, false, 1, "Hello, ", 7);
    n += client_frame(frames + n, true, 9, "", 0);
    n += client_frame(frames + n, false, 0, "w\xc3", 2); /* a character cut across two fragments */
    n += client_frame(frames + n, true, 0, "\xb6rld", 4);
    feed(ws, frames, n);
    expect_event(ws, WS_TEXT);
    size_t len;
    const char *text = ws_message(ws, &len);
    ck_assert_uint_eq(len, 13);
    ck_assert_mem_eq(text, "Hello, w\xc3\xb6rld", 13);
    ws_free(ws);
}
END_TEST

/* A frame that breaks a rule, and the close code the RFC gives it. */
struct broken {
    unsigned char bytes[16];
    size_t len;
    int code;
    const char *why;
};

/* Frames that break a rule of framing. */
static const struct broken BROKEN_FRAMES[] = {
    {{0x81, 0x02, 'h', 'i'}, 4, 1002, "not masked"},
    {{0xC1, 0x80, 1, 2, 3, 4}, 6, 1002, "RSV1 set: no extension was agreed"},
    {{0x83, 0x80, 1, 2, 3, 4}, 6, 1002, "opcode 3"},
    {{0x09, 0x80, 1, 2, 3, 4}, 6, 1002, "a ping fragmented"},
    {{0x89, 0xFE, 0x00, 0x7E}, 4, 1002, "a ping of 126 bytes"},
    {{0x80, 0x80, 1, 2, 3, 4}, 6, 1002, "a continuation with no message begun"},
    {{0x81, 0xFE, 0x00, 0x05, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'},
     13,
     1002,
     "a length not in the fewest bytes"},
    {{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, 1002, "a length with its top bit set"},
    {{0x82, 0xFF, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF}, 10, 1009, "2 GiB declared, past the limit"},
    {{0x81, 0x82, 0, 0, 0, 0, 0xC0, 0x80}, 8, 1007, "an overlong NUL in text"},
    {{0x81, 0x83, 0, 0, 0, 0, 0xED, 0xA0, 0x80}, 9, 1007, "a UTF-16 surrogate in text"},
    {{0x81, 0x81, 0, 0, 0, 0, 0xC3}, 7, 1007, "a text message that ends inside a character"},
    {{0xA1, 0x80, 1, 2, 3, 4}, 6, 1002, "RSV2 set"},
    {{0x91, 0x80, 1, 2, 3, 4}, 6, 1002, "RSV3 set"},
    {{0x8B, 0x80, 1, 2, 3, 4}, 6, 1002, "opcode 11"},
    {{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0x05}, 10, 1002, "5 bytes said in a 64-bit length"},
};

/* Close frames that break a rule: their code, or their reason. */
static const struct broken BROKEN_CLOSES[] = {
    {{0x88, 0x81, 0, 0, 0, 0, 0x03}, 7, 1002, "a close of one byte"},
    {{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xEC}, 8, 1002, "close code 1004, reserved"},
    {{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xED}, 8, 1002, "close code 1005, which no peer may send"},
    {{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xEE}, 8, 1002, "close code 1006, which no peer may send"},
    {{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xF7}, 8, 1002, "close code 1015, which no peer may send"},
    {{0x88, 0x82, 0, 0, 0, 0, 0x0B, 0xB7}, 8, 1002, "close code 2999, which no peer may send"},
    {{0x88, 0x82, 0, 0, 0, 0, 0x13, 0x88}, 8, 1002, "close code 5000, past the last"},
    {{0x88, 0x83, 0, 0, 0, 0, 0x03, 0xE8, 0xFF}, 9, 1007, "a close reason that is not UTF-8"},
};

static void check_broken(const struct broken *broken, int i)
{
    struct ws *ws = opened();
    feed(ws, broken->bytes, broken->len);
    enum ws_event event = ws_next(ws);
    ck_assert_msg(event == WS_ERROR, "frame %d (%s): event %d, not WS_ERROR", i, broken->why, event);
    int code = close_code_sent(ws);
    ck_assert_msg(code == broken->code, "frame %d (%s): close code %d, expected %d (%s)", i, broken->why,
                  code, broken->code, ws_error(ws));
    expect_event(ws, WS_ERROR);
    ws_free(ws);
}

START_TEST(test_ws_a_frame_that_breaks_a_rule_fails_with_its_close_code)
{
    check_broken(&BROKEN_FRAMES[_i], _i);
}
END_TEST

START_TEST(test_ws_a_close_frame_that_breaks_a_rule_fails_with_its_close_code)
{
    check_broken(&BROKEN_CLOSES[_i], _i);
}
END_TEST

START_TEST(test_ws_fragments_that_together_pass_max_message_fail_at_the_header_that_passes_it)
{
    static unsigned char payload[40000], frame[40016];
    memset(payload, 'x', sizeof payload);
    struct ws *ws = opened();
    size_t n = client_frame(frame, false, 2, payload, sizeof payload);
    feed(ws, frame, n);
    expect_event(ws, WS_MORE);
    /* A continuation of 30000 bytes: only its header, 70000 in all past max_message (65536). */
    static const unsigned char header[] = {0x80, 0xFE, 0x75, 0x30, 1, 2, 3, 4};
    feed(ws, header, sizeof header);
    enum ws_event event = ws_next(ws);
    ck_assert_msg(event == WS_ERROR,
                  "40000 bytes, then a continuation declaring 30000 more: event %d, not "
                  "WS_ERROR (the limit is the message's, all its fragments)",
                  event);
    ck_assert_int_eq(close_code_sent(ws), 1009);
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_a_ping_is_answered_with_a_pong_of_its_payload)
{
    struct ws *ws = opened();
    unsigned char frame[64];
    size_t n = client_frame(frame, true, 9, "are you there?", 14);
    feed(ws, frame, n);
    expect_event(ws, WS_MORE);
    size_t len;
    const char *out = ws_output(ws, &len);
    ck_assert_msg(len == 16 && memcmp(out,
                                      "\x8a\x0e"
                                      "are you there?",
                                      16) == 0,
                  "expected a pong of 14 bytes carrying the ping's payload, got %zu bytes", len);
    ws_free(ws);
}
END_TEST

/* Feeds frames to an open connection, which must fail with this close code. */
static void check_fails_with(const unsigned char *frames, size_t len, int code)
{
    struct ws *ws = opened();
    feed(ws, frames, len);
    expect_event(ws, WS_ERROR);
    ck_assert_int_eq(close_code_sent(ws), code);
    ws_free(ws);
}

START_TEST(test_ws_invalid_utf8_fails_at_its_first_byte_before_the_message_ends)
{
    unsigned char frame[64];
    size_t n = client_frame(frame, false, 1, "ok \xff", 4); /* 0xFF is never UTF-8, and no FIN yet */
    check_fails_with(frame, n, 1007);
}
END_TEST

START_TEST(test_ws_a_new_message_inside_a_fragmented_one_fails)
{
    unsigned char frames[64];
    size_t n = client_frame(frames, false, 1, "a", 1);
    n += client_frame(frames + n, true, 1, "b", 1);
    check_fails_with(frames, n, 1002);
}
END_TEST

START_TEST(test_ws_a_close_is_answered_with_its_code_and_ends_the_connection)
{
    struct ws *ws = opened();
    unsigned char frame[64];
    size_t n = client_frame(frame, true, 8, "\x0f\xa0going", 7); /* 4000, an application's code */
    feed(ws, frame, n);
    expect_event(ws, WS_CLOSE);
    ck_assert_int_eq(close_code_sent(ws), 4000);
    ck_assert(!ws_finished(ws)); /* not before the answer is sent */
    take_output(ws);
    ck_assert(ws_finished(ws));
    ck_assert_int_eq(ws_send_text(ws, "late", 4), -1);
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_a_close_without_a_code_is_answered_with_1000)
{
    struct ws *ws = opened();
    static const unsigned char empty_close[] = {0x88, 0x80, 1, 2, 3, 4};
    feed(ws, empty_close, sizeof empty_close);
    expect_event(ws, WS_CLOSE);
    ck_assert_msg(close_code_sent(ws) == 1000,
                  "a close with no code is answered with 1000 (1005 means \"no code\" "
                  "and is never sent)");
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_a_close_before_the_upgrade_sends_nothing)
{
    struct ws *ws = ws_new(&LIMITS);
    ws_close(ws, 1001, "stopping");
    size_t len;
    ck_assert_ptr_null(ws_output(ws, &len));
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_a_long_close_reason_is_cut_to_fit_a_control_frame)
{
    char reason[200];
    memset(reason, 'r', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    struct ws *ws = opened();
    ws_close(ws, 1001, reason);
    size_t len;
    const unsigned char *out = (const unsigned char *)ws_output(ws, &len);
    ck_assert_msg(out != NULL && len == 2 + 125 && out[0] == 0x88 && out[1] == 125,
                  "a close frame carries at most 125 bytes (the code's 2 and 123 of reason): %zu bytes", len);
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_after_the_servers_close_data_is_dropped_until_the_peers_close)
{
    struct ws *ws = opened();
    ws_close(ws, 1001, "stopping");
    const char *out = take_output(ws);
    ck_assert_mem_eq(out, "\x88\x0a\x03\xe9stopping", 12);
    ck_assert_msg(!ws_finished(ws), "our close is sent, the peer's has not come: not finished yet");
    expect_event(ws, WS_MORE);
    unsigned char frames[64];
    size_t n = client_frame(frames, true, 1, "PING", 4);
    n += client_frame(frames + n, true, 9, "late", 4); /* no pong after our close */
    n += client_frame(frames + n, true, 8, "\x03\xe8", 2);
    feed(ws, frames, n);
    expect_event(ws, WS_CLOSE);
    size_t len;
    ck_assert_ptr_null(ws_output(ws, &len)); /* one close each way, no more */
    ck_assert(ws_finished(ws));
    ws_free(ws);
}
END_TEST

START_TEST(test_ws_server_frames_give_their_length_in_the_fewest_bytes)
{
    static char text[70000];
    memset(text, 'x', sizeof text);
    const size_t sizes[] = {0, 125, 126, 65535, 65536};
    const unsigned char heads[][10] = {{0x81, 0},
                                       {0x81, 125},
                                       {0x81, 126, 0, 126},
                                       {0x81, 126, 0xFF, 0xFF},
                                       {0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}};
    const size_t head_lens[] = {2, 2, 4, 4, 10};
    for (int i = 0; i < 5; i++) {
        struct ws *ws = opened();
        ck_assert_int_eq(ws_send_text(ws, text, sizes[i]), 0);
        size_t len;
        const char *out = ws_output(ws, &len);
        ck_assert_msg(len == head_lens[i] + sizes[i], "a message of %zu bytes: a frame of %zu", sizes[i],
                      len);
        ck_assert_msg(memcmp(out, heads[i], head_lens[i]) == 0, "a message of %zu bytes: its header differs",
                      sizes[i]);
        ws_free(ws);
    }
}
END_TEST

Suite *make_ws_suite(void)
{
    Suite *suite = suite_create("ws");
    TCase *http = tcase_create("http");
    tcase_add_test(
        http, test_ws_a_page_request_gives_its_path_without_the_query_and_its_response_ends_the_connection);
    tcase_add_loop_test(http, test_ws_a_bad_request_gets_its_status_and_ends_the_connection, 0,
                        (int)(sizeof BAD_REQUESTS / sizeof BAD_REQUESTS[0]));
    tcase_add_test(http, test_ws_a_head_that_never_ends_is_refused_at_the_limit);
    tcase_add_test(http, test_ws_header_names_are_read_in_any_case);
    tcase_add_test(http, test_ws_a_nul_byte_in_the_head_gets_400);
    tcase_add_test(http, test_ws_a_path_ends_at_its_query_or_its_fragment);
    tcase_add_test(http, test_ws_a_head_of_max_head_bytes_is_read_and_one_byte_more_is_431);
    suite_add_tcase(suite, http);
    TCase *handshake = tcase_create("handshake");
    tcase_add_test(handshake, test_ws_upgrade_tokens_are_read_in_any_case_and_in_lists);
    tcase_add_test(handshake, test_ws_upgrade_answers_with_the_accept_of_the_rfcs_own_example);
    tcase_add_loop_test(handshake, test_ws_a_bad_upgrade_gets_its_status_and_ends_the_connection, 0,
                        (int)(sizeof BAD_UPGRADES / sizeof BAD_UPGRADES[0]));
    tcase_add_loop_test(handshake, test_ws_only_the_pages_own_origin_or_none_may_upgrade, 0,
                        (int)(sizeof ORIGINS / sizeof ORIGINS[0]));
    suite_add_tcase(suite, handshake);
    TCase *frames = tcase_create("frames");
    tcase_add_test(frames, test_ws_a_text_frame_fed_one_byte_at_a_time_is_one_message);
    tcase_add_test(frames, test_ws_many_frames_in_one_feed_come_out_one_message_at_a_time);
    tcase_add_test(frames, test_ws_messages_with_16_and_64_bit_lengths_arrive_whole);
    tcase_add_test(frames, test_ws_fragments_with_a_ping_between_them_make_one_message);
    tcase_add_loop_test(frames, test_ws_a_frame_that_breaks_a_rule_fails_with_its_close_code, 0,
                        (int)(sizeof BROKEN_FRAMES / sizeof BROKEN_FRAMES[0]));
    tcase_add_test(frames,
                   test_ws_fragments_that_together_pass_max_message_fail_at_the_header_that_passes_it);
    tcase_add_test(frames, test_ws_invalid_utf8_fails_at_its_first_byte_before_the_message_ends);
    tcase_add_test(frames, test_ws_a_new_message_inside_a_fragmented_one_fails);
    tcase_add_test(frames, test_ws_server_frames_give_their_length_in_the_fewest_bytes);
    suite_add_tcase(suite, frames);
    TCase *control = tcase_create("control");
    tcase_add_test(control, test_ws_a_ping_is_answered_with_a_pong_of_its_payload);
    tcase_add_test(control, test_ws_a_close_is_answered_with_its_code_and_ends_the_connection);
    tcase_add_test(control, test_ws_after_the_servers_close_data_is_dropped_until_the_peers_close);
    tcase_add_loop_test(control, test_ws_a_close_frame_that_breaks_a_rule_fails_with_its_close_code, 0,
                        (int)(sizeof BROKEN_CLOSES / sizeof BROKEN_CLOSES[0]));
    tcase_add_test(control, test_ws_a_close_without_a_code_is_answered_with_1000);
    tcase_add_test(control, test_ws_a_close_before_the_upgrade_sends_nothing);
    tcase_add_test(control, test_ws_a_long_close_reason_is_cut_to_fit_a_control_frame);
    suite_add_tcase(suite, control);
    return suite;
}
