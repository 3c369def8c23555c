/*
 * check_line_framer.c - the line framer: every chunking, "\r\n", the limit.
 */
#include "check_suites.h"
#include "line_framer.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* The lines a framer has handed out, joined as "line|line|" for easy comparison. */
struct collected {
    char text[4 * LINE_MAX_BYTES];
    size_t len;
    int lines;
    enum framer_status last;
};

static void collect_lines(struct line_framer *framer, struct collected *out)
{
    char *line;
    size_t len;
    while ((out->last = framer_next_line(framer, &line, &len)) == FRAMER_LINE) {
        ck_assert_uint_lt(out->len + len + 1, sizeof out->text);
        memcpy(out->text + out->len, line, len);
        out->len += len;
        out->text[out->len++] = '|';
        out->lines++;
    }
}

/* Copies bytes in as recv() would; returns how many fitted. */
static size_t feed(struct line_framer *framer, const char *data, size_t len)
{
    size_t room;
    char *space = framer_space(framer, &room);
    size_t count = len < room ? len : room;
    memcpy(space, data, count);
    framer_commit(framer, count);
    return count;
}

/* Feeds the whole of data in one piece and collects the lines. */
static struct collected frame_all(const char *data, size_t len)
{
    static struct line_framer framer;
    struct collected out = {0};
    framer_init(&framer);
    ck_assert_uint_eq(feed(&framer, data, len), len);
    collect_lines(&framer, &out);
    return out;
}

#define ck_assert_collected(out, expected)                                                                   \
    do {                                                                                                     \
        (out).text[(out).len] = '\0';                                                                        \
        ck_assert_str_eq((out).text, expected);                                                              \
    } while (0)

START_TEST(test_framer_returns_one_complete_line)
{
    struct collected out = frame_all("hello\n", 6);
    ck_assert_collected(out, "hello|");
    ck_assert_int_eq(out.last, FRAMER_NEED_MORE);
}
END_TEST

START_TEST(test_framer_splits_coalesced_lines)
{
    struct collected out = frame_all("a\nb\nexit\n", 9);
    ck_assert_collected(out, "a|b|exit|");
    ck_assert_int_eq(out.lines, 3);
}
END_TEST

START_TEST(test_framer_holds_partial_line_until_newline)
{
    struct line_framer framer;
    struct collected out = {0};
    framer_init(&framer);
    feed(&framer, "hel", 3);
    collect_lines(&framer, &out);
    ck_assert_int_eq(out.lines, 0);
    feed(&framer, "lo\nwor", 6);
    collect_lines(&framer, &out);
    ck_assert_collected(out, "hello|");
    feed(&framer, "ld\n", 3);
    collect_lines(&framer, &out);
    ck_assert_collected(out, "hello|world|");
}
END_TEST

START_TEST(test_framer_drops_carriage_return_before_newline)
{
    struct collected out = frame_all("telnet\r\n", 8);
    ck_assert_collected(out, "telnet|");
}
END_TEST

START_TEST(test_framer_keeps_carriage_return_inside_line)
{
    struct collected out = frame_all("a\rb\r\r\n", 6);
    ck_assert_collected(out, "a\rb\r|");
}
END_TEST

START_TEST(test_framer_returns_empty_lines)
{
    struct collected out = frame_all("\n\r\n\n", 4);
    ck_assert_collected(out, "|||");
    ck_assert_int_eq(out.lines, 3);
}
END_TEST

START_TEST(test_framer_keeps_nul_bytes_inside_line)
{
    struct line_framer framer;
    char *line;
    size_t len;
    framer_init(&framer);
    feed(&framer, "a\0b\n", 4);
    ck_assert_int_eq(framer_next_line(&framer, &line, &len), FRAMER_LINE);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(line, "a\0b", 3);
}
END_TEST

/*
 * The heart of the framer: cut the same stream at every possible set of
 * places (2^(n-1) chunkings) and demand the same lines every time.
 */
