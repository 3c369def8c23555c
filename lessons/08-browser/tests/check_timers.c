/*
 * check_timers.c - the heap of deadlines: the nearest first, whatever the
 * order they were set, moved and cancelled in.
 */
#include "check_suites.h"
#include "timers.h"

#include <check.h>
#include <stdlib.h>

START_TEST(test_timers_come_due_nearest_first_and_only_once_due)
{
    struct timers timers = {0};
    struct timer t[5] = {{0}};
    long long due[5] = {500, 100, 400, 200, 300};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(timers_set(&timers, &t[i], due[i]), 0);
    ck_assert_int_eq(timers_next(&timers), 100);
    ck_assert_ptr_null(timers_take_due(&timers, 99));
    long long last = 0;
    for (int i = 0; i < 5; i++) {
        struct timer *next = timers_take_due(&timers, 1000);
        ck_assert_ptr_nonnull(next);
        ck_assert_msg(next->due > last, "timer due at %lld came after one due at %lld", next->due, last);
        last = next->due;
        ck_assert_uint_eq(next->slot, 0); /* taken: no longer set */
    }
    ck_assert_ptr_null(timers_take_due(&timers, 1000));
    ck_assert_int_eq(timers_next(&timers), 0);
    timers_free(&timers);
}
END_TEST

START_TEST(test_timers_move_when_set_again_and_go_when_cancelled)
{
    struct timers timers = {0};
    struct timer a = {0}, b = {0}, c = {0};
    timers_set(&timers, &a, 100);
    timers_set(&timers, &b, 200);
    timers_set(&timers, &c, 300);
    timers_set(&timers, &a, 400); /* later: b comes first now */
    ck_assert_int_eq(timers_next(&timers), 200);
    timers_set(&timers, &c, 50); /* sooner: c comes first now */
    ck_assert_int_eq(timers_next(&timers), 50);
    timers_cancel(&timers, &c);
    timers_cancel(&timers, &c); /* cancelling twice does nothing */
    ck_assert_int_eq(timers_next(&timers), 200);
    ck_assert_ptr_eq(timers_take_due(&timers, 1000), &b);
    ck_assert_ptr_eq(timers_take_due(&timers, 1000), &a);
    ck_assert_ptr_null(timers_take_due(&timers, 1000));
    timers_free(&timers);
}
END_TEST

START_TEST(test_timers_stay_in_order_through_ten_thousand_random_changes)
{
    enum { COUNT = 1000 };
    static struct timer t[COUNT];
    struct timers timers = {0};
    srand(20261201);
    for (int i = 0; i < 10000; i++) {
        struct timer *timer = &t[rand() % COUNT];
        if (rand() % 4 == 0)
            timers_cancel(&timers, timer);
        else
            ck_assert_int_eq(timers_set(&timers, timer, rand() % 100000), 0);
    }
    long long last = -1;
    struct timer *next;
    while ((next = timers_take_due(&timers, 100000)) != NULL) {
        ck_assert_msg(next->due >= last, "timer due at %lld came after one due at %lld", next->due, last);
        last = next->due;
    }
    for (int i = 0; i < COUNT; i++)
        ck_assert_uint_eq(t[i].slot, 0); /* every one was taken or cancelled */
    timers_free(&timers);
}
END_TEST

Suite *make_timers_suite(void)
{
    Suite *suite = suite_create("timers");
    TCase *tc = tcase_create("heap");
    tcase_add_test(tc, test_timers_come_due_nearest_first_and_only_once_due);
    tcase_add_test(tc, test_timers_move_when_set_again_and_go_when_cancelled);
    tcase_add_test(tc, test_timers_stay_in_order_through_ten_thousand_random_changes);
    suite_add_tcase(suite, tc);
    return suite;
}
