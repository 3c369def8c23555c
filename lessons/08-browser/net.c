/*
 * net.c - see net.h. Written once against platform.h, so it is the same
 * code on Linux and on Windows.
 */
#include "net.h"

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
        sock = sock_open(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
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

socket_t net_accept(socket_t listener, char *peer, size_t peer_len)
{
    socket_t sock = sock_accept(listener);
    if (sock == SOCKET_INVALID)
        return SOCKET_INVALID;
    /* Only a matter of speed: the conversation works without it, so a failure is not one. */
    sock_set_no_delay(sock);
    if (net_peer_address(sock, peer, peer_len) != 0)
        snprintf(peer, peer_len, "?");
    return sock;
}

socket_t net_connect(const char *host, const char *port, char *err, size_t err_len)
{
    struct addrinfo *found = resolve(host, port, 0, err, err_len);
    if (found == NULL)
        return SOCKET_INVALID;

    socket_t sock = SOCKET_INVALID;
    for (struct addrinfo *ai = found; ai != NULL; ai = ai->ai_next) {
        sock = sock_open(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
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

void net_send_limit_stop(struct send_limit *limit)
{
    if (!limit->stopping) {
        limit->stopping = true;
        limit->give_up_at = monotonic_ms() + NET_STOP_SEND_WAIT_MS;
    }
}

int net_send_all(socket_t sock, const void *buf, size_t len, struct send_limit *limit)
{
    const char *next = buf;
    long long stalled_since = 0; /* set while the peer makes no room; 0: bytes are going out */
    while (len > 0) {
        long sent = sock_send(sock, next, len);
        if (sent >= 0) {
            /* send() may take fewer bytes than offered: send the rest. */
            next += sent;
            len -= (size_t)sent;
            stalled_since = 0;
            continue;
        }
        int code = sock_last_error();
        if (sock_error_is_interrupt(code))
            continue;
        if (!sock_error_is_would_block(code))
            return -1;
        /*
         * The peer is not reading fast enough. Count the stall from the last
         * byte that went out, so that a wait which wakes too early (Wine's
         * does) cannot stretch the limit.
         */
        long long now = monotonic_ms();
        if (stalled_since == 0)
            stalled_since = now;
        long long deadline = limit->stall_ms < 0 ? 0 : stalled_since + limit->stall_ms; /* 0: none */
        if (limit->stopping && (deadline == 0 || limit->give_up_at < deadline))
            deadline = limit->give_up_at;
        if (deadline != 0 && now >= deadline)
            return limit->stopping && deadline == limit->give_up_at ? NET_SEND_STOPPED : NET_SEND_TIMED_OUT;
        /* Until the stop comes, it ends the wait; after that it would end every wait at once. */
        enum wake_reason woke =
            sock_wait_writable(sock, deadline == 0 ? -1 : (int)(deadline - now), !limit->stopping);
        if (woke == WOKE_ERROR)
            return -1;
        if (woke == WOKE_STOP)
            net_send_limit_stop(limit); /* a reader still gets its last replies; a non-reader, a second */
        /* Room, the time is up, or the stop: the top of the loop says which. */
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
        long long left = give_up_at - monotonic_ms();
        /* A stop ends the wait too: a client that keeps sending must not hold it up. */
        if (left <= 0 || sock_wait_readable(sock, (int)left) != WOKE_READABLE)
            return;
        long got = net_recv(sock, sink, sizeof sink);
        if (got == 0 || (got < 0 && !sock_error_is_would_block(sock_last_error())))
            return; /* the peer has said all it will, or the connection broke */
    }
}
