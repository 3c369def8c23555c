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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct resp_limits limits = {.max_args = 4, .max_bulk = 16, .max_inline = 20};

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
        if (strcmp(t, expected) == 0)
            continue;
        char shown[3][600];
        ck_abort_msg("the stream \"%s\" split after byte %zu: got \"%s\", expected \"%s\"",
                     escaped(stream, len, shown[0], sizeof shown[0]), cut,
                     escaped(t, strlen(t), shown[1], sizeof shown[1]),
                     escaped(expected, strlen(expected), shown[2], sizeof shown[2]));
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
    /* As Redis: VT and FF are skipped before a word, and are part of one after its first byte. */
    CHECK_STREAM("\v\fPING\r\nECHO \va\r\nECHO a\vb\f\r\n", "PING;ECHO|a;ECHO|a\vb\f;");
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
    CHECK_STREAM("*2\r\n$1\r\na\r\n\x01", "ERR Protocol error: expected '$', got '\x01'");
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
 * What a client would print of a reply, read one element at a time: each
 * element as depth.index:type:value, joined by ' ', "|" where a whole
 * reply ends, "..." where the bytes ran out mid-reply, "NOT RESP" where
 * they stopped being RESP. The reply is fed in two receives split after
 * byte cut, each in a buffer of exactly its size (ASan catches a read past
 * it), as print_until_closed() would.
 */
static void read_replies(const char *bytes, size_t len, size_t cut, char *t, size_t cap)
{
    struct resp_reader reader = {0};
    char pending[512];
    size_t held = 0;
    t[0] = '\0';
    size_t parts[2][2] = {{0, cut}, {cut, len}};
    for (int p = 0; p < 2; p++) {
        memcpy(pending + held, bytes + parts[p][0], parts[p][1] - parts[p][0]);
        held += parts[p][1] - parts[p][0];
        for (;;) {
            struct resp_element e;
            size_t used = 0;
            char *copy = malloc(held > 0 ? held : 1);
            ck_assert_ptr_nonnull(copy);
            memcpy(copy, pending, held);
            enum resp_read r = resp_read_element(&reader, copy, held, &e, &used);
            if (r == RESP_ELEMENT) {
                char one[96];
                snprintf(one, sizeof one, "%s%zu.%lld:%c:", t[0] && t[strlen(t) - 1] != '|' ? " " : "",
                         e.depth, e.index, e.type);
                strncat(t, one, cap - strlen(t) - 1);
                if (e.bytes != NULL)
                    strncat(t, e.bytes, e.len < cap - strlen(t) - 1 ? e.len : cap - strlen(t) - 1);
                else {
                    snprintf(one, sizeof one, "%lld", e.n);
                    strncat(t, one, cap - strlen(t) - 1);
                }
                if (resp_reply_done(&reader))
                    strncat(t, "|", cap - strlen(t) - 1);
            }
            free(copy);
            if (r == RESP_NOT_RESP) {
                strncat(t, "NOT RESP", cap - strlen(t) - 1);
                return;
            }
            if (r == RESP_MORE)
                break;
            memmove(pending, pending + used, held - used);
            held -= used;
        }
    }
    if (held > 0 || !resp_reply_done(&reader))
        strncat(t, "...", cap - strlen(t) - 1);
}

/* Checks that the replies read as expected, whole and in every split into two receives. */
static void check_replies(const char *bytes, size_t len, const char *expected)
{
    for (size_t cut = 0; cut <= len; cut++) {
        char t[512];
        read_replies(bytes, len, cut, t, sizeof t);
        if (strcmp(t, expected) == 0)
            continue;
        char shown[3][600];
        ck_abort_msg("the replies \"%s\" split after byte %zu: got \"%s\", expected \"%s\"",
                     escaped(bytes, len, shown[0], sizeof shown[0]), cut,
                     escaped(t, strlen(t), shown[1], sizeof shown[1]),
                     escaped(expected, strlen(expected), shown[2], sizeof shown[2]));
    }
}

#define CHECK_REPLIES(literal, expected) check_replies(literal, sizeof literal - 1, expected)

