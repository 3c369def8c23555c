/*
 * check_session.c - the protocol without sockets: bytes in, replies and
 * verdicts out, at times the test chooses. Every chunking of a stream gives
 * the same replies; "\r\n", NUL bytes, "exit", the line limit and the two
 * deadlines behave as docs/protocol.md says.
 */
#include "check_suites.h"
#include "session.h"

#include <check.h>
#include <string.h>

#define REPLY "Hello from server\n"

static const struct session_limits limits = {
    .max_line = 16, .idle_ms = 1000, .line_ms = 300, .high_water = 4096};

/* The same, with room for two replies before the session stops answering (backpressure). */
static const struct session_limits tight = {
    .max_line = 16, .idle_ms = 1000, .line_ms = 300, .high_water = 40};

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

/* Feeds a whole string at time 0 to a new session; returns the verdict, the replies in session->out. */
static enum session_verdict feed_once(struct session *session, const char *bytes, size_t len)
{
    session_start(session, &limits, 0);
    return session_feed(session, bytes, len, 0);
}

/* Whether out holds exactly these bytes. */
static bool holds(const struct outbuf *out, const char *bytes)
{
    size_t len = strlen(bytes);
    return outbuf_pending(out) == len && (len == 0 || memcmp(outbuf_data(out), bytes, len) == 0);
}

START_TEST(test_session_answers_each_line_of_one_receive)
{
    struct session session;
    ck_assert_verdict(feed_once(&session, "a\nb\r\n\n", 6), SESSION_OPEN);
    ck_assert_msg(holds(&session.out, REPLY REPLY REPLY), "three lines, %zu bytes of replies",
                  outbuf_pending(&session.out));
    ck_assert_uint_eq(session.requests, 3);
    session_end(&session);
}
END_TEST

START_TEST(test_session_gives_the_same_replies_for_every_split_of_a_stream)
{
    const char stream[] = "alpha\r\nbeta\n\ngamma\nexit\nnot answered\n";
    size_t len = sizeof stream - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        struct session session;
        session_start(&session, &limits, 0);
        enum session_verdict first = session_feed(&session, stream, cut, 0);
        enum session_verdict verdict =
            first == SESSION_OPEN ? session_feed(&session, stream + cut, len - cut, 0) : first;
        ck_assert_msg(verdict == SESSION_DONE, "split after byte %zu: verdict %s, not SESSION_DONE", cut,
                      verdict_name(verdict));
        ck_assert_msg(holds(&session.out, REPLY REPLY REPLY REPLY),
                      "split after byte %zu: %zu bytes of replies", cut, outbuf_pending(&session.out));
        session_end(&session);
    }
}
END_TEST

START_TEST(test_session_answers_a_line_dripped_one_byte_at_a_time)
{
    const char stream[] = "one byte at a ti\n";
    struct session session;
    session_start(&session, &limits, 0);
    for (size_t i = 0; i < sizeof stream - 1; i++)
        ck_assert_verdict(session_feed(&session, stream + i, 1, (long long)i), SESSION_OPEN);
    ck_assert(holds(&session.out, REPLY));
    ck_assert_ptr_null(session.held); /* no unfinished line: no buffer held */
    session_end(&session);
}
END_TEST

START_TEST(test_session_ends_at_exit_and_answers_nothing_after_it)
{
    struct session session;
    ck_assert_verdict(feed_once(&session, "hi\nexit\r\nmore\n", 14), SESSION_DONE);
    ck_assert(holds(&session.out, REPLY));
    session_end(&session);
}
END_TEST

START_TEST(test_session_treats_nul_bytes_and_exits_inside_lines_as_any_line)
{
    struct session session;
    ck_assert_verdict(feed_once(&session, "exit\0\nexits\n exit\n", 18), SESSION_OPEN);
    ck_assert(holds(&session.out, REPLY REPLY REPLY));
    session_end(&session);
}
END_TEST

START_TEST(test_session_answers_a_line_of_exactly_the_limit_and_refuses_one_byte_more)
{
    struct session session;
    ck_assert_verdict(feed_once(&session, "0123456789abcdef\r\n", 18), SESSION_OPEN); /* 16 bytes */
    ck_assert(holds(&session.out, REPLY));
    session_end(&session);
    ck_assert_verdict(feed_once(&session, "0123456789abcdefg\nlater\n", 24), SESSION_REFUSED);
    ck_assert(holds(&session.out, "ERR line too long\n"));
    ck_assert_str_eq(session.why, "line longer than 16 bytes");
    session_end(&session);
}
END_TEST

