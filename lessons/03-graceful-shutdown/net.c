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

int net_send_all(socket_t sock, const void *buf, size_t len)
{
    const char *next = buf;
    while (len > 0) {
        long sent = sock_send(sock, next, len);
        if (sent < 0) {
            if (sock_error_is_interrupt(sock_last_error()))
                continue;
            return -1;
        }
        /* send() may take fewer bytes than offered: send the rest. */
        next += sent;
        len -= (size_t)sent;
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