START_TEST(test_framer_gives_same_lines_for_every_chunking)
{
    static const char stream[] = "ab\r\n\ncd\nexit\r\nx\n";
    const size_t n = sizeof stream - 1;
    const char *expected = "ab||cd|exit|x|";

    for (unsigned long cuts = 0; cuts < (1ul << (n - 1)); cuts++) {
        struct line_framer framer;
        struct collected out = {0};
        framer_init(&framer);
        size_t chunk_start = 0;
        for (size_t i = 1; i <= n; i++) {
            /* Bit i-1 set: a chunk ends after byte i. The stream's end always ends one. */
            if (i == n || (cuts & (1ul << (i - 1)))) {
                ck_assert_uint_eq(feed(&framer, stream + chunk_start, i - chunk_start), i - chunk_start);
                collect_lines(&framer, &out);
                chunk_start = i;
            }
        }
        out.text[out.len] = '\0';
        ck_assert_msg(strcmp(out.text, expected) == 0, "chunking %#lx gave \"%s\", expected \"%s\"", cuts,
                      out.text, expected);
    }
}
END_TEST

/* A line of `len` bytes of 'x' followed by `end`, in a buffer the caller frees. */
static char *long_line(size_t len, const char *end, size_t *total)
{
    size_t end_len = strlen(end);
    char *data = malloc(len + end_len);
    ck_assert_ptr_nonnull(data);
    memset(data, 'x', len);
    memcpy(data + len, end, end_len);
    *total = len + end_len;
    return data;
}

START_TEST(test_framer_accepts_line_of_exactly_the_limit)
{
    size_t total;
    char *data = long_line(LINE_MAX_BYTES, "\n", &total);
    struct collected out = frame_all(data, total);
    ck_assert_int_eq(out.lines, 1);
    ck_assert_uint_eq(out.len, LINE_MAX_BYTES + 1);
    free(data);
}
END_TEST

START_TEST(test_framer_accepts_limit_line_ending_in_crlf)
{
    size_t total;
    char *data = long_line(LINE_MAX_BYTES, "\r\n", &total);
    struct collected out = frame_all(data, total);
    ck_assert_int_eq(out.lines, 1);
    ck_assert_uint_eq(out.len, LINE_MAX_BYTES + 1);
    free(data);
}
END_TEST

/* A client's "\r\n" may come in two pieces: the '\r' alone must not make a limit line look too long. */
START_TEST(test_framer_accepts_limit_line_whose_crlf_arrives_split)
{
    size_t total;
    char *data = long_line(LINE_MAX_BYTES, "\r\n", &total);
    static struct line_framer framer;
    struct collected out = {0};
    framer_init(&framer);
    ck_assert_uint_eq(feed(&framer, data, total - 1), total - 1); /* all but the '\n' */
    collect_lines(&framer, &out);
    ck_assert_int_eq(out.last, FRAMER_NEED_MORE);
    ck_assert_uint_eq(feed(&framer, data + total - 1, 1), 1);
    collect_lines(&framer, &out);
    ck_assert_int_eq(out.lines, 1);
    ck_assert_uint_eq(out.len, LINE_MAX_BYTES + 1);
    free(data);
}
END_TEST

START_TEST(test_framer_refuses_line_one_byte_over_the_limit)
{
    size_t total;
    char *data = long_line(LINE_MAX_BYTES + 1, "\n", &total);
    struct collected out = frame_all(data, total);
    ck_assert_int_eq(out.lines, 0);
    ck_assert_int_eq(out.last, FRAMER_TOO_LONG);
    free(data);
}
END_TEST

START_TEST(test_framer_refuses_endless_line_without_newline)
{
    /* A client that never sends '\n': the framer must say so, not ask for more forever. */
    struct line_framer framer;
    struct collected out = {0};
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    framer_init(&framer);
    size_t fed = 0;
    for (int i = 0; i < 1000 && out.last != FRAMER_TOO_LONG; i++) {
        size_t room;
        framer_space(&framer, &room);
        ck_assert_uint_gt(room, 0);
        fed += feed(&framer, chunk, sizeof chunk);
        collect_lines(&framer, &out);
    }
    ck_assert_int_eq(out.last, FRAMER_TOO_LONG);
    ck_assert_uint_le(fed, LINE_MAX_BYTES + 2);
}
END_TEST

