"""The line protocol, on every stage: replies byte for byte, whatever the chunking."""

import signal
import socket
import time

import pytest

from harness import LINE_MAX_BYTES, TOO_LONG_REPLY, CourseFailure


@pytest.fixture
def conn(server, connections):
    """A new connection to this module's server, closed after the test."""
    connection = server.connect()
    connections.append(connection)
    return connection


def test_one_line_gets_its_reply(conn, target):
    conn.send(b"hello\n")
    conn.expect(target.stage.reply(b"hello"), hint="a line ends in '\\n'; the reply must end in '\\n' too")


def test_coalesced_lines_in_one_send_each_get_one_reply(conn, target):
    reply = target.stage.reply
    conn.send(b"a\nb\nexit\n")
    conn.expect(reply(b"a") + reply(b"b"), hint="one recv() can hold several lines: answer each")
    conn.expect_eof(hint="the third line was 'exit': close after answering the two before it")


def test_one_byte_per_send_still_gives_whole_replies(conn, target):
    # Each byte only once the server has read the one before: every recv() gets one byte, on every run. Sent
    # without waiting, bytes that come while the server is busy are read together, and a server that takes a
    # receive for a line passed this test one run in two.
    conn.send_bytewise(b"hello\nworld\n", each_read=True)
    conn.expect(
        target.stage.reply(b"hello") + target.stage.reply(b"world"),
        hint="one recv() can hold part of a line: keep the bytes until the '\\n' comes",
    )


def test_carriage_return_before_newline_is_dropped(conn, target):
    conn.send(b"telnet\r\n")
    conn.expect(target.stage.reply(b"telnet"), hint="a '\\r' just before '\\n' is not part of the line")


def test_carriage_return_inside_line_is_kept(conn, target):
    conn.send(b"a\rb\n")
    conn.expect(target.stage.reply(b"a\rb"))


def test_empty_line_gets_a_reply(conn, target):
    conn.send(b"\n")
    conn.expect(target.stage.reply(b""))


def test_exit_closes_without_reply(conn):
    conn.send(b"exit\n")
    conn.expect_eof(hint="'exit' closes the connection and is not answered")


def test_nothing_after_exit_in_the_same_packet_is_answered(conn):
    conn.send(b"exit\nhello\n")
    conn.expect_eof(hint="stop reading lines once 'exit' is seen, even if more came in the same recv()")


def test_exit_with_crlf_also_closes(conn):
    conn.send(b"exit\r\n")
    conn.expect_eof()


def test_exit_inside_a_longer_line_is_just_a_line(conn, target):
    for line in (b"exits", b" exit"):
        conn.send(line + b"\n")
        conn.expect(target.stage.reply(line), hint="only the line 'exit' itself ends the session: compare its length "
                                                   "too (len == 4 && memcmp()), not a prefix (strncmp())")


def test_line_of_exactly_the_limit_is_answered(conn, target):
    line = b"x" * LINE_MAX_BYTES
    conn.send(line + b"\n")
    conn.expect(target.stage.reply(line), hint=f"a line of {LINE_MAX_BYTES} bytes is still allowed")


def test_line_one_byte_over_the_limit_is_refused_and_closed(conn):
    conn.send(b"x" * (LINE_MAX_BYTES + 1) + b"\n")
    conn.expect(TOO_LONG_REPLY, hint=f"lines longer than {LINE_MAX_BYTES} bytes get 'ERR line too long'")
    conn.expect_eof()


def test_endless_line_without_newline_is_cut_off(conn):
    # Sends only what the server can take before it must give up, so send() cannot block.
    conn.send(b"y" * (LINE_MAX_BYTES + 2))
    conn.expect(TOO_LONG_REPLY, hint="a full buffer without '\\n' is already too long: do not wait for more")
    conn.expect_eof()


def test_binary_bytes_are_answered_like_any_line(conn, target):
    line = b"\x00\xff\xfe\x80bin\x00ary"
    conn.send(line + b"\n")
    conn.expect(target.stage.reply(line), hint="a line may contain '\\0': use the length, not strlen()")


def test_half_close_after_two_lines_gets_two_replies_then_eof(conn, target):
    conn.send(b"one\ntwo\n")
    conn.sock.shutdown(1)  # SHUT_WR: "I have nothing more to say"
    conn.expect(target.stage.reply(b"one") + target.stage.reply(b"two"))
    conn.expect_eof(hint="end of stream from the client (recv() returns 0) ends the session")


@pytest.mark.builds("linux")  # SIGSTOP, SIGCONT, and SIGPIPE itself, are POSIX's
def test_replies_to_a_client_that_is_gone_end_its_session_not_the_server(start_server, connections, target):
    """send() on a connection that the peer has reset raises SIGPIPE, whose default action ends the process:
    the server must ask for an error instead (MSG_NOSIGNAL). The client sends long lines and its end of the
    stream, and closes, while the server is paused; once it runs again, its first reply makes the client's
    system answer with a reset, and its next reply, to a line still in its queue, meets SIGPIPE, on every run."""
    server = start_server()
    client = server.connect()
    connections.append(client)
    client.round_trip(b"ready")  # accepted and served: its session waits for the next line
    server.process.send_signal(signal.SIGSTOP)
    # Lines that take a receive each (LINE_MAX_BYTES + 2 bytes at most): each is answered by a send() of its own.
    client.send((b"x" * (LINE_MAX_BYTES - 1) + b"\n") * 8)
    client.sock.shutdown(socket.SHUT_WR)
    client.wait_until_acknowledged(target.deadline(5))  # the lines and the end of stream are in the server's queue
    port = client.sock.getsockname()[1]
    client.close()  # what the server sends from now on is answered with a reset
    server.process.send_signal(signal.SIGCONT)
    gone = server.stderr.wait_for(rf"127\.0\.0\.1:{port} disconnected\b", target.deadline(5))
    code = server.wait(target.deadline(5)) if gone is None else None  # no line: did it end?
    if code is not None:
        ended = f"was killed by signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"exited {code}"
        hint = ("the server died of SIGPIPE: it sent to a client whose connection was reset, and the signal's default "
                "action ends the process. sock_send() must pass MSG_NOSIGNAL to send(), so that it returns an error "
                "(EPIPE) and only that client's session ends")
        raise CourseFailure(f"step: answer the lines of a client that has closed its connection\n"
                            f"the server {ended}\nhint: {hint}\n{server.log()}", kind="exit", hint=hint)
    assert gone, f"the client that left was never logged as disconnected\n{server.log()}"
    after = server.connect()
    connections.append(after)
    after.round_trip(b"still there?")


