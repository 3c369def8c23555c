/*
 * check_main.c - the one runner for this stage's Check unit tests.
 * Each module has its own suite, made by make_<module>_suite().
 */
#include "check_suites.h"

#include <check.h>
#include <stdlib.h>

int main(void)
{
    SRunner *runner = srunner_create(make_cli_suite());
    srunner_add_suite(runner, make_log_suite());
    srunner_add_suite(runner, make_net_suite());
    srunner_add_suite(runner, make_platform_suite());
    srunner_add_suite(runner, make_outbuf_suite());
    srunner_add_suite(runner, make_resp_suite());
    srunner_add_suite(runner, make_session_suite());
    srunner_add_suite(runner, make_timers_suite());
    srunner_add_suite(runner, make_poller_suite());
    srunner_add_suite(runner, make_job_suite());
    srunner_add_suite(runner, make_pool_suite());
    srunner_add_suite(runner, make_tls_suite());
    srunner_add_suite(runner, make_ws_suite());
    /* Whatever CK_FORK says: the net suite requests real stops, which cannot be undone within a process. */
    srunner_set_fork_status(runner, CK_FORK);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
