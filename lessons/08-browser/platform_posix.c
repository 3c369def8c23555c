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
#include <sys/ioctl.h>    /* ioctl() */
#include <sys/resource.h> /* setpriority() */
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/sockios.h> /* SIOCOUTQ, which <sys/ioctl.h> leaves out */
#endif

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

/*
 * Marks a descriptor close-on-exec, so that a program started with exec()
 * does not inherit the connection. (SOCK_CLOEXEC and accept4() do it in the
 * same call, which matters when another thread may fork() in between; this
 * program never forks.)
 */
static socket_t close_on_exec(socket_t sock)
{
    if (sock != SOCKET_INVALID && fcntl(sock, F_SETFD, FD_CLOEXEC) != 0) {
        int saved_errno = errno;
        close(sock);
        errno = saved_errno; /* the caller reports why fcntl() failed, not close() */
        return SOCKET_INVALID;
    }
    return sock;
}

socket_t sock_open(int family, int type, int protocol)
{
    return close_on_exec(socket(family, type, protocol));
}

socket_t sock_accept(socket_t listener)
{
    return close_on_exec(accept(listener, NULL, NULL));
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
    /* Without MSG_NOSIGNAL, writing to a reset connection kills the process. */
    return (long)send(sock, buf, len, MSG_NOSIGNAL);
}

long sock_recv(socket_t sock, void *buf, size_t len)
{
    return (long)recv(sock, buf, len, 0);
}

int sock_unacked_bytes(socket_t sock, size_t *bytes)
{
#ifdef SIOCOUTQ
    /* Linux: the send queue, sent or not, until the peer acknowledges it (the Send-Q that `ss` shows). */
    int queued;
    if (ioctl(sock, SIOCOUTQ, &queued) != 0 || queued < 0)
        return -1;
    *bytes = (size_t)queued;
    return 0;
#else
    (void)sock; /* other POSIX systems have no common call for it */
    (void)bytes;
    return -1;
#endif
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

int sock_set_no_delay(socket_t sock)
{
    int on = 1;
    return setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

bool sock_error_is_out_of_resources(int code)
{
    return code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM;
}

bool stdin_is_terminal(void)
{
    return isatty(STDIN_FILENO) == 1;
}

long stdin_read(void *buf, size_t len)
{
    for (;;) {
        ssize_t got = read(STDIN_FILENO, buf, len);
        if (got >= 0 || errno != EINTR)
            return (long)got;
    }
}

void ignore_broken_pipes(void)
{
    signal(SIGPIPE, SIG_IGN);
}

int stderr_write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t written = write(STDERR_FILENO, buf, len);
        if (written < 0 && errno == EINTR)
            continue;
        if (written < 0)
            return -1;
        buf += written; /* a pipe or terminal may take fewer bytes than offered */
        len -= (size_t)written;
    }
    return 0;
}

long long monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

long long wall_clock_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
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

/*
 * A new thread starts with SIGINT and SIGTERM blocked (it inherits the mask of
 * the thread that creates it), so Ctrl+C is always handled by the main thread.
 * Otherwise the kernel may pick any thread, even one that is ending, and the
 * second Ctrl+C's _exit() would run there.
 */