def test_a_client_that_reads_its_replies_late_still_gets_every_one(server, connections, target):
    """A client sends lines without reading their replies until the server takes nothing more: its replies fill
    both directions, and the server's send() must wait for room, however long, not give up. Then the client reads
    every reply. On Windows an accepted socket inherits its listener's mode: a server whose listener is
    non-blocking and that does not make each accepted socket blocking again gets WSAEWOULDBLOCK from send(), and
    drops the client, here on every run (under Wine too), elsewhere only with a client that reads late."""
    hint = ("the server gave up on a client whose replies did not fit in the connection at once: its send() must "
            "wait for room. On Windows an accepted socket inherits its listener's non-blocking mode: make it blocking "
            "again (sock_set_nonblocking(sock, false)) before its thread uses it")
    conn = server.connect(receive_buffer=4096)
    connections.append(conn)
    conn.round_trip(b"ready")
    try:
        sent = conn.flood_without_reading()  # lines of b"x\n": until the server stops taking them
    except OSError as error:
        conn.fail("send lines without reading their replies", f"the connection broke: {error}", hint=hint,
                  kind="reset")
    conn.sock.setblocking(True)
    conn.sock.settimeout(conn.timeout)
    if sent % 2:
        conn.send(b"\n")  # the last send() took half a line: end it
    expected = target.stage.reply(b"x") * ((sent + 1) // 2)
    got = bytearray()
    while len(got) < len(expected):
        try:
            chunk = conn.sock.recv(min(1 << 16, len(expected) - len(got)))
        except OSError as error:
            conn.fail("read every reply", f"after {len(got)} of {len(expected)} bytes of replies the connection "
                      f"broke: {error}", hint=hint, kind="reset")
        if not chunk:
            conn.fail("read every reply", f"after {len(got)} of {len(expected)} bytes of replies the server closed "
                      f"the connection", hint=hint, kind="closed")
        got += chunk
    where = next((i for i in range(0, len(expected), 1 << 16) if got[i:i + (1 << 16)] != expected[i:i + (1 << 16)]),
                 None)
    assert where is None, f"the replies differ from what was sent, in the 64 KiB from byte {where}"


def test_server_keeps_serving_after_a_client_breaks_the_rules(server, connections, target):
    rude = server.connect()
    connections.append(rude)
    rude.send(b"z" * (LINE_MAX_BYTES + 10) + b"\n")
    rude.expect(TOO_LONG_REPLY)
    rude.expect_eof()
    polite = server.connect()
    connections.append(polite)
    polite.round_trip(b"still there?")


def median_round_trip(conn, lines, rounds):
    """The median time, over `rounds` rounds, from sending `lines` in one send() to the last byte of their replies."""
    expected = b"".join(conn.server.target.stage.reply(line) for line in lines)
    batch = b"".join(line + b"\n" for line in lines)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        conn.send(batch)
        conn.expect(expected)
        times.append(time.perf_counter() - started)
    return sorted(times)[rounds // 2]


# Nagle's algorithm holds back a small send while earlier bytes are unacknowledged, and the client
# acknowledges late on purpose (delayed ACK, at least 40 ms on Linux). A server that sends each reply
# of a batch on its own, or the replies of one batch in several sends without TCP_NODELAY, makes
# every batch wait for that ACK: 44 ms here, against 0.05 ms for one line. The bound is below what
# Nagle can ever meet, and not scaled: a correct server answers a batch within a millisecond or two.
NAGLE_BOUND_S = 0.020


@pytest.mark.parametrize("size", [16, 64], ids=["16-short-lines", "64-lines-of-100-bytes"])
def test_a_batch_of_lines_in_one_send_is_answered_as_fast_as_one_line(conn, target, size):
    # 64 lines of 100 bytes are more than one receive holds, so their replies leave in two sends:
    # the second must not wait for the first to be acknowledged (TCP_NODELAY).
    lines = [b"%03d " % i + b"x" * (0 if size == 16 else 95) for i in range(size)]
    single = median_round_trip(conn, [b"one line"], 10)
    batch = median_round_trip(conn, lines, 10)
    if batch - single >= NAGLE_BOUND_S:
        hint = ("a batch of lines came back 40 ms late: that is a delayed ACK. Send all the replies of one receive at "
                "once, and set TCP_NODELAY in sock_set_no_delay() (README: 'Nagle and delayed ACK')")
        raise CourseFailure(f"a batch of {size} lines in one send took {batch * 1000:.1f} ms (median of 10), one line "
                            f"{single * 1000:.2f} ms: each reply waits for the client's delayed ACK (Nagle)\n"
                            f"hint: {hint}\n{conn.server.log()}", hint=hint)
