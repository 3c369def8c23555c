/*
 * check_platform.c - what this stage adds to the portability contract:
 * thread_start_detached() runs the function on a thread of its own, a
 * detached one.
 *
 * The function waits for a byte that the test writes only once
 * thread_start_detached() has returned. Run on the caller's own thread, or
 * waited for there, it would wait for ever, and the test's timeout says so.
 * Once it may go on, it looks at its own thread: detached, or joinable (and
 * its stack kept until a join that never comes).
 */
#define _GNU_SOURCE /* pthread_getattr_np(): whether the running thread is detached */

#include "check_suites.h"
#include "platform.h"

#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

static int go[2];   /* the test writes here once thread_start_detached() has returned */
static int done[2]; /* the thread writes its argument here */

static void wait_for_go_then_answer(void *arg)
{
    char byte;
    if (read(go[0], &byte, 1) == 1) {
        ssize_t written = write(done[1], arg, 1);
        (void)written; /* the test sees whether it came */
    }
}

START_TEST(test_thread_start_detached_runs_the_function_on_a_thread_of_its_own)
{
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(done), 0);
    char mark = 'x';
    ck_assert_int_eq(thread_start_detached(wait_for_go_then_answer, &mark), 0);
    ck_assert_int_eq(write(go[1], "!", 1), 1); /* only now may the function go on */
    struct pollfd answer = {.fd = done[0], .events = POLLIN};
    ck_assert_msg(poll(&answer, 1, 2000) == 1, "the thread did not answer within 2 s");
    char got = 0;
    ck_assert_int_eq(read(done[0], &got, 1), 1);
    ck_assert_msg(got == 'x', "the function got the wrong argument: '%c' instead of 'x'", got);
}
END_TEST

/* Writes 'd' if the thread that runs it is detached, 'j' if it is joinable, '?' if it cannot tell. */
static void wait_for_go_then_say_whether_detached(void *unused)
{
    (void)unused;
    char byte;
    if (read(go[0], &byte, 1) != 1)
        return;
    char answer = '?';
    pthread_attr_t attr;
    int state;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getdetachstate(&attr, &state) == 0)
            answer = state == PTHREAD_CREATE_DETACHED ? 'd' : 'j';
        pthread_attr_destroy(&attr);
    }
    ssize_t written = write(done[1], &answer, 1);
    (void)written; /* the test sees whether it came */
}

START_TEST(test_thread_start_detached_detaches_the_thread)
{
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(done), 0);
    ck_assert_int_eq(thread_start_detached(wait_for_go_then_say_whether_detached, NULL), 0);
    /* Only now, once thread_start_detached() has returned: by then the thread must be detached. */
    ck_assert_int_eq(write(go[1], "!", 1), 1);
    struct pollfd answer = {.fd = done[0], .events = POLLIN};
    ck_assert_msg(poll(&answer, 1, 2000) == 1, "the thread did not answer within 2 s");
    char got = 0;
    ck_assert_int_eq(read(done[0], &got, 1), 1);
    ck_assert_msg(got == 'd',
                  "the thread is %s: nobody will ever join it, so when it ends its stack (8 MiB of address "
                  "space) is never given back; pthread_detach() it once pthread_create() has started it",
                  got == 'j' ? "joinable, not detached" : "of a kind pthread_getattr_np() cannot tell");
}
END_TEST

Suite *make_platform_suite(void)
{
    Suite *suite = suite_create("platform");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 5); /* run on the caller's thread, the function waits for ever */
    tcase_add_test(tc, test_thread_start_detached_runs_the_function_on_a_thread_of_its_own);
    tcase_add_test(tc, test_thread_start_detached_detaches_the_thread);
    suite_add_tcase(suite, tc);
    return suite;
}
