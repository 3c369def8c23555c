/*
 * check_pool.c - the worker threads, without a loop or a socket: every job
 * queued is run and handed back, the descriptor is readable exactly while
 * finished jobs wait, a full queue refuses at once, and the stop cancels
 * what is queued and cuts short what runs. The test is the loop: it waits
 * on pool_descriptor() as the server's poller does.
 */
#include "check_suites.h"
#include "platform.h"
#include "pool.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* How long the test waits for anything the pool must do: far more than it takes, so only a hang fails it. */
#define PATIENCE_MS 5000

static struct job *primes_job(const char *below, unsigned long long client)
{
    char why[64];
    struct job *job = job_primes(below, strlen(below), client, why, sizeof why);
    ck_assert_msg(job != NULL, "PRIMES %s: %s", below, why);
    return job;
}

static struct job *sleep_job(const char *seconds, unsigned long long client)
{
    char why[64];
    struct job *job = job_sleep(seconds, strlen(seconds), client, why, sizeof why);
    ck_assert_msg(job != NULL, "DEBUG SLEEP %s: %s", seconds, why);
    return job;
}

static struct pool *start(int workers, size_t max_queue)
{
    char err[128] = "";
    struct pool *pool = pool_start(workers, max_queue, err, sizeof err);
    ck_assert_msg(pool != NULL, "pool_start: %s", err);
    return pool;
}

/* Waits, as the loop does, until `count` jobs have been handed back; puts them in order into got[]. */
static void take(struct pool *pool, struct job **got, size_t count)
{
    size_t taken = 0;
    while (taken < count) {
        enum wake_reason woke = sock_wait_readable(pool_descriptor(pool), PATIENCE_MS);
        ck_assert_msg(woke == WOKE_READABLE, "%zu of %zu jobs handed back, then the descriptor stayed quiet",
                      taken, count);
        for (struct job *job = pool_take_done(pool); job != NULL; job = job->next) {
            ck_assert_msg(taken < count, "more jobs handed back than were queued");
            got[taken++] = job;
        }
    }
}

/* Waits until the pool has `running` jobs running: a worker took them. Checks the counts every millisecond.
 */
