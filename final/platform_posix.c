/*
 * platform_posix.c - the portability contract (platform.h) on Linux and
 * other POSIX systems. Its twin, platform_win32.c, has the same functions
 * in the same order: read them side by side.
 */
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Linux has MSG_NOSIGNAL; a system without it (macOS) ignores SIGPIPE in net_startup() instead. */
#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL        0
#define MUST_IGNORE_SIGPIPE 1
#endif

int net_startup(void)
{
#ifdef MUST_IGNORE_SIGPIPE
    signal(SIGPIPE, SIG_IGN);
#endif
    return 0; /* POSIX sockets need no start-up. */
}

void net_cleanup(void)
{
}

int sock_close(socket_t sock)
{
    return close(sock);
}

int sock_last_error(void)
{
    return errno;
}

const char *sock_strerror(int code, char *buf, size_t len)
{
    /* strerror() may share one buffer between threads; copy while we can. */
    snprintf(buf, len, "%s", strerror(code));
    return buf;
}

bool sock_error_is_interrupt(int code)
{
    return code == EINTR;
}

bool sock_error_is_would_block(int code)
{
    return code == EAGAIN || code == EWOULDBLOCK;
}

long sock_send(socket_t sock, const void *buf, size_t len)
{
    /*
     * Without MSG_NOSIGNAL, writing to a reset connection kills the process.
     * MSG_DONTWAIT makes this one call non-blocking, so the server's sockets
     * can stay blocking for recv() (see sock_recv_wait()).
     */
    return (long)send(sock, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

long sock_recv(socket_t sock, void *buf, size_t len)
{
    return (long)recv(sock, buf, len, 0);
}

int sock_set_reuse_address(socket_t sock)
{
    /* SO_REUSEADDR skips TIME_WAIT; Linux still refuses a port with a live listener. */
    int on = 1;
    return setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
}

int sock_set_nonblocking(socket_t sock, bool on)
{
    int flags = fcntl(sock, F_GETFL);
    if (flags < 0)
        return -1;
    flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    return fcntl(sock, F_SETFL, flags);
}

int sock_setup_accepted(socket_t sock)
{
    /* Blocking, so that sock_recv_wait() waits in recv(); BSD's accept() copies the listener's O_NONBLOCK. */
    return sock_set_nonblocking(sock, false);
}

int sock_set_receive_timeout(socket_t sock, int timeout_ms)
{
    /* SO_RCVTIMEO: a recv() that waits this long fails with EAGAIN. All zeros means "never". */
    struct timeval wait = {0, 0};
    if (timeout_ms >= 0) {
        wait.tv_sec = timeout_ms / 1000;
        wait.tv_usec = (timeout_ms % 1000) * 1000;
        if (timeout_ms == 0)
            wait.tv_usec = 1; /* due now: the smallest wait that is not "never" */
    }
    return setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
}

bool sock_error_is_out_of_resources(int code)
{
    return code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM;
}

bool stdin_is_terminal(void)
{
    return isatty(STDIN_FILENO) == 1;
}

void stdin_keep_bytes(void)
{
    /* POSIX streams never change the bytes they read. */
}

long long monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void format_local_time(char *buf, size_t len)
{
    /* localtime() shares one result between threads; localtime_r() fills ours. */
    time_t now = time(NULL);
    struct tm local;
    if (localtime_r(&now, &local) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &local) == 0)
        snprintf(buf, len, "?");
}

/* pthread_create() wants void *(*)(void *); this box carries the real function across. */
struct thread_start_box {
    void (*fn)(void *arg);
    void *arg;
};

static void *thread_trampoline(void *box_ptr)
{
    struct thread_start_box box = *(struct thread_start_box *)box_ptr;
    free(box_ptr);
    box.fn(box.arg);
    return NULL;
}

int thread_start(thread_t *thread, void (*fn)(void *arg), void *arg)
{
    struct thread_start_box *box = malloc(sizeof *box);
    if (box == NULL)
        return -1;
    box->fn = fn;
    box->arg = arg;
    if (pthread_create(thread, NULL, thread_trampoline, box) != 0) {
        free(box);
        return -1;
    }
    return 0;
}

void thread_join(thread_t thread)
{
    pthread_join(thread, NULL);
}

void mutex_init(mutex_t *mutex)
{
    pthread_mutex_init(mutex, NULL);
}

void mutex_lock(mutex_t *mutex)
{
    pthread_mutex_lock(mutex);
}

void mutex_unlock(mutex_t *mutex)
{
    pthread_mutex_unlock(mutex);
}

void mutex_destroy(mutex_t *mutex)
{
    pthread_mutex_destroy(mutex);
}

/*
 * Stopping: the self-pipe trick. A signal handler may call only a few
 * async-signal-safe functions, so it counts the signal and writes one byte
 * into a pipe. Every thread that waits polls that pipe beside its socket.
 * Nobody ever reads the byte, so the pipe stays readable and wakes every
 * waiter, now and later.
 */
static atomic_int stop_signals;
static int wake_pipe[2] = {-1, -1};

static void on_stop_signal(int signo)
{
    (void)signo;
    if (atomic_fetch_add(&stop_signals, 1) > 0)
        _exit(EXIT_INTERRUPTED); /* the second Ctrl+C: the user insists */
    int saved_errno = errno;
    ssize_t ignored = write(wake_pipe[1], "!", 1);
    (void)ignored; /* nothing a signal handler could do about a failure */
    errno = saved_errno;
}

int stop_handler_install(void)
{
    if (pipe(wake_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
        fcntl(wake_pipe[i], F_SETFL, O_NONBLOCK);
    }
    struct sigaction action = {0};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &action, NULL) != 0 || sigaction(SIGTERM, &action, NULL) != 0)
        return -1;
    return 0;
}

