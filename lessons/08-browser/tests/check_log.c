/*
 * check_log.c - the log line: time, who, message, and never an overflow;
 * and the queue: log_event() never waits for stderr, and what it had to
 * drop is reported once stderr drains. The queue tests point stderr at a
 * pipe, so each runs in a process of its own (check_main.c makes Check fork).
 */
#include "check_suites.h"
#include "log.h"
#include "platform.h"

#include <check.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

START_TEST(test_log_puts_time_then_client_then_message)
{
    char line[128];
    log_format(line, sizeof line, "2026-11-24 09:00:00", "127.0.0.1:5000", "connected");
    ck_assert_str_eq(line, "2026-11-24 09:00:00 127.0.0.1:5000 connected");
}
END_TEST

START_TEST(test_log_formats_message_arguments)
{
    char line[128];
    log_format(line, sizeof line, "T", "server", "stopped: %lu clients served, %lu lines answered", 3ul, 7ul);
    ck_assert_str_eq(line, "T server stopped: 3 clients served, 7 lines answered");
}
END_TEST

START_TEST(test_log_cuts_long_line_without_overflow)
{
    char line[16];
    memset(line, '#', sizeof line);
    log_format(line, sizeof line, "2026-11-24 09:00:00", "127.0.0.1:5000", "connected");
    ck_assert_uint_eq(strlen(line), sizeof line - 1);
    ck_assert_str_eq(line, "2026-11-24 09:0");
}
END_TEST

/*
 * Points stderr at a pipe that nobody reads, and fills it: the log's first
 * write to it already waits. (An empty pipe would take 64 KiB first, and a
 * writer that had not run yet could then write the whole queue.) Returns the
 * pipe's read end, to drain it afterwards.
 */
static int stderr_to_a_full_pipe(void)
{
    int ends[2];
    ck_assert_int_eq(pipe(ends), 0);
    ck_assert_int_eq(fcntl(ends[1], F_SETFL, O_NONBLOCK), 0);
    char junk[4096];
    memset(junk, 'x', sizeof junk); /* not NUL bytes: the drain test searches what it reads as a string */
    while (write(ends[1], junk, sizeof junk) > 0)
        continue;
    ck_assert_int_eq(fcntl(ends[1], F_SETFL, 0), 0); /* blocking again, as a stderr is */
    ck_assert_int_eq(dup2(ends[1], STDERR_FILENO), STDERR_FILENO);
    close(ends[1]);
    return ends[0];
}

/* A call made on a thread of its own, so that one that waits for ever fails the test with words of its own
 * rather than with Check's timeout. */
struct watched_call {
    atomic_bool done;
    int result;
};

/* Some 800 KiB of log, more than ten times what the pipe and the queue hold together. */
static void log_ten_thousand_lines(void *arg)
{
    struct watched_call *call = arg;
    for (int i = 0; i < 10000; i++)
        log_event("127.0.0.1:5000", "line %d of a log that nobody reads, padded to be a little longer", i);
    atomic_store(&call->done, true);
}

static void stop_the_log_within_200_ms(void *arg)
{
    struct watched_call *call = arg;
    call->result = log_stop(200);
    atomic_store(&call->done, true);
}

/* Runs fn on a thread and waits for it at most ms milliseconds: whether it returned. One that did not is left
 * where it waits; the test's process ends with the test. */
static bool returns_within(void (*fn)(void *), struct watched_call *call, long long ms)
{
    atomic_init(&call->done, false);
    thread_t thread;
    ck_assert_int_eq(thread_start(&thread, fn, call), 0);
    long long give_up_at = monotonic_ms() + ms;
    while (!atomic_load(&call->done) && monotonic_ms() < give_up_at)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL); /* a millisecond */
    if (!atomic_load(&call->done))
        return false;
    thread_join(thread);
    return true;
}

START_TEST(test_log_event_never_waits_for_a_stderr_nobody_reads)
{
    int unread = stderr_to_a_full_pipe();
    ignore_broken_pipes(); /* as the server does: the writer may still write when the test closes the pipe */
    ck_assert_int_eq(log_start(), 0);
    struct watched_call logging;
    long long started = monotonic_ms();
    ck_assert_msg(
        returns_within(log_ten_thousand_lines, &logging, 1500),
        "10000 log lines had not returned after 1.5 s with stderr full: log_event() waited on stderr, "
        "or on a lock held by a writer that waits on it; it only queues the line (or counts it "
        "dropped) under the lock, and the writer gives the lock back while it writes");
    long long took = monotonic_ms() - started;
    ck_assert_msg(took < 2000, "10000 log lines took %lld ms with stderr full: log_event() waited on it",
                  took);
    /* The writer is stuck on stderr, so the stop gives up after its timeout instead of hanging. */
    struct watched_call stopping;
    ck_assert_msg(
        returns_within(stop_the_log_within_200_ms, &stopping, 700),
        "log_stop(200) had not returned after 0.7 s with the writer stuck on stderr: it waits for the "
        "writer at most its timeout, then leaves it and returns -1 (it cannot take the lock if the writer "
        "holds it while stuck: the writer gives the lock back while it writes)");
    ck_assert_int_eq(stopping.result, -1);
    /* Once nobody can read stderr, the writer's writes fail, it ends, and a second stop joins it. */
    close(unread);
    ck_assert_int_eq(log_stop(5000), 0);
}
END_TEST

START_TEST(test_log_reports_how_many_lines_it_dropped_once_stderr_drains)
{
    int unread = stderr_to_a_full_pipe();
    ck_assert_int_eq(log_start(), 0);
    for (int i = 0; i < 10000; i++)
        log_event("server", "line %d", i);
    /* Now read everything: the writer catches up, writes the rest of its queue and the count of lost lines.
     */
    char buf[65536];
    static char text[1 << 20];
    size_t held = 0;
    text[0] = '\0';
    ck_assert_int_eq(fcntl(unread, F_SETFL, O_NONBLOCK), 0);
    long long give_up_at = monotonic_ms() + 2000; /* within the case's timeout: this message, not Check's */
    while (strstr(text, "lines dropped") == NULL && monotonic_ms() < give_up_at) {
        ssize_t got = read(unread, buf, sizeof buf);
        if (got > 0 && held + (size_t)got < sizeof text - 1) {
            memcpy(text + held, buf, (size_t)got);
            held += (size_t)got;
        }
        text[held] = '\0';
    }
    ck_assert_msg(strstr(text, "server log: ") != NULL &&
                      strstr(text, " lines dropped, stderr did not keep up\n"),
                  "no line saying how many lines were dropped in %zu bytes of log", held);
    ck_assert_ptr_nonnull(strstr(text, "server line 0\n")); /* the first lines were queued, not dropped */
    ck_assert_int_eq(log_stop(5000), 0);
    close(unread);
}
END_TEST

Suite *make_log_suite(void)
{
    Suite *suite = suite_create("log");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_log_puts_time_then_client_then_message);
    tcase_add_test(tc, test_log_formats_message_arguments);
    tcase_add_test(tc, test_log_cuts_long_line_without_overflow);
    suite_add_tcase(suite, tc);
    TCase *queue = tcase_create("queue");
    tcase_set_timeout(queue, 5); /* a log_event() that waits on the unread pipe would wait for ever */
    tcase_add_test(queue, test_log_event_never_waits_for_a_stderr_nobody_reads);
    tcase_add_test(queue, test_log_reports_how_many_lines_it_dropped_once_stderr_drains);
    suite_add_tcase(suite, queue);
    return suite;
}