static void wait_running(struct pool *pool, size_t running)
{
    struct job_counts counts;
    for (int ms = 0; ms < PATIENCE_MS; ms++) {
        pool_counts(pool, &counts);
        if (counts.running == running)
            return;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    ck_abort_msg("%zu jobs running after %d ms, expected %zu", counts.running, PATIENCE_MS, running);
}

/* Waits until the workers have woken `wakeups` times in all (counts.wakeups), checking every millisecond. */
static void wait_woken(struct pool *pool, unsigned long long wakeups)
{
    struct job_counts counts;
    for (int ms = 0; ms < PATIENCE_MS; ms++) {
        pool_counts(pool, &counts);
        if (counts.wakeups >= wakeups)
            return;
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
    ck_abort_msg("%llu worker wake-ups after %d ms, expected %llu (each return from cond_wait() counts one)",
                 counts.wakeups, PATIENCE_MS, wakeups);
}

START_TEST(test_pool_runs_each_job_and_hands_it_back_through_its_descriptor)
{
    struct pool *pool = start(2, 16);
    ck_assert_int_eq(pool_submit(pool, primes_job("10", 1)), 0);
    ck_assert_int_eq(pool_submit(pool, primes_job("100", 2)), 0);
    ck_assert_int_eq(pool_submit(pool, primes_job("1000", 3)), 0);
    struct job *got[3];
    take(pool, got, 3);
    const char *expected[] = {"", ":4\r\n", ":25\r\n", ":168\r\n"};
    for (int i = 0; i < 3; i++) {
        expect_job_reply(got[i], expected[got[i]->client]);
        job_free(got[i]);
    }
    ck_assert_ptr_null(pool_stop(pool));
}
END_TEST

START_TEST(test_pool_lowers_its_descriptor_once_every_finished_job_is_taken)
{
    struct pool *pool = start(1, 16);
    ck_assert_int_eq(sock_wait_readable(pool_descriptor(pool), 0), WOKE_TIMEOUT);
    ck_assert_int_eq(pool_submit(pool, primes_job("100", 1)), 0);
    struct job *got[1];
    take(pool, got, 1);
    job_free(got[0]);
    /* Taken: quiet again, or the loop would wake for nothing, at once and forever. */
    ck_assert_int_eq(sock_wait_readable(pool_descriptor(pool), 0), WOKE_TIMEOUT);
    struct job_counts counts;
    pool_counts(pool, &counts);
    ck_assert_uint_eq(counts.finished, 1);
    ck_assert_uint_eq(counts.queued + counts.running, 0);
    ck_assert_ptr_null(pool_stop(pool));
}
END_TEST

START_TEST(test_pool_with_one_worker_hands_jobs_back_in_the_order_they_came)
{
    struct pool *pool = start(1, 16);
    for (unsigned long long id = 1; id <= 5; id++)
        ck_assert_int_eq(pool_submit(pool, primes_job("5000", id)), 0);
    struct job *got[5];
    take(pool, got, 5);
    for (unsigned long long i = 0; i < 5; i++) {
        ck_assert_msg(got[i]->client == i + 1, "job %llu handed back as number %llu", got[i]->client, i + 1);
        job_free(got[i]);
    }
    ck_assert_ptr_null(pool_stop(pool));
}
END_TEST

START_TEST(test_pool_workers_woken_for_one_job_go_back_to_waiting)
{
    struct pool *pool = start(4, 16);
    for (unsigned long long id = 1; id <= 4; id++)
        ck_assert_int_eq(pool_submit(pool, sleep_job("0.05", id)), 0);
    wait_running(pool, 4); /* each worker has one */
    struct job *got[4];
    take(pool, got,
         4); /* and each is back waiting: it finished under the lock, and waits before letting go */
    for (int i = 0; i < 4; i++)
        job_free(got[i]);
    /* One job wakes all four (cond_broadcast()): three find the queue empty, and must wait again. Waiting
     * until all four have woken, before another job fills the queue, makes an `if` fail here every run. */
    struct job_counts before;
    pool_counts(pool, &before);
    ck_assert_int_eq(pool_submit(pool, primes_job("100", 5)), 0);
    wait_woken(pool, before.wakeups + 4);
    take(pool, got, 1);
    expect_job_reply(got[0], ":25\r\n");
    job_free(got[0]);
    ck_assert_int_eq(pool_submit(pool, primes_job("1000", 6)), 0);
    take(pool, got, 1);
    expect_job_reply(got[0], ":168\r\n");
    job_free(got[0]);
    ck_assert_ptr_null(pool_stop(pool));
}
END_TEST

START_TEST(test_pool_hands_back_every_one_of_many_small_jobs_exactly_once)
{
    enum { JOBS = 2000 };
    struct pool *pool = start(4, JOBS);
    for (unsigned long long id = 0; id < JOBS; id++)
        ck_assert_int_eq(pool_submit(pool, primes_job("100", id)), 0);
    static struct job *got[JOBS];
    static bool seen[JOBS];
    memset(seen, 0, sizeof seen);
    take(pool, got, JOBS);
    for (int i = 0; i < JOBS; i++) {
        ck_assert_msg(!seen[got[i]->client], "job %llu handed back twice", got[i]->client);
        seen[got[i]->client] = true;
        expect_job_reply(got[i], ":25\r\n");
        job_free(got[i]);
    }
    ck_assert_ptr_null(pool_stop(pool));
}
END_TEST

START_TEST(test_pool_refuses_a_job_at_once_when_the_queue_is_full)
{
    struct pool *pool = start(1, 1);
    ck_assert_int_eq(pool_submit(pool, sleep_job("60", 1)), 0);
    wait_running(pool, 1);
    ck_assert_int_eq(pool_submit(pool, sleep_job("60", 2)), 0); /* the one place in the queue */
    struct job *third = sleep_job("60", 3);
    ck_assert_int_eq(pool_submit(pool, third), -1);
    job_free(third); /* refused: still ours */
    struct job_counts counts;
    pool_counts(pool, &counts);
    ck_assert_uint_eq(counts.running, 1);
    ck_assert_uint_eq(counts.queued, 1);
    ck_assert_uint_eq(counts.refused, 1);
    for (struct job *job = pool_stop(pool), *next; job != NULL; job = next) {
        next = job->next;
        job_free(job);
    }
}
END_TEST

START_TEST(test_pool_stop_cuts_a_sleep_short_and_cancels_what_is_queued)
{
    struct pool *pool = start(1, 4);
    ck_assert_int_eq(pool_submit(pool, sleep_job("3600", 1)), 0);
    wait_running(pool, 1);
    ck_assert_int_eq(pool_submit(pool, primes_job("100", 2)), 0);
    long long before = monotonic_ms();
    struct job *left = pool_stop(pool); /* an hour's sleep: the stop must not wait for it */
    long long took = monotonic_ms() - before;
    ck_assert_msg(took < PATIENCE_MS, "the stop took %lld ms", took);
    ck_assert_ptr_nonnull(left);
    ck_assert_ptr_nonnull(left->next);
    ck_assert_ptr_null(left->next->next);
    /* The one that ran first, then the one that never ran; both say why they have no result. */
    ck_assert_uint_eq(left->client, 1);
    ck_assert_uint_eq(left->next->client, 2);
    expect_job_reply(left, "-ERR cancelled: the server is shutting down\r\n");
    expect_job_reply(left->next, "-ERR cancelled: the server is shutting down\r\n");
    job_free(left->next);
    job_free(left);
}
END_TEST

START_TEST(test_pool_stop_cuts_a_long_count_short)
{
    struct pool *pool = start(1, 4);
    ck_assert_int_eq(pool_submit(pool, primes_job("4000000000", 1)), 0);
    wait_running(pool, 1);
    struct job *left = pool_stop(pool);
    ck_assert_ptr_nonnull(left);
    ck_assert(left->cancelled);
    expect_job_reply(left, "-ERR cancelled: the server is shutting down\r\n");
    job_free(left);
}
END_TEST

Suite *make_pool_suite(void)
{
    Suite *suite = suite_create("pool");
    TCase *workers = tcase_create("workers"); /* step "workers" */
    tcase_set_timeout(workers, 10);
    tcase_add_test(workers, test_pool_workers_woken_for_one_job_go_back_to_waiting);
    tcase_add_test(workers, test_pool_runs_each_job_and_hands_it_back_through_its_descriptor);
    tcase_add_test(workers, test_pool_lowers_its_descriptor_once_every_finished_job_is_taken);
    tcase_add_test(workers, test_pool_with_one_worker_hands_jobs_back_in_the_order_they_came);
    tcase_add_test(workers, test_pool_hands_back_every_one_of_many_small_jobs_exactly_once);
    tcase_add_test(workers, test_pool_refuses_a_job_at_once_when_the_queue_is_full);
    suite_add_tcase(suite, workers);
    TCase *stop = tcase_create("stop"); /* step "stop" */
    tcase_set_timeout(stop, 10);
    tcase_add_test(stop, test_pool_stop_cuts_a_sleep_short_and_cancels_what_is_queued);
    tcase_add_test(stop, test_pool_stop_cuts_a_long_count_short);
    suite_add_tcase(suite, stop);
    return suite;
}
