/*
 * check_session.c - the RESP protocol without sockets: requests in, replies
 * and verdicts out, at times the test chooses. Commands answer as
 * docs/protocol.md says (and as Redis does); every chunking of a stream
 * gives the same replies; the limits and the deadlines close a client with
 * an error line; a session holds requests back while its output waits,
 * and a message pushed past --max-output breaks it; a slow command's
 * job holds the requests after it until its reply comes. The test is the
 * driver: it sends a session's output by asking for it (drain()), and
 * runs a session's job itself (finish()).
 */
#include "check_suites.h"
#include "session.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct session_limits limits = {.resp = {.max_args = 8, .max_bulk = 64, .max_inline = 64},
                                             .max_query = 256,
                                             .idle_ms = 1000,
                                             .request_ms = 300,
                                             .high_water = 4096,
                                             .max_output = 4096,
                                             .max_subscriptions = 3};

/* The sessions a PUBLISH gave output to, in order. */
static struct session *ready[8];
static int ready_count;

static void output_ready(void *driver, struct session *session)
{
    (void)driver;
    if (ready_count < 8)
        ready[ready_count++] = session;
}

/* What the test fed sessions since its last look at an output: a failure names the input, not only the
 * output. */
static char fed[400];

static struct hub hub;

static void setup(void)
{
    fed[0] = '\0';
    hub_init(&hub, 0, output_ready, NULL);
    hub.wall_clock_us = 1700000000123456LL; /* the driver reads the clock; the session only reads this */
    ready_count = 0;
}

static void teardown(void)
{
    hub_free(&hub);
}

/* A verdict's name: a failure then says "SESSION_DONE", not 1. */
static const char *verdict_name(enum session_verdict verdict)
{
    switch (verdict) {
    case SESSION_OPEN:
        return "SESSION_OPEN";
    case SESSION_DONE:
        return "SESSION_DONE";
    case SESSION_REFUSED:
        return "SESSION_REFUSED";
    }
    return "(not a verdict)";
}

/* Fails, naming both, unless the verdict is the one expected. */
#define ck_assert_verdict(got, expected) ck_assert_str_eq(verdict_name(got), verdict_name(expected))

/*
 * The bytes as a C literal writes them, so that a failure shows them on its one line: "\r", "\n", "\\",
 * "\"" and other bytes outside 32..126 as escapes. Cut (with "...") to fit in out.
 */
static const char *escaped(const char *bytes, size_t len, char *out, size_t cap)
{
    size_t used = 0;
    for (size_t i = 0; i < len && used + 8 < cap; i++) {
        unsigned char c = (unsigned char)bytes[i];
        const char *named = c == '\r'   ? "\\r"
                            : c == '\n' ? "\\n"
                            : c == '\\' ? "\\\\"
                            : c == '"'  ? "\\\""
                                        : NULL;
        if (named != NULL)
            used += (size_t)snprintf(out + used, cap - used, "%s", named);
        else if (c < 32 || c > 126)
            used += (size_t)snprintf(out + used, cap - used, "\\x%02x", c);
        else
            out[used++] = (char)c;
        if (used + 8 >= cap && i + 1 < len)
            used += (size_t)snprintf(out + used, cap - used, "...");
    }
    out[used < cap ? used : cap - 1] = '\0';
    return out;
}

/* session_feed(), noted in fed. */
static enum session_verdict feed(struct session *s, const char *bytes, size_t len, long long now)
{
    char piece[sizeof fed];
    size_t used = strlen(fed);
    snprintf(fed + used, sizeof fed - used, "%s\"%s\"", used > 0 ? " + " : "",
             escaped(bytes, len, piece, sizeof piece));
    return session_feed(s, bytes, len, now);
}

/* Whether the session's output holds exactly these len bytes; prints both, and what was fed, when not. Then
 * sends it all. */
static void expect_bytes(struct session *s, const char *bytes, size_t len, const char *what)
{
    size_t got;
    const char *data = session_output(s, &got);
    if (got != len || (len > 0 && memcmp(data, bytes, len) != 0)) {
        char shown[2][1200];
        ck_abort_msg("%s: fed %s, got \"%s\" (%zu bytes), expected \"%s\" (%zu bytes)", what,
                     fed[0] != '\0' ? fed : "nothing",
                     escaped(got ? data : "", got, shown[0], sizeof shown[0]), got,
                     escaped(bytes, len, shown[1], sizeof shown[1]), len);
    }
    fed[0] = '\0';
    session_sent(s, got, 0);
}

#define EXPECT(s, literal) expect_bytes(s, literal, sizeof literal - 1, "the output")

/* The driver's part: sends all of the session's output at now. Returns how many bytes went. */
static size_t drain(struct session *s, long long now)
{
    size_t total = 0, len;
    while (session_output(s, &len) != NULL) {
        total += len;
        session_sent(s, len, now);
    }
    return total;
}

/* Whether bytes[0, len) hold the string text. */
static bool contains(const char *bytes, size_t len, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(bytes + i, text, n) == 0)
            return true;
    return false;
}

