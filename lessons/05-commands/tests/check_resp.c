/*
 * check_resp.c - RESP2 requests parsed without I/O: both framings, binary
 * safety, pipelining, every split of a stream, and every kind of
 * malformed request, with the error Redis gives for it.
 *
 * A "transcript" is what a driver would see parsing a stream: each
 * request as its arguments joined by '|' and ended by ';', "-" for an
 * empty one, and at the end "ERR <why>" or "..." for an unfinished
 * request. Every split of a stream must give the transcript of the whole.
 */
#include "check_suites.h"
#include "resp.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const struct resp_limits limits = {.max_args = 4, .max_bulk = 16, .max_inline = 20};

/* Parses a copy of bytes[0, len) in a buffer of exactly len bytes, so a read past the end is caught by ASan.
 */
static enum resp_result parse_exact(const char *bytes, size_t len, struct resp_arg *args, size_t *argc,
                                    size_t *used, char *why, size_t why_len, char **copy)
{
    *copy = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(*copy);
    memcpy(*copy, bytes, len);
    return resp_parse(*copy, len, &limits, args, argc, used, why, why_len);
}

/* Appends to the transcript t (of size cap) what one parse of the pending bytes gave. */
static void note(char *t, size_t cap, const struct resp_arg *args, size_t argc)
{
    if (argc == 0)
        strncat(t, "-", cap - strlen(t) - 1);
    for (size_t i = 0; i < argc; i++) {
        if (i > 0)
            strncat(t, "|", cap - strlen(t) - 1);
        size_t room = cap - strlen(t) - 1;
        strncat(t, args[i].bytes, args[i].len < room ? args[i].len : room);
    }
    strncat(t, ";", cap - strlen(t) - 1);
}

/*
 * Feeds stream to a parser as a driver would, in two receives split after
 * byte cut: after each receive, parses requests until one is unfinished.
 */
static void transcript(const char *stream, size_t len, size_t cut, char *t, size_t cap)
{
    char pending[256];
    size_t held = 0;
    t[0] = '\0';
    size_t parts[2][2] = {{0, cut}, {cut, len}};
    for (int p = 0; p < 2; p++) {
        memcpy(pending + held, stream + parts[p][0], parts[p][1] - parts[p][0]);
        held += parts[p][1] - parts[p][0];
        for (;;) {
            struct resp_arg args[4];
            size_t argc = 99, used = 0;
            char why[80], *copy;
            enum resp_result r = parse_exact(pending, held, args, &argc, &used, why, sizeof why, &copy);
            if (r == RESP_REQUEST) {
                note(t, cap, args, argc);
                ck_assert_msg(used > 0 && used <= held, "used %zu of %zu bytes", used, held);
            }
            free(copy);
            if (r == RESP_PROTOCOL_ERROR) {
                strncat(t, "ERR ", cap - strlen(t) - 1);
                strncat(t, why, cap - strlen(t) - 1);
                return;
            }
            if (r == RESP_INCOMPLETE)
                break;
            memmove(pending, pending + used, held - used);
            held -= used;
        }
    }
    if (held > 0)
        strncat(t, "...", cap - strlen(t) - 1);
}

/* Checks that stream gives `expected` whole and in every split into two receives. */
static void check_stream(const char *stream, size_t len, const char *expected)
{
    for (size_t cut = 0; cut <= len; cut++) {
        char t[512];
        transcript(stream, len, cut, t, sizeof t);
        ck_assert_msg(strcmp(t, expected) == 0, "split after byte %zu: got \"%s\", expected \"%s\"", cut, t,
                      expected);
    }
}

#define CHECK_STREAM(literal, expected) check_stream(literal, sizeof literal - 1, expected)

START_TEST(test_resp_parses_an_array_of_bulk_strings)
{
    const char req[] = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
    struct resp_arg args[4];
    size_t argc = 0, used = 0;
    char why[80] = "";
    ck_assert_int_eq(resp_parse(req, sizeof req - 1, &limits, args, &argc, &used, why, sizeof why),
                     RESP_REQUEST);
    ck_assert_uint_eq(argc, 2);
    ck_assert_uint_eq(used, sizeof req - 1);
    ck_assert_uint_eq(args[1].len, 5);
    ck_assert_msg(memcmp(args[1].bytes, "hello", 5) == 0, "the argument points at the bulk string's bytes");
    ck_assert_ptr_eq(args[0].bytes, req + 8); /* no copy: into the caller's buffer */
}
END_TEST

START_TEST(test_resp_bulk_strings_may_hold_any_byte)
{
    const char req[] = "*1\r\n$6\r\na\r\n\0b\n\r\n";
    struct resp_arg args[4];
    size_t argc = 0, used = 0;
    char why[80] = "";
    ck_assert_int_eq(resp_parse(req, sizeof req - 1, &limits, args, &argc, &used, why, sizeof why),
                     RESP_REQUEST);
    ck_assert_uint_eq(argc, 1);
    ck_assert_uint_eq(args[0].len, 6);
    ck_assert_msg(memcmp(args[0].bytes, "a\r\n\0b\n", 6) == 0, "CRLF and NUL kept inside the argument");
}
END_TEST

