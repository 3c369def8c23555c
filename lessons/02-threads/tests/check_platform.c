/*
 * check_platform.c - what this stage adds to the portability contract:
 * thread_start_detached() runs the function on a thread of its own.
 *
 * The function waits for a byte that the test writes only once
 * thread_start_detached() has returned. Run on the caller's own thread, it
 * would wait for ever, and the test's timeout says so.
 */
#include "check_suites.h"
#include "platform.h"

#include <check.h>
#include <poll.h>
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

Suite *make_platform_suite(void)
{
    Suite *suite = suite_create("platform");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 5); /* run on the caller's thread, the function waits for ever */
    tcase_add_test(tc, test_thread_start_detached_runs_the_function_on_a_thread_of_its_own);
    suite_add_tcase(suite, tc);
    return suite;
}
