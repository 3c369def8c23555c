/*
 * check_poller.c - the poller this build links (epoll on Linux; `make
 * check POLLER=poll` for poll()): what is ready is reported, with its data,
 * and nothing else; changes and removals take effect; a wait with nothing
 * ready times out.
 */
#include "check_suites.h"
#include "poller.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A connected pair of local sockets: what one sends, the other can read. */
static void open_pair(socket_t pair[2])
{
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    pair[0] = fds[0];
    pair[1] = fds[1];
}

START_TEST(test_poller_reports_a_readable_socket_with_its_data)
{
    struct poller *poller = poller_create(4);
    ck_assert_ptr_nonnull(poller);
    socket_t pair[2];
    open_pair(pair);
    int mark;
    ck_assert_int_eq(poller_add(poller, pair[0], POLLER_READ, &mark), 0);
    struct poller_event events[4];
    ck_assert_int_eq(poller_wait(poller, events, 4, 0), 0); /* nothing yet */
    ck_assert_int_eq(send(pair[1], "x", 1, 0), 1);
    ck_assert_int_eq(poller_wait(poller, events, 4, 1000), 1);
    ck_assert_ptr_eq(events[0].data, &mark);
    ck_assert_uint_eq(events[0].events & POLLER_READ, POLLER_READ);
    poller_destroy(poller);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

START_TEST(test_poller_reports_room_to_write_only_when_asked)
{
    struct poller *poller = poller_create(4);
    socket_t pair[2];
    open_pair(pair);
    int mark;
    ck_assert_int_eq(poller_add(poller, pair[0], POLLER_READ, &mark), 0);
    struct poller_event events[4];
    ck_assert_int_eq(poller_wait(poller, events, 4, 0), 0); /* room to write, but not asked for */
    ck_assert_int_eq(poller_modify(poller, pair[0], POLLER_READ | POLLER_WRITE, &mark), 0);
    ck_assert_int_eq(poller_wait(poller, events, 4, 1000), 1);
    ck_assert_uint_eq(events[0].events, POLLER_WRITE);
    ck_assert_int_eq(poller_modify(poller, pair[0], 0, &mark), 0); /* watched for nothing, for now */
    ck_assert_int_eq(send(pair[1], "x", 1, 0), 1);
    ck_assert_int_eq(poller_wait(poller, events, 4, 100), 0);
    poller_destroy(poller);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

START_TEST(test_poller_reports_only_the_ready_ones_among_many_and_forgets_the_removed)
{
    enum { PAIRS = 300 };
    static socket_t pairs[PAIRS][2];
    static int marks[PAIRS];
    struct poller *poller = poller_create(8); /* it grows */
    for (int i = 0; i < PAIRS; i++) {
        open_pair(pairs[i]);
        ck_assert_int_eq(poller_add(poller, pairs[i][0], POLLER_READ, &marks[i]), 0);
    }
    for (int i = 0; i < PAIRS; i += 7) /* every seventh has a byte to read */
        ck_assert_int_eq(send(pairs[i][1], "x", 1, 0), 1);
    ck_assert_int_eq(poller_remove(poller, pairs[0][0]), 0); /* ready, but no longer watched */
    struct poller_event events[PAIRS];
    int ready = poller_wait(poller, events, PAIRS, 1000);
    ck_assert_int_eq(ready, (PAIRS + 6) / 7 - 1);
    for (int i = 0; i < ready; i++) {
        int which = (int)((int *)events[i].data - marks);
        ck_assert_msg(which % 7 == 0 && which != 0,
                      "socket %d reported ready: it had nothing, or was removed", which);
    }
    poller_destroy(poller);
    for (int i = 0; i < PAIRS; i++) {
        close(pairs[i][0]);
        close(pairs[i][1]);
    }
}
END_TEST

/* The events as text, for a failure's message. */
static const char *events_name(unsigned events)
{
    static const char *const names[] = {"nothing", "POLLER_READ", "POLLER_WRITE",
                                        "POLLER_READ | POLLER_WRITE"};
    return names[events & 3u];
}

START_TEST(test_poller_reports_a_hang_up_as_readable_and_writable)
{
    /* Whatever it was watched for: the loop acts on either, and its recv() or send() then says what broke. */
    const unsigned watched[] = {POLLER_READ, POLLER_WRITE};
    for (size_t i = 0; i < sizeof watched / sizeof watched[0]; i++) {
        struct poller *poller = poller_create(4);
        socket_t pair[2];
        open_pair(pair);
        int mark;
        ck_assert_int_eq(poller_add(poller, pair[0], watched[i], &mark), 0);
        close(pair[1]); /* the peer has gone: a recv() would now return 0, a send() fail */
        struct poller_event events[4];
        ck_assert_int_eq(poller_wait(poller, events, 4, 1000), 1);
        ck_assert_msg(events[0].events == (POLLER_READ | POLLER_WRITE),
                      "a socket watched for %s whose peer hung up was reported as %s: an error or a hang-up "
                      "(EPOLLERR, EPOLLHUP) must be reported as both readable and writable",
                      events_name(watched[i]), events_name(events[0].events));
        poller_destroy(poller);
        close(pair[0]);
    }
}
END_TEST

START_TEST(test_poller_reports_a_socket_again_while_it_stays_readable)
{
    struct poller *poller = poller_create(4);
    socket_t pair[2];
    open_pair(pair);
    int mark;
    ck_assert_int_eq(poller_add(poller, pair[0], POLLER_READ, &mark), 0);
    ck_assert_int_eq(send(pair[1], "xyz", 3, 0), 3);
    struct poller_event events[4];
    ck_assert_int_eq(poller_wait(poller, events, 4, 1000), 1);
    char byte;
    ck_assert_int_eq(recv(pair[0], &byte, 1, 0), 1); /* the loop reads at most a budget: two bytes are left */
    for (int again = 1; again <= 2; again++)
        ck_assert_msg(
            poller_wait(poller, events, 4, 100) == 1,
            "wait %d after the first: a socket with bytes still unread was reported only once: the "
            "readiness must be level-triggered (no EPOLLET), since the loop reads a budget per wake-up "
            "and relies on hearing again about the rest",
            again);
    poller_destroy(poller);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

/* The thread that waits, and whether the signal sent to it came. */
static pthread_t waiting_thread;
static char waiting_task[64]; /* "PID/task/TID": where Linux's /proc describes it */
static atomic_bool wait_over;
static volatile sig_atomic_t signalled;

static void note_signal(int sig)
{
    (void)sig;
    signalled = 1;
}

/* Whether the call a thread is in (its /proc .../syscall's first number) is a wait of a poller. */
static bool is_in_a_poller_wait(const char *task)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%s/syscall", task);
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return false;
    long number = -1;
    bool in_a_call = fscanf(file, "%ld", &number) == 1; /* "running" when it is in none */
    fclose(file);
    const long waits[] = {
#ifdef SYS_epoll_wait
        SYS_epoll_wait,
#endif
#ifdef SYS_epoll_pwait2
        SYS_epoll_pwait2,
#endif
#ifdef SYS_poll
        SYS_poll,
#endif
        SYS_epoll_pwait, SYS_ppoll};
    for (size_t i = 0; in_a_call && i < sizeof waits / sizeof waits[0]; i++)
        if (number == waits[i])
            return true;
    return false;
}

/* Sends SIGUSR1 to the waiting thread once /proc shows it asleep in its wait: the signal interrupts that
 * wait, never comes before it. */
static void *interrupt_the_wait(void *unused)
{
    (void)unused;
    while (!atomic_load(&wait_over)) {
        if (is_in_a_poller_wait(waiting_task)) {
            pthread_kill(waiting_thread, SIGUSR1);
            return NULL;
        }
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL); /* a millisecond */
    }
    return NULL;
}

START_TEST(test_poller_wait_interrupted_by_a_signal_is_a_wait_that_found_nothing)
{
    struct sigaction action = {0};
    action.sa_handler = note_signal;
    sigemptyset(&action.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &action, NULL), 0); /* no SA_RESTART, and a wait is never restarted */
    struct poller *poller = poller_create(4);
    socket_t pair[2];
    open_pair(pair);
    int mark;
    ck_assert_int_eq(poller_add(poller, pair[0], POLLER_READ, &mark), 0);
    waiting_thread = pthread_self();
    ssize_t len = readlink("/proc/thread-self", waiting_task, sizeof waiting_task - 1);
    ck_assert_msg(len > 0, "cannot read /proc/thread-self");
    waiting_task[len] = '\0';
    pthread_t interrupter;
    ck_assert_int_eq(pthread_create(&interrupter, NULL, interrupt_the_wait, NULL), 0);
    struct poller_event events[4];
    int ready = poller_wait(poller, events, 4, 1500);
    atomic_store(&wait_over, true);
    pthread_join(interrupter, NULL);
    ck_assert_msg(signalled, "the wait ended (%d) before a signal could interrupt it", ready);
    ck_assert_msg(ready == 0,
                  "poller_wait() interrupted by a signal returned %d: a signal (EINTR) is a wait that found "
                  "nothing (0), not an error (-1): Ctrl+C is one, and the stop waker then says so",
                  ready);
    poller_destroy(poller);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

START_TEST(test_poller_wait_times_out_when_nothing_is_ready)
{
    struct poller *poller = poller_create(4);
    socket_t pair[2];
    open_pair(pair);
    int mark;
    ck_assert_int_eq(poller_add(poller, pair[0], POLLER_READ, &mark), 0);
    struct poller_event events[4];
    long long started = monotonic_ms();
    ck_assert_int_eq(poller_wait(poller, events, 4, 100), 0);
    ck_assert_msg(monotonic_ms() - started >= 90, "a wait of 100 ms ended after %lld ms",
                  monotonic_ms() - started);
    poller_destroy(poller);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

Suite *make_poller_suite(void)
{
    Suite *suite = suite_create("poller");
    TCase *tc = tcase_create("readiness");
    tcase_add_test(tc, test_poller_reports_a_readable_socket_with_its_data);
    tcase_add_test(tc, test_poller_reports_room_to_write_only_when_asked);
    tcase_add_test(tc, test_poller_reports_only_the_ready_ones_among_many_and_forgets_the_removed);
    tcase_add_test(tc, test_poller_reports_a_hang_up_as_readable_and_writable);
    tcase_add_test(tc, test_poller_reports_a_socket_again_while_it_stays_readable);
    tcase_add_test(tc, test_poller_wait_interrupted_by_a_signal_is_a_wait_that_found_nothing);
    tcase_add_test(tc, test_poller_wait_times_out_when_nothing_is_ready);
    suite_add_tcase(suite, tc);
    return suite;
}
