/*
 * net.c - see net.h. Written once against platform.h, so it is the same
 * code on Linux and on Windows.
 */
#include "net.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/*
 * How many connections may wait for accept(). A burst of clients larger
 * than this has its handshakes dropped and retried a second later, so ask
 * for the system's maximum (SOMAXCONN; Linux caps it at net.core.somaxconn).
 */
#define LISTEN_BACKLOG SOMAXCONN

/* Formats the reason for the last failed socket call as "what: why". */
static void fail(char *err, size_t err_len, const char *what)
{
    char reason[NET_ERR_TEXT];
    snprintf(err, err_len, "%s: %s", what, sock_strerror(sock_last_error(), reason, sizeof reason));
}

static int format_address(const struct sockaddr *addr, socklen_t addr_len, char *out, size_t out_len)
{
    char host[INET6_ADDRSTRLEN];
    char port[8];
    int flags = NI_NUMERICHOST | NI_NUMERICSERV;
    if (getnameinfo(addr, addr_len, host, sizeof host, port, sizeof port, flags) != 0)
        return -1;
    /* An IPv6 address gets brackets so its colons do not run into the port. */
    const char *format = strchr(host, ':') != NULL ? "[%s]:%s" : "%s:%s";
    snprintf(out, out_len, format, host, port);
    return 0;
}

/* The TCP addresses of host:port (passive: to listen on), or NULL with the reason in err. */
static struct addrinfo *resolve(const char *host, const char *port, int passive, char *err, size_t err_len)
{
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC; /* IPv4 or IPv6, whichever the name has */
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;

    struct addrinfo *found = NULL;
    int rc = getaddrinfo(host, port, &hints, &found);
    if (rc != 0) {
        snprintf(err, err_len, "cannot resolve %s: %s", host, gai_strerror(rc));
        return NULL;
    }
    return found;
}

socket_t net_listen(const char *host, const char *port, char *err, size_t err_len)
{
    struct addrinfo *found = resolve(host, port, 1, err, err_len);
    if (found == NULL)
        return SOCKET_INVALID;

    /* Try each address the name resolves to; keep the first that works. */
    socket_t sock = SOCKET_INVALID;
    for (struct addrinfo *ai = found; ai != NULL; ai = ai->ai_next) {
        sock = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (sock == SOCKET_INVALID) {
            fail(err, err_len, "socket");
            continue;
        }
        const char *step =
            NULL; /* the call that failed, named in the error: "bind: Address already in use" */
        if (sock_set_reuse_address(sock) != 0)
            step = "setsockopt";
        else if (bind(sock, ai->ai_addr, (socklen_t)ai->ai_addrlen) != 0)
            step = "bind";
        else if (listen(sock, LISTEN_BACKLOG) != 0)
            step = "listen";
        if (step == NULL)
            break;
        fail(err, err_len, step);
        sock_close(sock);
        sock = SOCKET_INVALID;
    }

    freeaddrinfo(found);
    return sock;
}

socket_t net_connect(const char *host, const char *port, char *err, size_t err_len)
{
    struct addrinfo *found = resolve(host, port, 0, err, err_len);
    if (found == NULL)
        return SOCKET_INVALID;

    socket_t sock = SOCKET_INVALID;
    for (struct addrinfo *ai = found; ai != NULL; ai = ai->ai_next) {
        sock = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (sock == SOCKET_INVALID) {
            fail(err, err_len, "socket");
            continue;
        }
        if (connect(sock, ai->ai_addr, (socklen_t)ai->ai_addrlen) == 0)
            break;
        fail(err, err_len, "connect");
        sock_close(sock);
        sock = SOCKET_INVALID;
    }

    freeaddrinfo(found);
    return sock;
}

int net_local_address(socket_t sock, char *out, size_t out_len)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof addr;
    if (getsockname(sock, (struct sockaddr *)&addr, &addr_len) != 0)
        return -1;
    return format_address((struct sockaddr *)&addr, addr_len, out, out_len);
}

