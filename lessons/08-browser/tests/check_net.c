/*
 * check_net.c - net_send_all() and its send_limit: a peer that makes no
 * room is given up on after the stall limit (or at once, with none); at a
 * stop, a peer still reading gets its bytes, one that is not cannot hold
 * the stop up, and the second of grace after a stop is one deadline for
 * every send, not a fresh one per reply.
 *
 * The first test stops a send that is already blocked in poll(), which only
 * the stop's waker can reach; it reads from Linux's /proc which call that
 * thread is in. The others request the stop first, and net_send_all()
 * learns of it from its own wait, as the server's threads do.
 *
 * A real stop (raise(SIGINT) with the stop handler installed) lasts for the
 * rest of the process, so each test needs a process of its own:
 * check_main.c makes Check fork for every test, whatever CK_FORK says.
 */
#include "check_suites.h"
#include "net.h"

#include <check.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A local pair of connected stream sockets: what one sends, the other receives. */
struct pair {
    socket_t sender;
    socket_t receiver;
};

static struct pair open_pair(void)
{
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    ck_assert_int_eq(sock_set_nonblocking(fds[0], true), 0); /* as the server's sockets are */
    return (struct pair){fds[0], fds[1]};
}

/* Sends until there is no room left, as a client that stops reading leaves it. Returns the bytes sent. */
static size_t fill_send_buffer(socket_t sock)
{
    static const char junk[4096];
    size_t total = 0;
    long sent;
    while ((sent = sock_send(sock, junk, sizeof junk)) > 0)
        total += (size_t)sent;
    ck_assert_msg(sock_error_is_would_block(sock_last_error()), "filling the send buffer failed");
    return total;
}

static void request_stop(void)
{
    ck_assert_int_eq(stop_handler_install(), 0);
    ck_assert_int_eq(raise(SIGINT), 0); /* the handler has run when raise() returns */
    ck_assert_int_eq(wait_for_stop(0), WOKE_STOP);
}

/* The CPU time this process has used so far, user and system, in milliseconds. */
static long cpu_used_ms(void)
{
    struct rusage usage;
    ck_assert_int_eq(getrusage(RUSAGE_SELF, &usage), 0);
    return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000L +
           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000L;
}

static void sleep_ms(long ms)
{
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&pause, &pause) != 0)
        continue; /* interrupted: sleep the rest */
}

/* A peer on its own thread that reads until the end of the stream (read_to_the_end()). */
struct reader {
    socket_t sock;
    long pause_ms;
    size_t total;
};

/*
 * Reads until the end of the stream: at once, or, with pause_ms, one
 * buffer at most after each pause, a peer that makes room at that pace
 * however the two threads are scheduled. (Draining all that waited after
 * each pause let a sender that refills as fast as it is read keep the
 * reader busy, so that under load no pause happened at all.)
 */
static void read_to_the_end(void *arg)
{
    struct reader *reader = arg;
    char buf[65536];
    for (;;) {
        if (reader->pause_ms > 0)
            sleep_ms(reader->pause_ms);
        long got;
        do {
            got = recv(reader->sock, buf, sizeof buf, reader->pause_ms > 0 ? MSG_DONTWAIT : 0);
            if (got > 0)
                reader->total += (size_t)got;
        } while (got > 0 && reader->pause_ms == 0);
        if (got == 0 || (got < 0 && !sock_error_is_would_block(sock_last_error())))
            return; /* end of stream, or the test is over */
    }
}

/* A send on its own thread, to a peer that never reads, with no send timeout: only a stop can end it. */
struct blocked_send {
    socket_t sock;
    char task[64];     /* "PID/task/TID": where Linux's /proc describes the sending thread */
    atomic_bool named; /* task is filled in */
    int result;
};

