/*
 * check_outbuf.c - the buffer of bytes waiting to be sent: in order, after
 * partial sends, and nothing held once it is empty.
 */
#include "check_suites.h"
#include "outbuf.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

START_TEST(test_outbuf_gives_back_what_was_appended_in_order)
{
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(outbuf_append(&out, "hello ", 6), 0);
    ck_assert_int_eq(outbuf_append(&out, "world", 5), 0);
    ck_assert_uint_eq(outbuf_pending(&out), 11);
    ck_assert_int_eq(memcmp(outbuf_data(&out), "hello world", 11), 0);
    outbuf_consume(&out, 6);
    ck_assert_uint_eq(outbuf_pending(&out), 5);
    ck_assert_int_eq(memcmp(outbuf_data(&out), "world", 5), 0);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_outbuf_takes_partial_sends_and_starts_from_the_front_once_all_is_sent)
{
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(outbuf_append(&out, "0123456789", 10), 0);
    outbuf_consume(&out, 3); /* a send() that took 3 of the 10 */
    ck_assert_uint_eq(outbuf_pending(&out), 7);
    ck_assert_int_eq(memcmp(outbuf_data(&out), "3456789", 7), 0);
    outbuf_consume(&out, 7);
    ck_assert_uint_eq(out.start, 0);
    ck_assert_int_eq(outbuf_append(&out, "ab", 2), 0);
    ck_assert_ptr_eq(outbuf_data(&out), out.bytes);
    ck_assert_int_eq(memcmp(outbuf_data(&out), "ab", 2), 0);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_outbuf_grows_past_its_first_allocation_and_slides_what_waits)
{
    static char big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(outbuf_append(&out, big, 5000), 0);
    outbuf_consume(&out, 4000); /* 1000 wait at offset 4000 */
    ck_assert_int_eq(outbuf_append(&out, big + 5000, sizeof big - 5000), 0);
    ck_assert_uint_eq(outbuf_pending(&out), sizeof big - 4000);
    ck_assert_int_eq(memcmp(outbuf_data(&out), big + 4000, sizeof big - 4000), 0);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_outbuf_gives_a_bursts_memory_back_once_all_is_sent_and_keeps_its_first_allocation)
{
    static char burst[200000];
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(outbuf_append(&out, burst, sizeof burst), 0);
    ck_assert_uint_ge(out.cap, sizeof burst);
    outbuf_consume(&out, sizeof burst - 1);
    ck_assert_ptr_nonnull(out.bytes); /* one byte still waits */
    outbuf_consume(&out, 1);
    ck_assert_ptr_null(out.bytes); /* a burst's memory does not stay with an idle connection */
    ck_assert_uint_eq(out.cap, 0);
    ck_assert_int_eq(outbuf_append(&out, "reply", 5), 0);
    char *first = out.bytes;
    outbuf_consume(&out, 5);
    ck_assert_ptr_eq(out.bytes, first); /* the next replies reuse it: no allocation per request */
    ck_assert_int_eq(outbuf_append(&out, "again", 5), 0);
    ck_assert_ptr_eq(out.bytes, first);
    outbuf_release(&out);
}
END_TEST

START_TEST(test_outbuf_that_cannot_grow_fails_for_good_and_takes_nothing_more)
{
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_int_eq(outbuf_append(&out, "head", 4), 0);
    ck_assert(!outbuf_failed(&out));
    /* More than any buffer can hold: refused without touching the bytes (there are none). */
    ck_assert_int_eq(outbuf_append(&out, "", SIZE_MAX / 2), -1);
    ck_assert(outbuf_failed(&out));
    ck_assert_int_eq(outbuf_append(&out, "tail", 4), -1); /* nothing after a hole */
    ck_assert_uint_eq(outbuf_pending(&out), 4);
    outbuf_release(&out);
    ck_assert(!outbuf_failed(&out));
}
END_TEST

START_TEST(test_outbuf_holds_nothing_once_released)
{
    struct outbuf out = OUTBUF_EMPTY;
    ck_assert_ptr_null(outbuf_data(&out));
    ck_assert_int_eq(outbuf_append(&out, "x", 1), 0);
    outbuf_consume(&out, 1);
    ck_assert_uint_eq(outbuf_pending(&out), 0);
    ck_assert_ptr_null(outbuf_data(&out));
    outbuf_release(&out);
    ck_assert_ptr_null(out.bytes);
    ck_assert_uint_eq(out.cap, 0);
}
END_TEST

Suite *make_outbuf_suite(void)
{
    Suite *suite = suite_create("outbuf");
    TCase *tc = tcase_create("bytes");
    tcase_add_test(tc, test_outbuf_gives_back_what_was_appended_in_order);
    tcase_add_test(tc, test_outbuf_takes_partial_sends_and_starts_from_the_front_once_all_is_sent);
    tcase_add_test(tc, test_outbuf_grows_past_its_first_allocation_and_slides_what_waits);
    tcase_add_test(tc,
                   test_outbuf_gives_a_bursts_memory_back_once_all_is_sent_and_keeps_its_first_allocation);
    tcase_add_test(tc, test_outbuf_that_cannot_grow_fails_for_good_and_takes_nothing_more);
    tcase_add_test(tc, test_outbuf_holds_nothing_once_released);
    suite_add_tcase(suite, tc);
    return suite;
}
