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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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

bool sock_error_is_would_block(int code)
{
    return code == WSAEWOULDBLOCK;
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

int sock_set_nonblocking(socket_t sock, bool on)
{
    u_long mode = on ? 1 : 0;
    return ioctlsocket(sock, FIONBIO, &mode) == 0 ? 0 : -1;
}

int sock_setup_accepted(socket_t sock)
{
    /* Non-blocking: sock_recv_wait() waits in WSAPoll(), where the wake socket can reach it. */
    return sock_set_nonblocking(sock, true);
}

int sock_set_receive_timeout(socket_t sock, int timeout_ms)
{
    /* Winsock keeps SO_RCVTIMEO in milliseconds, 0 meaning "never"; sock_recv_wait() reads it back. */
    DWORD wait = timeout_ms < 0 ? 0 : timeout_ms == 0 ? 1 : (DWORD)timeout_ms;
    return setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, (const char *)&wait, sizeof wait) == 0 ? 0 : -1;
}

bool sock_error_is_out_of_resources(int code)
{
    return code == WSAEMFILE || code == WSAENOBUFS;
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

long long monotonic_ms(void)
{
    return (long long)GetTickCount64();
}

void format_local_time(char *buf, size_t len)
{
    /* Windows has localtime_s(), with its arguments the other way round from C11's. */
    time_t now = time(NULL);
    struct tm local;
    if (localtime_s(&local, &now) != 0 || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &local) == 0)
        snprintf(buf, len, "?");
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

int thread_start(thread_t *thread, void (*fn)(void *arg), void *arg)
{
    struct thread_start_box *box = malloc(sizeof *box);
    if (box == NULL)
        return -1;
    box->fn = fn;
    box->arg = arg;
    /* _beginthreadex, not CreateThread: it sets up the C runtime for the new thread. */
    uintptr_t handle = _beginthreadex(NULL, 0, thread_trampoline, box, 0, NULL);
    if (handle == 0) {
        free(box);
        return -1;
    }
    *thread = (HANDLE)handle;
    return 0;
}

void thread_join(thread_t thread)
{
    WaitForSingleObject(thread, INFINITE);
    CloseHandle(thread);
}

void mutex_init(mutex_t *mutex)
{
    InitializeSRWLock(mutex);
}

void mutex_lock(mutex_t *mutex)
{
    AcquireSRWLockExclusive(mutex);
}

void mutex_unlock(mutex_t *mutex)
{
    ReleaseSRWLockExclusive(mutex);
}

void mutex_destroy(mutex_t *mutex)
{
    (void)mutex; /* an SRW lock holds no resources */
}

/*
 * Stopping. Windows has no signals: Ctrl+C runs a console handler on a new
 * thread of its own. It counts the event and sends one byte to a "wake"
 * socket, a UDP socket on 127.0.0.1 connected to itself. Every thread that
 * waits polls that socket beside its own. Nobody ever reads the byte, so the
 * wake socket stays readable and wakes every waiter, now and later. (POSIX
 * uses a pipe; WSAPoll() takes sockets only.)
 */
static atomic_int stop_events;
static SOCKET wake_socket = INVALID_SOCKET;
static HANDLE cleanup_done; /* set by stop_handler_remove(), once main has cleaned up */

static BOOL WINAPI on_console_event(DWORD event)
{
    if (atomic_fetch_add(&stop_events, 1) > 0)
        ExitProcess(EXIT_INTERRUPTED); /* the second Ctrl+C: the user insists */
    send(wake_socket, "!", 1, 0);
    /* For these events Windows ends the process as soon as we return: let main finish first. */
    if (event == CTRL_CLOSE_EVENT || event == CTRL_LOGOFF_EVENT || event == CTRL_SHUTDOWN_EVENT)
        WaitForSingleObject(cleanup_done, 5000);
    return TRUE; /* handled: do not run the default handler, which would end the process */
}

/* A UDP socket on 127.0.0.1 whose datagrams go to itself. */
static SOCKET open_wake_socket(void)
{
    SOCKET sock = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    if (sock == INVALID_SOCKET)
        return INVALID_SOCKET;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int addr_len = sizeof addr;
    if (bind(sock, (struct sockaddr *)&addr, addr_len) != 0 ||
        getsockname(sock, (struct sockaddr *)&addr, &addr_len) != 0 ||
        connect(sock, (struct sockaddr *)&addr, addr_len) != 0) {
        closesocket(sock);
        return INVALID_SOCKET;
    }
    return sock;
}

int stop_handler_install(void)
{
    wake_socket = open_wake_socket();
    cleanup_done = CreateEventA(NULL, TRUE, FALSE, NULL);
    if (wake_socket == INVALID_SOCKET || cleanup_done == NULL)
        return -1;
    return SetConsoleCtrlHandler(on_console_event, TRUE) ? 0 : -1;
}

void stop_handler_remove(void)
{
    SetConsoleCtrlHandler(on_console_event, FALSE);
    if (wake_socket != INVALID_SOCKET)
        closesocket(wake_socket);
    wake_socket = INVALID_SOCKET;
    if (cleanup_done != NULL)
        SetEvent(cleanup_done); /* the handle is left for the process exit to close */
}

bool stop_requested(void)
{
    return atomic_load(&stop_events) > 0;
}

/* Waits for `events` on the socket, or for the wake socket too; returns ready_reason for the socket. */
static enum wake_reason wait_or_stop(socket_t sock, SHORT events, enum wake_reason ready_reason,
                                     bool watch_stop, int timeout_ms)
{
    WSAPOLLFD fds[2] = {{.fd = sock, .events = events}, {.fd = wake_socket, .events = POLLRDNORM}};
    /* Unlike poll(), WSAPoll() fails on an invalid socket: leave the wake socket out before install. */
    ULONG count = watch_stop && wake_socket != INVALID_SOCKET ? 2 : 1;
    int ready = WSAPoll(fds, count, timeout_ms);
    if (ready == SOCKET_ERROR)
        return WOKE_ERROR;
    if (ready == 0)
        return WOKE_TIMEOUT;
    if (count == 2 && fds[1].revents != 0)
        return WOKE_STOP;
    return ready_reason; /* the event, a hang-up or an error: the next call says which */
}

enum wake_reason sock_wait_readable(socket_t sock, int timeout_ms)
{
    return wait_or_stop(sock, POLLRDNORM, WOKE_READABLE, true, timeout_ms);
}

enum wake_reason sock_wait_writable(socket_t sock, int timeout_ms, bool watch_stop)
{
    /* Under Wine this may wake while send() would still block; net_send_all() keeps its own clock. */
    return wait_or_stop(sock, POLLWRNORM, WOKE_WRITABLE, watch_stop, timeout_ms);
}

enum wake_reason wait_for_stop(int timeout_ms)
{
    /* WSAPoll() needs at least one socket; the wake socket alone will do. */
    if (wake_socket == INVALID_SOCKET) {
        Sleep((DWORD)timeout_ms);
        return WOKE_TIMEOUT;
    }
    WSAPOLLFD wake = {.fd = wake_socket, .events = POLLRDNORM};
    return WSAPoll(&wake, 1, timeout_ms) > 0 ? WOKE_STOP : WOKE_TIMEOUT;
}

long sock_recv_wait(socket_t sock, void *buf, size_t len)
{
    /*
     * Nothing can wake a blocking recv() short of closing its socket, so wait
     * in WSAPoll() for the socket or the wake socket, with the socket's own
     * receive timeout, then read without blocking.
     */
    DWORD timeout = 0;
    int size = sizeof timeout;
    if (getsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, (char *)&timeout, &size) != 0)
        return -1;
    switch (sock_wait_readable(sock, timeout == 0 ? -1 : (int)timeout)) {
    case WOKE_ERROR:
        return -1;
    case WOKE_TIMEOUT:
        WSASetLastError(WSAEWOULDBLOCK);
        return -1;
    case WOKE_STOP: {
        /* A stop: what already arrived is still read; after that, 0. */
        WSAPOLLFD fd = {.fd = sock, .events = POLLRDNORM};
        if (WSAPoll(&fd, 1, 0) <= 0)
            return 0;
        break;
    }
    case WOKE_READABLE:
    case WOKE_WRITABLE: /* not asked for here */
        break;
    }
    return sock_recv(sock, buf, len);
}

void sock_stop_receiving(socket_t sock)
{
    (void)sock; /* the wake socket has already woken every sock_recv_wait() */
}

void sock_stop_sending(socket_t sock)
{
    /* Not closesocket(): the peer gets end of stream after our last bytes, and we can still read. */
    shutdown(sock, SD_SEND);
}