/* A new session fed one string at time 0. */
static enum session_verdict feed_new(struct session *s, const char *bytes, size_t len)
{
    session_start(s, &hub, &limits, "127.0.0.1:5000", 0);
    return feed(s, bytes, len, 0);
}

#define FEED_NEW(s, literal)  feed_new(s, literal, sizeof literal - 1)
#define FEED(s, literal, now) feed(s, literal, sizeof literal - 1, now)

START_TEST(test_session_answers_ping_in_both_framings)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "PING\r\n*1\r\n$4\r\nping\r\nping hi\r\n"), SESSION_OPEN);
    EXPECT(&s, "+PONG\r\n+PONG\r\n$2\r\nhi\r\n");
    ck_assert_uint_eq(s.requests, 3);
    session_end(&s);
}
END_TEST

START_TEST(test_session_echoes_any_bytes)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "*2\r\n$4\r\nECHO\r\n$4\r\na\r\n\0\r\n"), SESSION_OPEN);
    EXPECT(&s, "$4\r\na\r\n\0\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_gives_the_same_replies_for_every_split_of_a_stream)
{
    const char stream[] =
        "*2\r\n$4\r\necho\r\n$3\r\na\nb\r\nPING\r\n\r\n*1\r\n$4\r\nTIME\r\nquit\r\nPING\r\n";
    const char replies[] = "$3\r\na\nb\r\n+PONG\r\n*2\r\n$10\r\n1700000000\r\n$6\r\n123456\r\n+OK\r\n";
    size_t len = sizeof stream - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        struct session s;
        session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
        enum session_verdict first = feed(&s, stream, cut, 0);
        enum session_verdict verdict = first == SESSION_OPEN ? feed(&s, stream + cut, len - cut, 0) : first;
        ck_assert_msg(verdict == SESSION_DONE,
                      "fed %s (split after byte %zu): verdict %s, not SESSION_DONE: %s", fed, cut,
                      verdict_name(verdict),
                      verdict == SESSION_OPEN ? "QUIT ends the session, and nothing after it is run"
                                              : "a request the receive cut in two must be held, and "
                                                "completed by the next bytes");
        expect_bytes(
            &s, replies, sizeof replies - 1,
            "the replies, the same for every split: a request the receive cut in two must be held, and "
            "completed by the next bytes; nothing after QUIT is run");
        ck_assert_ptr_null(s.held); /* nothing unfinished is kept after QUIT */
        session_end(&s);
    }
}
END_TEST

START_TEST(test_session_answers_a_request_dripped_one_byte_at_a_time)
{
    const char stream[] = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    for (size_t i = 0; i < sizeof stream - 1; i++)
        ck_assert_verdict(feed(&s, stream + i, 1, (long long)i), SESSION_OPEN);
    EXPECT(&s, "$5\r\nhello\r\n");
    ck_assert_ptr_null(s.held); /* the request is done: no buffer held */
    session_end(&s);
}
END_TEST

