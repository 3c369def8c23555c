/*
 * check_job.c - a slow command's work, without threads or sockets: its
 * arguments parsed as Redis words their errors, PRIMES counting right
 * across the sieve's pieces, and a job that stops, with its reply saying
 * so, when the runner says it is cancelled. The test is the runner.
 */
#include "check_suites.h"
#include "job.h"

#include <check.h>
#include <stdbool.h>
#include <string.h>

/* A runner the test controls: pauses return at once (false once cancelled); it is cancelled after `allowed`
 * questions. */
struct fake_runner {
    long long paused_ms; /* what pause() was asked for */
    int asked;           /* how often cancelled() was asked */
    int allowed;         /* cancelled() says true from the allowed+1'th question on (-1: never) */
};

static bool fake_cancelled(void *arg)
{
    struct fake_runner *fake = arg;
    fake->asked++;
    return fake->allowed >= 0 && fake->asked > fake->allowed;
}

static bool fake_pause(void *arg, long long ms)
{
    struct fake_runner *fake = arg;
    fake->paused_ms = ms;
    return !fake_cancelled(arg);
}

static struct job_runner runner_of(struct fake_runner *fake)
{
    return (struct job_runner){.pause = fake_pause, .cancelled = fake_cancelled, .arg = fake};
}

void expect_job_reply(const struct job *job, const char *text)
{
    size_t len = outbuf_pending(&job->reply);
    const char *data = outbuf_data(&job->reply);
    ck_assert_msg(len == strlen(text) && memcmp(data, text, len) == 0,
                  "the reply of client %llu's job: got \"%.*s\", expected \"%s\"", job->client, (int)len,
                  len ? data : "", text);
}

#define SLEEP(text)  job_sleep(text, strlen(text), 7, why, sizeof why)
#define PRIMES(text) job_primes(text, strlen(text), 7, why, sizeof why)

START_TEST(test_job_sleep_takes_seconds_as_a_number_with_a_fraction)
{
    char why[64] = "";
    struct job *job = SLEEP("0.25");
    ck_assert_msg(job != NULL, "0.25 refused: %s", why);
    ck_assert_int_eq(job->sleep_ms, 250);
    ck_assert_int_eq((long long)job->client, 7);
    job_free(job);
    job = SLEEP("2");
    ck_assert_int_eq(job->sleep_ms, 2000);
    job_free(job);
    job = SLEEP("1e-3");
    ck_assert_int_eq(job->sleep_ms, 1);
    job_free(job);
}
END_TEST

START_TEST(test_job_sleep_refuses_what_is_not_a_number_in_redis_words)
{
    const char *bad[] = {"", "abc", "1x", " 1", "\t1", "\n0", "1 ", "nan", "inf", "0x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[64] = "";
        struct job *job = SLEEP(bad[i]);
        ck_assert_msg(job == NULL, "\"%s\" was taken as %lld ms", bad[i], job ? job->sleep_ms : 0);
        ck_assert_str_eq(why, "value is not a valid float");
    }
}
END_TEST

START_TEST(test_job_sleep_refuses_a_negative_or_too_long_sleep)
{
    char why[64] = "";
    ck_assert_ptr_null(SLEEP("-1"));
    ck_assert_str_eq(why, "value is out of range");
    ck_assert_ptr_null(SLEEP("3600.5"));
    ck_assert_str_eq(why, "value is out of range");
}
END_TEST

START_TEST(test_job_primes_takes_a_whole_number_in_range)
{
    char why[64] = "";
    struct job *job = PRIMES("1000");
    ck_assert_msg(job != NULL, "1000 refused: %s", why);
    ck_assert_uint_eq(job->below, 1000);
    job_free(job);
    ck_assert_ptr_null(PRIMES("12.5"));
    ck_assert_str_eq(why, "value is not an integer or out of range");
    ck_assert_ptr_null(PRIMES("-3"));
    ck_assert_str_eq(why, "value is out of range");
    ck_assert_ptr_null(PRIMES("4000000001"));
    ck_assert_str_eq(why, "value is out of range");
}
END_TEST

