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

static const struct session_limits limits = {.max_line = 16, .idle_ms = 1000, .line_ms = 300};

/* Feeds a whole string at time 0 to a new session; returns the verdict, the replies in out. */
static enum session_verdict feed_once(struct session *session, const char *bytes, size_t len,
                                      struct outbuf *out)
{
    session_start(session, &limits, 0);
    return session_feed(session, bytes, len, 0, out);
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
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(feed_once(&session, "a\nb\r\n\n", 6, &out), SESSION_OPEN);
    ck_assert_msg(holds(&out, REPLY REPLY REPLY), "three lines, %zu bytes of replies", outbuf_pending(&out));
    ck_assert_uint_eq(session.lines, 3);
    session_end(&session);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_gives_the_same_replies_for_every_split_of_a_stream)
{
    const char stream[] = "alpha\r\nbeta\n\ngamma\nexit\nnot answered\n";
    size_t len = sizeof stream - 1;
    for (size_t cut = 0; cut <= len; cut++) {
        struct session session;
        struct outbuf out = OUTBUF_EMPTY;
        session_start(&session, &limits, 0);
        enum session_verdict first = session_feed(&session, stream, cut, 0, &out);
        enum session_verdict verdict =
            first == SESSION_OPEN ? session_feed(&session, stream + cut, len - cut, 0, &out) : first;
        ck_assert_msg(verdict == SESSION_DONE, "split after byte %zu: verdict %d, not DONE", cut,
                      (int)verdict);
        ck_assert_msg(holds(&out, REPLY REPLY REPLY REPLY), "split after byte %zu: %zu bytes of replies", cut,
                      outbuf_pending(&out));
        session_end(&session);
        outbuf_release(&out);
    }
}
END_TEST

START_TEST(test_session_answers_a_line_dripped_one_byte_at_a_time)
{
    const char stream[] = "one byte at a ti\n";
    struct session session;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&session, &limits, 0);
    for (size_t i = 0; i < sizeof stream - 1; i++)
        ck_assert_int_eq(session_feed(&session, stream + i, 1, (long long)i, &out), SESSION_OPEN);
    ck_assert(holds(&out, REPLY));
    ck_assert_ptr_null(session.partial); /* no unfinished line: no buffer held */
    session_end(&session);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_ends_at_exit_and_answers_nothing_after_it)
{
    struct session session;
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(feed_once(&session, "hi\nexit\r\nmore\n", 14, &out), SESSION_DONE);
    ck_assert(holds(&out, REPLY));
    session_end(&session);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_treats_nul_bytes_and_exits_inside_lines_as_any_line)
{
    struct session session;
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(feed_once(&session, "exit\0\nexits\n exit\n", 18, &out), SESSION_OPEN);
    ck_assert(holds(&out, REPLY REPLY REPLY));
    session_end(&session);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_answers_a_line_of_exactly_the_limit_and_refuses_one_byte_more)
{
    struct session session;
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(feed_once(&session, "0123456789abcdef\r\n", 18, &out), SESSION_OPEN); /* 16 bytes */
    ck_assert(holds(&out, REPLY));
    session_end(&session);
    outbuf_release(&out);
    ck_assert_int_eq(feed_once(&session, "0123456789abcdefg\nlater\n", 24, &out), SESSION_REFUSED);
    ck_assert(holds(&out, "ERR line too long\n"));
    ck_assert_str_eq(session.why, "line longer than 16 bytes");
    session_end(&session);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_refuses_an_endless_line_once_it_is_over_the_limit_in_pieces)
{
    struct session session;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&session, &limits, 0);
    ck_assert_int_eq(session_feed(&session, "0123456789", 10, 0, &out), SESSION_OPEN);
    ck_assert_int_eq(session_feed(&session, "abcdefg", 7, 0, &out),
                     SESSION_OPEN); /* 17: limit + 1, a '\r' may come */
    ck_assert_int_eq(session_feed(&session, "h", 1, 0, &out),
                     SESSION_REFUSED); /* 18 without '\n': too long */
    ck_assert(holds(&out, "ERR line too long\n"));
    session_end(&session);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_idle_deadline_moves_with_every_receive)
{
    struct session session;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&session, &limits, 0);
    ck_assert_int_eq(session_deadline(&session), 1000);
    session_feed(&session, "x\n", 2, 700, &out);
    ck_assert_int_eq(session_deadline(&session), 1700);
    ck_assert_int_eq(session_expire(&session, 1699, &out), SESSION_OPEN); /* not yet */
    ck_assert_int_eq(session_expire(&session, 1700, &out), SESSION_REFUSED);
    ck_assert(holds(&out, REPLY "ERR idle timeout\n"));
    ck_assert_str_eq(session.why, "idle too long");
    session_end(&session);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_line_deadline_starts_with_a_line_and_restarts_when_lines_complete)
{
    struct session session;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&session, &limits, 0);
    session_feed(&session, "sl", 2, 100, &out); /* a line begins: it must end by 400 */
    ck_assert_int_eq(session_deadline(&session), 400);
    session_feed(&session, "o", 1, 300, &out); /* more of it: the same deadline */
    ck_assert_int_eq(session_deadline(&session), 400);
    session_feed(&session, "w\nnext", 6, 350, &out); /* one ends, the next begins: 650 */
    ck_assert_int_eq(session_deadline(&session), 650);
    ck_assert_int_eq(session_expire(&session, 650, &out), SESSION_REFUSED);
    ck_assert(holds(&out, REPLY "ERR line timeout\n"));
    session_end(&session);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_stop_queues_the_notice)
{
    struct session session;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&session, &limits, 0);
    session_stop(&session, &out);
    ck_assert(holds(&out, "server shutting down\n"));
    session_end(&session);
    outbuf_release(&out);
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
    tcase_add_test(deadlines, test_session_line_deadline_starts_with_a_line_and_restarts_when_lines_complete);
    suite_add_tcase(suite, deadlines);
    return suite;
}
