/*
 * ws.c - see ws.h. The bytes fed wait in `in` from `start` on; ws_next()
 * reads one thing from there (a request's head, or a frame), and moves
 * `start` past it. A message's fragments are unmasked into `msg` as they
 * come, its text checked as UTF-8 byte by byte, so a message that breaks
 * the rules fails at its first wrong byte, and one too big at its first
 * frame header, before its payload is waited for.
 */
#include "ws.h"

#include "outbuf.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 6455, 1.3: what the server appends to the client's key before hashing it. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { OP_CONTINUATION = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* Close codes (RFC 6455, 7.4.1). */
enum { CLOSE_NORMAL = 1000, CLOSE_PROTOCOL = 1002, CLOSE_NOT_UTF8 = 1007, CLOSE_TOO_BIG = 1009 };

/* Where a UTF-8 check stands between two bytes: how many more of a character, and the range of the next. */
struct utf8 {
    int need;
    unsigned char lo, hi;
};

struct ws {
    struct ws_limits limits;
    bool upgraded;          /* the 101 went out: frames from now on */
    enum ws_event final;    /* WS_CLOSE or WS_ERROR once reached, returned ever after; WS_MORE before */
    bool close_sent;        /* our close frame is in the output */
    char *in;               /* bytes fed, from malloc() */
    size_t start, len, cap; /* the first not read yet, how many are held, allocated */
    char *msg;              /* the message being put together (unmasked), from malloc() */
    size_t msg_len, msg_cap;
    int msg_opcode;   /* OP_TEXT or OP_BINARY while a message is open, 0 otherwise */
    bool msg_done;    /* msg holds a whole message, handed out by the last ws_next() */
    struct utf8 utf8; /* the check of the open text message */
    struct outbuf out;
    char path[256];
    char error[160];
};

/* --- UTF-8, byte by byte ----------------------------------------------------------------------------------
 */

/* Takes one byte; returns false when it cannot come here (overlong forms, surrogates, past U+10FFFF). */
static bool utf8_step(struct utf8 *u, unsigned char c)
{
    if (u->need == 0) {
        if (c < 0x80)
            return true;
        u->lo = 0x80;
        u->hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            u->need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            u->need = 2;
            if (c == 0xE0)
                u->lo = 0xA0; /* shorter forms of the same character are refused */
            if (c == 0xED)
                u->hi = 0x9F; /* UTF-16 surrogates are no characters */
        } else if (c >= 0xF0 && c <= 0xF4) {
            u->need = 3;
            if (c == 0xF0)
                u->lo = 0x90;
            if (c == 0xF4)
                u->hi = 0x8F; /* nothing past U+10FFFF */
        } else {
            return false;
        }
        return true;
    }
    if (c < u->lo || c > u->hi)
        return false;
    u->need--;
    u->lo = 0x80;
    u->hi = 0xBF;
    return true;
}

static bool utf8_valid(const char *bytes, size_t len)
{
    struct utf8 u = {0, 0x80, 0xBF};
    for (size_t i = 0; i < len; i++)
        if (!utf8_step(&u, (unsigned char)bytes[i]))
            return false;
    return u.need == 0;
}

/* --- the output -------------------------------------------------------------------------------------------
 */

/* A frame from the server: whole (FIN), never masked, its length in the fewest bytes. */
static int queue_frame(struct ws *ws, int opcode, const char *payload, size_t len)
{
    unsigned char head[10];
    size_t n = 0;
    head[n++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        head[n++] = (unsigned char)len;
    } else if (len <= 0xFFFF) {
        head[n++] = 126;
        head[n++] = (unsigned char)(len >> 8);
        head[n++] = (unsigned char)len;
    } else {
        head[n++] = 127;
        for (int shift = 56; shift >= 0; shift -= 8)
            head[n++] = (unsigned char)((uint64_t)len >> shift);
    }
    if (outbuf_append(&ws->out, head, n) != 0 || outbuf_append(&ws->out, payload, len) != 0)
        return -1;
    return 0;
}

static void queue_close(struct ws *ws, int code, const char *reason)
{
    if (ws->close_sent)
        return;
    char payload[125];
    size_t reason_len = strlen(reason);
    if (reason_len > sizeof payload - 2)
        reason_len = sizeof payload - 2;
    payload[0] = (char)(code >> 8);
    payload[1] = (char)code;
    memcpy(payload + 2, reason, reason_len);
    queue_frame(ws, OP_CLOSE, payload, 2 + reason_len); /* out of memory: outbuf_failed() says so */
    ws->close_sent = true;
}