int net_peer_address(socket_t sock, char *out, size_t out_len)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = sizeof addr;
    if (getpeername(sock, (struct sockaddr *)&addr, &addr_len) != 0)
        return -1;
    return format_address((struct sockaddr *)&addr, addr_len, out, out_len);
}

/*
 * When a send first met the stop (0: none has yet). It is one moment for
 * the whole server, so however slowly its clients read, every send is over
 * NET_STOP_SEND_WAIT_MS after it, and so is the stop.
 */
static _Atomic long long stop_seen_at_ms;

/* The moment every send gives up once a stop is requested; the first caller sets the clock. */
static long long stop_give_up_time(long long now)
{
    long long first = 0;
    if (atomic_compare_exchange_strong(&stop_seen_at_ms, &first, now))
        first = now;
    return first + NET_STOP_SEND_WAIT_MS;
}

int net_send_all(socket_t sock, const void *buf, size_t len, int wait_ms)
{
    const char *next = buf;
    long long give_up_at = 0; /* set while the peer makes no room; 0: not waiting */
    while (len > 0) {
        long sent = sock_send(sock, next, len);
        if (sent < 0) {
            int code = sock_last_error();
            if (sock_error_is_interrupt(code))
                continue;
            if (!sock_error_is_would_block(code))
                return -1;
            /*
             * The peer is not reading fast enough: give it wait_ms to make
             * room, counted from the last byte that went out, so that a wait
             * which wakes too early (Wine's does) cannot stretch the limit.
             */
            if (wait_ms == 0)
                return NET_SEND_TIMED_OUT;
            long long now = monotonic_ms();
            if (give_up_at == 0 && wait_ms > 0)
                give_up_at = now + wait_ms;
            if (give_up_at != 0 && now >= give_up_at)
                return NET_SEND_TIMED_OUT;
            /* After a stop, a client still reading gets its last replies; one not reading cannot stall it. */
            bool stopping = stop_requested();
            long long deadline = give_up_at;
            if (stopping) {
                long long stop_give_up_at = stop_give_up_time(now);
                if (now >= stop_give_up_at)
                    return NET_SEND_STOPPED;
                if (deadline == 0 || stop_give_up_at < deadline)
                    deadline = stop_give_up_at;
            }
            /* Watch for the stop only until it comes: after that it would end every wait at once. */
            if (sock_wait_writable(sock, deadline == 0 ? -1 : (int)(deadline - now), !stopping) == WOKE_ERROR)
                return -1;
            continue; /* room, the time is up, or a stop: the top of the loop says which */
        }
        /* send() may take fewer bytes than offered: send the rest. */
        next += sent;
        len -= (size_t)sent;
        give_up_at = 0;
    }
    return 0;
}

long net_recv(socket_t sock, void *buf, size_t len)
{
    for (;;) {
        long got = sock_recv(sock, buf, len);
        if (got >= 0 || !sock_error_is_interrupt(sock_last_error()))
            return got;
    }
}

void net_linger(socket_t sock, int linger_ms)
{
    /*
     * close() with unread bytes sends a reset instead of end of stream, and a
     * peer that receives a reset may drop what it has not read yet: Windows
     * does, so the line that explained the close would be lost. So end our
     * side first, and read until the peer has nothing more to say.
     */
    sock_stop_sending(sock);
    char sink[4096];
    long long give_up_at = monotonic_ms() + linger_ms;
    for (;;) {
        /* A client that keeps sending would keep each read busy: a stop must not wait for it. */
        long long left = give_up_at - monotonic_ms();
        if (left <= 0 || stop_requested() || sock_set_receive_timeout(sock, (int)left) != 0)
            return;
        if (sock_recv_wait(sock, sink, sizeof sink) <= 0)
            return; /* the peer has said all it will, or waiting longer is pointless */
    }
}