START_TEST(test_session_refuses_an_endless_line_once_it_is_over_the_limit_in_pieces)
{
    struct session session;
    session_start(&session, &limits, 0);
    ck_assert_verdict(session_feed(&session, "0123456789", 10, 0), SESSION_OPEN);
    ck_assert_verdict(session_feed(&session, "abcdefg", 7, 0),
                      SESSION_OPEN); /* 17: limit + 1, a '\r' may come */
    ck_assert_verdict(session_feed(&session, "h", 1, 0), SESSION_REFUSED); /* 18 without '\n': too long */
    ck_assert(holds(&session.out, "ERR line too long\n"));
    session_end(&session);
}
END_TEST

/* The driver's part: sends all of the session's output at now, into wire. Returns the last verdict that is
 * not SESSION_OPEN, if any. */
static enum session_verdict send_all(struct session *session, long long now, struct outbuf *wire)
{
    enum session_verdict verdict = SESSION_OPEN;
    size_t len;
    const char *bytes;
    while ((bytes = session_output(session, &len)) != NULL) {
        outbuf_append(wire, bytes, len);
        enum session_verdict said = session_sent(session, len, now);
        if (said != SESSION_OPEN)
            verdict = said;
    }
    return verdict;
}

START_TEST(test_session_idle_deadline_moves_with_every_receive)
{
    struct session session;
    struct outbuf wire = OUTBUF_EMPTY;
    session_start(&session, &limits, 0);
    ck_assert_int_eq(session_deadline(&session), 1000);
    session_feed(&session, "x\n", 2, 700);
    send_all(&session, 700, &wire);
    ck_assert_int_eq(session_deadline(&session), 1700);
    ck_assert_verdict(session_expire(&session, 1699), SESSION_OPEN); /* not yet */
    ck_assert_verdict(session_expire(&session, 1700), SESSION_REFUSED);
    ck_assert(holds(&session.out, "ERR idle timeout\n"));
    ck_assert_str_eq(session.why, "idle too long");
    session_end(&session);
    outbuf_release(&wire);
}
END_TEST

START_TEST(test_session_is_not_idle_while_it_is_owed_a_read_and_its_idle_clock_starts_once_all_is_sent)
{
    struct session session;
    session_start(&session, &limits, 0);
    session_feed(&session, "x\n", 2, 100); /* a reply waits: the client owes a read, not a request */
    ck_assert_int_eq(session_deadline(&session), 0);
    ck_assert_verdict(session_expire(&session, 5000), SESSION_OPEN);
    ck_assert_verdict(session_sent(&session, outbuf_pending(&session.out), 5000), SESSION_OPEN);
    ck_assert_int_eq(session_deadline(&session), 6000);
    session_end(&session);
}
END_TEST

START_TEST(test_session_line_deadline_starts_with_a_line_and_restarts_when_lines_complete)
{
    struct session session;
    struct outbuf wire = OUTBUF_EMPTY;
    session_start(&session, &limits, 0);
    session_feed(&session, "sl", 2, 100); /* a line begins: it must end by 400 */
    ck_assert_int_eq(session_deadline(&session), 400);
    session_feed(&session, "o", 1, 300); /* more of it: the same deadline */
    ck_assert_int_eq(session_deadline(&session), 400);
    session_feed(&session, "w\nnext", 6, 350); /* one ends, the next begins: 650 */
    send_all(&session, 350, &wire);
    ck_assert_int_eq(session_deadline(&session), 650);
    ck_assert_verdict(session_expire(&session, 650), SESSION_REFUSED);
    ck_assert(holds(&wire, REPLY));
    ck_assert(holds(&session.out, "ERR line timeout\n"));
    session_end(&session);
    outbuf_release(&wire);
}
END_TEST

START_TEST(test_session_answers_nothing_past_the_high_water_mark_and_goes_on_as_its_output_is_sent)
{
    /* 40 bytes of output at most before it stops: two replies (36), then a third that passes the mark. */
    const char lines[] = "1\n2\n3\n4\n5\nexit\nnot answered\n";
    struct session session;
    struct outbuf wire = OUTBUF_EMPTY;
    session_start(&session, &tight, 0);
    ck_assert_verdict(session_feed(&session, lines, sizeof lines - 1, 0), SESSION_OPEN);
    ck_assert_uint_eq(session.requests, 3);
    ck_assert(!session_wants_input(&session)); /* lines are held: the driver must not read more */
    ck_assert_ptr_nonnull(session.held);
    ck_assert_verdict(session_sent(&session, 10, 0), SESSION_OPEN); /* 44 left: still over the mark */
    ck_assert_uint_eq(session.requests, 3);
    ck_assert_verdict(send_all(&session, 0, &wire), SESSION_DONE); /* as it drains, lines 4, 5 and exit */
    ck_assert_uint_eq(session.requests, 5);
    ck_assert_ptr_null(session.held);
    ck_assert_uint_eq(outbuf_pending(&wire), 5 * (sizeof REPLY - 1) - 10); /* the first 10 went before */
    session_end(&session);
    outbuf_release(&wire);
}
END_TEST