/* Fails the connection with a close frame (RFC 6455, 7.1.7): nothing more is read. */
static enum ws_event fail(struct ws *ws, int code, const char *why)
{
    snprintf(ws->error, sizeof ws->error, "%s", why);
    queue_close(ws, code, "");
    ws->final = WS_ERROR;
    return WS_ERROR;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

/* An HTTP error, then the connection ends: what follows the request cannot be trusted to be read right. */
static enum ws_event fail_http(struct ws *ws, int status, const char *why)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n%s\r\n",
                     status, reason_phrase(status), strlen(why) + 1,
                     status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "");
    if (outbuf_append(&ws->out, head, (size_t)n) == 0 && outbuf_append(&ws->out, why, strlen(why)) == 0)
        outbuf_append(&ws->out, "\n", 1);
    snprintf(ws->error, sizeof ws->error, "%d %s: %s", status, reason_phrase(status), why);
    ws->final = WS_ERROR;
    return WS_ERROR;
}

/* --- the HTTP request -------------------------------------------------------------------------------------
 */

/* What a request says that the upgrade needs. Each points into the head, and is NUL-terminated there. */
struct head {
    char *method, *target, *version;
    char *host, *upgrade, *connection, *ws_version, *ws_key, *origin;
    int keys; /* Sec-WebSocket-Key lines: exactly one is allowed */
};

/* Whether a comma-separated list of tokens (a Connection or Upgrade header) holds token, in any case. */
static bool has_token(const char *list, const char *token)
{
    size_t len = strlen(token);
    for (const char *p = list; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end != '\0' && *end != ',' && *end != ' ' && *end != '\t')
            end++;
        if ((size_t)(end - p) == len && strncasecmp(p, token, len) == 0)
            return true;
        p = end;
    }
    return false;
}

/* Splits the head (NUL-terminated, its last CRLF gone) into its request line and the headers needed. */
static const char *parse_head(char *text, struct head *h)
{
    memset(h, 0, sizeof *h);
    char *line = text, *next = strstr(line, "\r\n");
    if (next != NULL)
        *next = '\0';
    h->method = line;
    h->target = strchr(line, ' ');
    if (h->target == NULL)
        return "the request line is not METHOD TARGET VERSION";
    *h->target++ = '\0';
    h->version = strchr(h->target, ' ');
    if (h->version == NULL)
        return "the request line is not METHOD TARGET VERSION";
    *h->version++ = '\0';
    while (next != NULL) {
        line = next + 2;
        next = strstr(line, "\r\n");
        if (next != NULL)
            *next = '\0';
        if (*line == ' ' || *line == '\t')
            return "a header is folded over two lines";
        char *colon = strchr(line, ':');
        if (colon == NULL || colon == line)
            return "a header line has no name and colon";
        *colon = '\0';
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        for (char *end = value + strlen(value); end > value && (end[-1] == ' ' || end[-1] == '\t');)
            *--end = '\0';
        if (strcasecmp(line, "Host") == 0)
            h->host = value;
        else if (strcasecmp(line, "Upgrade") == 0)
            h->upgrade = value;
        else if (strcasecmp(line, "Connection") == 0)
            h->connection = value;
        else if (strcasecmp(line, "Sec-WebSocket-Version") == 0)
            h->ws_version = value;
        else if (strcasecmp(line, "Sec-WebSocket-Key") == 0)
            h->ws_key = value, h->keys++;
        else if (strcasecmp(line, "Origin") == 0)
            h->origin = value;
    }
    return NULL;
}

/* Whether key is 16 bytes in base64 (24 characters, the last two "="). */
static bool key_is_valid(const char *key)
{
    if (strlen(key) != 24 || strcmp(key + 22, "==") != 0)
        return false;
    for (int i = 0; i < 22; i++)
        if (!isalnum((unsigned char)key[i]) && key[i] != '+' && key[i] != '/')
            return false;
    unsigned char raw[18];
    return EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18; /* 16 bytes and the padding's 2 */
}

/* Sec-WebSocket-Accept: base64(SHA-1(key + GUID)). */
static int accept_value(const char *key, char out[29])
{
    char joined[24 + sizeof WS_GUID];
    snprintf(joined, sizeof joined, "%s%s", key, WS_GUID);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(joined, strlen(joined), digest, &digest_len, EVP_sha1(), NULL) != 1 || digest_len != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, digest, 20); /* 28 characters and a NUL */
    return 0;
}

/*
 * A browser says in Origin which page opened the WebSocket, and any page
 * on the web may try to open one to 127.0.0.1: without this check, a
 * site the student visits could send commands to their server with their
 * browser (cross-site WebSocket hijacking). The page's own origin is the
 * scheme and the Host it was loaded from; limits->origin may allow one
 * more. A client that is not a browser sends no Origin, and is let in.
 */