START_TEST(test_session_names_an_unknown_command_and_its_arguments)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "FOO bar baz\r\n"), SESSION_OPEN);
    EXPECT(&s, "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_quotes_long_arguments_of_an_unknown_command_as_redis_does)
{
    /* Redis shows arguments while they take fewer than 128 bytes, each cut to what is left of the 128. */
    char request[512], a[101], b[101];
    memset(a, 'a', 100);
    memset(b, 'b', 100);
    a[100] = b[100] = '\0';
    int len = snprintf(request, sizeof request, "*3\r\n$3\r\nFOO\r\n$100\r\n%s\r\n$100\r\n%s\r\n", a, b);
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    struct session_limits roomy = limits;
    roomy.resp.max_bulk = 128;
    s.limits = &roomy;
    ck_assert_verdict(feed(&s, request, (size_t)len, 0), SESSION_OPEN);
    char expected[512];
    int n = snprintf(expected, sizeof expected,
                     "-ERR unknown command 'FOO', with args beginning with: '%s' '%.25s' \r\n", a, b);
    expect_bytes(&s, expected, (size_t)n, "the error, both arguments quoted whole or cut");
    session_end(&s);
}
END_TEST

START_TEST(test_session_refuses_a_wrong_number_of_arguments)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "ECHO\r\nPING a b\r\nPUBLISH ch\r\nCLIENT ID x\r\nCLIENT\r\n"),
                      SESSION_OPEN);
    EXPECT(&s, "-ERR wrong number of arguments for 'echo' command\r\n"
               "-ERR wrong number of arguments for 'ping' command\r\n"
               "-ERR wrong number of arguments for 'publish' command\r\n"
               "-ERR wrong number of arguments for 'client|id' command\r\n"
               "-ERR wrong number of arguments for 'client' command\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_quits_with_ok_and_exits_without_a_reply)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "QUIT\r\nPING\r\n"), SESSION_DONE);
    EXPECT(&s, "+OK\r\n");
    session_end(&s);
    ck_assert_verdict(FEED_NEW(&s, "PING\r\nexit\r\nPING\r\n"), SESSION_DONE);
    EXPECT(&s, "+PONG\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_closes_after_a_protocol_error)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "PING\r\n*1\r\n$-5\r\nPING\r\n"), SESSION_REFUSED);
    EXPECT(&s, "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
    ck_assert_str_eq(s.why, "Protocol error: invalid bulk length");
    session_end(&s);
}
END_TEST

START_TEST(test_session_closes_a_request_that_outgrows_the_query_buffer)
{
    /* max_query 256: bulk strings of 64 bytes, 8 of them, never finished */
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    ck_assert_verdict(FEED(&s, "*8\r\n", 0), SESSION_OPEN);
    enum session_verdict verdict = SESSION_OPEN;
    const char bulk[] = "$64\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n";
    for (int i = 0; i < 7 && verdict == SESSION_OPEN; i++)
        verdict = FEED(&s, bulk, 0);
    ck_assert_verdict(verdict, SESSION_REFUSED);
    EXPECT(&s, "-ERR Protocol error: query buffer limit reached\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_limits_the_unfinished_request_not_the_receive)
{
    /* max_query 256: a receive that finishes the kept request may bring more than that in all */
    const char echo64[] =
        "*2\r\n$4\r\nECHO\r\n$64\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n";
    char rest[512];
    size_t head = 30; /* the first 30 bytes of one request arrive alone, and wait in the query buffer */
    size_t len = 0;
    memcpy(rest + len, echo64 + head, sizeof echo64 - 1 - head);
    len += sizeof echo64 - 1 - head;
    for (int i = 0; i < 3; i++, len += sizeof echo64 - 1)
        memcpy(rest + len, echo64, sizeof echo64 - 1);
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    ck_assert_verdict(feed(&s, echo64, head, 0), SESSION_OPEN);
    ck_assert_msg(len > limits.max_query, "the second receive (%zu bytes) must exceed max_query", len);
    ck_assert_verdict(feed(&s, rest, len, 0), SESSION_OPEN);
    ck_assert_uint_eq(s.requests, 4);
    ck_assert_ptr_null(s.held);
    session_end(&s);
}
END_TEST

START_TEST(test_session_names_clients_and_lists_them)
{
    struct session a, b;
    session_start(&a, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&b, &hub, &limits, "127.0.0.1:5001", 0);
    ck_assert_verdict(
        FEED(&a, "CLIENT GETNAME\r\nCLIENT SETNAME alice\r\nclient getname\r\nCLIENT ID\r\n", 0),
        SESSION_OPEN);
    EXPECT(&a, "$-1\r\n+OK\r\n$5\r\nalice\r\n:1\r\n");
    ck_assert_verdict(
        FEED(&b,
             "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\na b\r\nCLIENT LIST\r\nCLIENT LIST x\r\n"
             "CLIENT LIST TYPE pubsub\r\nCLIENT LIST TYPE x\r\n",
             3000),
        SESSION_OPEN);
    EXPECT(&b, "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
               "$135\r\n"
               "id=2 addr=127.0.0.1:5001 name= age=3 idle=0 sub=0 cmd=client|list\n"
               "id=1 addr=127.0.0.1:5000 name=alice age=3 idle=3 sub=0 cmd=client|id\n\r\n"
               "-ERR syntax error\r\n$0\r\n\r\n-ERR Unknown client type 'x'\r\n");
    session_end(&a);
    session_end(&b);
}
END_TEST

START_TEST(test_session_takes_what_client_libraries_say_of_themselves)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "CLIENT SETINFO LIB-NAME node-redis\r\nCLIENT SETINFO lib-ver 6.4.0\r\n"
                                   "CLIENT SETINFO color blue\r\nCLIENT NOPE\r\n"),
                      SESSION_OPEN);
    EXPECT(&s, "+OK\r\n+OK\r\n-ERR Unrecognized option 'color'\r\n"
               "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_reports_the_counters)
{
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    ck_assert_verdict(FEED(&s, "PING\r\nINFO server\r\nINFO keyspace\r\n", 5000), SESSION_OPEN);
    EXPECT(&s, "+PONG\r\n$158\r\n# Server\r\nuptime_in_seconds:5\r\nconnected_clients:1\r\n"
               "total_connections_received:1\r\ntotal_commands_processed:2\r\npubsub_channels:0\r\n"
               "pubsub_messages_delivered:0\r\n\r\n$0\r\n\r\n");
    session_end(&s);
}
END_TEST

/* --- jobs --------------------------------------------------------------------------------------- */

/* A runner whose pause returns at once, and which is never cancelled: the job's work, without the wait. */
static bool no_wait(void *arg, long long ms)
{
    (void)arg, (void)ms;
    return true;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

/* The driver's part for a job: takes the session's new job, runs it at once, and gives its reply back at now.
 */
static enum session_verdict finish(struct session *s, long long now)
{
    static const struct job_runner at_once = {.pause = no_wait, .cancelled = never};
    struct job *job = session_take_job(s);
    ck_assert_msg(job != NULL, "the session has no new job to run");
    ck_assert_ptr_null(session_take_job(s)); /* taken once */
    job_run(job, &at_once);
    return session_finish_job(s, job, now);
}

START_TEST(test_session_holds_the_requests_after_a_slow_command_until_its_reply)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "PING\r\nDEBUG SLEEP 2\r\nPING a\r\nPRIMES 100\r\nPING b\r\n"),
                      SESSION_OPEN);
    EXPECT(&s, "+PONG\r\n"); /* what came before it is answered; nothing after it runs yet */
    ck_assert(session_awaits_job(&s));
    ck_assert_int_eq(s.new_job->sleep_ms, 2000);
    ck_assert_verdict(finish(&s, 10), SESSION_OPEN);
    EXPECT(&s, "+OK\r\n$1\r\na\r\n"); /* its reply, then the next requests, up to the next job */
    ck_assert_verdict(finish(&s, 20), SESSION_OPEN);
    EXPECT(&s, ":25\r\n$1\r\nb\r\n");
    ck_assert(!session_awaits_job(&s));
    ck_assert_ptr_null(session_take_job(&s));
    session_end(&s);
}
END_TEST

START_TEST(test_session_gives_a_job_the_client_id_of_its_session)
{
    struct session first, second;
    session_start(&first, &hub, &limits, "127.0.0.1:5000", 0);
    ck_assert_verdict(FEED_NEW(&second, "PRIMES 10\r\n"), SESSION_OPEN);
    struct job *job = session_take_job(&second);
    ck_assert_ptr_nonnull(job);
    ck_assert_uint_eq(job->client, second.id);
    ck_assert_uint_ne(job->client, first.id);
    session_end(&second); /* it leaves while its job runs: the job is the driver's now, to free */
    job_free(job);
    session_end(&first);
}
END_TEST

START_TEST(test_session_is_found_by_its_client_id_until_it_leaves)
{
    enum { SESSIONS = 200 }; /* enough for the hub's table to grow, and to shrink as they leave */
    static struct session s[SESSIONS];
    for (int i = 0; i < SESSIONS; i++)
        session_start(&s[i], &hub, &limits, "127.0.0.1:5000", 0);
    for (int i = 0; i < SESSIONS; i++)
        ck_assert_msg(hub_session(&hub, s[i].id) == &s[i], "CLIENT ID %llu: not its session", s[i].id);
    unsigned long long gone = s[7].id;
    session_end(&s[7]);
    ck_assert_ptr_null(hub_session(&hub, gone)); /* a job of a client that left finds nobody */
    struct session next;
    session_start(&next, &hub, &limits, "127.0.0.1:5000", 0); /* the id is never given again */
    ck_assert_uint_ne(next.id, gone);
    ck_assert_ptr_null(hub_session(&hub, gone));
    ck_assert_ptr_null(hub_session(&hub, 0));
    session_end(&next);
    for (int i = 0; i < SESSIONS; i++)
        if (i != 7)
            session_end(&s[i]);
}
END_TEST

START_TEST(test_session_runs_no_clock_against_a_client_waiting_for_a_job)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "DEBUG SLEEP 5\r\nPING"), SESSION_OPEN); /* and an unfinished request */
    ck_assert_int_eq(session_deadline(&s), 0);
    ck_assert_verdict(session_expire(&s, 100000), SESSION_OPEN);
    EXPECT(&s, "");
    ck_assert_verdict(finish(&s, 100000), SESSION_OPEN);
    /* Once its reply is there, the unfinished request after it has its time again, from now. */
    ck_assert_int_eq(s.request_deadline, 100000 + limits.request_ms);
    EXPECT(&s, "+OK\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_reads_on_behind_a_job_only_up_to_max_query)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "DEBUG SLEEP 1\r\n"), SESSION_OPEN);
    ck_assert(session_wants_input(&s)); /* reading on, the driver hears a client that leaves */
    char pings[300];
    for (size_t i = 0; i < sizeof pings; i += 6)
        memcpy(pings + i, "PING\r\n", 6);
    ck_assert_verdict(session_feed(&s, pings, sizeof pings, 0), SESSION_OPEN); /* whole requests: no error */
    ck_assert(!session_wants_input(&s));
    ck_assert_verdict(finish(&s, 0), SESSION_OPEN);
    size_t len;
    session_output(&s, &len);
    ck_assert_uint_eq(len, 5 + 50 * 7); /* +OK, then fifty +PONG */
    ck_assert(session_wants_input(&s));
    session_end(&s);
}
END_TEST

