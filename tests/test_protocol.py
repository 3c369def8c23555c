"""The line protocol, on every stage: replies byte for byte, whatever the chunking."""

import time

import pytest

from harness import LINE_MAX_BYTES, TOO_LONG_REPLY


@pytest.fixture
def conn(shared_server, connections):
    """A new connection to this module's server, closed after the test."""
    connection = shared_server.connect()
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
    conn.send_bytewise(b"hello\nworld\n")
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
    conn.round_trip(b"exits")
    conn.round_trip(b" exit")


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


def test_server_keeps_serving_after_a_client_breaks_the_rules(shared_server, connections, target):
    rude = shared_server.connect()
    connections.append(rude)
    rude.send(b"z" * (LINE_MAX_BYTES + 10) + b"\n")
    rude.expect(TOO_LONG_REPLY)
    rude.expect_eof()
    polite = shared_server.connect()
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
    assert batch - single < NAGLE_BOUND_S, (
        f"a batch of {size} lines in one send took {batch * 1000:.1f} ms (median of 10), one line "
        f"{single * 1000:.2f} ms: each reply waits for the client's delayed ACK (Nagle). Gather the replies "
        f"of one receive into one send, and set TCP_NODELAY on accepted sockets (README: 'Nagle and "
        f"delayed ACK')\n{conn.server.log()}")
