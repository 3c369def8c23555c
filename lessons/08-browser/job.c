/*
 * job.c - see job.h. PRIMES counts with a segmented sieve of
 * Eratosthenes: the primes up to sqrt(n) once, then the numbers below n in
 * pieces of SEGMENT, crossing out the multiples of each; between pieces it
 * asks whether it is cancelled. Its memory stays small whatever n is.
 */
#include "job.h"

#include "reply.h"
#include "resp.h"

#include <ctype.h>
#include <math.h> /* isfinite() */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The numbers sieved at once: a piece of work short enough (tens of microseconds) to ask between. */
#define SEGMENT 32768

static struct job *job_new(enum job_kind kind, unsigned long long client, char *why, size_t why_len)
{
    struct job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    *job = (struct job){.kind = kind, .client = client, .reply = OUTBUF_EMPTY};
    return job;
}

struct job *job_sleep(const char *seconds, size_t len, unsigned long long client, char *why, size_t why_len)
{
    char text[32];
    char *end = NULL;
    double value = 0;
    if (len > 0 && len < sizeof text) {
        memcpy(text, seconds, len);
        text[len] = '\0';
        value = strtod(text, &end);
    }
    /* All of it a number: no blank before it (strtod() skips them), no "1x", no "nan" or "inf" (a sleep must
     * end). */
    if (len == 0 || len >= sizeof text || end != text + len || !isfinite(value) ||
        isspace((unsigned char)text[0])) {
        snprintf(why, why_len, "value is not a valid float");
        return NULL;
    }
    if (value < 0 || value > JOB_SLEEP_MAX_S) {
        snprintf(why, why_len, "value is out of range");
        return NULL;
    }
    struct job *job = job_new(JOB_SLEEP, client, why, why_len);
    if (job != NULL)
        job->sleep_ms = (long long)(value * 1000 + 0.5);
    return job;
}

struct job *job_primes(const char *below, size_t len, unsigned long long client, char *why, size_t why_len)
{
    long long n;
    if (!resp_integer(below, len, &n)) {
        snprintf(why, why_len, "value is not an integer or out of range");
        return NULL;
    }
    if (n < 0 || (unsigned long long)n > JOB_PRIMES_MAX) {
        snprintf(why, why_len, "value is out of range");
        return NULL;
    }
    struct job *job = job_new(JOB_PRIMES, client, why, why_len);
    if (job != NULL)
        job->below = (unsigned long long)n;
    return job;
}

/* Crosses out, in composite[0, size) standing for low, low + 1, ..., the multiples of the primes given. */
static void cross_out(unsigned char *composite, unsigned long long low, size_t size, const unsigned *primes,
                      size_t count)
{
    for (size_t i = 0; i < count; i++) {
        unsigned long long p = primes[i];
        if (p * p >= low + size)
            break;
        unsigned long long first = p * p > low ? p * p : (low + p - 1) / p * p;
        for (unsigned long long m = first; m < low + size; m += p)
            composite[m - low] = 1;
    }
}

enum job_counted job_count_primes(unsigned long long n, const struct job_runner *runner,
                                  unsigned long long *count)
{
    *count = 0;
    if (n <= 2)
        return JOB_COUNTED;
    /* The primes up to sqrt(n), by a plain sieve: at most 63,246 numbers for the largest n. */
    unsigned root = 1;
    while ((unsigned long long)root * root < n)
        root++;
    unsigned char *small = calloc(root + 1, 1);
    unsigned *primes = malloc((root + 1) * sizeof *primes);
    unsigned char *composite = malloc(SEGMENT);
    size_t found = 0;
    enum job_counted result =
        small != NULL && primes != NULL && composite != NULL ? JOB_COUNTED : JOB_NO_MEMORY;
    bool done = result == JOB_COUNTED;
    for (unsigned i = 2; done && i <= root; i++) {
        if (small[i])
            continue;
        primes[found++] = i;
        for (unsigned long long m = (unsigned long long)i * i; m <= root; m += i)
            small[m] = 1;
    }
    /* Then everything below n, a segment at a time, asking between segments whether to stop. */
    for (unsigned long long low = 2; done && low < n; low += SEGMENT) {
        if (runner->cancelled(runner->arg)) {
            result = JOB_CANCELLED;
            break;
        }
        size_t size = n - low < SEGMENT ? (size_t)(n - low) : SEGMENT;
        memset(composite, 0, size);
        cross_out(composite, low, size, primes, found);
        for (size_t i = 0; i < size; i++)
            *count += !composite[i];
    }
    free(composite);
    free(primes);
    free(small);
    return result;
}

void job_run(struct job *job, const struct job_runner *runner)
{
    unsigned long long count = 0;
    switch (job->kind) {
    case JOB_SLEEP:
        job->cancelled = !runner->pause(runner->arg, job->sleep_ms);
        if (!job->cancelled)
            reply_simple(&job->reply, "OK");
        break;
    case JOB_PRIMES:
        switch (job_count_primes(job->below, runner, &count)) {
        case JOB_COUNTED:
            reply_integer(&job->reply, (long long)count);
            break;
        case JOB_CANCELLED:
            job->cancelled = true;
            break;
        case JOB_NO_MEMORY:
            reply_error(&job->reply, "ERR out of memory");
            break;
        }
        break;
    }
    if (job->cancelled)
        job_cancel(job);
}

void job_cancel(struct job *job)
{
    job->cancelled = true;
    outbuf_consume(&job->reply, outbuf_pending(&job->reply));
    reply_error(&job->reply, "ERR cancelled: the server is shutting down");
}

void job_refuse(struct job *job)
{
    reply_error(&job->reply, "ERR job queue full, try again later");
}

void job_free(struct job *job)
{
    if (job == NULL)
        return;
    outbuf_release(&job->reply);
    free(job);
}