START_TEST(test_job_counts_the_primes_below_n)
{
    /* pi(n) for n around the small cases, and across the sieve's pieces of 32768. */
    static const struct {
        unsigned long long n, primes;
    } known[] = {{0, 0},        {1, 0},        {2, 0},        {3, 1},           {10, 4},           {100, 25},
                 {32768, 3512}, {32771, 3512}, {65536, 6542}, {1000000, 78498}, {10000000, 664579}};
    struct fake_runner fake = {.allowed = -1};
    struct job_runner runner = runner_of(&fake);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        unsigned long long count = 0;
        ck_assert_int_eq(job_count_primes(known[i].n, &runner, &count), JOB_COUNTED);
        ck_assert_msg(count == known[i].primes, "primes below %llu: got %llu, expected %llu", known[i].n,
                      count, known[i].primes);
    }
}
END_TEST

START_TEST(test_job_run_replies_ok_after_the_sleep_and_the_count_as_an_integer)
{
    char why[64] = "";
    struct fake_runner fake = {.allowed = -1};
    struct job_runner runner = runner_of(&fake);
    struct job *job = SLEEP("1.5");
    job_run(job, &runner);
    ck_assert_int_eq(fake.paused_ms, 1500);
    ck_assert(!job->cancelled);
    expect_job_reply(job, "+OK\r\n");
    job_free(job);
    job = PRIMES("100");
    job_run(job, &runner);
    expect_job_reply(job, ":25\r\n");
    job_free(job);
}
END_TEST

START_TEST(test_job_stops_counting_when_cancelled_between_pieces)
{
    char why[64] = "";
    struct fake_runner fake = {.allowed = 3}; /* three pieces, then the stop */
    struct job_runner runner = runner_of(&fake);
    struct job *job = PRIMES("4000000000");
    job_run(job, &runner);
    ck_assert_int_eq(fake.asked, 4);
    ck_assert(job->cancelled);
    expect_job_reply(job, "-ERR cancelled: the server is shutting down\r\n");
    job_free(job);
}
END_TEST

START_TEST(test_job_ends_a_sleep_cut_short_with_the_cancelled_error)
{
    char why[64] = "";
    struct fake_runner fake = {.allowed = 0};
    struct job_runner runner = runner_of(&fake);
    struct job *job = SLEEP("60");
    job_run(job, &runner);
    ck_assert(job->cancelled);
    expect_job_reply(job, "-ERR cancelled: the server is shutting down\r\n");
    job_free(job);
}
END_TEST

START_TEST(test_job_cancelled_or_refused_before_it_ran_says_why)
{
    char why[64] = "";
    struct job *job = PRIMES("100");
    job_cancel(job);
    expect_job_reply(job, "-ERR cancelled: the server is shutting down\r\n");
    job_free(job);
    job = PRIMES("100");
    job_refuse(job);
    expect_job_reply(job, "-ERR job queue full, try again later\r\n");
    job_free(job);
}
END_TEST

Suite *make_job_suite(void)
{
    Suite *suite = suite_create("job");
    TCase *work = tcase_create("work"); /* step "job" */
    tcase_add_test(work, test_job_sleep_takes_seconds_as_a_number_with_a_fraction);
    tcase_add_test(work, test_job_sleep_refuses_what_is_not_a_number_in_redis_words);
    tcase_add_test(work, test_job_sleep_refuses_a_negative_or_too_long_sleep);
    tcase_add_test(work, test_job_primes_takes_a_whole_number_in_range);
    tcase_add_test(work, test_job_counts_the_primes_below_n);
    tcase_add_test(work, test_job_run_replies_ok_after_the_sleep_and_the_count_as_an_integer);
    tcase_add_test(work, test_job_stops_counting_when_cancelled_between_pieces);
    tcase_add_test(work, test_job_ends_a_sleep_cut_short_with_the_cancelled_error);
    tcase_add_test(work, test_job_cancelled_or_refused_before_it_ran_says_why);
    suite_add_tcase(suite, work);
    return suite;
}
