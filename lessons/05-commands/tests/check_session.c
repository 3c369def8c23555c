/*
 * check_session.c - the RESP protocol without sockets: requests in, replies
 * and verdicts out, at times the test chooses. Commands answer as
 * docs/protocol.md says (and as Redis does); every chunking of a stream
 * gives the same replies; the limits and the deadlines close a client with
 * an error line.
 */
#include "check_suites.h"
#include "session.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const struct session_limits limits = {.resp = {.max_args = 8, .max_bulk = 64, .max_inline = 64},
                                             .max_query = 256,
                                             .idle_ms = 1000,
                                             .request_ms = 300};

static long long fixed_clock_us(void)
{
    return 1700000000123456LL;
}

/* The sessions a PUBLISH woke, in order. */
static struct session *woken[8];
static int woken_count;

static void wake(void *driver, struct session *session)
{
    (void)driver;
    if (woken_count < 8)
        woken[woken_count++] = session;
}

static struct hub hub;

static void setup(void)
{
    hub_init(&hub, 0, wake, NULL, fixed_clock_us);
    woken_count = 0;
}

static void teardown(void)
{
    hub_free(&hub);
}

/* Whether out holds exactly these len bytes; prints both when not. */
static void expect_bytes(const struct outbuf *out, const char *bytes, size_t len, const char *what)
{
    size_t got = outbuf_pending(out);
    ck_assert_msg(got == len && (len == 0 || memcmp(outbuf_data(out), bytes, len) == 0),
                  "%s: got \"%.*s\" (%zu bytes), expected \"%.*s\" (%zu bytes)", what, (int)got,
                  got ? outbuf_data(out) : "", got, (int)len, bytes, len);
}

#define EXPECT(out, literal) expect_bytes(out, literal, sizeof literal - 1, #literal)

/* A new session fed one string at time 0; the replies in out. */
static enum session_verdict feed_new(struct session *s, const char *bytes, size_t len, struct outbuf *out)
{
    session_start(s, &hub, &limits, "127.0.0.1:5000", 0);
    return session_feed(s, bytes, len, 0, out);
}

#define FEED_NEW(s, literal, out)  feed_new(s, literal, sizeof literal - 1, out)
#define FEED(s, literal, now, out) session_feed(s, literal, sizeof literal - 1, now, out)

START_TEST(test_session_answers_ping_in_both_framings)
{
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(FEED_NEW(&s, "PING\r\n*1\r\n$4\r\nping\r\nping hi\r\n", &out), SESSION_OPEN);
    EXPECT(&out, "+PONG\r\n+PONG\r\n$2\r\nhi\r\n");
    ck_assert_uint_eq(s.commands, 3);
    session_end(&s);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_echoes_any_bytes)
{
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(FEED_NEW(&s, "*2\r\n$4\r\nECHO\r\n$4\r\na\r\n\0\r\n", &out), SESSION_OPEN);
    EXPECT(&out, "$4\r\na\r\n\0\r\n");
    session_end(&s);
    outbuf_release(&out);
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
        struct outbuf out = OUTBUF_EMPTY;
        session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
        enum session_verdict first = session_feed(&s, stream, cut, 0, &out);
        enum session_verdict verdict =
            first == SESSION_OPEN ? session_feed(&s, stream + cut, len - cut, 0, &out) : first;
        ck_assert_msg(verdict == SESSION_DONE, "split after byte %zu: verdict %d, not DONE", cut,
                      (int)verdict);
        expect_bytes(&out, replies, sizeof replies - 1, "the replies");
        ck_assert_ptr_null(s.query); /* nothing unfinished is kept after QUIT */
        session_end(&s);
        outbuf_release(&out);
    }
}
END_TEST

