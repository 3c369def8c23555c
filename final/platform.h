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
/* A joinable thread: a HANDLE from _beginthreadex(). */
typedef HANDLE thread_t;
/* A lock between threads: a slim reader/writer lock, used exclusively. */
typedef SRWLOCK mutex_t;
#else
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/types.h>
/* A socket is a file descriptor on POSIX systems. */
typedef int socket_t;
/* The value that no valid socket has. */
#define SOCKET_INVALID (-1)
/* A joinable thread. */
typedef pthread_t thread_t;
/* A lock between threads. */
typedef pthread_mutex_t mutex_t;
#endif

/* Starts the socket library (WSAStartup on Windows); returns 0, or -1. */
int net_startup(void);

/* Releases what net_startup() acquired (WSACleanup on Windows). */
void net_cleanup(void);

/* Closes a socket (close() or closesocket()); returns 0, or -1. */
int sock_close(socket_t sock);

/* The error code of this thread's last failed socket call (errno or WSAGetLastError()). */
int sock_last_error(void);

/* A readable message for a socket error code, written into buf. */
const char *sock_strerror(int code, char *buf, size_t len);

/* True when the error code means "interrupted by a signal, just try again". */
bool sock_error_is_interrupt(int code);

/* True when the error code means "nothing to do yet" (a non-blocking call, or a receive timeout). */
bool sock_error_is_would_block(int code);

/*
 * Sends up to len bytes once; a vanished peer gives an error, never SIGPIPE.
 * It never waits for room on POSIX, nor on Windows once the socket is
 * non-blocking: a full buffer gives "would block". Returns bytes sent or -1.
 */
long sock_send(socket_t sock, const void *buf, size_t len);

/* Receives up to len bytes once; returns bytes received, 0 at end of stream, or -1. */
long sock_recv(socket_t sock, void *buf, size_t len);

/* Lets a restarted server bind its port at once, without letting two live servers share it. */
int sock_set_reuse_address(socket_t sock);

/* Makes calls on the socket return at once instead of waiting (on = true), or wait again. */
int sock_set_nonblocking(socket_t sock, bool on);

/*
 * Readies an accepted socket for sock_recv_wait() and sock_send(): receives
 * wait (in recv() on POSIX, in WSAPoll() on Windows) and sends never do.
 * Returns 0, or -1.
 */
int sock_setup_accepted(socket_t sock);

/* Makes sock_recv_wait() give up after timeout_ms without a byte (-1: never); returns 0, or -1. */
int sock_set_receive_timeout(socket_t sock, int timeout_ms);

/* True when the error code means the process or system ran out of descriptors or memory. */
bool sock_error_is_out_of_resources(int code);

/* True when standard input is an interactive terminal (so a prompt makes sense). */
bool stdin_is_terminal(void);

/* Reads piped standard input byte for byte (Windows would turn "\r\n" into "\n" and stop at 0x1A). */
void stdin_keep_bytes(void);

/* Milliseconds from an arbitrary start; never jumps when the clock is set. */
long long monotonic_ms(void);

/* Writes the local date and time as "YYYY-MM-DD HH:MM:SS" (localtime_r or localtime_s). */
void format_local_time(char *buf, size_t len);

/* Runs fn(arg) on a new thread, which someone must later thread_join(). Returns 0, or -1. */
int thread_start(thread_t *thread, void (*fn)(void *arg), void *arg);

/* Waits for a thread to finish and releases what it held. */
void thread_join(thread_t thread);

/* Prepares, takes, gives back and finally releases a lock. */
void mutex_init(mutex_t *mutex);
void mutex_lock(mutex_t *mutex);
void mutex_unlock(mutex_t *mutex);
void mutex_destroy(mutex_t *mutex);

/* The exit status after a second Ctrl+C: 128 + SIGINT, as shells report it. */
#define EXIT_INTERRUPTED 130

/*
 * Makes Ctrl+C (SIGINT or SIGTERM; on Windows also Ctrl+Break and closing
 * the console) request a stop: from then on stop_requested() is true, and
 * every sock_wait_readable(), and sock_wait_writable() told to watch for it,
 * returns WOKE_STOP. A second Ctrl+C exits at once with EXIT_INTERRUPTED.
 * The handler itself does nothing else: all the real work happens in
 * ordinary threads. Returns 0, or -1.
 */
int stop_handler_install(void);

/* Releases what stop_handler_install() made; call it last, after every thread is joined. */
void stop_handler_remove(void);

/* True once a stop has been requested. */
bool stop_requested(void);

enum wake_reason {
    WOKE_READABLE, /* data, a connection, end of stream or an error waits on the socket */
    WOKE_WRITABLE, /* a send() on the socket can take bytes (or will report the error) */
    WOKE_STOP,     /* a stop was requested (it wins over the socket) */
    WOKE_TIMEOUT,  /* timeout_ms passed first */
    WOKE_ERROR,    /* the wait itself failed; see sock_last_error() */
};

/*
 * Blocks until the socket is readable (for a listener: a connection waits),
 * a stop is requested, or timeout_ms milliseconds pass (-1: no limit).
 */
enum wake_reason sock_wait_readable(socket_t sock, int timeout_ms);

/*
 * The same wait for room to send (WOKE_WRITABLE). With watch_stop a stop
 * ends it (WOKE_STOP); without, it waits for the socket alone, for a caller
 * that has seen the stop and still gives the client a moment to read.
 */
enum wake_reason sock_wait_writable(socket_t sock, int timeout_ms, bool watch_stop);

/* Waits timeout_ms milliseconds unless a stop is requested first (then returns WOKE_STOP at once). */
enum wake_reason wait_for_stop(int timeout_ms);

/*
 * Receives up to len bytes from a socket readied by sock_setup_accepted(),
 * waiting for them at most its receive timeout, and retrying interruptions.
 * At a stop it returns what had already arrived, then 0: on Linux once
 * another thread has called sock_stop_receiving(sock), on Windows at once.
 * (The BSDs drop unread bytes at shutdown(SHUT_RD); docs/posix-vs-winsock.md.)
 * Returns bytes received, 0 at end of stream or at a stop, or -1 (when the
 * timeout passed first, sock_last_error() says "would block").
 */
long sock_recv_wait(socket_t sock, void *buf, size_t len);

/*
 * At a stop, makes sock_recv_wait() on this socket return 0 once it has read
 * what arrived (shutdown(SHUT_RD) on POSIX; nothing to do on Windows, where
 * the wake socket does it). Call it from another thread, only while the
 * socket is still open.
 */
void sock_stop_receiving(socket_t sock);

/* Sends end of stream after the bytes already sent; the socket still receives (SHUT_WR, SD_SEND). */
void sock_stop_sending(socket_t sock);

#endif