START_TEST(test_resp_splits_an_inline_command_on_blanks)
{
    CHECK_STREAM("PING\r\nECHO  hi\tthere\n  set a b  \r\n", "PING;ECHO|hi|there;set|a|b;");
}
END_TEST

START_TEST(test_resp_skips_empty_lines_and_empty_arrays)
{
    CHECK_STREAM("\r\n\n*0\r\n*-1\r\nPING\r\n", "-;-;-;-;PING;");
}
END_TEST

START_TEST(test_resp_gives_the_same_requests_for_every_split_of_a_pipelined_stream)
{
    CHECK_STREAM("*1\r\n$4\r\nPING\r\nECHO "
                 "x\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n*3\r\n$1\r\na\r\n$2\r\nbc\r\n$3\r\ndef\r\n",
                 "PING;ECHO|x;ECHO|;a|bc|def;");
}
END_TEST

START_TEST(test_resp_waits_for_the_rest_of_an_unfinished_request)
{
    CHECK_STREAM("PING\r\n*2\r\n$4\r\nECHO\r\n$5\r\nhel", "PING;...");
    CHECK_STREAM("PING\r\n*2\r\n$4\r\nECHO\r\n$5\r\nhello\r", "PING;...");
    CHECK_STREAM("PING\r\nECHO hello", "PING;...");
}
END_TEST

START_TEST(test_resp_keeps_the_limits_exactly)
{
    /* max_bulk 16, max_args 4, max_inline 20: each at its limit is a request */
    CHECK_STREAM("*1\r\n$16\r\n0123456789abcdef\r\n", "0123456789abcdef;");
    CHECK_STREAM("*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n", "a|b|c|d;");
    CHECK_STREAM("a b c d\r\n", "a|b|c|d;");
    CHECK_STREAM("0123456789abcdefghij\r\n", "0123456789abcdefghij;");
    CHECK_STREAM("0123456789abcdefghij\n", "0123456789abcdefghij;");
}
END_TEST

/* Each malformed class, the words Redis uses where it has them. */
START_TEST(test_resp_refuses_an_invalid_array_length)
{
    CHECK_STREAM("*x\r\n", "ERR Protocol error: invalid multibulk length");
    CHECK_STREAM("*01\r\n", "ERR Protocol error: invalid multibulk length");
    CHECK_STREAM("*-0\r\n", "ERR Protocol error: invalid multibulk length");
    CHECK_STREAM("*+1\r\n", "ERR Protocol error: invalid multibulk length");
    CHECK_STREAM("*\r\n", "ERR Protocol error: invalid multibulk length");
    CHECK_STREAM("*99999999999999999999\r\n", "ERR Protocol error: invalid multibulk length");
}
END_TEST

START_TEST(test_resp_refuses_more_arguments_than_the_limit)
{
    CHECK_STREAM("*5\r\n", "ERR Protocol error: invalid multibulk length");
    CHECK_STREAM("a b c d e\r\n", "ERR Protocol error: too many arguments in an inline request");
}
END_TEST

START_TEST(test_resp_refuses_a_negative_or_oversized_bulk_length)
{
    CHECK_STREAM("*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length");
    CHECK_STREAM("*1\r\n$17\r\n", "ERR Protocol error: invalid bulk length");
    CHECK_STREAM("*1\r\n$1x\r\n", "ERR Protocol error: invalid bulk length");
}
END_TEST

START_TEST(test_resp_refuses_an_element_that_is_not_a_bulk_string)
{
    CHECK_STREAM("*1\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'");
    CHECK_STREAM("*2\r\n$1\r\na\r\n\x01", "ERR Protocol error: expected '$', got 0x01");
}
END_TEST

START_TEST(test_resp_refuses_a_missing_crlf)
{
    CHECK_STREAM("*1\r\n$3\r\nabcXY", "ERR Protocol error: expected '\\r\\n' after a bulk string of 3 bytes");
    CHECK_STREAM("*1\rX", "ERR Protocol error: expected '\\r\\n' after a length");
    CHECK_STREAM("*1\r\n$3\rX", "ERR Protocol error: expected '\\r\\n' after a length");
}
END_TEST

START_TEST(test_resp_refuses_a_line_longer_than_the_limit)
{
    CHECK_STREAM("0123456789abcdefghijk\r\n", "ERR Protocol error: too big inline request");
    CHECK_STREAM("0123456789abcdefghijkl", "ERR Protocol error: too big inline request");
    CHECK_STREAM("*1234567890123456789012", "ERR Protocol error: too big mbulk count string");
    CHECK_STREAM("*1\r\n$1234567890123456789012", "ERR Protocol error: too big bulk count string");
}
END_TEST