static bool origin_allowed(const struct ws *ws, const char *origin, const char *host)
{
    if (ws->limits.origin != NULL && strcmp(origin, ws->limits.origin) == 0)
        return true;
    const char *after = strncmp(origin, "http://", 7) == 0    ? origin + 7
                        : strncmp(origin, "https://", 8) == 0 ? origin + 8
                                                              : NULL;
    return after != NULL && strcasecmp(after, host) == 0;
}

static enum ws_event upgrade(struct ws *ws, const struct head *h)
{
    if (h->connection == NULL || !has_token(h->connection, "upgrade"))
        return fail_http(ws, 400, "an upgrade needs \"Connection: Upgrade\"");
    if (h->ws_version == NULL || strcmp(h->ws_version, "13") != 0)
        return fail_http(ws, 426, "this server speaks WebSocket version 13 only");
    if (h->keys != 1 || !key_is_valid(h->ws_key))
        return fail_http(ws, 400, "Sec-WebSocket-Key must be 16 bytes in base64, given once");
    if (h->origin != NULL && !origin_allowed(ws, h->origin, h->host))
        return fail_http(ws, 403, "a page of another origin may not open this WebSocket");
    char accept[29];
    if (accept_value(h->ws_key, accept) != 0)
        return fail_http(ws, 400, "the handshake's SHA-1 failed");
    char response[160];
    int n = snprintf(response, sizeof response,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    outbuf_append(&ws->out, response, (size_t)n);
    ws->upgraded = true;
    return WS_OPEN;
}

/* One request's head, if whole: a page asked for, an upgrade, or an error. */
static enum ws_event next_request(struct ws *ws)
{
    char *begin = ws->in + ws->start;
    size_t held = ws->len - ws->start;
    char *end = NULL;
    for (size_t i = 0; i + 4 <= held && end == NULL; i++)
        if (memcmp(begin + i, "\r\n\r\n", 4) == 0)
            end = begin + i;
    if (end == NULL)
        /* Up to 3 of the bytes held may be the start of the blank line: the head is at least held - 3. */
        return held > ws->limits.max_head + 3 ? fail_http(ws, 431, "the request's head is too long")
                                              : WS_MORE;
    if ((size_t)(end - begin) > ws->limits.max_head)
        return fail_http(ws, 431, "the request's head is too long");
    if (memchr(begin, '\0', (size_t)(end - begin)) != NULL)
        return fail_http(ws, 400, "the request's head holds a NUL byte");
    *end = '\0'; /* the head is read in place: its bytes are consumed below */
    ws->start += (size_t)(end - begin) + 4;
    struct head h;
    const char *wrong = parse_head(begin, &h);
    if (wrong != NULL)
        return fail_http(ws, 400, wrong);
    if (strcmp(h.version, "HTTP/1.1") != 0)
        return fail_http(ws, 505, "this server speaks HTTP/1.1");
    if (h.host == NULL)
        return fail_http(ws, 400, "an HTTP/1.1 request must say its Host");
    if (strcmp(h.method, "GET") != 0)
        return fail_http(ws, 405, "only GET is served here");
    if (h.target[0] != '/')
        return fail_http(ws, 400, "the target must be a path, starting with /");
    size_t path_len = strcspn(h.target, "?#");
    if (path_len >= sizeof ws->path)
        return fail_http(ws, 404, "no such path");
    memcpy(ws->path, h.target, path_len);
    ws->path[path_len] = '\0';
    if (h.upgrade != NULL && has_token(h.upgrade, "websocket"))
        return strcmp(ws->path, WS_PATH) == 0 ? upgrade(ws, &h)
                                              : fail_http(ws, 404, "WebSockets open at " WS_PATH);
    return WS_REQUEST;
}

/* --- frames -----------------------------------------------------------------------------------------------
 */

static int append_message(struct ws *ws, const unsigned char *bytes, size_t len, const unsigned char mask[4])
{
    if (ws->msg_len + len > ws->msg_cap) {
        size_t cap = ws->msg_cap ? ws->msg_cap : 256;
        while (cap < ws->msg_len + len)
            cap *= 2;
        char *grown = realloc(ws->msg, cap);
        if (grown == NULL)
            return -1;
        ws->msg = grown;
        ws->msg_cap = cap;
    }
    for (size_t i = 0; i < len; i++)
        ws->msg[ws->msg_len + i] = (char)(bytes[i] ^ mask[i % 4]);
    ws->msg_len += len;
    return 0;
}

/* A control frame's payload, unmasked: a ping is answered, a pong dropped, a close answered and the end. */
static enum ws_event control(struct ws *ws, int opcode, const char *payload, size_t len)
{
    if (opcode == OP_PING) {
        if (!ws->close_sent)
            queue_frame(ws, OP_PONG, payload, len);
        return WS_MORE;
    }
    if (opcode == OP_PONG)
        return WS_MORE; /* an answer to nothing we asked, or a heartbeat: either is fine */
    if (len == 1)
        return fail(ws, CLOSE_PROTOCOL, "a close frame of one byte: its code needs two");
    int code = len >= 2 ? ((unsigned char)payload[0] << 8) | (unsigned char)payload[1] : CLOSE_NORMAL;
    bool allowed =
        (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
    if (!allowed)
        return fail(ws, CLOSE_PROTOCOL, "a close code that no peer may send");
    if (len > 2 && !utf8_valid(payload + 2, len - 2))
        return fail(ws, CLOSE_NOT_UTF8, "a close reason that is not UTF-8");
    queue_close(ws, code, ""); /* the same code back (RFC 6455, 5.5.1), unless ours went first */
    ws->final = WS_CLOSE;
    return WS_CLOSE;
}

/* One frame, if whole. */
static enum ws_event next_frame(struct ws *ws)
{
    const unsigned char *f = (const unsigned char *)ws->in + ws->start;
    size_t held = ws->len - ws->start;
    if (held < 2)
        return WS_MORE;
    bool fin = f[0] & 0x80;
    int opcode = f[0] & 0x0F;
    if (f[0] & 0x70)
        return fail(ws, CLOSE_PROTOCOL, "a frame with RSV bits set, and no extension agreed");
    if (!(f[1] & 0x80))
        return fail(ws, CLOSE_PROTOCOL, "a client frame was not masked");
    bool is_control = opcode & 0x08;
    if (opcode > OP_BINARY && !(opcode >= OP_CLOSE && opcode <= OP_PONG))
        return fail(ws, CLOSE_PROTOCOL, "a frame with an unknown opcode");
    size_t head = 2;
    uint64_t len = f[1] & 0x7F;
    if (len == 126) {
        if (held < 4)
            return WS_MORE;
        len = ((uint64_t)f[2] << 8) | f[3];
        head = 4;
        if (len < 126)
            return fail(ws, CLOSE_PROTOCOL, "a frame's length not in the fewest bytes");
    } else if (len == 127) {
        if (held < 10)
            return WS_MORE;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = (len << 8) | f[i];
        head = 10;
        if (len >> 63)
            return fail(ws, CLOSE_PROTOCOL, "a frame's length with its top bit set");
        if (len <= 0xFFFF)
            return fail(ws, CLOSE_PROTOCOL, "a frame's length not in the fewest bytes");
    }
    if (is_control && (!fin || len > 125))
        return fail(ws, CLOSE_PROTOCOL, "a control frame fragmented, or longer than 125 bytes");
    if (!is_control) {
        if (opcode == OP_CONTINUATION && ws->msg_opcode == 0)
            return fail(ws, CLOSE_PROTOCOL, "a continuation frame with no message begun");
        if (opcode != OP_CONTINUATION && ws->msg_opcode != 0)
            return fail(ws, CLOSE_PROTOCOL, "a new message before the last one ended");
        if (len > ws->limits.max_message - ws->msg_len)
            return fail(ws, CLOSE_TOO_BIG, "a message longer than the server takes");
    }
    if (held < head + 4 + len)
        return WS_MORE;
    const unsigned char *mask = f + head, *payload = f + head + 4;
    ws->start += head + 4 + (size_t)len;
    if (is_control) {
        char plain[125];
        for (size_t i = 0; i < len; i++)
            plain[i] = (char)(payload[i] ^ mask[i % 4]);
        return control(ws, opcode, plain, (size_t)len);
    }
    if (ws->close_sent)
        return WS_MORE; /* after our close, data is read and dropped until the peer's close */
    if (opcode != OP_CONTINUATION) {
        ws->msg_opcode = opcode;
        ws->utf8 = (struct utf8){0, 0x80, 0xBF};
    }
    size_t before = ws->msg_len;
    if (append_message(ws, payload, (size_t)len, mask) != 0)
        return fail(ws, CLOSE_TOO_BIG, "out of memory for a message");
    if (ws->msg_opcode == OP_TEXT)
        for (size_t i = before; i < ws->msg_len; i++)
            if (!utf8_step(&ws->utf8, (unsigned char)ws->msg[i]))
                return fail(ws, CLOSE_NOT_UTF8, "a text message that is not UTF-8");
    if (!fin)
        return WS_MORE;
    if (ws->msg_opcode == OP_TEXT && ws->utf8.need != 0)
        return fail(ws, CLOSE_NOT_UTF8, "a text message that ends inside a character");
    enum ws_event event = ws->msg_opcode == OP_TEXT ? WS_TEXT : WS_BINARY;
    ws->msg_opcode = 0;
    ws->msg_done = true;
    return event;
}

/* --- the interface ----------------------------------------------------------------------------------------
 */

struct ws *ws_new(const struct ws_limits *limits)
{
    struct ws *ws = calloc(1, sizeof *ws);
    if (ws == NULL)
        return NULL;
    ws->limits = *limits;
    ws->out = (struct outbuf)OUTBUF_EMPTY;
    return ws;
}

void ws_free(struct ws *ws)
{
    if (ws == NULL)
        return;
    free(ws->in);
    free(ws->msg);
    outbuf_release(&ws->out);
    free(ws);
}

int ws_feed(struct ws *ws, const char *bytes, size_t len)
{
    if (ws->final != WS_MORE)
        return 0; /* nothing more is read after the end */
    if (ws->start > 0 && ws->start == ws->len)
        ws->start = ws->len = 0;
    if (ws->len + len > ws->cap) {
        if (ws->start > 0) { /* what was read goes first */
            memmove(ws->in, ws->in + ws->start, ws->len - ws->start);
            ws->len -= ws->start;
            ws->start = 0;
        }
        size_t cap = ws->cap ? ws->cap : 1024;
        while (cap < ws->len + len)
            cap *= 2;
        char *grown = realloc(ws->in, cap);
        if (grown == NULL)
            return -1;
        ws->in = grown;
        ws->cap = cap;
    }
    memcpy(ws->in + ws->len, bytes, len);
    ws->len += len;
    return 0;
}

enum ws_event ws_next(struct ws *ws)
{
    if (ws->final != WS_MORE)
        return ws->final;
    if (ws->msg_done) {
        ws->msg_len = 0;
        ws->msg_done = false;
    }
    if (ws->start == ws->len)
        return WS_MORE; /* nothing held (ws->in may be NULL yet) */
    if (!ws->upgraded)
        return next_request(ws);
    for (;;) { /* past control frames and fragments, to something to say or the end of what is held */
        size_t before = ws->start;
        enum ws_event event = next_frame(ws);
        if (event != WS_MORE || ws->start == before)
            return event;
    }
}

const char *ws_path(const struct ws *ws)
{
    return ws->path;
}

const char *ws_message(const struct ws *ws, size_t *len)
{
    *len = ws->msg_done ? ws->msg_len : 0;
    return ws->msg;
}

const char *ws_error(const struct ws *ws)
{
    return ws->error;
}

int ws_respond(struct ws *ws, int status, const char *content_type, const char *body, size_t len)
{
    char head[256];
    int n =
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "X-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
                 status, reason_phrase(status), content_type, len);
    ws->final = WS_CLOSE; /* one page a connection: see ws.h */
    if (outbuf_append(&ws->out, head, (size_t)n) != 0 || outbuf_append(&ws->out, body, len) != 0)
        return -1;
    return 0;
}

int ws_send_text(struct ws *ws, const char *text, size_t len)
{
    if (!ws_open(ws))
        return -1;
    return queue_frame(ws, OP_TEXT, text, len);
}

int ws_send_binary(struct ws *ws, const char *bytes, size_t len)
{
    if (!ws_open(ws))
        return -1;
    return queue_frame(ws, OP_BINARY, bytes, len);
}

bool ws_open(const struct ws *ws)
{
    return ws->upgraded && !ws->close_sent && ws->final == WS_MORE;
}

bool ws_has_input(const struct ws *ws)
{
    return ws->final == WS_MORE && ws->start < ws->len;
}

bool ws_mid_message(const struct ws *ws)
{
    return ws->upgraded && (ws_has_input(ws) || (ws->final == WS_MORE && ws->msg_opcode != 0));
}

void ws_close(struct ws *ws, int code, const char *reason)
{
    if (ws->upgraded)
        queue_close(ws, code, reason);
}

const char *ws_output(const struct ws *ws, size_t *len)
{
    *len = outbuf_pending(&ws->out);
    return *len > 0 ? outbuf_data(&ws->out) : NULL;
}

void ws_sent(struct ws *ws, size_t len)
{
    outbuf_consume(&ws->out, len);
}

bool ws_finished(const struct ws *ws)
{
    return ws->final != WS_MORE && outbuf_pending(&ws->out) == 0;
}
