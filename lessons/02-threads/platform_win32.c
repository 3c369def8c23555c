/*
 * platform_win32.c - the portability contract (platform.h) on Windows, with
 * Winsock 2. Its twin, platform_posix.c, has the same functions in the same
 * order: read them side by side.
 */
#include "platform.h"

#include <fcntl.h>
#include <io.h>
#include <limits.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>

int net_startup(void)
{
    /* Every Winsock program must ask for a version before its first socket call. */
    WSADATA data;
    return WSAStartup(MAKEWORD(2, 2), &data) == 0 ? 0 : -1;
}

void net_cleanup(void)
{
    WSACleanup();
}

/* Makes a socket handle not inheritable: CreateProcess() would otherwise pass it on to the new program. */
static socket_t not_inherited(socket_t sock)
{
    if (sock != INVALID_SOCKET && !SetHandleInformation((HANDLE)sock, HANDLE_FLAG_INHERIT, 0)) {
        closesocket(sock);
        WSASetLastError((int)GetLastError()); /* the caller reports why, through sock_last_error() */
        return INVALID_SOCKET;
    }
    return sock;
}

socket_t sock_open(int family, int type, int protocol)
{
    return not_inherited(socket(family, type, protocol));
}

socket_t sock_accept(socket_t listener)
{
    return not_inherited(accept(listener, NULL, NULL));
}

int sock_close(socket_t sock)
{
    /* A SOCKET is not a file descriptor: close() would not release it. */
    return closesocket(sock) == 0 ? 0 : -1;
}

int sock_last_error(void)
{
    /* Winsock leaves errno alone and keeps its own per-thread error. */
    return WSAGetLastError();
}

/*
 * The errors a user of the course meets, in the words POSIX uses, so that a
 * message reads the same on both systems (and under Wine, whose system
 * message table has no Winsock texts). FormatMessage() covers the rest.
 */
static const struct {
    int code;
    const char *text;
} common_errors[] = {
    {WSAEADDRINUSE, "Address already in use"},
    {WSAEADDRNOTAVAIL, "Cannot assign requested address"},
    {WSAEACCES, "Permission denied"},
    {WSAECONNREFUSED, "Connection refused"},
    {WSAECONNRESET, "Connection reset by peer"},
    {WSAECONNABORTED, "Software caused connection abort"},
    {WSAETIMEDOUT, "Connection timed out"},
    {WSAENETUNREACH, "Network is unreachable"},
    {WSAEHOSTUNREACH, "No route to host"},
    {WSAEMFILE, "Too many open files"},
    {WSAENOBUFS, "No buffer space available"},
    {WSAEINTR, "Interrupted system call"},
    {WSAEWOULDBLOCK, "Resource temporarily unavailable"},
};

const char *sock_strerror(int code, char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof common_errors / sizeof common_errors[0]; i++) {
        if (common_errors[i].code == code) {
            snprintf(buf, len, "%s", common_errors[i].text);
            return buf;
        }
    }
    DWORD flags = FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS;
    DWORD n = FormatMessageA(flags, NULL, (DWORD)code, 0, buf, (DWORD)len, NULL);
    /* The system's message ends in ".\r\n"; a log line wants neither. */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == '.'))
        buf[--n] = '\0';
    if (n == 0)
        snprintf(buf, len, "Winsock error %d", code);
    return buf;
}

bool sock_error_is_interrupt(int code)
{
    return code == WSAEINTR;
}

long sock_send(socket_t sock, const void *buf, size_t len)
{
    /* Windows has no SIGPIPE; send() takes an int length. */
    int chunk = len > INT_MAX ? INT_MAX : (int)len;
    int n = send(sock, buf, chunk, 0);
    return n == SOCKET_ERROR ? -1 : n;
}

long sock_recv(socket_t sock, void *buf, size_t len)
{
    int chunk = len > INT_MAX ? INT_MAX : (int)len;
    int n = recv(sock, buf, chunk, 0);
    return n == SOCKET_ERROR ? -1 : n;
}

int sock_set_reuse_address(socket_t sock)
{
    /*
     * On Windows SO_REUSEADDR would let a second server steal a port that is
     * in use. SO_EXCLUSIVEADDRUSE is the safe choice, and Windows has no
     * TIME_WAIT problem at bind time to work around.
     */
    BOOL on = TRUE;
    int rc = setsockopt(sock, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&on, sizeof on);
    return rc == 0 ? 0 : -1;
}

int sock_set_no_delay(socket_t sock)
{
    BOOL on = TRUE;
    return setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, (const char *)&on, sizeof on) == 0 ? 0 : -1;
}

bool stdin_is_terminal(void)
{
    return _isatty(_fileno(stdin)) != 0;
}

void stdin_keep_bytes(void)
{
    /* Text mode would turn "\r\n" into "\n" and end the input at a 0x1A byte (Ctrl+Z). */
    _setmode(_fileno(stdin), _O_BINARY);
}

/* _beginthreadex() wants unsigned (__stdcall *)(void *); this box carries the real function across. */
struct thread_start_box {
    void (*fn)(void *arg);
    void *arg;
};

static unsigned __stdcall thread_trampoline(void *box_ptr)
{
    struct thread_start_box box = *(struct thread_start_box *)box_ptr;
    free(box_ptr);
    box.fn(box.arg);
    return 0;
}

int thread_start_detached(void (*fn)(void *arg), void *arg)
{
    struct thread_start_box *box = malloc(sizeof *box);
    if (box == NULL)
        return -1;
    box->fn = fn;
    box->arg = arg;
    /* _beginthreadex, not CreateThread: it sets up the C runtime for the new thread. */
    uintptr_t thread = _beginthreadex(NULL, 0, thread_trampoline, box, 0, NULL);
    if (thread == 0) {
        free(box);
        return -1;
    }
    /* Closing the handle does not stop the thread; it only means nobody will wait for it. */
    CloseHandle((HANDLE)thread);
    return 0;
}
