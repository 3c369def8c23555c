/*
 * check_platform.c - what this stage adds to the portability contract:
 * wakers, the waits, and the stop (POSIX build).
 *
 * The stop lasts for the rest of a process once it is requested, so each
 * test runs in a process of its own: Check forks for every test unless
 * CK_FORK=no, and the stop tests say so when they find it off.
 */
#include "check_suites.h"
#include "platform.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Whether a descriptor is readable right now, without waiting. */
static bool readable(int fd)
{
    struct pollfd check = {.fd = fd, .events = POLLIN};
    return poll(&check, 1, 0) == 1;
}

static void sleep_ms(long ms)
{
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0)
        continue; /* interrupted: sleep the rest */
}

static long long now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* The name of a wake_reason, for a failure to print instead of a bare number (later stages add reasons). */
static const char *woke_name(enum wake_reason woke)
{
    static const struct {
        enum wake_reason woke;
        const char *name;
    } names[] = {{WOKE_READABLE, "WOKE_READABLE"},
                 {WOKE_STOP, "WOKE_STOP"},
                 {WOKE_WAKER, "WOKE_WAKER"},
                 {WOKE_TIMEOUT, "WOKE_TIMEOUT"},
                 {WOKE_ERROR, "WOKE_ERROR"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].woke == woke)
            return names[i].name;
    return "another wake_reason";
}

/* ck_assert_int_eq() for a wait, whose failure names both reasons: "returned WOKE_ERROR, expected ...". */
#define ck_assert_woke(call, expected)                                                                       \
    do {                                                                                                     \
        enum wake_reason got_ = (call);                                                                      \
        ck_assert_msg(got_ == (expected), "%s returned %s (%d), expected %s", #call, woke_name(got_),        \
                      (int)got_, woke_name(expected));                                                       \
    } while (0)

/* A pair of connected local sockets: what one sends, the other can read. */
static void open_pair(socket_t pair[2])
{
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    pair[0] = fds[0];
    pair[1] = fds[1];
}

START_TEST(test_a_raised_waker_stays_readable_until_it_is_cleared)
{
    struct waker waker;
    ck_assert_int_eq(waker_open(&waker), 0);
    ck_assert_msg(!readable(waker.read_end), "a new waker is already raised");
    waker_raise(&waker);
    ck_assert_msg(readable(waker.read_end), "a raised waker is not readable");
    ck_assert_msg(readable(waker.read_end),
                  "a raised waker went down by itself: only waker_clear() lowers it");
    waker_clear(&waker);
    ck_assert_msg(!readable(waker.read_end), "a cleared waker is still readable");
    waker_raise(&waker);
    waker_raise(&waker);
    waker_clear(&waker);
    ck_assert_msg(!readable(waker.read_end), "raised twice, then cleared once, it is still readable");
    waker_close(&waker);
}
END_TEST

START_TEST(test_wait_says_readable_when_bytes_wait_and_times_out_when_none_do)
{
    socket_t pair[2];
    open_pair(pair);
    long long started = now_ms();
    ck_assert_woke(sock_wait_readable(pair[0], 100), WOKE_TIMEOUT);
    ck_assert_msg(now_ms() - started >= 90, "a wait of 100 ms ended after %lld ms", now_ms() - started);
    ck_assert_int_eq(send(pair[1], "x", 1, 0), 1);
    ck_assert_woke(sock_wait_readable(pair[0], 1000), WOKE_READABLE);
    sock_close(pair[0]);
    sock_close(pair[1]);
}
END_TEST

START_TEST(test_wait_or_woken_says_woken_when_the_waker_is_raised_even_with_bytes_waiting)
{
    socket_t pair[2];
    open_pair(pair);
    struct waker waker;
    ck_assert_int_eq(waker_open(&waker), 0);
    ck_assert_woke(sock_wait_readable_or_woken(pair[0], &waker, 50), WOKE_TIMEOUT);
    ck_assert_int_eq(send(pair[1], "x", 1, 0), 1);
    waker_raise(&waker);
    ck_assert_woke(sock_wait_readable_or_woken(pair[0], &waker, 1000), WOKE_WAKER);
    waker_clear(&waker);
    ck_assert_woke(sock_wait_readable_or_woken(pair[0], &waker, 1000), WOKE_READABLE);
    waker_close(&waker);
    sock_close(pair[0]);
    sock_close(pair[1]);
}
END_TEST

