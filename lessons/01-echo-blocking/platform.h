/*
 * platform.h - the portability contract: POSIX sockets or Winsock.
 *
 * This is the only file of the stage that asks "are we on Windows?". Every
 * other file includes it and calls the functions below; platform_posix.c and
 * platform_win32.c implement them side by side, and the Makefile compiles
 * exactly one of the two. See docs/posix-vs-winsock.md for each difference.
 */
#ifndef PLATFORM_H
#define PLATFORM_H

#include <stdbool.h>
#include <stddef.h>

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
/* A socket is a SOCKET handle (an unsigned integer) on Windows. */
typedef SOCKET socket_t;
/* The value that no valid socket has. */
#define SOCKET_INVALID INVALID_SOCKET
#else
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/types.h>
/* A socket is a file descriptor on POSIX systems. */
typedef int socket_t;
/* The value that no valid socket has. */
#define SOCKET_INVALID (-1)
#endif

/* Starts the socket library (WSAStartup on Windows); returns 0, or -1. */
int net_startup(void);

/* Releases what net_startup() acquired (WSACleanup on Windows). */
void net_cleanup(void);

/*
 * Opens a socket (socket()) that programs this one may start do not
 * inherit: close-on-exec on POSIX, not inheritable on Windows. Returns it,
 * or SOCKET_INVALID.
 */
socket_t sock_open(int family, int type, int protocol);

/* Accepts a waiting connection (accept()) as a socket that started programs do not inherit; or
 * SOCKET_INVALID. */
socket_t sock_accept(socket_t listener);

/* Closes a socket (close() or closesocket()); returns 0, or -1. */
int sock_close(socket_t sock);

/* The error code of this thread's last failed socket call (errno or WSAGetLastError()). */
int sock_last_error(void);

/* A readable message for a socket error code, written into buf. */
const char *sock_strerror(int code, char *buf, size_t len);

/* True when the error code means "interrupted by a signal, just try again". */
bool sock_error_is_interrupt(int code);

/* Sends up to len bytes once; a vanished peer gives an error, never SIGPIPE. Returns bytes sent or -1. */
long sock_send(socket_t sock, const void *buf, size_t len);

/* Receives up to len bytes once; returns bytes received, 0 at end of stream, or -1. */
long sock_recv(socket_t sock, void *buf, size_t len);

/* Lets a restarted server bind its port at once, without letting two live servers share it. */
int sock_set_reuse_address(socket_t sock);

/*
 * Sends each small write at once (TCP_NODELAY) instead of holding it until
 * the peer has acknowledged the bytes before it (Nagle's algorithm; see
 * "Nagle and delayed ACK" in the README). Returns 0, or -1.
 */
int sock_set_no_delay(socket_t sock);

/* True when standard input is an interactive terminal (so a prompt makes sense). */
bool stdin_is_terminal(void);

/* Reads piped standard input byte for byte (Windows would turn "\r\n" into "\n" and stop at 0x1A). */
void stdin_keep_bytes(void);

#endif
