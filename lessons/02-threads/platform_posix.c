/*
 * platform_posix.c - the portability contract (platform.h) on Linux and
 * other POSIX systems. Its twin, platform_win32.c, has the same functions
 * in the same order: read them side by side.
 */
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

long sock_send(socket_t sock, const void *buf, size_t len)
{
    /* Without MSG_NOSIGNAL, writing to a reset connection kills the process. */
    return (long)send(sock, buf, len, MSG_NOSIGNAL);
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

int sock_set_no_delay(socket_t sock)
{
    int on = 1;
    return setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

bool stdin_is_terminal(void)
{
    return isatty(STDIN_FILENO) == 1;
}

void stdin_keep_bytes(void)
{
    /* POSIX streams never change the bytes they read. */
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

int thread_start_detached(void (*fn)(void *arg), void *arg)
{
    struct thread_start_box *box = malloc(sizeof *box);
    if (box == NULL)
        return -1;
    box->fn = fn;
    box->arg = arg;
    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_trampoline, box) != 0) {
        free(box);
        return -1;
    }
    pthread_detach(thread);
    return 0;
}