START_TEST(test_session_refuses_a_slow_command_in_a_transaction_and_a_bad_argument)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "MULTI\r\nDEBUG SLEEP 1\r\nEXEC\r\nPRIMES x\r\nDEBUG HELLO\r\nPING\r\n"),
                      SESSION_OPEN);
    EXPECT(&s, "+OK\r\n-ERR Command not allowed inside a transaction\r\n"
               "-EXECABORT Transaction discarded because of previous errors.\r\n"
               "-ERR value is not an integer or out of range\r\n"
               "-ERR unknown subcommand or wrong number of arguments for 'HELLO'. Try DEBUG HELP.\r\n"
               "+PONG\r\n");
    ck_assert(!session_awaits_job(&s));
    session_end(&s);
}
END_TEST

static void fake_job_counts(void *driver, struct job_counts *counts)
{
    (void)driver;
    *counts = (struct job_counts){.workers = 2, .queued = 3, .running = 2, .finished = 40, .refused = 1};
}

START_TEST(test_session_reports_the_jobs_in_info)
{
    struct session s;
    hub.job_counts = fake_job_counts;
    ck_assert_verdict(FEED_NEW(&s, "INFO jobs\r\n"), SESSION_OPEN);
    EXPECT(&s, "$89\r\n# Jobs\r\njobs_workers:2\r\njobs_queued:3\r\njobs_running:2\r\njobs_finished:40\r\n"
               "jobs_refused:1\r\n\r\n");
    ck_assert_verdict(FEED(&s, "INFO\r\n", 0), SESSION_OPEN);
    size_t len;
    const char *out = session_output(&s, &len);
    ck_assert_msg(contains(out, len, "# Server\r\n") && contains(out, len, "\r\n\r\n# Jobs\r\n"),
                  "INFO without a section: \"%.*s\"", (int)len, out);
    drain(&s, 0);
    session_end(&s);
}
END_TEST

