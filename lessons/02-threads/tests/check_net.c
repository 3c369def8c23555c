/*
 * check_net.c - net_send_all() sends every byte, though send() may take
 * only part of what it is offered.
 *
 * A blocking send() that a signal interrupts after it has moved some bytes
 * returns that count, not an error. So the test keeps a timer's signal
 * coming every millisecond while it sends a mebibyte to a reader that
 * takes its time, and checks that every byte arrived, in order.
 */
#include "check_suites.h"
#include "net.h"

#include <check.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_BYTES (1 << 20)

static void on_alarm(int signo)
{
    (void)signo; /* only there to interrupt send() */
}

/* Byte i of the payload: a pattern that shows a lost or repeated chunk. */
static char payload_byte(size_t i)
{
    return (char)('a' + (i / 7 + i) % 26);
}

/* The reader, in a child process: reads slowly to the end; exits 0 if all bytes came, in order. */
static int read_slowly(int sock)
{
    char buf[8192];
    size_t total = 0;
    for (;;) {
        struct timespec pause = {0, 200000}; /* 0.2 ms: slower than the sender, so its buffer fills */
        nanosleep(&pause, NULL);
        ssize_t got = recv(sock, buf, sizeof buf, 0);
        if (got <= 0)
            break;
        for (ssize_t i = 0; i < got; i++)
            if (buf[i] != payload_byte(total + (size_t)i))
                return 1;
        total += (size_t)got;
    }
    return total == PAYLOAD_BYTES ? 0 : 2;
}

START_TEST(test_send_all_sends_every_byte_when_send_takes_only_part)
{
    int pair[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    int small = 4096;
    setsockopt(pair[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    pid_t reader = fork();
    ck_assert_int_ge(reader, 0);
    if (reader == 0) {
        close(pair[0]);
        _exit(read_slowly(pair[1]));
    }
    close(pair[1]);

    /* SA_RESTART: an interrupted send() that has moved nothing starts again; one that has, returns its count.
     */
    struct sigaction action = {0};
    action.sa_handler = on_alarm;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    ck_assert_int_eq(sigaction(SIGALRM, &action, NULL), 0);
    struct itimerval every_ms = {{0, 1000}, {0, 1000}};
    ck_assert_int_eq(setitimer(ITIMER_REAL, &every_ms, NULL), 0);

    static char payload[PAYLOAD_BYTES];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = payload_byte(i);
    int sent = net_send_all(pair[0], payload, sizeof payload);

    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    close(pair[0]);
    int status = 0;
    ck_assert_int_eq(waitpid(reader, &status, 0), reader);
    ck_assert_int_eq(sent, 0);
    ck_assert_msg(
        WIFEXITED(status) && WEXITSTATUS(status) == 0,
        "the reader did not get the mebibyte whole and in order (status %d): a partial send() lost bytes",
        status);
}
END_TEST

Suite *make_net_suite(void)
{
    Suite *suite = suite_create("net");
    TCase *tc = tcase_create("send_all");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_send_all_sends_every_byte_when_send_takes_only_part);
    suite_add_tcase(suite, tc);
    return suite;
}
