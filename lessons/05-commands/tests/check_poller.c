/*
 * check_poller.c - the poller this build links (epoll on Linux; `make
 * check POLLER=poll` for poll()): what is ready is reported, with its data,
 * and nothing else; changes and removals take effect; a wait with nothing
 * ready times out.
 */
#include "check_suites.h"
#include "poller.h"

#include <check.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* A connected pair of local sockets: what one sends, the other can read. */
static void open_pair(socket_t pair[2])
{
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    pair[0] = fds[0];
    pair[1] = fds[1];
}

START_TEST(test_poller_reports_a_readable_socket_with_its_data)
{
    struct poller *poller = poller_create(4);
    ck_assert_ptr_nonnull(poller);
    socket_t pair[2];
    open_pair(pair);
    int mark;
    ck_assert_int_eq(poller_add(poller, pair[0], POLLER_READ, &mark), 0);
    struct poller_event events[4];
    ck_assert_int_eq(poller_wait(poller, events, 4, 0), 0); /* nothing yet */
    ck_assert_int_eq(send(pair[1], "x", 1, 0), 1);
    ck_assert_int_eq(poller_wait(poller, events, 4, 1000), 1);
    ck_assert_ptr_eq(events[0].data, &mark);
    ck_assert_uint_eq(events[0].events & POLLER_READ, POLLER_READ);
    poller_destroy(poller);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

START_TEST(test_poller_reports_room_to_write_only_when_asked)
{
    struct poller *poller = poller_create(4);
    socket_t pair[2];
    open_pair(pair);
    int mark;
    ck_assert_int_eq(poller_add(poller, pair[0], POLLER_READ, &mark), 0);
    struct poller_event events[4];
    ck_assert_int_eq(poller_wait(poller, events, 4, 0), 0); /* room to write, but not asked for */
    ck_assert_int_eq(poller_modify(poller, pair[0], POLLER_READ | POLLER_WRITE, &mark), 0);
    ck_assert_int_eq(poller_wait(poller, events, 4, 1000), 1);
    ck_assert_uint_eq(events[0].events, POLLER_WRITE);
    ck_assert_int_eq(poller_modify(poller, pair[0], 0, &mark), 0); /* watched for nothing, for now */
    ck_assert_int_eq(send(pair[1], "x", 1, 0), 1);
    ck_assert_int_eq(poller_wait(poller, events, 4, 100), 0);
    poller_destroy(poller);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

START_TEST(test_poller_reports_only_the_ready_ones_among_many_and_forgets_the_removed)
{
    enum { PAIRS = 300 };
    static socket_t pairs[PAIRS][2];
    static int marks[PAIRS];
    struct poller *poller = poller_create(8); /* it grows */
    for (int i = 0; i < PAIRS; i++) {
        open_pair(pairs[i]);
        ck_assert_int_eq(poller_add(poller, pairs[i][0], POLLER_READ, &marks[i]), 0);
    }
    for (int i = 0; i < PAIRS; i += 7) /* every seventh has a byte to read */
        ck_assert_int_eq(send(pairs[i][1], "x", 1, 0), 1);
    ck_assert_int_eq(poller_remove(poller, pairs[0][0]), 0); /* ready, but no longer watched */
    struct poller_event events[PAIRS];
    int ready = poller_wait(poller, events, PAIRS, 1000);
    ck_assert_int_eq(ready, (PAIRS + 6) / 7 - 1);
    for (int i = 0; i < ready; i++) {
        int which = (int)((int *)events[i].data - marks);
        ck_assert_msg(which % 7 == 0 && which != 0,
                      "socket %d reported ready: it had nothing, or was removed", which);
    }
    poller_destroy(poller);
    for (int i = 0; i < PAIRS; i++) {
        close(pairs[i][0]);
        close(pairs[i][1]);
    }
}
END_TEST

START_TEST(test_poller_reports_a_closed_peer_as_readable)
{
    struct poller *poller = poller_create(4);
    socket_t pair[2];
    open_pair(pair);
    int mark;
    ck_assert_int_eq(poller_add(poller, pair[0], POLLER_READ, &mark), 0);
    close(pair[1]); /* the end of the stream: a recv() would now return 0 */
    struct poller_event events[4];
    ck_assert_int_eq(poller_wait(poller, events, 4, 1000), 1);
    ck_assert_uint_eq(events[0].events & POLLER_READ, POLLER_READ);
    poller_destroy(poller);
    close(pair[0]);
}
END_TEST

START_TEST(test_poller_wait_times_out_when_nothing_is_ready)
{
    struct poller *poller = poller_create(4);
    socket_t pair[2];
    open_pair(pair);
    int mark;
    ck_assert_int_eq(poller_add(poller, pair[0], POLLER_READ, &mark), 0);
    struct poller_event events[4];
    long long started = monotonic_ms();
    ck_assert_int_eq(poller_wait(poller, events, 4, 100), 0);
    ck_assert_msg(monotonic_ms() - started >= 90, "a wait of 100 ms ended after %lld ms",
                  monotonic_ms() - started);
    poller_destroy(poller);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

Suite *make_poller_suite(void)
{
    Suite *suite = suite_create("poller");
    TCase *tc = tcase_create("readiness");
    tcase_add_test(tc, test_poller_reports_a_readable_socket_with_its_data);
    tcase_add_test(tc, test_poller_reports_room_to_write_only_when_asked);
    tcase_add_test(tc, test_poller_reports_only_the_ready_ones_among_many_and_forgets_the_removed);
    tcase_add_test(tc, test_poller_reports_a_closed_peer_as_readable);
    tcase_add_test(tc, test_poller_wait_times_out_when_nothing_is_ready);
    suite_add_tcase(suite, tc);
    return suite;
}