START_TEST(test_framer_stays_too_long_once_refused)
{
    size_t total;
    char *data = long_line(LINE_MAX_BYTES + 1, "\nok\n", &total);
    struct line_framer framer;
    struct collected out = {0};
    framer_init(&framer);
    feed(&framer, data, total);
    collect_lines(&framer, &out);
    ck_assert_int_eq(out.last, FRAMER_TOO_LONG);
    collect_lines(&framer, &out);
    ck_assert_int_eq(out.last, FRAMER_TOO_LONG);
    ck_assert_int_eq(out.lines, 0);
    free(data);
}
END_TEST

START_TEST(test_framer_reuses_space_after_lines_are_taken)
{
    /* Many short lines through one framer: far more bytes than its buffer holds. */
    struct line_framer framer;
    struct collected out = {0};
    framer_init(&framer);
    for (int i = 0; i < 5000; i++) {
        ck_assert_uint_eq(feed(&framer, "ab\n", 3), 3);
        collect_lines(&framer, &out);
        out.len = 0; /* only the count matters here */
    }
    ck_assert_int_eq(out.lines, 5000);
}
END_TEST

START_TEST(test_framer_lowered_limit_refuses_one_byte_more)
{
    struct line_framer framer;
    struct collected out = {0};
    framer_init(&framer);
    framer_set_limit(&framer, 5);
    feed(&framer, "12345\r\n123456\n", 14);
    collect_lines(&framer, &out);
    ck_assert_collected(out, "12345|");
    ck_assert_int_eq(out.last, FRAMER_TOO_LONG);
}
END_TEST

START_TEST(test_framer_lowered_limit_refuses_endless_line_early)
{
    struct line_framer framer;
    struct collected out = {0};
    framer_init(&framer);
    framer_set_limit(&framer, 5);
    feed(&framer, "1234567", 7); /* 7 bytes, no '\n': already more than 5 + "\r" */
    collect_lines(&framer, &out);
    ck_assert_int_eq(out.last, FRAMER_TOO_LONG);
}
END_TEST

Suite *make_line_framer_suite(void)
{
    Suite *suite = suite_create("line_framer");
    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, test_framer_returns_one_complete_line);
    tcase_add_test(tc, test_framer_splits_coalesced_lines);
    tcase_add_test(tc, test_framer_holds_partial_line_until_newline);
    tcase_add_test(tc, test_framer_drops_carriage_return_before_newline);
    tcase_add_test(tc, test_framer_keeps_carriage_return_inside_line);
    tcase_add_test(tc, test_framer_returns_empty_lines);
    tcase_add_test(tc, test_framer_keeps_nul_bytes_inside_line);
    tcase_add_test(tc, test_framer_gives_same_lines_for_every_chunking);
    tcase_add_test(tc, test_framer_accepts_line_of_exactly_the_limit);
    tcase_add_test(tc, test_framer_accepts_limit_line_ending_in_crlf);
    tcase_add_test(tc, test_framer_accepts_limit_line_whose_crlf_arrives_split);
    tcase_add_test(tc, test_framer_refuses_line_one_byte_over_the_limit);
    tcase_add_test(tc, test_framer_refuses_endless_line_without_newline);
    tcase_add_test(tc, test_framer_stays_too_long_once_refused);
    tcase_add_test(tc, test_framer_reuses_space_after_lines_are_taken);
    tcase_add_test(tc, test_framer_lowered_limit_refuses_one_byte_more);
    tcase_add_test(tc, test_framer_lowered_limit_refuses_endless_line_early);
    suite_add_tcase(suite, tc);
    return suite;
}