void stop_handler_remove(void)
{
    struct sigaction action = {0};
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    for (int i = 0; i < 2; i++) {
        if (wake_pipe[i] >= 0)
            close(wake_pipe[i]);
        wake_pipe[i] = -1;
    }
}

bool stop_requested(void)
{
    return atomic_load(&stop_signals) > 0;
}

/* Waits for `events` on the socket, or for the wake pipe too; returns ready_reason for the socket. */
static enum wake_reason wait_or_stop(socket_t sock, short events, enum wake_reason ready_reason,
                                     bool watch_stop, int timeout_ms)
{
    /* poll() skips a negative descriptor: before install, and when the stop is not watched. */
    struct pollfd fds[2] = {{.fd = watch_stop ? wake_pipe[0] : -1, .events = POLLIN},
                            {.fd = sock, .events = events}};
    for (;;) {
        int ready = poll(fds, 2, timeout_ms);
        if (ready < 0 && errno == EINTR)
            continue; /* a signal arrived: if it was Ctrl+C, the pipe is readable now */
        if (ready < 0)
            return WOKE_ERROR;
        if (ready == 0)
            return WOKE_TIMEOUT;
        if (fds[0].revents != 0)
            return WOKE_STOP;
        return ready_reason; /* the event, POLLHUP or POLLERR: the next call says which */
    }
}

enum wake_reason sock_wait_readable(socket_t sock, int timeout_ms)
{
    return wait_or_stop(sock, POLLIN, WOKE_READABLE, true, timeout_ms);
}

enum wake_reason sock_wait_writable(socket_t sock, int timeout_ms, bool watch_stop)
{
    return wait_or_stop(sock, POLLOUT, WOKE_WRITABLE, watch_stop, timeout_ms);
}

enum wake_reason wait_for_stop(int timeout_ms)
{
    /* The same wait with no socket: poll() skips the negative descriptor. */
    return sock_wait_readable(-1, timeout_ms) == WOKE_STOP ? WOKE_STOP : WOKE_TIMEOUT;
}

long sock_recv_wait(socket_t sock, void *buf, size_t len)
{
    /*
     * A plain blocking recv(): the thread sleeps in the kernel until bytes,
     * the receive timeout or sock_stop_receiving(). Waiting in poll() first
     * (as lesson 03 does) costs one more system call per line.
     */
    for (;;) {
        ssize_t got = recv(sock, buf, len, 0);
        if (got >= 0 || errno != EINTR)
            return (long)got; /* EINTR: with SO_RCVTIMEO set, even SA_RESTART does not restart recv() */
    }
}

void sock_stop_receiving(socket_t sock)
{
    /* The read side only: a blocked recv() returns what is queued, then 0, and replies can still go out. */
    shutdown(sock, SHUT_RD);
}

void sock_stop_sending(socket_t sock)
{
    /* Not close(): the peer gets end of stream after our last bytes, and we can still read what it sends. */
    shutdown(sock, SHUT_WR);
}
