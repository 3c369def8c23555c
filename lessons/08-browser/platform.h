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
/* A condition variable, used with an SRW lock. */
typedef CONDITION_VARIABLE cond_t;
/* A wake-up call (see waker_open()): a UDP socket on 127.0.0.1 that sends to itself. */
struct waker {
    SOCKET sock;
};
/* A waker that is not open: waker_close() leaves it alone. */
#define WAKER_CLOSED ((struct waker){INVALID_SOCKET})
#else
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
/* A condition variable, whose timed waits use the monotonic clock. */
typedef pthread_cond_t cond_t;
/* A wake-up call (see waker_open()): a pipe. */
struct waker {
    int read_end;  /* what waiting threads poll */
    int write_end; /* what waker_raise() writes one byte to */
};
/* A waker that is not open: waker_close() leaves it alone. */
#define WAKER_CLOSED   ((struct waker){-1, -1})
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

/* True when the error code means "a non-blocking call found nothing to do yet". */
bool sock_error_is_would_block(int code);

/*
 * Sends up to len bytes once; a vanished peer gives an error, never SIGPIPE.
 * On a non-blocking socket a full buffer gives "would block". Returns bytes
 * sent or -1.
 */
long sock_send(socket_t sock, const void *buf, size_t len);

/* Receives up to len bytes once; returns bytes received, 0 at end of stream, or -1. */
long sock_recv(socket_t sock, void *buf, size_t len);

/*
 * The bytes the socket has taken to send that the peer has not yet
 * acknowledged, sent or still queued. The count shrinks as the peer takes
 * them, even while the kernel reports no room to send. Returns 0 with the
 * count in *bytes, or -1 where the system cannot tell (Windows).
 */
int sock_unacked_bytes(socket_t sock, size_t *bytes);

/* Lets a restarted server bind its port at once, without letting two live servers share it. */
int sock_set_reuse_address(socket_t sock);

/* Makes calls on the socket return at once instead of waiting (on = true), or wait again. */
int sock_set_nonblocking(socket_t sock, bool on);

/*
 * Sends each small write at once (TCP_NODELAY) instead of holding it until
 * the peer has acknowledged the bytes before it (Nagle's algorithm; see
 * "Nagle and delayed ACK" in lesson 01's README). Returns 0, or -1.
 */
int sock_set_no_delay(socket_t sock);

/* True when the error code means the process or system ran out of descriptors or memory. */
bool sock_error_is_out_of_resources(int code);

/* True when standard input is an interactive terminal (so a prompt makes sense). */
bool stdin_is_terminal(void);

/*
 * Reads up to len bytes of standard input, byte for byte, with the system's
 * own call, not through stdio: a thread may wait in it while another ends
 * the program. Returns bytes read, 0 at the end of the input (Ctrl+D; on
 * Windows Ctrl+Z at the start of a typed line), or -1.
 */
long stdin_read(void *buf, size_t len);

/*
 * Makes a write to a pipe whose reader has gone (stderr piped into a program
 * that ended) fail with an error instead of ending the process with SIGPIPE.
 * Nothing to do on Windows, which has no SIGPIPE.
 */
void ignore_broken_pipes(void);

/*
 * Writes all len bytes to standard error with the system's own call, not
 * through stdio, waiting as long as it takes. Returns 0, or -1.
 */
int stderr_write_all(const char *buf, size_t len);

/* Milliseconds from an arbitrary start; never jumps when the clock is set. */
long long monotonic_ms(void);

/* Microseconds since 1970-01-01 00:00 UTC: the wall clock, which may jump when it is set (TIME). */
long long wall_clock_us(void);

/* Writes the local date and time as "YYYY-MM-DD HH:MM:SS" (localtime_r or localtime_s). */
void format_local_time(char *buf, size_t len);

/* Runs fn(arg) on a new thread, which someone must later thread_join(). Returns 0, or -1. */
int thread_start(thread_t *thread, void (*fn)(void *arg), void *arg);

/* Waits for a thread to finish and releases what it held. */
void thread_join(thread_t thread);

/*
 * Lowers the calling thread's priority below the other threads', so that
 * they go first when both want a processor: a worker that computes for
 * seconds yields to the loop, whose work is short and serves everyone.
 * Returns 0, or -1 where the system cannot lower one thread alone.
 */
int thread_lower_priority(void);