START_TEST(test_session_holds_every_split_of_a_stream_past_the_mark_and_answers_all_in_order)
{
    const char stream[] = "a\nbb\nccc\ndddd\neeeee\nffffff\nexit\n";
    size_t len = sizeof stream - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        struct session session;
        struct outbuf wire = OUTBUF_EMPTY;
        session_start(&session, &tight, 0);
        enum session_verdict verdict = session_feed(&session, stream, cut, 0);
        if (verdict == SESSION_OPEN && !session_wants_input(&session))
            verdict = send_all(&session, 0, &wire); /* the driver reads no more before it sends */
        if (verdict == SESSION_OPEN)
            verdict = session_feed(&session, stream + cut, len - cut, 0);
        enum session_verdict last = send_all(&session, 0, &wire);
        ck_assert_msg(verdict == SESSION_DONE || last == SESSION_DONE, "split after byte %zu: never DONE",
                      cut);
        ck_assert_msg(outbuf_pending(&wire) == 6 * (sizeof REPLY - 1),
                      "split after byte %zu: %zu bytes of replies", cut, outbuf_pending(&wire));
        session_end(&session);
        outbuf_release(&wire);
    }
}
END_TEST

START_TEST(test_session_output_keeps_only_its_first_allocation_once_sent)
{
    struct session session;
    session_start(&session, &limits, 0);
    char lines[4000];
    memset(lines, '\n', sizeof lines); /* 4,000 empty lines: 72,000 bytes of replies, past the first 4 KiB */
    ck_assert_verdict(session_feed(&session, lines, sizeof lines, 0), SESSION_OPEN);
    ck_assert_uint_gt(session.out.cap, 4096);
    struct outbuf wire = OUTBUF_EMPTY;
    send_all(&session, 0, &wire);
    ck_assert_uint_eq(outbuf_pending(&wire), 4000 * (sizeof REPLY - 1));
    ck_assert_uint_le(session.out.cap,
                      4096); /* the burst's memory went back; at most the first 4 KiB stays */
    outbuf_release(&wire);
    ck_assert_ptr_null(session_broken(&session));
    session_end(&session);
}
END_TEST

START_TEST(test_session_stop_queues_the_notice)
{
    struct session session;
    session_start(&session, &limits, 0);
    session_stop(&session);
    ck_assert(holds(&session.out, "server shutting down\n"));
    session_end(&session);
}
END_TEST

Suite *make_session_suite(void)
{
    Suite *suite = suite_create("session");
    TCase *lines = tcase_create("lines");
    tcase_add_test(lines, test_session_answers_each_line_of_one_receive);
    tcase_add_test(lines, test_session_gives_the_same_replies_for_every_split_of_a_stream);
    tcase_add_test(lines, test_session_answers_a_line_dripped_one_byte_at_a_time);
    tcase_add_test(lines, test_session_ends_at_exit_and_answers_nothing_after_it);
    tcase_add_test(lines, test_session_treats_nul_bytes_and_exits_inside_lines_as_any_line);
    tcase_add_test(lines, test_session_answers_a_line_of_exactly_the_limit_and_refuses_one_byte_more);
    tcase_add_test(lines, test_session_refuses_an_endless_line_once_it_is_over_the_limit_in_pieces);
    tcase_add_test(lines, test_session_stop_queues_the_notice);
    suite_add_tcase(suite, lines);
    TCase *deadlines = tcase_create("deadlines");
    tcase_add_test(deadlines, test_session_idle_deadline_moves_with_every_receive);
    tcase_add_test(
        deadlines,
        test_session_is_not_idle_while_it_is_owed_a_read_and_its_idle_clock_starts_once_all_is_sent);
    tcase_add_test(deadlines, test_session_line_deadline_starts_with_a_line_and_restarts_when_lines_complete);
    suite_add_tcase(suite, deadlines);
    TCase *backpressure = tcase_create("backpressure");
    tcase_add_test(backpressure,
                   test_session_answers_nothing_past_the_high_water_mark_and_goes_on_as_its_output_is_sent);
    tcase_add_test(backpressure,
                   test_session_holds_every_split_of_a_stream_past_the_mark_and_answers_all_in_order);
    tcase_add_test(backpressure, test_session_output_keeps_only_its_first_allocation_once_sent);
    suite_add_tcase(suite, backpressure);
    return suite;
}