static void send_to_a_silent_peer(void *arg)
{
    static const char reply[] = "Hello from server\n";
    struct blocked_send *blocked = arg;
    ssize_t len = readlink("/proc/thread-self", blocked->task, sizeof blocked->task - 1);
    blocked->task[len > 0 ? len : 0] = '\0';
    atomic_store(&blocked->named, true);
    struct send_limit no_timeout = {.stall_ms = -1};
    blocked->result = net_send_all(blocked->sock, reply, sizeof reply - 1, &no_timeout);
}

static bool is_a_poll_call(long number)
{
#ifdef SYS_poll /* not every architecture has poll() as a system call of its own */
    if (number == SYS_poll)
        return true;
#endif
    return number == SYS_ppoll;
}

/* Whether the thread is blocked in poll(): /proc/.../syscall starts with the number of the call it is in. */
static bool is_blocked_in_poll(const char *task)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%s/syscall", task);
    FILE *file = fopen(path, "r");
    ck_assert_msg(file != NULL, "cannot open %s", path);
    long number = -1;
    bool in_a_call = fscanf(file, "%ld", &number) == 1; /* "running" when it is in none */
    fclose(file);
    return in_a_call && is_a_poll_call(number);
}

START_TEST(test_send_all_already_waiting_for_room_is_woken_by_a_stop)
{
    struct pair pair = open_pair();
    fill_send_buffer(pair.sender);
    ck_assert_int_eq(stop_handler_install(), 0);

    struct blocked_send blocked = {.sock = pair.sender, .named = false};
    thread_t thread;
    ck_assert_int_eq(thread_start(&thread, send_to_a_silent_peer, &blocked), 0);
    /* The stop must come while the send is inside its wait for room, which has no timeout. */
    int checks = 0;
    while (!atomic_load(&blocked.named) || !is_blocked_in_poll(blocked.task)) {
        ck_assert_msg(++checks < 5000, "the sending thread never blocked in poll() waiting for room");
        sleep_ms(1);
    }
    ck_assert_msg(blocked.task[0] != '\0', "the sending thread could not read /proc/thread-self");
    ck_assert_int_eq(raise(SIGINT), 0);
    /* Only the wake descriptor can end that wait; then the stop's deadline gives up on the silent peer. */
    thread_join(thread);
    sock_close(pair.sender);
    sock_close(pair.receiver);

    ck_assert_int_eq(blocked.result, NET_SEND_STOPPED);
}
END_TEST

START_TEST(test_send_all_after_a_stop_still_gives_a_reading_peer_everything)
{
    static const char reply[1 << 20];
    struct pair pair = open_pair();
    size_t filled = fill_send_buffer(pair.sender);
    request_stop();

    struct reader reader = {.sock = pair.receiver};
    thread_t thread;
    ck_assert_int_eq(thread_start(&thread, read_to_the_end, &reader), 0);
    struct send_limit limit = {.stall_ms = 10000};
    int result = net_send_all(pair.sender, reply, sizeof reply, &limit);
    sock_close(pair.sender);
    thread_join(thread);
    sock_close(pair.receiver);

    ck_assert_int_eq(result, 0);
    ck_assert_uint_eq(reader.total, filled + sizeof reply);
}
END_TEST

START_TEST(test_send_all_after_a_stop_gives_up_on_a_silent_peer_without_spinning)
{
    static const char reply[] = "Hello from server\n";
    struct pair pair = open_pair();
    fill_send_buffer(pair.sender);
    request_stop();
    /* No send timeout at all: only the stop's own deadline can end this wait. */
    struct send_limit no_timeout = {.stall_ms = -1};
    long cpu_before_ms = cpu_used_ms();
    ck_assert_int_eq(net_send_all(pair.sender, reply, sizeof reply - 1, &no_timeout), NET_SEND_STOPPED);
    /* It waited about NET_STOP_SEND_WAIT_MS: asleep, not polling a wake pipe that stays readable. */
    long cpu_spent_ms = cpu_used_ms() - cpu_before_ms;
    ck_assert_int_lt(cpu_spent_ms, NET_STOP_SEND_WAIT_MS / 4);
    sock_close(pair.sender);
    sock_close(pair.receiver);
}
END_TEST