START_TEST(test_resp_reads_each_kind_of_reply)
{
    CHECK_REPLIES("+PONG\r\n", "0.0:+:PONG|");
    CHECK_REPLIES("-ERR unknown command\r\n", "0.0:-:ERR unknown command|");
    CHECK_REPLIES(":-42\r\n", "0.0:::-42|");
    CHECK_REPLIES(":9223372036854775807\r\n", "0.0:::9223372036854775807|");
    CHECK_REPLIES(":-9223372036854775808\r\n", "0.0:::-9223372036854775808|");
    CHECK_REPLIES("$5\r\na\r\nbc\r\n", "0.0:$:a\r\nbc|");
    CHECK_REPLIES("$-1\r\n", "0.0:$:-1|");
    CHECK_REPLIES("*0\r\n*-1\r\n", "0.0:*:0|0.0:*:-1|");
}
END_TEST

START_TEST(test_resp_reads_arrays_element_by_element_with_their_depth_and_place)
{
    CHECK_REPLIES("*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n", "0.0:*:3 1.1:$:subscribe 1.2:$:a 1.3:::1|");
    CHECK_REPLIES("*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n+x\r\n", "0.0:*:2 1.1:*:2 2.1:::1 2.2:::2 1.2:*:1 2.1:+:x|");
    CHECK_REPLIES("*2\r\n*0\r\n:5\r\n+OK\r\n", "0.0:*:2 1.1:*:0 1.2:::5|0.0:+:OK|");
    CHECK_REPLIES("*2\r\n:1\r\n", "0.0:*:2 1.1:::1...");
}
END_TEST

START_TEST(test_resp_refuses_a_reply_that_is_not_resp)
{
    CHECK_REPLIES("hello\r\n", "NOT RESP");
    CHECK_REPLIES(":x\r\n", "NOT RESP");
    CHECK_REPLIES(":9223372036854775808\r\n", "NOT RESP");
    CHECK_REPLIES("$-2\r\n", "NOT RESP");
    CHECK_REPLIES("$1\r\nabc", "NOT RESP");
    CHECK_REPLIES(
        "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*"
        "1\r\n",
        "0.0:*:1 1.1:*:1 2.1:*:1 3.1:*:1 4.1:*:1 5.1:*:1 6.1:*:1 7.1:*:1 8.1:*:1 9.1:*:1 10.1:*:1 11.1:*:1 "
        "12.1:*:1 13.1:*:1 14.1:*:1 15.1:*:1NOT RESP"); /* one deeper than RESP_REPLY_DEPTH_MAX */
}
END_TEST

/* resp_integer() on each input of a table; a failure names the input. */
START_TEST(test_resp_reads_integers_as_redis_does)
{
    static const struct {
        const char *text;
        bool valid;
        long long value;
    } cases[] = {
        {"0", true, 0},
        {"-1", true, -1},
        {"42", true, 42},
        {"9223372036854775807", true, 9223372036854775807LL},
        {"-9223372036854775808", true, -9223372036854775807LL - 1},
        {"9223372036854775808", false, 0},
        {"-9223372036854775809", false, 0},
        {"99999999999999999999", false, 0},
        {"", false, 0},
        {"-", false, 0},
        {"-0", false, 0},
        {"01", false, 0},
        {"+1", false, 0},
        {" 1", false, 0},
        {"1 ", false, 0},
        {"1x", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long long value = 12345;
        bool valid = resp_integer(cases[i].text, strlen(cases[i].text), &value);
        ck_assert_msg(valid == cases[i].valid, "resp_integer(\"%s\") said %s, expected %s", cases[i].text,
                      valid ? "valid" : "invalid", cases[i].valid ? "valid" : "invalid");
        if (valid)
            ck_assert_msg(value == cases[i].value, "resp_integer(\"%s\") gave %lld, expected %lld",
                          cases[i].text, value, cases[i].value);
    }
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
    tcase_add_test(tc, test_resp_reads_integers_as_redis_does);
    suite_add_tcase(suite, tc);
    TCase *replies = tcase_create("replies"); /* what the client reads: step "client" of stage.ini */
    tcase_add_test(replies, test_resp_reads_each_kind_of_reply);
    tcase_add_test(replies, test_resp_reads_arrays_element_by_element_with_their_depth_and_place);
    tcase_add_test(replies, test_resp_refuses_a_reply_that_is_not_resp);
    suite_add_tcase(suite, replies);
    return suite;
}
