/*
 * check_log.c - the log line: time, who, message, and never an overflow.
 */
#include "check_suites.h"
#include "log.h"

#include <check.h>
#include <string.h>

START_TEST(test_log_puts_time_then_client_then_message)
{
    char line[128];
    log_format(line, sizeof line, "2026-11-24 09:00:00", "127.0.0.1:5000", "connected");
    ck_assert_str_eq(line, "2026-11-24 09:00:00 127.0.0.1:5000 connected");
}
END_TEST

START_TEST(test_log_formats_message_arguments)
{
    char line[128];
    log_format(line, sizeof line, "T", "server", "stopped: %lu clients served, %lu lines answered", 3ul, 7ul);
    ck_assert_str_eq(line, "T server stopped: 3 clients served, 7 lines answered");
}
END_TEST

START_TEST(test_log_cuts_long_line_without_overflow)
{
    char line[16];
    memset(line, '#', sizeof line);
    log_format(line, sizeof line, "2026-11-24 09:00:00", "127.0.0.1:5000", "connected");
    ck_assert_uint_eq(strlen(line), sizeof line - 1);
    ck_assert_str_eq(line, "2026-11-24 09:0");
}
END_TEST

Suite *make_log_suite(void)
{
    Suite *suite = suite_create("log");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_log_puts_time_then_client_then_message);
    tcase_add_test(tc, test_log_formats_message_arguments);
    tcase_add_test(tc, test_log_cuts_long_line_without_overflow);
    suite_add_tcase(suite, tc);
    return suite;
}
