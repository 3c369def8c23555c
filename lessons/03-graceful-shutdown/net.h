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

/* Sends all len bytes, going on after partial sends and interruptions. Returns 0, or -1. */
int net_send_all(socket_t sock, const void *buf, size_t len);

/* Receives up to len bytes, retrying interruptions. Returns bytes read, 0 at end of stream, or -1. */
long net_recv(socket_t sock, void *buf, size_t len);

#endif