START_TEST(test_session_answers_a_request_dripped_one_byte_at_a_time)
{
    const char stream[] = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    for (size_t i = 0; i < sizeof stream - 1; i++)
        ck_assert_int_eq(session_feed(&s, stream + i, 1, (long long)i, &out), SESSION_OPEN);
    EXPECT(&out, "$5\r\nhello\r\n");
    ck_assert_ptr_null(s.query); /* the request is done: no buffer held */
    session_end(&s);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_names_an_unknown_command_and_its_arguments)
{
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(FEED_NEW(&s, "FOO bar baz\r\n", &out), SESSION_OPEN);
    EXPECT(&out, "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n");
    session_end(&s);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_refuses_a_wrong_number_of_arguments)
{
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(FEED_NEW(&s, "ECHO\r\nPING a b\r\nPUBLISH ch\r\nCLIENT ID x\r\n", &out), SESSION_OPEN);
    EXPECT(&out, "-ERR wrong number of arguments for 'echo' command\r\n"
                 "-ERR wrong number of arguments for 'ping' command\r\n"
                 "-ERR wrong number of arguments for 'publish' command\r\n"
                 "-ERR wrong number of arguments for 'client|id' command\r\n");
    session_end(&s);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_quits_with_ok_and_exits_without_a_reply)
{
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(FEED_NEW(&s, "QUIT\r\nPING\r\n", &out), SESSION_DONE);
    EXPECT(&out, "+OK\r\n");
    session_end(&s);
    outbuf_release(&out);
    ck_assert_int_eq(FEED_NEW(&s, "PING\r\nexit\r\nPING\r\n", &out), SESSION_DONE);
    EXPECT(&out, "+PONG\r\n");
    session_end(&s);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_closes_after_a_protocol_error)
{
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(FEED_NEW(&s, "PING\r\n*1\r\n$-5\r\nPING\r\n", &out), SESSION_REFUSED);
    EXPECT(&out, "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
    ck_assert_str_eq(s.why, "Protocol error: invalid bulk length");
    session_end(&s);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_closes_a_request_that_outgrows_the_query_buffer)
{
    /* max_query 256: bulk strings of 64 bytes, 8 of them, never finished */
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    ck_assert_int_eq(FEED(&s, "*8\r\n", 0, &out), SESSION_OPEN);
    enum session_verdict verdict = SESSION_OPEN;
    const char bulk[] = "$64\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n";
    for (int i = 0; i < 7 && verdict == SESSION_OPEN; i++)
        verdict = FEED(&s, bulk, 0, &out);
    ck_assert_int_eq(verdict, SESSION_REFUSED);
    EXPECT(&out, "-ERR Protocol error: query buffer limit reached\r\n");
    session_end(&s);
    outbuf_release(&out);
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
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    ck_assert_int_eq(session_feed(&s, echo64, head, 0, &out), SESSION_OPEN);
    ck_assert_msg(len > limits.max_query, "the second receive (%zu bytes) must exceed max_query", len);
    ck_assert_int_eq(session_feed(&s, rest, len, 0, &out), SESSION_OPEN);
    ck_assert_uint_eq(s.commands, 4);
    ck_assert_ptr_null(s.query);
    session_end(&s);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_names_clients_and_lists_them)
{
    struct session a, b;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&a, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&b, &hub, &limits, "127.0.0.1:5001", 0);
    ck_assert_int_eq(
        FEED(&a, "CLIENT GETNAME\r\nCLIENT SETNAME alice\r\nclient getname\r\nCLIENT ID\r\n", 0, &out),
        SESSION_OPEN);
    EXPECT(&out, "$-1\r\n+OK\r\n$5\r\nalice\r\n:1\r\n");
    outbuf_release(&out);
    ck_assert_int_eq(
        FEED(&b, "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\na b\r\nCLIENT LIST\r\n", 3000, &out),
        SESSION_OPEN);
    EXPECT(&out, "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
                 "$127\r\n"
                 "id=2 addr=127.0.0.1:5001 name= age=3 idle=0 sub=0 cmd=client\n"
                 "id=1 addr=127.0.0.1:5000 name=alice age=3 idle=3 sub=0 cmd=client\n\r\n");
    session_end(&a);
    session_end(&b);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_reports_the_counters)
{
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    ck_assert_int_eq(FEED(&s, "PING\r\nINFO\r\n", 5000, &out), SESSION_OPEN);
    EXPECT(&out, "+PONG\r\n$158\r\n# Server\r\nuptime_in_seconds:5\r\nconnected_clients:1\r\n"
                 "total_connections_received:1\r\ntotal_commands_processed:2\r\npubsub_channels:0\r\n"
                 "pubsub_messages_delivered:0\r\n\r\n");
    session_end(&s);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_delivers_a_published_message_to_each_subscriber)
{
    struct session sub1, sub2, pub;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&sub1, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&sub2, &hub, &limits, "127.0.0.1:5001", 0);
    session_start(&pub, &hub, &limits, "127.0.0.1:5002", 0);
    FEED(&sub1, "SUBSCRIBE news sport\r\n", 0, &out);
    EXPECT(&out,
           "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n");
    outbuf_release(&out);
    FEED(&sub2, "SUBSCRIBE news\r\n", 0, &out);
    outbuf_release(&out);
    ck_assert_int_eq(FEED(&pub, "PUBLISH news hello\r\nPUBLISH weather rain\r\n", 0, &out), SESSION_OPEN);
    EXPECT(&out, ":2\r\n:0\r\n");
    ck_assert_int_eq(woken_count, 2);
    ck_assert_ptr_eq(woken[0], &sub1);
    ck_assert_ptr_eq(woken[1], &sub2);
    EXPECT(&sub1.mailbox, "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
    EXPECT(&sub2.mailbox, "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
    outbuf_release(&out);
    FEED(&pub, "PUBLISH news again\r\n", 0, &out);
    ck_assert_int_eq(woken_count, 2); /* the mailboxes were not empty: the driver already knows */
    session_end(&sub2);
    outbuf_release(&out);
    FEED(&pub, "PUBLISH news third\r\n", 0, &out);
    EXPECT(&out, ":1\r\n"); /* sub2 left: only sub1 */
    session_end(&sub1);
    session_end(&pub);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_puts_a_message_before_the_replies_that_follow_it)
{
    /* Published before the subscriber's UNSUBSCRIBE was read: it must come first, while it is still one. */
    struct session sub, pub;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&sub, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&pub, &hub, &limits, "127.0.0.1:5001", 0);
    FEED(&sub, "SUBSCRIBE a\r\n", 0, &out);
    outbuf_release(&out);
    FEED(&pub, "PUBLISH a hi\r\n", 0, &out);
    outbuf_release(&out);
    FEED(&sub, "UNSUBSCRIBE\r\nPING\r\n", 0, &out);
    EXPECT(&out, "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n"
                 "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n+PONG\r\n");
    session_end(&sub);
    session_end(&pub);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_marks_a_subscriber_whose_mailbox_is_full)
{
    struct session sub, pub;
    struct outbuf out = OUTBUF_EMPTY;
    hub.max_mailbox = 100; /* two messages of 37 bytes fit, the third does not */
    session_start(&sub, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&pub, &hub, &limits, "127.0.0.1:5001", 0);
    FEED(&sub, "SUBSCRIBE a\r\n", 0, &out);
    outbuf_release(&out);
    FEED(&pub, "PUBLISH a 0123456\r\nPUBLISH a 0123456\r\nPUBLISH a 0123456\r\n", 0, &out);
    EXPECT(&out, ":1\r\n:1\r\n:0\r\n");
    ck_assert_uint_eq(outbuf_pending(&sub.mailbox), 74);
    ck_assert_msg(sub.mail_overflow, "the message that did not fit must mark the subscriber for closing");
    session_end(&sub);
    session_end(&pub);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_allows_only_subscribe_commands_to_a_subscriber)
{
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    FEED(&s, "SUBSCRIBE a\r\n", 0, &out);
    outbuf_release(&out);
    ck_assert_int_eq(FEED(&s, "ECHO x\r\nPING\r\nUNSUBSCRIBE\r\nPING\r\nUNSUBSCRIBE\r\n", 0, &out),
                     SESSION_OPEN);
    EXPECT(&out, "-ERR Can't execute 'echo': only SUBSCRIBE / UNSUBSCRIBE / PING / QUIT are allowed in this "
                 "context\r\n"
                 "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
                 "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n"
                 "+PONG\r\n"
                 "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    session_end(&s);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_closes_an_idle_client_but_not_a_subscriber)
{
    struct session idle, sub;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&idle, &hub, &limits, "127.0.0.1:5000", 0);
    session_start(&sub, &hub, &limits, "127.0.0.1:5001", 0);
    FEED(&sub, "SUBSCRIBE a\r\n", 10, &out);
    outbuf_release(&out);
    ck_assert_int_eq(session_deadline(&idle), 1000);
    ck_assert_int_eq(session_deadline(&sub), 0);
    ck_assert_int_eq(session_expire(&idle, 999, &out), SESSION_OPEN);
    ck_assert_int_eq(session_expire(&idle, 1000, &out), SESSION_REFUSED);
    EXPECT(&out, "-ERR idle timeout\r\n");
    session_end(&idle);
    session_end(&sub);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_closes_a_request_not_finished_in_time)
{
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    FEED(&s, "*2\r\n$4\r\nECHO\r\n", 100, &out);
    ck_assert_int_eq(session_deadline(&s),
                     400); /* request_ms after its first byte, before the idle deadline */
    FEED(&s, "$3\r\nab", 350, &out);
    ck_assert_int_eq(session_deadline(&s), 400); /* more bytes of the same request do not move it */
    ck_assert_int_eq(session_expire(&s, 400, &out), SESSION_REFUSED);
    EXPECT(&out, "-ERR request timeout\r\n");
    session_end(&s);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_session_stop_queues_the_notice)
{
    struct session s;
    struct outbuf out = OUTBUF_EMPTY;
    session_start(&s, &hub, &limits, "127.0.0.1:5000", 0);
    session_stop(&s, &out);
    EXPECT(&out, "-ERR server shutting down\r\n");
    session_end(&s);
    outbuf_release(&out);
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
    tcase_add_test(commands, test_session_refuses_a_wrong_number_of_arguments);
    tcase_add_test(commands, test_session_quits_with_ok_and_exits_without_a_reply);
    tcase_add_test(commands, test_session_closes_after_a_protocol_error);
    tcase_add_test(commands, test_session_closes_a_request_that_outgrows_the_query_buffer);
    tcase_add_test(commands, test_session_limits_the_unfinished_request_not_the_receive);
    tcase_add_test(commands, test_session_names_clients_and_lists_them);
    tcase_add_test(commands, test_session_reports_the_counters);
    tcase_add_test(commands, test_session_closes_a_request_not_finished_in_time);
    tcase_add_test(commands, test_session_stop_queues_the_notice);
    suite_add_tcase(suite, commands);
    TCase *pubsub = tcase_create("pubsub"); /* step "pubsub" */
    tcase_add_checked_fixture(pubsub, setup, teardown);
    tcase_add_test(pubsub, test_session_delivers_a_published_message_to_each_subscriber);
    tcase_add_test(pubsub, test_session_puts_a_message_before_the_replies_that_follow_it);
    tcase_add_test(pubsub, test_session_marks_a_subscriber_whose_mailbox_is_full);
    tcase_add_test(pubsub, test_session_allows_only_subscribe_commands_to_a_subscriber);
    tcase_add_test(pubsub, test_session_closes_an_idle_client_but_not_a_subscriber);
    suite_add_tcase(suite, pubsub);
    return suite;
}