START_TEST(test_session_speaks_resp3_after_hello_3_and_resp2_otherwise)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "HELLO 4\r\nHELLO x\r\nCLIENT GETNAME\r\nHELLO 3 SETNAME bob\r\n"),
                      SESSION_OPEN);
    EXPECT(&s, "-NOPROTO unsupported protocol version\r\n"
               "-ERR Protocol version is not an integer or out of range\r\n"
               "$-1\r\n"
               "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:3\r\n"
               "$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
               "$7\r\nmodules\r\n*0\r\n");
    ck_assert_verdict(FEED(&s, "CLIENT GETNAME\r\nHELLO 2 AUTH a b\r\nHELLO 2\r\nCLIENT GETNAME\r\n", 0),
                      SESSION_OPEN);
    ck_assert_str_eq(s.name, "bob");
    size_t len;
    const char *out = session_output(&s, &len);
    ck_assert_msg(len > 30 && memcmp(out, "$3\r\nbob\r\n-WRONGPASS ", 20) == 0, "got \"%.*s\"", (int)len,
                  out);
    ck_assert_msg(contains(out, len, "\r\n*14\r\n$6\r\nserver"),
                  "HELLO 2 answers with a flat array: \"%.*s\"", (int)len, out);
    drain(&s, 0);
    ck_assert_verdict(FEED(&s, "HELLO\r\nCLIENT SETNAME\r\n", 0), SESSION_OPEN);
    session_end(&s);
}
END_TEST

