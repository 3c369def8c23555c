"""The line protocol, on every stage: replies byte for byte, whatever the chunking."""

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
