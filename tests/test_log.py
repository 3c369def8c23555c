"""final/'s log on stderr: time, the client's address, the event; and the summary at shutdown."""

import time

import pytest

from harness import LINE_MAX_BYTES, SHUTDOWN_NOTICE, Server

SHUTDOWN_LIMIT = 2.0  # seconds, as in test_shutdown.py
LOG_STOP_WAIT_S = 1.0  # LOG_STOP_WAIT_MS in final/server.c: how long the exit waits for the log to drain

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


@pytest.mark.needs("timestamped_log")
def test_connect_and_disconnect_are_logged_with_time_and_address(server, connections, target):
    client = server.connect()
    connections.append(client)
    client.round_trip(b"hi")
    port = client.sock.getsockname()[1]
    client.send(b"exit\n")
    client.expect_eof()
    for event in ("connected", f"disconnected after 1 {target.stage.counted}"):
        pattern = rf"^{TIME} 127\.0\.0\.1:{port} {event}$"
        found = server.stderr.wait_for(pattern, target.deadline(5))
        assert found, f"no stderr line matching {pattern!r}\n{server.log()}"


@pytest.mark.needs("timestamped_log")
def test_error_is_logged_with_the_client_address(server, connections, target):
    client = server.connect()
    connections.append(client)
    port = client.sock.getsockname()[1]
    client.send(b"x" * (LINE_MAX_BYTES + 1) + b"\n")
    pattern = rf"^{TIME} 127\.0\.0\.1:{port} error: line longer than {LINE_MAX_BYTES} bytes"
    assert server.stderr.wait_for(pattern, target.deadline(5)), f"no stderr line matching {pattern!r}\n{server.log()}"


@pytest.mark.needs("timestamped_log")
def test_shutdown_prints_clients_served_and_lines_answered(server, connections, target):
    for index in range(3):
        client = server.connect()
        connections.append(client)
        client.round_trip(f"{index} a".encode())
        client.round_trip(f"{index} b".encode())
        client.send(b"exit\n")
        client.expect_eof()
    server.interrupt()
    assert server.wait(target.deadline(2)) == 0, server.log()
    pattern = (rf"^{TIME} server stopped: 3 clients served, 6 {target.stage.counted} answered, 0 refused "
               rf"\(server full\)$")
    assert server.stderr.wait_for(pattern, target.deadline(5)), f"no stderr line matching {pattern!r}\n{server.log()}"


@pytest.mark.needs("timestamped_log")
def test_a_log_that_nobody_reads_stops_neither_the_clients_nor_ctrl_c(target, connections):
    """stderr piped into a program that has stalled: a write to it blocks once the pipe is full (64 KiB).
    A server that writes its log where it serves would stop serving, and stopping, with it."""
    server = Server(target, stderr_unread=True)
    try:
        # Each client makes two log lines of some 55 bytes: 2000 of them make 220 KB, three times what
        # the pipe holds. Writing the log where it serves, final/ stopped after about 600 clients.
        for index in range(2000):
            conn = server.connect()
            conn.round_trip(b"client %d" % index)
            conn.close()
        later = server.connect()
        connections.append(later)
        later.round_trip(b"still serving")
        started = time.monotonic()
        server.interrupt()
        later.expect(SHUTDOWN_NOTICE, hint="a stop must not wait for the log: its notice comes first")
        code = server.wait(target.deadline(SHUTDOWN_LIMIT) + LOG_STOP_WAIT_S)
        took = time.monotonic() - started
        assert code == 0, (f"with a log nobody reads, the server exited {code} (None: still running) {took:.1f} s "
                           f"after Ctrl+C, expected 0: it may give the log a moment, never wait on it")
    finally:
        server.stop()
