/*
 * check_net.c - net_send_all() sends every byte, though send() may take
 * only part of what it is offered, and net_send_all() and net_recv() go on
 * after a signal interrupts them.
 *
 * A blocking send() that a signal interrupts after it has moved some bytes
 * returns that count, not an error. So the first test keeps a timer's
 * signal coming every millisecond while it sends a mebibyte to a reader
 * that takes its time, and checks that every byte arrived, in order.
 *
 * A call that a signal interrupts before it has moved a byte fails with
 * EINTR, unless the handler was installed with SA_RESTART, which restarts
 * it unseen. So the other two tests install theirs without SA_RESTART, and
 * a helper process sends the signal only once this one is asleep in the
 * call: a send() to a full buffer, a recv() with nothing to read. Both
 * must try again, on every run.
 */
#include "check_suites.h"
#include "net.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
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

static volatile sig_atomic_t interruptions;
static int handled[2]; /* the handler writes a byte here: the helper then knows the call was interrupted */

static void on_interrupt(int signo)
{
    (void)signo;
    interruptions++;
    ssize_t written = write(handled[1], "!", 1); /* write() is async-signal-safe */
    (void)written;
}

/* SIGUSR1 runs on_interrupt(), without SA_RESTART: a call it stops before moving a byte fails, EINTR. */
static void interrupt_without_restart(void)
{
    interruptions = 0;
    ck_assert_int_eq(pipe(handled), 0);
    struct sigaction action = {0};
    action.sa_handler = on_interrupt;
    action.sa_flags = 0; /* no SA_RESTART */
    sigemptyset(&action.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &action, NULL), 0);
}

/* Whether the process is asleep (state S in /proc/PID/stat): once it has said "go", asleep in its call. */
static int is_asleep(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return 0;
    char state = '?';
    int found = fscanf(file, "%*d (%*[^)]) %c", &state);
    fclose(file);
    return found == 1 && state == 'S';
}

/*
 * The helper, in a child process: once the test process has said "go", waits until it is asleep in its call,
 * interrupts it with SIGUSR1, and waits until the handler has run. Returns 0, or -1 if any of it failed.
 */
static int interrupt_the_call(int go)
{
    pid_t test = getppid();
    char byte;
    if (read(go, &byte, 1) != 1)
        return -1;
    for (int checks = 0; !is_asleep(test); checks++) {
        if (checks == 5000)
            return -1; /* 5 s: it never blocked */
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL); /* polling a state with a deadline, not guessing it */
    }
    if (kill(test, SIGUSR1) != 0 || read(handled[0], &byte, 1) != 1)
        return -1;
    return 0;
}

/* The helper's exit status, once it has ended: its signal may come while this process waits for it. */
static int helper_status(pid_t helper)
{
    int status = 0;
    pid_t ended;
    while ((ended = waitpid(helper, &status, 0)) < 0 && errno == EINTR)
        continue;
    ck_assert_int_eq(ended, helper);
    return status;
}

/* Sends bytes of the payload without waiting until the socket's buffer is full; returns how many. */
static size_t fill_without_waiting(int sock, const char *payload, size_t len)
{
    size_t sent = 0;
    for (;;) {
        ssize_t n = send(sock, payload + sent, len - sent, MSG_DONTWAIT);
        if (n <= 0)
            return sent;
        sent += (size_t)n;
    }
}

/* Reads to the end of the stream; returns 0 if it got exactly `expected` bytes of the payload, in order. */
static int read_all_in_order(int sock, size_t expected)
{
    char buf[8192];
    size_t total = 0;
    ssize_t got;
    while ((got = recv(sock, buf, sizeof buf, 0)) > 0) {
        for (ssize_t i = 0; i < got; i++)
            if (buf[i] != payload_byte(total + (size_t)i))
                return 1;
        total += (size_t)got;
    }
    return total == expected ? 0 : 2;
}

START_TEST(test_send_all_sends_on_when_a_signal_interrupts_a_send_that_waits_for_room)
{
    int pair[2];
    int go[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    ck_assert_int_eq(pipe(go), 0);
    interrupt_without_restart();
    static char payload[PAYLOAD_BYTES];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = payload_byte(i);
    size_t filled = fill_without_waiting(pair[0], payload, sizeof payload);
    ck_assert_msg(filled > 0 && filled < sizeof payload, "could not fill the socket's buffer (%zu bytes)",
                  filled);

    pid_t helper = fork();
    ck_assert_int_ge(helper, 0);
    if (helper == 0) {
        close(pair[0]);
        /* Only once the send() is interrupted does anybody read: until then it cannot move a byte. */
        if (interrupt_the_call(go[0]) != 0)
            _exit(3);
        _exit(read_all_in_order(pair[1], sizeof payload));
    }
    close(pair[1]);
    ck_assert_int_eq(write(go[1], "!", 1), 1);
    int sent = net_send_all(pair[0], payload + filled, sizeof payload - filled);
    close(pair[0]);
    int status = helper_status(helper);
    ck_assert_msg(interruptions == 1, "the signal never interrupted send() (%d interruptions)",
                  (int)interruptions);
    ck_assert_msg(sent == 0,
                  "net_send_all() returned %d when a signal interrupted a send() that was waiting for room "
                  "(EINTR, before it had sent a byte): call send() again after an interruption "
                  "(sock_error_is_interrupt())",
                  sent);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the reader did not get the mebibyte whole and in order after the interruption (status %d)",
                  status);
}
END_TEST

START_TEST(test_recv_receives_on_when_a_signal_interrupts_a_recv_that_waits)
{
    int pair[2];
    int go[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    ck_assert_int_eq(pipe(go), 0);
    interrupt_without_restart();
    pid_t helper = fork();
    ck_assert_int_ge(helper, 0);
    if (helper == 0) {
        close(pair[0]);
        /* The byte comes only once the recv() is interrupted: until then there is nothing to read. */
        if (interrupt_the_call(go[0]) != 0)
            _exit(3);
        _exit(send(pair[1], "x", 1, 0) == 1 ? 0 : 1);
    }
    close(pair[1]);
    ck_assert_int_eq(write(go[1], "!", 1), 1);
    char buf[16] = {0};
    long got = net_recv(pair[0], buf, sizeof buf);
    int status = helper_status(helper);
    close(pair[0]);
    ck_assert_msg(interruptions == 1, "the signal never interrupted recv() (%d interruptions)",
                  (int)interruptions);
    ck_assert_msg(
        got == 1 && buf[0] == 'x',
        "net_recv() returned %ld when a signal interrupted a recv() that was waiting (EINTR): call "
        "recv() again after an interruption (sock_error_is_interrupt()); only a byte, or the end of "
        "the stream, or a real error ends it",
        got);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the helper could not send its byte (status %d)", status);
}
END_TEST

Suite *make_net_suite(void)
{
    Suite *suite = suite_create("net");
    TCase *tc = tcase_create("send_all");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_send_all_sends_every_byte_when_send_takes_only_part);
    tcase_add_test(tc, test_send_all_sends_on_when_a_signal_interrupts_a_send_that_waits_for_room);
    tcase_add_test(tc, test_recv_receives_on_when_a_signal_interrupts_a_recv_that_waits);
    suite_add_tcase(suite, tc);
    return suite;
}
