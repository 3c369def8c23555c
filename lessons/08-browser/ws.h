/*
 * ws.h - one connection of the web listener: an HTTP/1.1 request, and
 * after its upgrade the WebSocket protocol (RFC 6455), without any I/O.
 *
 * As the session and the TLS object are, it is fed the bytes the socket
 * received (ws_feed()) and says what they hold, one event at a time
 * (ws_next()): a page asked for, an upgrade accepted, a whole message, the
 * peer's close, or a protocol error. What the server answers (an HTTP
 * response, frames, a pong, a close frame) goes into its output, which
 * the driver sends (ws_output(), ws_sent()). The driver decides what a
 * page is and what a message means; this module knows only the protocol.
 *
 * What RFC 6455 asks of a server, and this module does:
 *   - the handshake: GET with Host, "Upgrade: websocket", "Connection:
 *     Upgrade", Sec-WebSocket-Version 13 (otherwise 426, saying 13) and a
 *     Sec-WebSocket-Key of 16 bytes in base64 (otherwise 400); a browser's
 *     Origin other than the page's own gets 403. No extension and no
 *     subprotocol is accepted (browsers offer permessage-deflate: it is
 *     simply not taken);
 *   - frames from a client are masked; RSV bits are 0 (no extension);
 *     opcodes are 0, 1, 2, 8, 9, 10; control frames are whole (FIN) and at
 *     most 125 bytes; lengths use the fewest bytes;
 *   - fragments: a message is its first frame and its continuations,
 *     with control frames allowed between them; text must be UTF-8,
 *     checked as it comes, across fragments;
 *   - a ping is answered with a pong of the same payload; a close is
 *     answered with a close (its code, or 1000), and then the server
 *     closes the TCP connection; a close's code must be one a peer may
 *     send, and its reason UTF-8;
 *   - an error fails the connection: a close frame with 1002 (protocol),
 *     1007 (not UTF-8) or 1009 (too big) is queued, and nothing more is
 *     read.
 */
#ifndef WS_H
#define WS_H

#include <stdbool.h>
#include <stddef.h>

/* Where the WebSocket opens: an upgrade asked for on any other path is a 404. */
#define WS_PATH "/ws"

struct ws_limits {
    size_t max_head;    /* bytes of an HTTP request's line and headers (431 past it) */
    size_t max_message; /* bytes of one message, all its fragments together (1009 past it) */
    const char *origin; /* an Origin allowed besides the page's own ("http://localhost:3000"), or NULL */
};

enum ws_event {
    WS_MORE,    /* nothing whole yet: feed more */
    WS_REQUEST, /* an HTTP GET that is not an upgrade: ws_path() names it; answer with ws_respond() */
    WS_OPEN,    /* the upgrade was accepted: its 101 is in the output */
    WS_TEXT,    /* a whole text message (UTF-8): ws_message() */
    WS_BINARY,  /* a whole binary message: ws_message() */
    WS_CLOSE,   /* the peer closed: the answering close is in the output; close the socket once it is sent */
    WS_ERROR,   /* the peer broke the protocol: the HTTP error or the close frame is in the output; ws_error()
                 */
};

struct ws;

/* A connection that waits for its HTTP request. Returns it, or NULL when out of memory. */
struct ws *ws_new(const struct ws_limits *limits);
void ws_free(struct ws *ws);

/* What the socket received. Returns 0, or -1 when out of memory (the connection must go). */
int ws_feed(struct ws *ws, const char *bytes, size_t len);

/* The next thing the bytes fed so far hold. After WS_CLOSE or WS_ERROR, always that again. */
enum ws_event ws_next(struct ws *ws);

/* After WS_REQUEST: the path asked for ("/", "/app.js"), without its query. */
const char *ws_path(const struct ws *ws);

/* After WS_TEXT or WS_BINARY: the message, valid until the next ws_next() or ws_feed(). */
const char *ws_message(const struct ws *ws, size_t *len);

/* After WS_ERROR: why, in words ("a client frame was not masked"). */
const char *ws_error(const struct ws *ws);

/*
 * After WS_REQUEST: the HTTP response (status 200, 404, ...), with its
 * Content-Type and body, and "Connection: close": one page a connection,
 * so that a browser keeps no idle connection open to the server (each
 * would count as a client), and ws_next() says WS_CLOSE. A page is a few
 * small files: a new connection for each costs nothing that shows.
 * Returns 0, or -1 when out of memory.
 */
int ws_respond(struct ws *ws, int status, const char *content_type, const char *body, size_t len);

/* After WS_OPEN: a message to the peer, as one frame. Returns 0, or -1 when out of memory or not open. */
int ws_send_text(struct ws *ws, const char *text, size_t len);
int ws_send_binary(struct ws *ws, const char *bytes, size_t len);

/* Whether messages may be sent: upgraded, and no close sent or received, no error. */
bool ws_open(const struct ws *ws);

/* Whether bytes fed wait unread, that ws_next() may turn into an event without another feed. */
bool ws_has_input(const struct ws *ws);

/*
 * Whether a message is begun and not finished: a frame cut short, or a
 * fragmented message still open. Asked after ws_next() said WS_MORE, it
 * is a client that is in the middle of saying something, and the driver
 * gives it a deadline, as to an unfinished request.
 */
bool ws_mid_message(const struct ws *ws);

/* Starts the close handshake (code 1001, going away, at a stop): a close frame is queued. */
void ws_close(struct ws *ws, int code, const char *reason);

/* The bytes to send, and how many were sent. */
const char *ws_output(const struct ws *ws, size_t *len);
void ws_sent(struct ws *ws, size_t len);

/* Whether the connection is done: its close went out (after the peer's or its own), or an error's answer. */
bool ws_finished(const struct ws *ws);

#endif
