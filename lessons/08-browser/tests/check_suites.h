/* check_suites.h - one Check suite per module of the stage. */
#ifndef CHECK_SUITES_H
#define CHECK_SUITES_H

#include <check.h>

Suite *make_cli_suite(void);
Suite *make_log_suite(void);
Suite *make_net_suite(void);
Suite *make_platform_suite(void);
Suite *make_outbuf_suite(void);
Suite *make_resp_suite(void);
Suite *make_session_suite(void);
Suite *make_timers_suite(void);
Suite *make_poller_suite(void);
Suite *make_job_suite(void);
Suite *make_pool_suite(void);
Suite *make_tls_suite(void);
Suite *make_ws_suite(void);

struct job;
/* Fails, printing both, unless the job's reply is exactly text (check_job.c; the pool's suite uses it too).
 */
void expect_job_reply(const struct job *job, const char *text);

#endif