static int handled[2]; /* on_other_signal() writes a byte here: the helper then knows the signal has come */

static void on_other_signal(int signo)
{
    (void)signo;
    ssize_t written = write(handled[1], "!", 1); /* write() is async-signal-safe */
    (void)written;
}

/* Whether the process is asleep (state S in /proc/PID/stat): once it has said "go", asleep in its wait. */
static bool is_asleep(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return false;
    char state = '?';
    int found = fscanf(file, "%*d (%*[^)]) %c", &state);
    fclose(file);
    return found == 1 && state == 'S';
}

START_TEST(test_a_signal_that_is_not_a_stop_does_not_end_a_wait)
{
    socket_t pair[2];
    open_pair(pair);
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(handled), 0);
    /* Any other signal, with a handler: poll() fails with EINTR however the handler was installed. */
    struct sigaction action = {0};
    action.sa_handler = on_other_signal;
    sigemptyset(&action.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &action, NULL), 0);
    pid_t helper = fork();
    ck_assert_int_ge(helper, 0);
    if (helper == 0) {
        /* Once the test is asleep in its wait: the signal, then, once it has been handled, a byte to read. */
        pid_t test = getppid();
        char byte;
        if (read(go[0], &byte, 1) != 1)
            _exit(1);
        for (int checks = 0; !is_asleep(test); checks++) {
            if (checks == 5000)
                _exit(2); /* 5 s: it never went to sleep */
            sleep_ms(1);  /* polling a state with a deadline, not guessing it */
        }
        if (kill(test, SIGUSR1) != 0 || read(handled[0], &byte, 1) != 1)
            _exit(3);
        _exit(send(pair[1], "x", 1, 0) == 1 ? 0 : 4);
    }
    ck_assert_int_eq(write(go[1], "!", 1), 1);
    enum wake_reason woke = sock_wait_readable(pair[0], 5000);
    int status = 0;
    while (waitpid(helper, &status, 0) < 0 && errno == EINTR)
        continue; /* its signal may come while this process waits for it */
    ck_assert_msg(woke == WOKE_READABLE,
                  "a wait that a signal interrupted (poll() failed with EINTR) returned %s, expected "
                  "WOKE_READABLE once the byte came: EINTR is no error, poll again",
                  woke_name(woke));
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the helper failed (status %d)", status);
    sock_close(pair[0]);
    sock_close(pair[1]);
}
END_TEST

START_TEST(test_wait_for_stop_without_a_stop_waits_its_time)
{
    long long started = now_ms();
    ck_assert_woke(wait_for_stop(100), WOKE_TIMEOUT);
    ck_assert_msg(now_ms() - started >= 90, "wait_for_stop(100) ended after %lld ms", now_ms() - started);
}
END_TEST

START_TEST(test_ctrl_c_ends_every_wait_from_then_on)
{
    socket_t pair[2];
    open_pair(pair);
    struct waker waker;
    ck_assert_int_eq(waker_open(&waker), 0);
    ck_assert_int_eq(stop_handler_install(), 0);
    ck_assert_int_eq(raise(SIGINT), 0); /* the handler has run when raise() returns */
    ck_assert_woke(sock_wait_readable(pair[0], -1), WOKE_STOP);
    ck_assert_woke(sock_wait_readable(pair[0], -1), WOKE_STOP); /* and again: nobody lowers the stop */
    waker_raise(&waker);
    ck_assert_woke(sock_wait_readable_or_woken(pair[0], &waker, -1), WOKE_STOP); /* the stop wins */
    ck_assert_woke(wait_for_stop(-1), WOKE_STOP);
    waker_close(&waker);
    sock_close(pair[0]);
    sock_close(pair[1]);
}
END_TEST

