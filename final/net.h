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

/* Connects to host:port. Returns the socket, or SOCKET_INVALID with the reason in err. */
socket_t net_connect(const char *host, const char *port, char *err, size_t err_len);

/* Writes "host:port" for the local address of a socket; returns 0, or -1. */
int net_local_address(socket_t sock, char *out, size_t out_len);

/* Writes "host:port" for the remote peer of a connected socket; returns 0, or -1. */
int net_peer_address(socket_t sock, char *out, size_t out_len);

/* What net_send_all() returns when the socket's send buffer had no room for wait_ms. */
#define NET_SEND_TIMED_OUT (-2)
/* What net_send_all() returns when a stop is NET_STOP_SEND_WAIT_MS old and there is still no room. */
#define NET_SEND_STOPPED (-3)

/* How long after a stop sends may still wait for room, in all: readers get their last replies. */
#define NET_STOP_SEND_WAIT_MS 1000

/*
 * Sends all len bytes, going on after partial sends and interruptions. When
 * the send buffer is full (sock_send() never waits), waits up to wait_ms for
 * room each time (0: not at all, -1: for ever), and once a stop is
 * requested, no later than NET_STOP_SEND_WAIT_MS after the first send that
 * saw it. Returns 0, -1 on a broken connection, NET_SEND_TIMED_OUT or
 * NET_SEND_STOPPED.
 */
int net_send_all(socket_t sock, const void *buf, size_t len, int wait_ms);

/* Receives up to len bytes, retrying interruptions. Returns bytes read, 0 at end of stream, or -1. */
long net_recv(socket_t sock, void *buf, size_t len);

/*
 * Before closing a connection whose peer may still be sending: sends end of
 * stream, then reads and drops what arrives until the peer closes its side,
 * the connection breaks, a stop is requested, or linger_ms pass. The socket
 * must be readied by sock_setup_accepted(); this changes its receive
 * timeout, and the caller still closes it.
 */
void net_linger(socket_t sock, int linger_ms);

#endif