/* Prepares, takes, gives back and finally releases a lock. */
void mutex_init(mutex_t *mutex);
void mutex_lock(mutex_t *mutex);
void mutex_unlock(mutex_t *mutex);
void mutex_destroy(mutex_t *mutex);

/*
 * A condition variable: cond_wait() gives back the lock, sleeps until
 * cond_broadcast() (or timeout_ms pass; -1: no limit), and takes the lock
 * again. It may also wake for nothing, so wait in a loop that checks what
 * you wait for. Returns false when the time ran out.
 */
void cond_init(cond_t *cond);
bool cond_wait(cond_t *cond, mutex_t *mutex, int timeout_ms);
void cond_broadcast(cond_t *cond);
void cond_destroy(cond_t *cond);

/*
 * A wake-up call between threads. Any thread raises it, and a thread waiting
 * in sock_wait_readable_or_woken() wakes up; it stays raised, waking every
 * later wait at once, until waker_clear(). POSIX uses a pipe, Windows a
 * socket (WSAPoll() waits on sockets only). Returns 0, or -1.
 */
int waker_open(struct waker *waker);

/* Raises the waker. Safe in a signal handler, and from any thread. */
void waker_raise(struct waker *waker);

/* Lowers the waker again; later raises wake waiters anew. */
void waker_clear(struct waker *waker);

/* Releases the waker; nobody may wait on it or raise it any more. */
void waker_close(struct waker *waker);

/* What an event loop's poller watches to hear the waker: readable while it is raised. */
socket_t waker_descriptor(const struct waker *waker);

/*
 * The processors online (at least 1): how many workers keep them all
 * busy. It does not see a CPU affinity mask or a container's CPU quota.
 */
int cpu_count(void);

/* The exit status after a second Ctrl+C: 128 + SIGINT, as shells report it. */
#define EXIT_INTERRUPTED 130

/*
 * Makes Ctrl+C (SIGINT or SIGTERM; on Windows also Ctrl+Break and closing
 * the console) request a stop: from then on every sock_wait_readable(), and
 * every sock_wait_writable() told to watch for it, returns WOKE_STOP. A
 * second Ctrl+C exits at once with EXIT_INTERRUPTED. The handler itself
 * does nothing else: all the real work happens in ordinary threads, which
 * learn of the stop from the wait they are in. Returns 0, or -1.
 */
int stop_handler_install(void);

/* Releases what stop_handler_install() made; call it last, after every thread is joined. */
void stop_handler_remove(void);

/*
 * What an event loop watches to hear the stop: the stop waker's descriptor
 * (POSIX) or socket (Windows), readable for good once a stop is requested.
 * SOCKET_INVALID before stop_handler_install().
 */
socket_t stop_descriptor(void);

enum wake_reason {
    WOKE_READABLE, /* data, a connection, end of stream or an error waits on the socket */
    WOKE_WRITABLE, /* a send() on the socket can take bytes (or will report the error) */
    WOKE_STOP,     /* a stop was requested (it wins over the rest) */
    WOKE_WAKER,    /* the waker was raised (it wins over the socket) */
    WOKE_TIMEOUT,  /* timeout_ms passed first */
    WOKE_ERROR,    /* the wait itself failed; see sock_last_error() */
};

/*
 * Blocks until the socket is readable (for a listener: a connection waits),
 * a stop is requested, or timeout_ms milliseconds pass (-1: no limit).
 */
enum wake_reason sock_wait_readable(socket_t sock, int timeout_ms);

/* The same wait, which a raised waker also ends (WOKE_WAKER). */
enum wake_reason sock_wait_readable_or_woken(socket_t sock, struct waker *waker, int timeout_ms);

/*
 * The same wait for room to send (WOKE_WRITABLE). With watch_stop a stop
 * ends it (WOKE_STOP); without, it waits for the socket alone, for a caller
 * that has seen the stop and still gives the client a moment to read.
 */
enum wake_reason sock_wait_writable(socket_t sock, int timeout_ms, bool watch_stop);

/* Waits timeout_ms milliseconds unless a stop is requested first (then returns WOKE_STOP at once). */
enum wake_reason wait_for_stop(int timeout_ms);

/* Sends end of stream after the bytes already sent; the socket still receives (SHUT_WR, SD_SEND). */
void sock_stop_sending(socket_t sock);

#endif
