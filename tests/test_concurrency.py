"""Many clients: lesson 01 serves one at a time on purpose; 02 and later serve them all at once."""

import time

import pytest

from harness import CourseFailure


def test_each_client_is_accepted_logged_and_let_go_in_turn(server, connections, target):
    """The accept loop alone: each client is accepted, logged on stderr as it comes and goes, and its
    connection closed when it leaves; then the next one is accepted."""
    for index in range(2):
        client = server.connect()
        connections.append(client)
        port = client.sock.getsockname()[1]
        client.send(b"exit\n")
        client.expect_eof(step=f"client {index + 1}: wait for the server to close after 'exit'",
                          hint="close the client's socket when serving it ends, then accept the next")
        for event in ("connected", "disconnected"):
            pattern = rf"127\.0\.0\.1:{port} {event}\b"
            assert server.stderr.wait_for(pattern, target.deadline(5)), (
                f"client {index + 1}: no stderr line matching {pattern!r}\n{server.log()}")


@pytest.mark.needs_not("concurrent")
def test_second_client_waits_until_the_first_leaves(server, connections, target):
    """Lesson 01's limitation, shown on purpose: this is what lesson 02 fixes."""
    first = server.connect()
    second = server.connect()
    connections.extend([first, second])
    first.round_trip(b"first")
    second.send(b"second\n")
    second.expect_silence(0.5, hint="lesson 01 serves one client at a time: the second must wait")
    first.send(b"exit\n")
    first.expect_eof()
    second.expect(target.stage.reply(b"second"), hint="once the first client leaves, the second is served")


# What each step of a thread-per-client server needs to hear when a client's connection goes to, or is closed by,
# the wrong thread.
OWN_THREAD_HINT = ("each client's thread owns its socket and its struct client: malloc() a struct client for each "
                   "connection and hand it to that client's thread alone, which serves it, closes its socket and "
                   "frees it; the main thread neither closes nor frees it, and never hands a thread a variable of its "
                   "loop, which the next client overwrites")
SECOND_CLIENT_HINT = ("the second client got no reply while the first stays connected: each client needs a thread of "
                      "its own, and the main thread goes straight back to net_accept(); that thread owns its socket "
                      "and its struct client")


@pytest.mark.needs("concurrent")
def test_a_client_that_leaves_is_closed_and_the_one_that_stays_is_still_served(server, connections, target):
    """Each client is served, and closed, by its own thread only. The second client connects once the first has
    been answered, so that the first one's thread has started; when the first leaves, its connection, not the
    second's, must close. A thread handed a variable of the accept loop (&sock, a struct on the loop's stack), or a
    record the main thread frees or whose socket it closes, serves or closes another client's connection."""
    reply = target.stage.reply
    first = server.connect()
    connections.append(first)
    first.send(b"first\n")
    first.expect(reply(b"first"), step="the first client's reply", hint=OWN_THREAD_HINT)
    second = server.connect()
    connections.append(second)
    second.send(b"second\n")
    second.expect(reply(b"second"), step="the second client's reply", hint=SECOND_CLIENT_HINT)
    first.send(b"exit\n")
    first.expect_eof(step="the first client left: its connection closes", hint=OWN_THREAD_HINT)
    port = first.sock.getsockname()[1]
    if not server.stderr.wait_for(rf"127\.0\.0\.1:{port} disconnected\b", target.deadline(5)):
        hint = ("each client is logged with its own address: its struct client holds a copy of the peer's text "
                "(snprintf() into client->peer), not a pointer to the accept loop's buffer, which the next client "
                "overwrites")
        raise CourseFailure(f"step: the first client left\nno stderr line '127.0.0.1:{port} disconnected' for "
                            f"it\nhint: {hint}\n{server.log()}", hint=hint)
    second.send(b"still here\n")
    second.expect(reply(b"still here"), step="the second client, once the first has left", hint=OWN_THREAD_HINT)
    second.send(b"exit\n")
    second.expect_eof(step="the second client left: its connection closes", hint=OWN_THREAD_HINT)


@pytest.mark.needs("concurrent")
def test_second_client_is_served_while_the_first_stays(server, connections):
    first = server.connect()
    second = server.connect()
    connections.extend([first, second])
    first.round_trip(b"first")
    second.round_trip(b"second while the first is still connected")
    first.round_trip(b"first again")


@pytest.mark.needs("concurrent")
def test_fifty_interleaved_clients_each_get_only_their_own_replies(server, connections, target):
    """With an echo (lessons 02 and 03) a reply that went to the wrong client shows. Where every reply is
    the same text (final/) this checks only that each client gets one reply per line, neither more nor less."""
    clients = [server.connect() for _ in range(50)]
    connections.extend(clients)
    for round_number in range(5):
        for index, client in enumerate(clients):
            client.send(f"client {index} line {round_number}\n".encode())
        for index, client in enumerate(clients):
            client.expect(
                target.stage.reply(f"client {index} line {round_number}".encode()),
                step=f"round {round_number}: wait for client {index}'s reply",
                hint="each thread must use only its own socket and its own buffer",
            )
    for client in clients:
        client.send(b"exit\n")
        client.expect_eof()


# glibc keeps up to 40 MiB of freed thread stacks cached for the next threads: about four 8 MiB stacks.
CACHED_STACKS = 5


@pytest.mark.needs("concurrent")
@pytest.mark.builds("linux")  # /proc; under Wine a thread that ended unjoined keeps only a handle
@pytest.mark.measures_resources  # a sanitizer's runtime keeps its own memory: 7.7 MiB more here under ASan
def test_threads_of_clients_that_left_are_reclaimed_without_another_client(server, connections, target):
    """A thread that has ended keeps its stack (8 MiB of address space, some of it resident) until it is
    joined. The server must reclaim it when it ends, not when the next client happens to connect."""
    keeper = server.connect()
    connections.append(keeper)
    keeper.round_trip(b"baseline")
    _, threads, rss = server.resources()
    stacks = server.stack_sized_mappings()
    clients = [server.connect() for _ in range(200)]
    connections.extend(clients)
    for client in clients:
        client.round_trip(b"here")
    for client in clients:
        client.send(b"exit\n")
        client.expect_eof()
    gone = server.stderr.wait_for_count(r"\bdisconnected\b", 200, target.deadline(10))
    assert gone >= 200, f"{gone} of 200 clients logged as gone\n{server.log()}"
    # No new connection from here on: whatever reclaims the threads must happen by itself.
    end = time.monotonic() + target.deadline(5)
    while True:
        now_stacks, (_, now_threads, now_rss) = server.stack_sized_mappings(), server.resources()
        if (now_stacks <= stacks + CACHED_STACKS and now_threads <= threads) or time.monotonic() > end:
            break
        time.sleep(0.05)  # polling a condition with a deadline, not guessing readiness
    assert now_threads <= threads, f"{now_threads} threads, {threads} before the 200 clients\n{server.log()}"
    assert now_stacks <= stacks + CACHED_STACKS, (
        f"200 clients left and {now_stacks - stacks} thread stacks are still mapped ({now_stacks} now, {stacks} "
        f"before; resident {now_rss} KiB, {rss} KiB before): their threads ended but nobody joined them. A thread "
        f"that ends must wake the main thread to join it\n{server.log()}")
    # Measured here: 200 threads left unjoined kept 3.4 MiB resident; joined, the server grew by 0.5 MiB.
    assert now_rss - rss < 2048, f"resident memory grew by {now_rss - rss} KiB after 200 clients left\n{server.log()}"
