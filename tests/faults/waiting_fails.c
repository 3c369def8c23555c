/*
 * waiting_fails.c - a fault for the harness to inject (Linux, LD_PRELOAD):
 * the server's wait for clients fails with ENOMEM, as poll() and
 * epoll_wait() may when the kernel is short of memory. That is every poll()
 * that watches a listening socket (the threaded stages' main loop; client
 * threads and pauses are left alone), and every epoll_wait() (lesson 04's
 * loop). test_shutdown.py builds it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

static int is_listening(int fd)
{
    int listening = 0;
    socklen_t len = sizeof listening;
    return fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
}

int poll(struct pollfd *fds, nfds_t count, int timeout)
{
    for (nfds_t i = 0; i < count; i++) {
        if (is_listening(fds[i].fd)) {
            errno = ENOMEM;
            return -1;
        }
    }
    int (*real_poll)(struct pollfd *, nfds_t, int);
    *(void **)&real_poll = dlsym(RTLD_NEXT, "poll"); /* as POSIX's dlsym() page writes it */
    return real_poll(fds, count, timeout);
}

int epoll_wait(int epoll, struct epoll_event *events, int max, int timeout)
{
    (void)epoll;
    (void)events;
    (void)max;
    (void)timeout;
    errno = ENOMEM;
    return -1;
}
