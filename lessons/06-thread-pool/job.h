/*
 * job.h - work too slow for the event loop, without any I/O: what a slow
 * command does, given its arguments, producing its reply.
 *
 * A job owns everything it needs: a copy of its arguments, taken when the
 * command was read (the bytes they lay in are gone by the time a worker
 * runs it), and the reply it writes. It never touches a socket, a session
 * or the loop: a worker thread runs it, or, with --workers 0, the loop
 * itself, and the loop hands its reply to the client it came from. The
 * client is named by its CLIENT ID, which is never reused: a socket number
 * is, at once, and a result must never reach a client that came after the
 * one that asked.
 *
 * Two kinds: DEBUG SLEEP, which waits (as a slow disk or a remote service
 * would), and PRIMES, which computes (as a hash of a password, a picture,
 * a report would). Both stop early when the job is cancelled: a sleep by
 * its pause returning early, a count by asking between pieces of work.
 */
#ifndef JOB_H
#define JOB_H

#include "outbuf.h"

#include <stdbool.h>
#include <stddef.h>

enum job_kind {
    JOB_SLEEP,  /* DEBUG SLEEP seconds: "+OK" once they have passed */
    JOB_PRIMES, /* PRIMES n: the number of primes below n */
};

/* The largest arguments a job accepts: a job must end, and the stop must not wait long for it. */
#define JOB_SLEEP_MAX_S 3600
#define JOB_PRIMES_MAX  4000000000ULL

struct job {
    struct job *next;          /* in the pool's queue, or its list of finished jobs */
    unsigned long long client; /* the CLIENT ID of the session that asked: never reused */
    enum job_kind kind;
    long long sleep_ms;       /* JOB_SLEEP */
    unsigned long long below; /* JOB_PRIMES */
    bool cancelled;           /* it did not finish: the server is stopping (the reply says so) */
    struct outbuf reply;      /* what it answers, written by job_run() */
};

/*
 * How a job waits and learns it is cancelled, from whoever runs it: a
 * worker of the pool, or the loop itself. pause() waits up to ms
 * milliseconds and returns false when cancelled meanwhile; cancelled()
 * says whether to stop now.
 */
struct job_runner {
    bool (*pause)(void *arg, long long ms);
    bool (*cancelled)(void *arg);
    void *arg;
};

/*
 * A job for DEBUG SLEEP's or PRIMES's argument (its bytes and length), for
 * the client with this id. Returns it, or NULL with Redis's words for a
 * bad argument in why ("value is not a valid float", ...), or "out of
 * memory".
 */
struct job *job_sleep(const char *seconds, size_t len, unsigned long long client, char *why, size_t why_len);
struct job *job_primes(const char *below, size_t len, unsigned long long client, char *why, size_t why_len);

/* Does the work and writes the reply (an error when it was cancelled first). */
void job_run(struct job *job, const struct job_runner *runner);

/* Cancels a job that never ran: its reply says the server is shutting down. */
void job_cancel(struct job *job);

/* Refuses a job that never ran, as no worker could take it: its reply says the queue is full. */
void job_refuse(struct job *job);

/* What INFO says of the jobs (its section "# Jobs"). */
struct job_counts {
    int workers;                 /* threads that run them; 0: the loop runs each itself, at once */
    size_t queued;               /* waiting for a worker */
    size_t running;              /* being run by a worker */
    unsigned long long finished; /* run to their end, or cancelled, since the start */
    unsigned long long refused;  /* refused because the queue was full */
    unsigned long long wakeups;  /* workers woken from waiting: one job wakes every idle worker */
};

enum job_counted { JOB_COUNTED, JOB_CANCELLED, JOB_NO_MEMORY };

/* The number of primes below n into *count, asking cancelled() between pieces of the work. */
enum job_counted job_count_primes(unsigned long long n, const struct job_runner *runner,
                                  unsigned long long *count);

/* Frees the job and its reply. */
void job_free(struct job *job);

#endif