START_TEST(test_session_runs_a_transaction_at_exec_and_discards_one_with_an_error)
{
    struct session s;
    ck_assert_verdict(
        FEED_NEW(&s, "EXEC\r\nDISCARD\r\nMULTI\r\nPING\r\nECHO hi\r\nMULTI\r\nEXEC\r\nPING\r\n"),
        SESSION_OPEN);
    EXPECT(&s, "-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n"
               "-ERR MULTI calls can not be nested\r\n*2\r\n+PONG\r\n$2\r\nhi\r\n+PONG\r\n");
    ck_assert_verdict(
        FEED(&s, "MULTI\r\nPING\r\nNOPE\r\nECHO\r\nEXEC\r\nMULTI\r\nPING\r\nDISCARD\r\nEXEC\r\n", 0),
        SESSION_OPEN);
    EXPECT(&s, "+OK\r\n+QUEUED\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n"
               "-ERR wrong number of arguments for 'echo' command\r\n"
               "-EXECABORT Transaction discarded because of previous errors.\r\n"
               "+OK\r\n+QUEUED\r\n+OK\r\n-ERR EXEC without MULTI\r\n");
    ck_assert_verdict(FEED(&s, "MULTI\r\nPING\r\nQUIT\r\n", 0), SESSION_DONE); /* QUIT is not queued */
    EXPECT(&s, "+OK\r\n+QUEUED\r\n+OK\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_keeps_a_copy_of_each_queued_command_not_a_pointer_into_the_receive_buffer)
{
    /* A driver reads every receive into the same buffer: by EXEC, what the queued commands pointed at in it
     * is gone. */
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    static const char *const receives[] = {"MULTI\r\n", "ECHO first\r\n", "ECHO second\r\n", "EXEC\r\n"};
    char received[32];
    for (size_t i = 0; i < sizeof receives / sizeof receives[0]; i++) {
        size_t len = strlen(receives[i]);
        memcpy(received, receives[i], len);
        ck_assert_verdict(feed(&s, received, len, 0), SESSION_OPEN);
        memset(received, 'X', sizeof received); /* the next receive overwrites the buffer */
    }
    static const char replies[] = "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$5\r\nfirst\r\n$6\r\nsecond\r\n";
    expect_bytes(
        &s, replies, sizeof replies - 1,
        "EXEC's replies: a queued command keeps a copy of its arguments, since the receive buffer they "
        "were in is overwritten by the next receive");
    session_end(&s);
}
END_TEST

START_TEST(test_session_documents_its_commands_for_redis_cli)
{
    struct session s;
    ck_assert_verdict(FEED_NEW(&s, "COMMAND COUNT\r\nCOMMAND DOCS echo nope\r\nCOMMAND INFO nope\r\n"),
                      SESSION_OPEN);
    EXPECT(&s, ":17\r\n*2\r\n$4\r\necho\r\n*8\r\n$7\r\nsummary\r\n$25\r\nReturns the given string.\r\n"
               "$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$10\r\nconnection\r\n"
               "$9\r\narguments\r\n*1\r\n*4\r\n$4\r\nname\r\n$7\r\nmessage\r\n$4\r\ntype\r\n$6\r\nstring\r\n"
               "*1\r\n$-1\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_holds_requests_past_the_high_water_mark_and_runs_them_as_its_output_is_sent)
{
    /* A client that pipelines replies bigger than what it reads: slowed, never cut off. */
    struct session_limits tight = limits;
    tight.high_water = 20;
    struct session s;
    session_start(&s, &hub, &tight, "127.0.0.1:5000", 0);
    ck_assert_verdict(FEED(&s, "ECHO 0123456789\r\nECHO 0123456789\r\nECHO 0123456789\r\nQUIT\r\n", 0),
                      SESSION_OPEN);
    ck_assert_uint_eq(s.requests, 2); /* 34 bytes over 20: the third waits */
    ck_assert(!session_wants_input(&s));
    ck_assert_verdict(session_sent(&s, 10, 0), SESSION_OPEN); /* 24 left: still over */
    ck_assert_uint_eq(s.requests, 2);
    ck_assert_verdict(session_sent(&s, 10, 0), SESSION_OPEN); /* 14 left: the third runs, and passes it */
    ck_assert_uint_eq(s.requests, 3);
    ck_assert_verdict(session_sent(&s, 31, 0), SESSION_DONE); /* all sent: QUIT */
    ck_assert_uint_eq(s.requests, 4);
    ck_assert_ptr_null(s.held);
    session_end(&s);
}
END_TEST

START_TEST(test_session_stop_queues_the_notice)
{
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    session_stop(&s);
    EXPECT(&s, "-ERR server shutting down\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_closes_a_request_not_finished_in_time)
{
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    FEED(&s, "*2\r\n$4\r\nECHO\r\n", 100);
    ck_assert_int_eq(session_deadline(&s),
                     400); /* request_ms after its first byte, before the idle deadline */
    FEED(&s, "$3\r\nab", 350);
    ck_assert_int_eq(session_deadline(&s), 400); /* more bytes of the same request do not move it */
    ck_assert_verdict(session_expire(&s, 400), SESSION_REFUSED);
    EXPECT(&s, "-ERR request timeout\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_is_not_idle_while_it_is_owed_a_read)
{
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    FEED(&s, "PING\r\n", 100);
    ck_assert_int_eq(session_deadline(&s), 0); /* a reply waits: the driver's send timeout watches */
    ck_assert_verdict(session_expire(&s, 5000), SESSION_OPEN);
    drain(&s, 5000);
    ck_assert_int_eq(session_deadline(&s), 6000);
    session_end(&s);
}
END_TEST

START_TEST(test_session_delivers_a_published_message_to_each_subscriber)
{
    struct session sub1, sub2, pub;
    session_start(&sub1, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&sub2, &hub, &limits, "127.0.0.1:5001", 0);
    session_start(&pub, &hub, &limits, "127.0.0.1:5002", 0);
    FEED(&sub1, "SUBSCRIBE news sport\r\n", 0);
    EXPECT(&sub1,
           "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n");
    FEED(&sub2, "SUBSCRIBE news\r\n", 0);
    drain(&sub2, 0);
    ck_assert_verdict(FEED(&pub, "PUBLISH news hello\r\nPUBLISH weather rain\r\n", 0), SESSION_OPEN);
    EXPECT(&pub, ":2\r\n:0\r\n");
    ck_assert_int_eq(ready_count, 2);
    ck_assert_ptr_eq(ready[0], &sub1);
    ck_assert_ptr_eq(ready[1], &sub2);
    EXPECT(&sub1, "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
    EXPECT(&sub2, "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
    session_end(&sub2);
    FEED(&pub, "PUBLISH news third\r\n", 0);
    EXPECT(&pub, ":1\r\n"); /* sub2 left: only sub1 */
    session_end(&sub1);
    session_end(&pub);
}
END_TEST

START_TEST(test_session_puts_a_message_before_the_replies_that_follow_it)
{
    /* Published before the subscriber's UNSUBSCRIBE was read: one output, so it comes first. */
    struct session sub, pub;
    session_start(&sub, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&pub, &hub, &limits, "127.0.0.1:5001", 0);
    FEED(&sub, "SUBSCRIBE a\r\n", 0);
    drain(&sub, 0);
    FEED(&pub, "PUBLISH a hi\r\n", 0);
    FEED(&sub, "UNSUBSCRIBE\r\nPING\r\n", 0);
    EXPECT(&sub, "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"
                 "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n+PONG\r\n");
    session_end(&sub);
    session_end(&pub);
}
END_TEST

START_TEST(test_session_breaks_a_subscriber_whose_messages_would_pass_max_output)
{
    struct session_limits small = limits;
    small.max_output = 100; /* two messages of 37 bytes fit, the third does not */
    struct session sub, pub;
    session_start(&sub, &hub, &small, "127.0.0.1:5000", 0);
    session_start(&pub, &hub, &limits, "127.0.0.1:5001", 0);
    FEED(&sub, "SUBSCRIBE a\r\n", 0);
    drain(&sub, 0);
    FEED(&pub, "PUBLISH a 0123456\r\nPUBLISH a 0123456\r\nPUBLISH a 0123456\r\nPUBLISH a 0123456\r\n", 0);
    EXPECT(&pub, ":1\r\n:1\r\n:0\r\n:0\r\n");
    ck_assert_str_eq(session_broken(&sub), "leaves more than 100 bytes of messages unread");
    session_end(&sub);
    session_end(&pub);
}
END_TEST

START_TEST(test_session_leaves_its_channels_with_its_verdict_so_publish_does_not_count_it)
{
    struct session sub, pub;
    session_start(&sub, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&pub, &hub, &limits, "127.0.0.1:5001", 0);
    FEED(&sub, "SUBSCRIBE a\r\n*1\r\n$-5\r\n", 0); /* a protocol error: it lingers, and can receive nothing */
    FEED(&pub, "PUBLISH a hi\r\n", 0);
    EXPECT(&pub, ":0\r\n");
    ck_assert_uint_eq(hub.channels.count, 0);
    session_end(&sub);
    session_end(&pub);
}
END_TEST

START_TEST(test_session_allows_only_subscribe_commands_to_a_resp2_subscriber)
{
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    FEED(&s, "SUBSCRIBE a\r\n", 0);
    drain(&s, 0);
    ck_assert_verdict(FEED(&s, "ECHO x\r\nCLIENT ID\r\nPING\r\nUNSUBSCRIBE\r\nPING\r\nUNSUBSCRIBE\r\n", 0),
                      SESSION_OPEN);
    EXPECT(&s,
           "-ERR Can't execute 'echo': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
           "allowed in this context\r\n"
           "-ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
           "allowed in this context\r\n"
           "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
           "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n"
           "+PONG\r\n"
           "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    session_end(&s);
}
END_TEST

START_TEST(test_session_bounds_the_channels_of_one_client_and_leaves_each_in_order)
{
    struct session s;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    FEED(&s, "SUBSCRIBE a b a c d\r\nUNSUBSCRIBE b x\r\nUNSUBSCRIBE\r\n", 0); /* max_subscriptions 3 */
    EXPECT(&s, "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
               "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:3\r\n"
               "-ERR max number of subscriptions per client reached\r\n"
               "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:2\r\n"
               "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n");
    ck_assert_uint_eq(hub.channels.count, 0);
    ck_assert_uint_eq(hub.subscriptions.count, 0);
    session_end(&s);
}
END_TEST

START_TEST(test_session_subscribes_to_many_channels_and_leaves_them_all_at_once)
{
    /* Many channels each: every subscription is found, and undone, without a search. */
    struct session_limits many = limits;
    many.max_subscriptions = 20000;
    many.high_water = (size_t)-1;
    many.resp.max_args = 2;
    struct session a, b;
    session_start(&a, &hub, &many, "127.0.0.1:5000", 0);
    session_start(&b, &hub, &many, "127.0.0.1:5001", 0);
    char request[64];
    for (int i = 0; i < 20000; i++) {
        int len = snprintf(request, sizeof request, "SUBSCRIBE channel:%d\r\n", i);
        feed(&a, request, (size_t)len, 0);
        if (i % 2 == 0)
            feed(&b, request, (size_t)len, 0);
    }
    ck_assert_uint_eq(a.channel_count, 20000);
    ck_assert_uint_eq(hub.channels.count, 20000);
    ck_assert_uint_eq(hub.subscriptions.count, 30000);
    session_end(&a);
    ck_assert_uint_eq(hub.channels.count, 10000);
    session_end(&b);
    ck_assert_uint_eq(hub.subscriptions.count, 0);
    ck_assert_ptr_null(hub.channels.buckets);
}
END_TEST

START_TEST(test_session_pushes_to_a_resp3_subscriber_and_lets_it_run_any_command)
{
    /* In RESP3 a message is a push (">"), which no reply can be mistaken for: subscribe mode needs no rules.
     */
    struct session sub, pub;
    session_start(&sub, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&pub, &hub, &limits, "127.0.0.1:5001", 0);
    FEED(&sub, "HELLO 3\r\n", 0);
    drain(&sub, 0);
    FEED(&sub, "SUBSCRIBE news\r\nCLIENT GETNAME\r\nPING\r\n", 0);
    EXPECT(&sub, ">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n_\r\n+PONG\r\n");
    FEED(&pub, "PUBLISH news hello\r\n", 0);
    EXPECT(&pub, ":1\r\n");
    EXPECT(&sub, ">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
    session_end(&sub);
    session_end(&pub);
}
END_TEST

START_TEST(test_session_closes_an_idle_client_but_not_a_subscriber)
{
    struct session idle, sub;
    session_start(&idle, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&sub, &hub, &limits, "127.0.0.1:5001", 0);
    FEED(&sub, "SUBSCRIBE a\r\n", 10);
    drain(&sub, 10);
    ck_assert_int_eq(session_deadline(&idle), 1000);
    ck_assert_int_eq(session_deadline(&sub), 0);
    ck_assert_verdict(session_expire(&idle, 999), SESSION_OPEN);
    ck_assert_verdict(session_expire(&idle, 1000), SESSION_REFUSED);
    EXPECT(&idle, "-ERR idle timeout\r\n");
    session_end(&idle);
    session_end(&sub);
}
END_TEST

Suite *make_session_suite(void)
{
    Suite *suite = suite_create("session");
    TCase *commands = tcase_create("commands"); /* step "commands" of stage.ini */
    tcase_add_checked_fixture(commands, setup, teardown);
    tcase_add_test(commands, test_session_answers_ping_in_both_framings);
    tcase_add_test(commands, test_session_echoes_any_bytes);
    tcase_add_test(commands, test_session_gives_the_same_replies_for_every_split_of_a_stream);
    tcase_add_test(commands, test_session_answers_a_request_dripped_one_byte_at_a_time);
    tcase_add_test(commands, test_session_names_an_unknown_command_and_its_arguments);
    tcase_add_test(commands, test_session_quotes_long_arguments_of_an_unknown_command_as_redis_does);
    tcase_add_test(commands, test_session_refuses_a_wrong_number_of_arguments);
    tcase_add_test(commands, test_session_quits_with_ok_and_exits_without_a_reply);
    tcase_add_test(commands, test_session_closes_after_a_protocol_error);
    tcase_add_test(commands, test_session_closes_a_request_that_outgrows_the_query_buffer);
    tcase_add_test(commands, test_session_limits_the_unfinished_request_not_the_receive);
    tcase_add_test(commands, test_session_names_clients_and_lists_them);
    tcase_add_test(commands, test_session_reports_the_counters);
    tcase_add_test(commands,
                   test_session_holds_requests_past_the_high_water_mark_and_runs_them_as_its_output_is_sent);
    tcase_add_test(commands, test_session_closes_a_request_not_finished_in_time);
    tcase_add_test(commands, test_session_is_not_idle_while_it_is_owed_a_read);
    tcase_add_test(commands, test_session_stop_queues_the_notice);
    suite_add_tcase(suite, commands);
    TCase *pubsub = tcase_create("pubsub"); /* step "pubsub" */
    tcase_add_checked_fixture(pubsub, setup, teardown);
    tcase_add_test(pubsub, test_session_delivers_a_published_message_to_each_subscriber);
    tcase_add_test(pubsub, test_session_puts_a_message_before_the_replies_that_follow_it);
    tcase_add_test(pubsub, test_session_breaks_a_subscriber_whose_messages_would_pass_max_output);
    tcase_add_test(pubsub, test_session_leaves_its_channels_with_its_verdict_so_publish_does_not_count_it);
    tcase_add_test(pubsub, test_session_allows_only_subscribe_commands_to_a_resp2_subscriber);
    tcase_add_test(pubsub, test_session_bounds_the_channels_of_one_client_and_leaves_each_in_order);
    tcase_add_test(pubsub, test_session_subscribes_to_many_channels_and_leaves_them_all_at_once);
    tcase_add_test(pubsub, test_session_closes_an_idle_client_but_not_a_subscriber);
    suite_add_tcase(suite, pubsub);
    TCase *libraries = tcase_create("libraries"); /* step "libraries" */
    tcase_add_checked_fixture(libraries, setup, teardown);
    tcase_add_test(libraries, test_session_takes_what_client_libraries_say_of_themselves);
    tcase_add_test(libraries, test_session_speaks_resp3_after_hello_3_and_resp2_otherwise);
    tcase_add_test(libraries, test_session_pushes_to_a_resp3_subscriber_and_lets_it_run_any_command);
    tcase_add_test(libraries, test_session_runs_a_transaction_at_exec_and_discards_one_with_an_error);
    tcase_add_test(libraries, test_session_documents_its_commands_for_redis_cli);
    tcase_add_test(libraries,
                   test_session_keeps_a_copy_of_each_queued_command_not_a_pointer_into_the_receive_buffer);
    suite_add_tcase(suite, libraries);
    TCase *jobs = tcase_create("jobs"); /* step "order" */
    tcase_add_checked_fixture(jobs, setup, teardown);
    tcase_add_test(jobs, test_session_holds_the_requests_after_a_slow_command_until_its_reply);
    tcase_add_test(jobs, test_session_gives_a_job_the_client_id_of_its_session);
    tcase_add_test(jobs, test_session_runs_no_clock_against_a_client_waiting_for_a_job);
    tcase_add_test(jobs, test_session_reads_on_behind_a_job_only_up_to_max_query);
    tcase_add_test(jobs, test_session_refuses_a_slow_command_in_a_transaction_and_a_bad_argument);
    tcase_add_test(jobs, test_session_reports_the_jobs_in_info);
    suite_add_tcase(suite, jobs);
    TCase *handoff = tcase_create("handoff"); /* step "handoff" */
    tcase_add_checked_fixture(handoff, setup, teardown);
    tcase_add_test(handoff, test_session_is_found_by_its_client_id_until_it_leaves);
    suite_add_tcase(suite, handoff);
    return suite;
}
