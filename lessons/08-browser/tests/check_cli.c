/*
 * check_cli.c - command-line parsing: ports, flags, and what is refused.
 */
#include "check_suites.h"
#include "cli.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

/* Parses a NULL-terminated argv with the given extra number options. */
static enum parse_status parse_argv(char **argv, struct options *opts, const struct number_option *extra,
                                    size_t count, char *err)
{
    int argc = 1;
    while (argv[argc] != NULL)
        argc++;
    const struct extra_options extras = {.numbers = extra, .number_count = count};
    return parse_options(argc, argv, opts, &extras, err, 128);
}

/* Parses a NULL-terminated list of arguments after the program name. */
static enum parse_status parse(struct options *opts, char *err, const char *arg1, const char *arg2,
                               const char *arg3)
{
    char *argv[] = {"server", (char *)arg1, (char *)arg2, (char *)arg3, NULL};
    return parse_argv(argv, opts, NULL, 0, err);
}

START_TEST(test_cli_port_accepts_full_range)
{
    unsigned port = 1;
    ck_assert_int_eq(parse_port("0", &port), 0);
    ck_assert_uint_eq(port, 0);
    ck_assert_int_eq(parse_port("9090", &port), 0);
    ck_assert_uint_eq(port, 9090);
    ck_assert_int_eq(parse_port("65535", &port), 0);
    ck_assert_uint_eq(port, 65535);
}
END_TEST

START_TEST(test_cli_port_refuses_out_of_range_and_junk)
{
    static const char *bad[] = {"65536", "70000", "-1",  "abc",  "",
                                "12abc", " 12",   "+12", "0x50", "99999999999999999999"};
    unsigned port = 4242;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(parse_port(bad[i], &port) == -1, "port \"%s\" was accepted", bad[i]);
        ck_assert_uint_eq(port, 4242);
    }
}
END_TEST

START_TEST(test_cli_defaults_to_localhost_9090)
{
    struct options opts;
    char err[128];
    ck_assert_int_eq(parse(&opts, err, NULL, NULL, NULL), PARSE_OK);
    ck_assert_str_eq(opts.host, "127.0.0.1");
    ck_assert_str_eq(opts.port, "9090");
    ck_assert_int_eq(opts.help, 0);
}
END_TEST

START_TEST(test_cli_reads_host_and_port_in_both_forms)
{
    struct options opts;
    char err[128];
    ck_assert_int_eq(parse(&opts, err, "--host", "::1", "--port=0"), PARSE_OK);
    ck_assert_str_eq(opts.host, "::1");
    ck_assert_str_eq(opts.port, "0");
    ck_assert_int_eq(parse(&opts, err, "--host=localhost", "--port", "8080"), PARSE_OK);
    ck_assert_str_eq(opts.host, "localhost");
    ck_assert_str_eq(opts.port, "8080");
}
END_TEST

START_TEST(test_cli_sees_help)
{
    struct options opts;
    char err[128];
    ck_assert_int_eq(parse(&opts, err, "--help", NULL, NULL), PARSE_OK);
    ck_assert_int_eq(opts.help, 1);
}
END_TEST

START_TEST(test_cli_sees_help_in_its_short_form)
{
    struct options opts;
    char err[128];
    ck_assert_int_eq(parse(&opts, err, "-h", NULL, NULL), PARSE_OK);
    ck_assert_int_eq(opts.help, 1);
}
END_TEST

START_TEST(test_cli_takes_the_last_of_a_repeated_option)
{
    struct options opts;
    char err[128];
    ck_assert_int_eq(parse(&opts, err, "--port=1", "--port", "2"), PARSE_OK);
    ck_assert_str_eq(opts.port, "2");
    ck_assert_int_eq(parse(&opts, err, "--host=a", "--host=b", NULL), PARSE_OK);
    ck_assert_str_eq(opts.host, "b");
}
END_TEST

/* Parses the arguments with one number option, --max-clients from 1 to 1000, whose default is 64. */
static enum parse_status parse_with_limit(long *max_clients, char *err, const char *arg1, const char *arg2)
{
    struct options opts;
    const struct number_option limit = {"--max-clients", 1, 1000, max_clients};
    char *argv[] = {"server", (char *)arg1, (char *)arg2, NULL};
    *max_clients = 64;
    return parse_argv(argv, &opts, &limit, 1, err);
}

START_TEST(test_cli_number_option_keeps_its_default_or_takes_a_value_in_range)
{
    long max_clients = 0;
    char err[128];
    ck_assert_int_eq(parse_with_limit(&max_clients, err, NULL, NULL), PARSE_OK);
    ck_assert_int_eq(max_clients, 64);
    ck_assert_int_eq(parse_with_limit(&max_clients, err, "--max-clients", "1"), PARSE_OK);
    ck_assert_int_eq(max_clients, 1);
    ck_assert_int_eq(parse_with_limit(&max_clients, err, "--max-clients=1000", NULL), PARSE_OK);
    ck_assert_int_eq(max_clients, 1000);
}
END_TEST