/* Sends SIGINT to this process a moment after it starts: a Ctrl+C that comes while the test waits. */
static void press_ctrl_c_soon(void *unused)
{
    (void)unused;
    sleep_ms(100);
    kill(getpid(), SIGINT);
}

START_TEST(test_ctrl_c_wakes_a_wait_that_is_already_asleep)
{
    socket_t pair[2];
    open_pair(pair);
    ck_assert_int_eq(stop_handler_install(), 0);
    thread_t presser;
    ck_assert_int_eq(thread_start(&presser, press_ctrl_c_soon, NULL), 0);
    long long started = now_ms();
    enum wake_reason woke = sock_wait_readable(pair[0], 5000);
    long long waited = now_ms() - started;
    thread_join(presser);
    ck_assert_msg(woke == WOKE_STOP, "a wait asleep when Ctrl+C came ended with %s, not WOKE_STOP",
                  woke_name(woke));
    ck_assert_msg(waited < 2000, "the wait ended %lld ms after it started, Ctrl+C came at 100 ms", waited);
    sock_close(pair[0]);
    sock_close(pair[1]);
}
END_TEST

/* Notes whether SIGINT and SIGTERM are blocked on the thread that runs it. */
static void note_whether_stop_signals_are_blocked(void *blocked)
{
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    *(bool *)blocked = sigismember(&mask, SIGINT) == 1 && sigismember(&mask, SIGTERM) == 1;
}

START_TEST(test_ctrl_c_is_handled_by_the_main_thread_never_by_a_started_one)
{
    sigset_t before, after;
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    bool blocked = false;
    thread_t thread;
    ck_assert_int_eq(thread_start(&thread, note_whether_stop_signals_are_blocked, &blocked), 0);
    thread_join(thread);
    ck_assert_msg(blocked,
                  "a thread from thread_start() takes SIGINT or SIGTERM: the handler's _exit() could run on "
                  "a thread that is ending");
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    ck_assert_msg(sigismember(&before, SIGINT) == sigismember(&after, SIGINT) &&
                      sigismember(&before, SIGTERM) == sigismember(&after, SIGTERM),
                  "thread_start() changed the signal mask of the thread that called it");
}
END_TEST

START_TEST(test_a_second_ctrl_c_exits_at_once_with_130)
{
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        if (stop_handler_install() != 0)
            _exit(1);
        raise(SIGINT);
        raise(SIGINT); /* the user insists */
        _exit(0);      /* only reached if the second Ctrl+C did not end the process */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == EXIT_INTERRUPTED,
                  "after two Ctrl+C the process ended with status %d, not exit code %d", status,
                  EXIT_INTERRUPTED);
}
END_TEST

Suite *make_platform_suite(void)
{
    Suite *suite = suite_create("platform");
    TCase *wakers = tcase_create("wakers");
    tcase_add_test(wakers, test_a_raised_waker_stays_readable_until_it_is_cleared);
    suite_add_tcase(suite, wakers);
    TCase *waits = tcase_create("waits");
    tcase_add_test(waits, test_wait_says_readable_when_bytes_wait_and_times_out_when_none_do);
    tcase_add_test(waits, test_wait_or_woken_says_woken_when_the_waker_is_raised_even_with_bytes_waiting);
    tcase_add_test(waits, test_wait_for_stop_without_a_stop_waits_its_time);
    tcase_add_test(waits, test_a_signal_that_is_not_a_stop_does_not_end_a_wait);
    suite_add_tcase(suite, waits);
    TCase *stop = tcase_create("stop");
    tcase_set_timeout(stop, 10); /* a wait that the stop never reaches waits for ever */
    tcase_add_test(stop, test_ctrl_c_ends_every_wait_from_then_on);
    tcase_add_test(stop, test_ctrl_c_wakes_a_wait_that_is_already_asleep);
    tcase_add_test(stop, test_a_second_ctrl_c_exits_at_once_with_130);
    tcase_add_test(stop, test_ctrl_c_is_handled_by_the_main_thread_never_by_a_started_one);
    suite_add_tcase(suite, stop);
    return suite;
}
