/*
 * pool.h - a fixed number of worker threads, a bounded queue of jobs, and
 * a list of finished ones that wakes the event loop.
 *
 *   loop:    pool_submit(job)  ->  [queue]  ->  worker: job_run(job)
 *   worker:  [done] <- the job, and the waker raised if [done] was empty
 *   loop:    the waker's descriptor is readable -> pool_take_done(): all of [done]
 *
 * The loop owns every socket and every session; a worker owns only the job
 * it runs, which owns a copy of its arguments and writes its reply into a
 * buffer of its own. So the two share exactly two lists, under one lock,
 * and nothing else. The loop hears of finished jobs the way it hears of
 * everything: a descriptor in its poller becomes readable (a pipe on
 * POSIX, a socket on Windows: platform.h's waker), raised only when the
 * list of finished jobs goes from empty to not empty, and cleared when the
 * loop takes the whole list. This is memcached's notify pipe, and libuv's
 * uv_queue_work() with its uv_async_t.
 *
 * The queue is bounded: a job that does not fit is refused at once (the
 * client gets an error), never waited for: the loop must not wait.
 */
#ifndef POOL_H
#define POOL_H

#include "job.h"
#include "platform.h"

#include <stddef.h>

struct pool;

/*
 * Starts `workers` threads (1 or more) taking jobs from a queue of at most
 * max_queue. Returns the pool, or NULL with the reason in err.
 */
struct pool *pool_start(int workers, size_t max_queue, char *err, size_t err_len);

/* What the loop's poller watches: readable while finished jobs wait to be taken. */
socket_t pool_descriptor(const struct pool *pool);

/* Queues a job for a worker. Returns 0, or -1 when the queue is full: the job is still the caller's. */
int pool_submit(struct pool *pool, struct job *job);

/* Takes every finished job, in the order they finished (NULL: none), and lowers the waker. */
struct job *pool_take_done(struct pool *pool);

/* Its counts, for INFO (finished: taken by pool_take_done() or not). */
void pool_counts(struct pool *pool, struct job_counts *counts);

/*
 * Stops the pool: the jobs still queued are cancelled without running, the
 * running ones told to stop (a sleep ends at once, a count at its next
 * piece), and the workers joined. Returns every job not taken yet, finished
 * or cancelled, for the loop to answer; the pool is gone.
 */
struct job *pool_stop(struct pool *pool);

#endif
