/*
 * net.h - small socket helpers shared by the server and the client.
 *
 * They never exit and never print: each returns an error value and, where
 * there is something to say, leaves the reason in the caller's `err` buffer.
 * Only main() decides whether an error ends the program.
 */
#ifndef NET_H
#define NET_H

#include "platform.h"

#include <stdbool.h>
#include <stddef.h>

/* Room for any "host:port" text these helpers write, IPv6 included. */
#define NET_ADDR_TEXT 80

/* Room for an error message written by these helpers. */
#define NET_ERR_TEXT 256

/*
 * Opens a TCP socket listening on host:port ("0" picks a free port).
 * Returns it, or SOCKET_INVALID with the reason in err.
 */
socket_t net_listen(const char *host, const char *port, char *err, size_t err_len);

/*
 * Accepts a waiting connection and readies it for a conversation of short
 * lines: each reply leaves at once (sock_set_no_delay(); README: "Nagle and
 * delayed ACK"). Writes the peer's "host:port" into peer ("?" if unknown).
 * Returns the socket, or SOCKET_INVALID (sock_last_error() says why).
 */
socket_t net_accept(socket_t listener, char *peer, size_t peer_len);

/* Connects to host:port. Returns the socket, or SOCKET_INVALID with the reason in err. */
socket_t net_connect(const char *host, const char *port, char *err, size_t err_len);

/* Writes "host:port" for the local address of a socket; returns 0, or -1. */
int net_local_address(socket_t sock, char *out, size_t out_len);

/* Writes "host:port" for the remote peer of a connected socket; returns 0, or -1. */
int net_peer_address(socket_t sock, char *out, size_t out_len);

/*
 * How long net_send_all() may wait for room when the peer reads too slowly.
 * Each client keeps one for all its sends; a stop shortens it once, for all
 * of them (net_send_limit_stop()).
 */
struct send_limit {
    int stall_ms;         /* the longest wait without a byte going out (-1: no limit; 0: no wait at all) */
    bool stopping;        /* a stop has come: no wait goes past give_up_at */
    long long give_up_at; /* monotonic_ms() when the last wait ends, once stopping */
};

/* How long after a stop sends may still wait for room, in all: readers get their last replies. */
#define NET_STOP_SEND_WAIT_MS 1000

/* What net_send_all() returns when the stall lasted stall_ms. */
#define NET_SEND_TIMED_OUT (-2)
/* What net_send_all() returns when the stop's give_up_at came first. */
#define NET_SEND_STOPPED (-3)

/*
 * The stop has come: from now on the limit's waits end NET_STOP_SEND_WAIT_MS
 * from now at the latest. Only the first call counts.
 */
void net_send_limit_stop(struct send_limit *limit);

/*
 * Sends all len bytes, going on after partial sends and interruptions. When
 * the send buffer of a non-blocking socket is full, waits for room as the
 * limit allows; a stop that comes meanwhile ends that wait and shortens the
 * limit (net_send_limit_stop()). Returns 0, -1 on a broken connection,
 * NET_SEND_TIMED_OUT or NET_SEND_STOPPED.
 */
int net_send_all(socket_t sock, const void *buf, size_t len, struct send_limit *limit);

/* Receives up to len bytes, retrying interruptions. Returns bytes read, 0 at end of stream, or -1. */
long net_recv(socket_t sock, void *buf, size_t len);

/*
 * Before closing a connection whose peer may still be sending: sends end of
 * stream, then reads and drops what arrives until the peer closes its side,
 * the connection breaks, a stop is requested, or linger_ms pass. The socket
 * must be non-blocking; the caller still closes it.
 */
void net_linger(socket_t sock, int linger_ms);

#endif
