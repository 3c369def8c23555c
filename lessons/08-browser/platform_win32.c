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

int sock_unacked_bytes(socket_t sock, size_t *bytes)
{
    /*
     * Winsock has no call for it on every Windows: SIO_TCP_INFO (Windows 10
     * on) comes closest, and Wine 8.0 refuses it (WSAEOPNOTSUPP). Unknown,
     * so the server judges a stalled client by its sends alone
     * (docs/posix-vs-winsock.md, "A slow reader").
     */
    (void)sock;
    (void)bytes;
    return -1;
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

int sock_set_no_delay(socket_t sock)
{
    BOOL on = TRUE;
    return setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, (const char *)&on, sizeof on) == 0 ? 0 : -1;
}

bool sock_error_is_out_of_resources(int code)
{
    return code == WSAEMFILE || code == WSAENOBUFS;
}

bool stdin_is_terminal(void)
{
    return _isatty(_fileno(stdin)) != 0;
}

long stdin_read(void *buf, size_t len)
{
    HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
    DWORD chunk = len > 65536 ? 65536 : (DWORD)len;
    DWORD got = 0;
    if (!ReadFile(in, buf, chunk, &got, NULL))
        return GetLastError() == ERROR_BROKEN_PIPE ? 0 : -1; /* a pipe whose writer has gone: the end */
    /* At a console, a line that starts with Ctrl+Z ends the input, as the C runtime's text mode has it. */
    if (got > 0 && ((const char *)buf)[0] == 0x1A && GetFileType(in) == FILE_TYPE_CHAR)
        return 0;
    return (long)got;
}

void ignore_broken_pipes(void)
{
    /* Windows has no SIGPIPE: a write to a closed pipe already fails with an error. */
}

int stderr_write_all(const char *buf, size_t len)
{
    HANDLE err = GetStdHandle(STD_ERROR_HANDLE);
    while (len > 0) {
        DWORD chunk = len > 65536 ? 65536 : (DWORD)len;
        DWORD written = 0;
        if (!WriteFile(err, buf, chunk, &written, NULL))
            return -1;
        buf += written; /* a pipe may take fewer bytes than offered */
        len -= written;
    }
    return 0;
}

long long monotonic_ms(void)
{
    return (long long)GetTickCount64();
}

