/*
 * pool.c - see pool.h. One lock guards everything the loop and the workers
 * share: the queue, the list of finished jobs, the counts and the stop.
 * Two condition variables wait on it: `work` (a job was queued, or the
 * stop came) for idle workers, and `stopped` (the stop came) for a job
 * that sleeps, so that a stop ends its sleep at once.
 *
 * A worker holds the lock only to take a job or to hand one back; it runs
 * the job with the lock given back, so the loop is never kept waiting by
 * a job, only by another thread's few instructions in a list.
 */
#include "pool.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct pool {
    mutex_t lock;
    cond_t work;                    /* a job was queued, or the stop came: idle workers wake */
    cond_t stopped;                 /* the stop came: sleeping jobs wake */
    struct job *queue, *queue_last; /* waiting for a worker, oldest first */
    struct job *done, *done_last;   /* finished, oldest first, until the loop takes them */
    size_t max_queue;
    struct job_counts counts;
    bool stop;
    struct waker waker; /* raised while `done` is not empty */
    int started;        /* threads started, to join */
    thread_t threads[];
};

/* Appends a job to a list kept by its first and last. */
static void append(struct job **first, struct job **last, struct job *job)
{
    job->next = NULL;
    if (*last != NULL)
        (*last)->next = job;
    else
        *first = job;
    *last = job;
}

/* The runner's pause(): waits ms, or less when the stop comes (then returns false). */
static bool pause_unless_stopped(void *arg, long long ms)
{
    struct pool *pool = arg;
    long long until = monotonic_ms() + ms;
    mutex_lock(&pool->lock);
    long long now;
    /* A condition variable may wake for nothing: wait until the time is up, or the stop is there. */
    while (!pool->stop && (now = monotonic_ms()) < until)
        cond_wait(&pool->stopped, &pool->lock, until - now > 60000 ? 60000 : (int)(until - now));
    bool stopped = pool->stop;
    mutex_unlock(&pool->lock);
    return !stopped;
}

/* The runner's cancelled(): whether the stop came. */
static bool is_stopped(void *arg)
{
    struct pool *pool = arg;
    mutex_lock(&pool->lock);
    bool stopped = pool->stop;
    mutex_unlock(&pool->lock);
    return stopped;
}

/* A worker: takes the oldest job, runs it with the lock given back, hands it back; until the stop. */
static void work(void *arg)
{
    struct pool *pool = arg;
    const struct job_runner runner = {.pause = pause_unless_stopped, .cancelled = is_stopped, .arg = pool};
    /* Below the loop: a job of seconds must not keep a processor from the loop, which serves everyone in
     * microseconds (a PING's p99 went from about 3 ms to 0.1 ms beside two counting workers on two cores).
     * Where it cannot be done, the workers simply compete as equals. */
    thread_lower_priority();
    mutex_lock(&pool->lock);
    for (;;) {
        while (pool->queue == NULL && !pool->stop) {
            cond_wait(&pool->work, &pool->lock, -1);
            pool->counts.wakeups++; /* counted under the lock: the tests see every worker woken */
        }
        if (pool->stop)
            break; /* what is still queued, pool_stop() cancels */
        struct job *job = pool->queue;
        pool->queue = job->next;
        if (pool->queue == NULL)
            pool->queue_last = NULL;
        pool->counts.queued--;
        pool->counts.running++;
        mutex_unlock(&pool->lock);

        job_run(job, &runner); /* the slow part, with the lock given back */

        mutex_lock(&pool->lock);
        pool->counts.running--;
        pool->counts.finished++;
        /* Only the first finished job wakes the loop: it takes them all, and lowers the waker under the lock.
         */
        if (pool->done == NULL)
            waker_raise(&pool->waker);
        append(&pool->done, &pool->done_last, job);
    }
    mutex_unlock(&pool->lock);
}

/* Tells every worker to stop and joins them. */
static void stop_workers(struct pool *pool)
{
    mutex_lock(&pool->lock);
    pool->stop = true;
    cond_broadcast(&pool->work);
    cond_broadcast(&pool->stopped);
    mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->started; i++)
        thread_join(pool->threads[i]);
}

/* Releases what pool_start() made. */
static void pool_free(struct pool *pool)
{
    waker_close(&pool->waker);
    cond_destroy(&pool->stopped);
    cond_destroy(&pool->work);
    mutex_destroy(&pool->lock);
    free(pool);
}

struct pool *pool_start(int workers, size_t max_queue, char *err, size_t err_len)
{
    struct pool *pool = calloc(1, sizeof *pool + (size_t)workers * sizeof(thread_t));
    if (pool == NULL) {
        snprintf(err, err_len, "out of memory for the pool");
        return NULL;
    }
    pool->max_queue = max_queue;
    pool->counts.workers = workers;
    pool->waker = WAKER_CLOSED; /* so that pool_free() closes nothing if waker_open() fails */
    mutex_init(&pool->lock);
    cond_init(&pool->work);
    cond_init(&pool->stopped);
    if (waker_open(&pool->waker) != 0) {
        snprintf(err, err_len, "cannot make the pool's waker");
        pool_free(pool);
        return NULL;
    }
    while (pool->started < workers && thread_start(&pool->threads[pool->started], work, pool) == 0)
        pool->started++;
    if (pool->started < workers) {
        snprintf(err, err_len, "cannot start worker %d of %d", pool->started + 1, workers);
        stop_workers(pool);
        pool_free(pool);
        return NULL;
    }
    return pool;
}

socket_t pool_descriptor(const struct pool *pool)
{
    return waker_descriptor(&pool->waker);
}

int pool_submit(struct pool *pool, struct job *job)
{
    mutex_lock(&pool->lock);
    bool fits = pool->counts.queued < pool->max_queue;
    if (fits) {
        append(&pool->queue, &pool->queue_last, job);
        pool->counts.queued++;
        cond_broadcast(&pool->work);
    } else {
        pool->counts.refused++;
    }
    mutex_unlock(&pool->lock);
    return fits ? 0 : -1;
}

struct job *pool_take_done(struct pool *pool)
{
    mutex_lock(&pool->lock);
    struct job *done = pool->done;
    pool->done = pool->done_last = NULL;
    waker_clear(&pool->waker); /* under the lock: a job finishing after this raises it again */
    mutex_unlock(&pool->lock);
    return done;
}

void pool_counts(struct pool *pool, struct job_counts *counts)
{
    mutex_lock(&pool->lock);
    *counts = pool->counts;
    mutex_unlock(&pool->lock);
}

struct job *pool_stop(struct pool *pool)
{
    stop_workers(pool);
    /* The workers are gone: no lock is needed now. What never ran is cancelled, after what finished. */
    for (struct job *job = pool->queue; job != NULL; job = job->next)
        job_cancel(job);
    struct job *left = pool->done;
    if (pool->done_last != NULL)
        pool->done_last->next = pool->queue;
    else
        left = pool->queue;
    pool_free(pool);
    return left;
}