/*
 * resp_reply_size() on a whole reply, and on every shorter prefix of it
 * (in a buffer of exactly that size, for ASan), which must be INCOMPLETE.
 */
static void check_reply(const char *reply, size_t len)
{
    for (size_t cut = 0; cut < len; cut++) {
        size_t size = 0;
        char *copy = malloc(cut > 0 ? cut : 1);
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, reply, cut);
        enum resp_result r = resp_reply_size(copy, cut, &size);
        free(copy);
        ck_assert_msg(r == RESP_INCOMPLETE, "the first %zu of %zu bytes: result %d, not INCOMPLETE", cut, len,
                      (int)r);
    }
    size_t size = 0;
    ck_assert_int_eq(resp_reply_size(reply, len, &size), RESP_REQUEST);
    ck_assert_uint_eq(size, len);
}

#define CHECK_REPLY(literal) check_reply(literal, sizeof literal - 1)

START_TEST(test_resp_measures_each_kind_of_reply)
{
    CHECK_REPLY("+PONG\r\n");
    CHECK_REPLY("-ERR unknown command\r\n");
    CHECK_REPLY(":-42\r\n");
    CHECK_REPLY(":9223372036854775807\r\n");
    CHECK_REPLY(":-9223372036854775808\r\n");
    CHECK_REPLY("+a\0b\r\n");
    CHECK_REPLY("$5\r\na\r\nb\0\r\n");
    CHECK_REPLY("$-1\r\n");
    CHECK_REPLY("*0\r\n");
    CHECK_REPLY("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    CHECK_REPLY("*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n+x\r\n");
}
END_TEST

START_TEST(test_resp_measures_only_the_first_of_two_replies)
{
    const char two[] = "+OK\r\n:1\r\n";
    size_t size = 0;
    ck_assert_int_eq(resp_reply_size(two, sizeof two - 1, &size), RESP_REQUEST);
    ck_assert_uint_eq(size, 5);
}
END_TEST

START_TEST(test_resp_refuses_a_reply_that_is_not_resp)
{
    size_t size;
    ck_assert_int_eq(resp_reply_size("hello\r\n", 7, &size), RESP_PROTOCOL_ERROR);
    ck_assert_int_eq(resp_reply_size(":x\r\n", 4, &size), RESP_PROTOCOL_ERROR);
    ck_assert_int_eq(resp_reply_size(":9223372036854775808\r\n", 22, &size), RESP_PROTOCOL_ERROR);
    ck_assert_int_eq(resp_reply_size("$1\r\nabc", 7, &size), RESP_PROTOCOL_ERROR);
    char deep[4 * (RESP_REPLY_DEPTH_MAX + 1) + 1] = ""; /* "*1\r\n" one deeper than allowed */
    for (int i = 0; i <= RESP_REPLY_DEPTH_MAX; i++)
        strcat(deep, "*1\r\n");
    ck_assert_int_eq(resp_reply_size(deep, strlen(deep), &size), RESP_PROTOCOL_ERROR);
}
END_TEST

Suite *make_resp_suite(void)
{
    Suite *suite = suite_create("resp");
    TCase *tc = tcase_create("requests"); /* step "resp" of stage.ini */
    tcase_add_test(tc, test_resp_parses_an_array_of_bulk_strings);
    tcase_add_test(tc, test_resp_bulk_strings_may_hold_any_byte);
    tcase_add_test(tc, test_resp_splits_an_inline_command_on_blanks);
    tcase_add_test(tc, test_resp_skips_empty_lines_and_empty_arrays);
    tcase_add_test(tc, test_resp_gives_the_same_requests_for_every_split_of_a_pipelined_stream);
    tcase_add_test(tc, test_resp_waits_for_the_rest_of_an_unfinished_request);
    tcase_add_test(tc, test_resp_keeps_the_limits_exactly);
    tcase_add_test(tc, test_resp_refuses_an_invalid_array_length);
    tcase_add_test(tc, test_resp_refuses_more_arguments_than_the_limit);
    tcase_add_test(tc, test_resp_refuses_a_negative_or_oversized_bulk_length);
    tcase_add_test(tc, test_resp_refuses_an_element_that_is_not_a_bulk_string);
    tcase_add_test(tc, test_resp_refuses_a_missing_crlf);
    tcase_add_test(tc, test_resp_refuses_a_line_longer_than_the_limit);
    suite_add_tcase(suite, tc);
    TCase *replies = tcase_create("replies"); /* what the client reads: step "client" of stage.ini */
    tcase_add_test(replies, test_resp_measures_each_kind_of_reply);
    tcase_add_test(replies, test_resp_measures_only_the_first_of_two_replies);
    tcase_add_test(replies, test_resp_refuses_a_reply_that_is_not_resp);
    suite_add_tcase(suite, replies);
    return suite;
}