long long wall_clock_us(void)
{
    /* FILETIME counts 100 ns steps from 1601-01-01; 1970 came 11644473600 seconds later. */
    FILETIME now;
    GetSystemTimeAsFileTime(&now);
    unsigned long long ticks = ((unsigned long long)now.dwHighDateTime << 32) | now.dwLowDateTime;
    return (long long)(ticks / 10) - 11644473600LL * 1000000;
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

void cond_init(cond_t *cond)
{
    InitializeConditionVariable(cond);
}

bool cond_wait(cond_t *cond, mutex_t *mutex, int timeout_ms)
{
    /* GetTickCount64() is monotonic too, and so are these timeouts. */
    return SleepConditionVariableSRW(cond, mutex, timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms, 0) != 0;
}

void cond_broadcast(cond_t *cond)
{
    WakeAllConditionVariable(cond);
}

void cond_destroy(cond_t *cond)
{
    (void)cond; /* a condition variable holds no resources */
}

/*
 * Wakers. WSAPoll() waits on sockets only, so a waker is a UDP socket on
 * 127.0.0.1 whose datagrams go to itself: raising sends it one byte, and it
 * stays readable, for every thread that polls it, until waker_clear()
 * receives the bytes.
 */
int waker_open(struct waker *waker)
{
    SOCKET sock = sock_open(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    if (sock == INVALID_SOCKET)
        return -1;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int addr_len = sizeof addr;
    u_long nonblocking = 1; /* a clear never waits on an empty socket */
    if (bind(sock, (struct sockaddr *)&addr, addr_len) != 0 ||
        getsockname(sock, (struct sockaddr *)&addr, &addr_len) != 0 ||
        connect(sock, (struct sockaddr *)&addr, addr_len) != 0 ||
        ioctlsocket(sock, FIONBIO, &nonblocking) != 0) {
        closesocket(sock);
        return -1;
    }
    waker->sock = sock;
    return 0;
}

void waker_raise(struct waker *waker)
{
    send(waker->sock, "!", 1, 0); /* a full socket is raised already */
}

void waker_clear(struct waker *waker)
{
    char sink[64];
    while (recv(waker->sock, sink, sizeof sink, 0) > 0)
        continue;
}

void waker_close(struct waker *waker)
{
    if (waker->sock != INVALID_SOCKET)
        closesocket(waker->sock);
    waker->sock = INVALID_SOCKET;
}

int thread_lower_priority(void)
{
    return SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_BELOW_NORMAL) ? 0 : -1;
}

socket_t waker_descriptor(const struct waker *waker)
{
    return waker->sock;
}

int cpu_count(void)
{
    SYSTEM_INFO info;
    GetSystemInfo(&info);
    return info.dwNumberOfProcessors < 1 ? 1 : (int)info.dwNumberOfProcessors;
}

/*
 * Stopping. Windows has no signals: Ctrl+C runs a console handler on a new
 * thread of its own. It counts the event and raises the stop waker. Every
 * thread that waits polls the stop waker beside its own socket. Nobody ever
 * clears it, so it wakes every waiter, now and later.
 */
static atomic_int stop_events;
static struct waker stop_waker = {INVALID_SOCKET};
static HANDLE cleanup_done; /* set by stop_handler_remove(), once main has cleaned up */

static BOOL WINAPI on_console_event(DWORD event)
{
    if (atomic_fetch_add(&stop_events, 1) > 0)
        ExitProcess(EXIT_INTERRUPTED); /* the second Ctrl+C: the user insists */
    waker_raise(&stop_waker);
    /* For these events Windows ends the process as soon as we return: let main finish first. */
    if (event == CTRL_CLOSE_EVENT || event == CTRL_LOGOFF_EVENT || event == CTRL_SHUTDOWN_EVENT)
        WaitForSingleObject(cleanup_done, 5000);
    return TRUE; /* handled: do not run the default handler, which would end the process */
}

int stop_handler_install(void)
{
    cleanup_done = CreateEventA(NULL, TRUE, FALSE, NULL);
    if (waker_open(&stop_waker) != 0 || cleanup_done == NULL)
        return -1;
    return SetConsoleCtrlHandler(on_console_event, TRUE) ? 0 : -1;
}

void stop_handler_remove(void)
{
    SetConsoleCtrlHandler(on_console_event, FALSE);
    waker_close(&stop_waker);
    if (cleanup_done != NULL)
        SetEvent(cleanup_done); /* the handle is left for the process exit to close */
}

socket_t stop_descriptor(void)
{
    return stop_waker.sock;
}

/* Waits until the socket has `events`, the waker (if any) is raised, or (when watch_stop) a stop comes. */
static enum wake_reason wait_for(socket_t sock, SHORT events, const struct waker *waker, bool watch_stop,
                                 int timeout_ms)
{
    /* Unlike poll(), WSAPoll() fails on an invalid socket: only the sockets there are go in. */
    WSAPOLLFD fds[3];
    ULONG count = 0;
    int stop_at = -1, waker_at = -1;
    if (watch_stop && stop_waker.sock != INVALID_SOCKET) {
        stop_at = (int)count;
        fds[count++] = (WSAPOLLFD){.fd = stop_waker.sock, .events = POLLRDNORM};
    }
    if (waker != NULL) {
        waker_at = (int)count;
        fds[count++] = (WSAPOLLFD){.fd = waker->sock, .events = POLLRDNORM};
    }
    if (sock != INVALID_SOCKET)
        fds[count++] = (WSAPOLLFD){.fd = sock, .events = events};
    if (count == 0) { /* WSAPoll() needs at least one socket */
        Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
        return WOKE_TIMEOUT;
    }
    int ready = WSAPoll(fds, count, timeout_ms);
    if (ready == SOCKET_ERROR)
        return WOKE_ERROR;
    if (ready == 0)
        return WOKE_TIMEOUT;
    if (stop_at >= 0 && fds[stop_at].revents != 0)
        return WOKE_STOP;
    if (waker_at >= 0 && fds[waker_at].revents != 0)
        return WOKE_WAKER;
    /* The event, a hang-up or an error: the next call on the socket says which. */
    return events == POLLRDNORM ? WOKE_READABLE : WOKE_WRITABLE;
}

enum wake_reason sock_wait_readable(socket_t sock, int timeout_ms)
{
    return wait_for(sock, POLLRDNORM, NULL, true, timeout_ms);
}

enum wake_reason sock_wait_readable_or_woken(socket_t sock, struct waker *waker, int timeout_ms)
{
    return wait_for(sock, POLLRDNORM, waker, true, timeout_ms);
}

enum wake_reason sock_wait_writable(socket_t sock, int timeout_ms, bool watch_stop)
{
    /* Under Wine this may wake while send() would still block; net_send_all() keeps its own clock. */
    return wait_for(sock, POLLWRNORM, NULL, watch_stop, timeout_ms);
}

enum wake_reason wait_for_stop(int timeout_ms)
{
    return wait_for(INVALID_SOCKET, POLLRDNORM, NULL, true, timeout_ms) == WOKE_STOP ? WOKE_STOP
                                                                                     : WOKE_TIMEOUT;
}

void sock_stop_sending(socket_t sock)
{
    /* Not closesocket(): the peer gets end of stream after our last bytes, and we can still read. */
    shutdown(sock, SD_SEND);
}