int thread_start(thread_t *thread, void (*fn)(void *arg), void *arg)
{
    struct thread_start_box *box = malloc(sizeof *box);
    if (box == NULL)
        return -1;
    box->fn = fn;
    box->arg = arg;
    sigset_t blocked, caller_mask;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &blocked, &caller_mask);
    int status = pthread_create(thread, NULL, thread_trampoline, box);
    pthread_sigmask(SIG_SETMASK, &caller_mask, NULL);
    if (status != 0) {
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

void cond_init(cond_t *cond)
{
    /* Timed waits on the monotonic clock: setting the date must not shorten or stretch them. */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

bool cond_wait(cond_t *cond, mutex_t *mutex, int timeout_ms)
{
    if (timeout_ms < 0)
        return pthread_cond_wait(cond, mutex) == 0;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(cond, mutex, &until) == 0;
}

void cond_broadcast(cond_t *cond)
{
    pthread_cond_broadcast(cond);
}

void cond_destroy(cond_t *cond)
{
    pthread_cond_destroy(cond);
}

/*
 * Wakers: the self-pipe trick. Raising writes one byte into a pipe, and its
 * read end stays readable, for every thread that polls it, until
 * waker_clear() reads the bytes out. write() is async-signal-safe, so a
 * signal handler may raise a waker.
 */
int waker_open(struct waker *waker)
{
    int ends[2];
    if (pipe(ends) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        /* Non-blocking: a raise never waits on a full pipe (it is raised already), a clear never on an empty
         * one. */
        if (fcntl(ends[i], F_SETFD, FD_CLOEXEC) != 0 || fcntl(ends[i], F_SETFL, O_NONBLOCK) != 0) {
            close(ends[0]);
            close(ends[1]);
            return -1;
        }
    }
    waker->read_end = ends[0];
    waker->write_end = ends[1];
    return 0;
}

void waker_raise(struct waker *waker)
{
    int saved_errno = errno; /* a signal handler must leave errno as it found it */
    ssize_t ignored = write(waker->write_end, "!", 1);
    (void)ignored; /* a full pipe is raised already, and a signal handler could do nothing else */
    errno = saved_errno;
}

void waker_clear(struct waker *waker)
{
    char sink[64];
    while (read(waker->read_end, sink, sizeof sink) > 0)
        continue;
}

void waker_close(struct waker *waker)
{
    if (waker->read_end >= 0)
        close(waker->read_end);
    if (waker->write_end >= 0)
        close(waker->write_end);
    waker->read_end = waker->write_end = -1;
}

int thread_lower_priority(void)
{
#ifdef __linux__
    /* POSIX makes the nice value the process's; Linux keeps one per thread, and "0" names the calling thread
     * (setpriority(2), "BUGS"). 10 of the 19 steps: the loop, woken, takes the processor at once. */
    return setpriority(PRIO_PROCESS, 0, 10);
#else
    return -1; /* elsewhere it would lower the whole process, the loop with it */
#endif
}

socket_t waker_descriptor(const struct waker *waker)
{
    return waker->read_end;
}

int cpu_count(void)
{
    long count = sysconf(_SC_NPROCESSORS_ONLN);
    return count < 1 ? 1 : count > 1024 ? 1024 : (int)count;
}

/*
 * Stopping. A signal handler may call only a few async-signal-safe
 * functions, so it counts the signal and raises the stop waker. Every thread
 * that waits polls the stop waker beside its socket. Nobody ever clears it,
 * so it wakes every waiter, now and later.
 */
static atomic_int stop_signals;
static struct waker stop_waker = {-1, -1};

static void on_stop_signal(int signo)
{
    (void)signo;
    if (atomic_fetch_add(&stop_signals, 1) > 0)
        _exit(EXIT_INTERRUPTED); /* the second Ctrl+C: the user insists */
    waker_raise(&stop_waker);
}

int stop_handler_install(void)
{
    if (waker_open(&stop_waker) != 0)
        return -1;
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
    waker_close(&stop_waker);
}

socket_t stop_descriptor(void)
{
    return stop_waker.read_end;
}

/* Waits until the socket has `events`, the waker (if any) is raised, or (when watch_stop) a stop comes. */
static enum wake_reason wait_for(socket_t sock, short events, const struct waker *waker, bool watch_stop,
                                 int timeout_ms)
{
    /* poll() skips a negative descriptor: no socket, no waker, the stop not watched or not installed yet. */
    struct pollfd fds[3] = {{.fd = watch_stop ? stop_waker.read_end : -1, .events = POLLIN},
                            {.fd = waker != NULL ? waker->read_end : -1, .events = POLLIN},
                            {.fd = sock, .events = events}};
    for (;;) {
        int ready = poll(fds, 3, timeout_ms);
        if (ready < 0 && errno == EINTR)
            continue; /* a signal arrived: if it was Ctrl+C, the stop waker is raised now */
        if (ready < 0)
            return WOKE_ERROR;
        if (ready == 0)
            return WOKE_TIMEOUT;
        if (fds[0].revents != 0)
            return WOKE_STOP;
        if (fds[1].revents != 0)
            return WOKE_WAKER;
        /* The event, POLLHUP or POLLERR: the next call on the socket says which. */
        return events == POLLIN ? WOKE_READABLE : WOKE_WRITABLE;
    }
}

enum wake_reason sock_wait_readable(socket_t sock, int timeout_ms)
{
    return wait_for(sock, POLLIN, NULL, true, timeout_ms);
}

enum wake_reason sock_wait_readable_or_woken(socket_t sock, struct waker *waker, int timeout_ms)
{
    return wait_for(sock, POLLIN, waker, true, timeout_ms);
}

enum wake_reason sock_wait_writable(socket_t sock, int timeout_ms, bool watch_stop)
{
    return wait_for(sock, POLLOUT, NULL, watch_stop, timeout_ms);
}

enum wake_reason wait_for_stop(int timeout_ms)
{
    return wait_for(SOCKET_INVALID, POLLIN, NULL, true, timeout_ms) == WOKE_STOP ? WOKE_STOP : WOKE_TIMEOUT;
}

void sock_stop_sending(socket_t sock)
{
    /* Not close(): the peer gets end of stream after our last bytes, and we can still read what it sends. */
    shutdown(sock, SHUT_WR);
}
