/*
 * reads_wait_for_data.c - a fault for the harness to inject (Linux,
 * LD_PRELOAD): a recv() on a non-blocking socket that finds nothing to read
 * waits up to a second for bytes, instead of failing at once with EAGAIN.
 * A goodbye that reads until nothing is waiting, with no bound of its own,
 * then never ends while its client keeps sending, where without the fault
 * it caught up with the client now and then, and ended. Blocking sockets,
 * whose recv() waits anyway, are left alone. test_shutdown.py builds it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

ssize_t recv(int sock, void *buf, size_t len, int flags)
{
    ssize_t (*real_recv)(int, void *, size_t, int);
    *(void **)&real_recv = dlsym(RTLD_NEXT, "recv"); /* as POSIX's dlsym() page writes it */
    ssize_t got = real_recv(sock, buf, len, flags);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        struct pollfd bytes = {.fd = sock, .events = POLLIN};
        if (poll(&bytes, 1, 1000) == 1)
            got = real_recv(sock, buf, len, flags);
        else
            errno = EAGAIN; /* a second without a byte: nothing is waiting after all */
    }
    return got;
}