START_TEST(test_cli_number_option_refuses_out_of_range_and_junk_naming_flag_and_range)
{
    static const char *bad[] = {"0", "1001", "-1", "12x", " 12", "+12", "", "99999999999999999999"};
    long max_clients = 0;
    char err[128], arg[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(arg, sizeof arg, "--max-clients=%s", bad[i]);
        ck_assert_msg(parse_with_limit(&max_clients, err, arg, NULL) == PARSE_ERROR, "\"%s\" was accepted",
                      arg);
        ck_assert_msg(strstr(err, "--max-clients") && strstr(err, "from 1 to 1000"), "unclear error: %s",
                      err);
    }
    ck_assert_int_eq(parse_with_limit(&max_clients, err, "--max-clients", NULL), PARSE_ERROR);
    ck_assert_str_eq(err, "--max-clients needs a value");
}
END_TEST

START_TEST(test_cli_refuses_bad_port_naming_it)
{
    struct options opts;
    char err[128];
    ck_assert_int_eq(parse(&opts, err, "--port", "70000", NULL), PARSE_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "70000"));
}
END_TEST

START_TEST(test_cli_refuses_unknown_flag_naming_it)
{
    struct options opts;
    char err[128];
    ck_assert_int_eq(parse(&opts, err, "--verbose", NULL, NULL), PARSE_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "--verbose"));
    ck_assert_int_eq(parse(&opts, err, "--hostile", NULL, NULL), PARSE_ERROR);
}
END_TEST

START_TEST(test_cli_refuses_flag_without_value)
{
    struct options opts;
    char err[128];
    ck_assert_int_eq(parse(&opts, err, "--port", NULL, NULL), PARSE_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "needs a value"));
    ck_assert_int_eq(parse(&opts, err, "--host=", NULL, NULL), PARSE_ERROR);
}
END_TEST

START_TEST(test_cli_text_option_takes_a_word_in_both_forms_and_refuses_none)
{
    const char *cert = NULL, *auth = "no";
    const struct text_option texts[] = {{"--tls-cert-file", &cert}, {"--tls-auth-clients", &auth}};
    const struct extra_options extras = {.texts = texts, .text_count = 2};
    struct options opts;
    char err[128] = "";
    char *argv[] = {"server", "--tls-cert-file", "certs/server.crt", "--tls-auth-clients=yes", NULL};
    ck_assert_int_eq(parse_options(4, argv, &opts, &extras, err, sizeof err), PARSE_OK);
    ck_assert_str_eq(cert, "certs/server.crt");
    ck_assert_str_eq(auth, "yes");
    char *empty[] = {"server", "--tls-cert-file=", NULL};
    ck_assert_int_eq(parse_options(2, empty, &opts, &extras, err, sizeof err), PARSE_ERROR);
    ck_assert_str_eq(err, "--tls-cert-file needs a value");
    char *missing[] = {"server", "--tls-auth-clients", NULL};
    ck_assert_int_eq(parse_options(2, missing, &opts, &extras, err, sizeof err), PARSE_ERROR);
    ck_assert_str_eq(err, "--tls-auth-clients needs a value");
}
END_TEST

Suite *make_cli_suite(void)
{
    Suite *suite = suite_create("cli");
    TCase *tc = tcase_create("options");
    tcase_add_test(tc, test_cli_port_accepts_full_range);
    tcase_add_test(tc, test_cli_port_refuses_out_of_range_and_junk);
    tcase_add_test(tc, test_cli_defaults_to_localhost_9090);
    tcase_add_test(tc, test_cli_reads_host_and_port_in_both_forms);
    tcase_add_test(tc, test_cli_sees_help);
    tcase_add_test(tc, test_cli_sees_help_in_its_short_form);
    tcase_add_test(tc, test_cli_takes_the_last_of_a_repeated_option);
    tcase_add_test(tc, test_cli_number_option_keeps_its_default_or_takes_a_value_in_range);
    tcase_add_test(tc, test_cli_number_option_refuses_out_of_range_and_junk_naming_flag_and_range);
    tcase_add_test(tc, test_cli_refuses_bad_port_naming_it);
    tcase_add_test(tc, test_cli_refuses_unknown_flag_naming_it);
    tcase_add_test(tc, test_cli_refuses_flag_without_value);
    tcase_add_test(tc, test_cli_text_option_takes_a_word_in_both_forms_and_refuses_none);
    suite_add_tcase(suite, tc);
    return suite;
}