START_TEST(test_send_all_stop_deadline_is_one_for_every_send)
{
    static const char reply[4096];
    struct pair pair = open_pair();
    fill_send_buffer(pair.sender);
    request_stop();

    /* Makes room every 100 ms: each send alone waits far less than NET_STOP_SEND_WAIT_MS. */
    struct reader reader = {.sock = pair.receiver, .pause_ms = 100};
    thread_t thread;
    ck_assert_int_eq(thread_start(&thread, read_to_the_end, &reader), 0);
    int sends_done = 0;
    int result;
    int most = 3 * NET_STOP_SEND_WAIT_MS / 100; /* three times what the deadline allows */
    struct send_limit limit = {.stall_ms =
                                   -1}; /* one per client, for all its sends, as the server keeps it */
    while ((result = net_send_all(pair.sender, reply, sizeof reply, &limit)) == 0 && sends_done < most) {
        sends_done++;
        fill_send_buffer(pair.sender); /* so that the next send must wait for the reader again */
    }
    sock_close(pair.sender);
    thread_join(thread);
    sock_close(pair.receiver);

    ck_assert_int_eq(result, NET_SEND_STOPPED);
    ck_assert_msg(sends_done > 0, "no send got through to a reading peer after the stop");
}
END_TEST

START_TEST(test_send_all_gives_up_on_a_peer_that_makes_no_room_for_the_stall_limit)
{
    static const char reply[] = "Hello from server\n";
    struct pair pair = open_pair();
    fill_send_buffer(pair.sender);
    struct send_limit limit = {.stall_ms = 200};
    long long started = monotonic_ms();
    ck_assert_int_eq(net_send_all(pair.sender, reply, sizeof reply - 1, &limit), NET_SEND_TIMED_OUT);
    long long waited = monotonic_ms() - started;
    ck_assert_msg(waited >= 200 && waited < 2000, "gave up after %lld ms with a stall limit of 200 ms",
                  waited);
    sock_close(pair.sender);
    sock_close(pair.receiver);
}
END_TEST

START_TEST(test_send_all_without_a_wait_gives_up_at_once_on_a_full_buffer)
{
    static const char verdict[] = "ERR server full\n";
    struct pair pair = open_pair();
    fill_send_buffer(pair.sender);
    struct send_limit no_wait = {.stall_ms = 0};
    long long started = monotonic_ms();
    ck_assert_int_eq(net_send_all(pair.sender, verdict, sizeof verdict - 1, &no_wait), NET_SEND_TIMED_OUT);
    ck_assert_int_lt(monotonic_ms() - started, 100);
    sock_close(pair.sender);
    sock_close(pair.receiver);
}
END_TEST

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
    struct send_limit no_timeout = {.stall_ms = -1};
    int sent = net_send_all(pair[0], payload, sizeof payload, &no_timeout);

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
    TCase *tc = tcase_create("send_at_stop");
    tcase_set_timeout(tc, 4); /* without the stop's deadline, a send to a peer that never reads never ends */
    tcase_add_test(tc, test_send_all_already_waiting_for_room_is_woken_by_a_stop);
    tcase_add_test(tc, test_send_all_after_a_stop_still_gives_a_reading_peer_everything);
    tcase_add_test(tc, test_send_all_after_a_stop_gives_up_on_a_silent_peer_without_spinning);
    tcase_add_test(tc, test_send_all_stop_deadline_is_one_for_every_send);
    tcase_add_test(tc, test_send_all_gives_up_on_a_peer_that_makes_no_room_for_the_stall_limit);
    tcase_add_test(tc, test_send_all_without_a_wait_gives_up_at_once_on_a_full_buffer);
    suite_add_tcase(suite, tc);
    TCase *partial = tcase_create("send_all");
    tcase_set_timeout(partial, 20);
    tcase_add_test(partial, test_send_all_sends_every_byte_when_send_takes_only_part);
    suite_add_tcase(suite, partial);
    return suite;
}
