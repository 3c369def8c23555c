"""final/'s log on stderr: time, the client's address, the event; and the summary at shutdown."""

import pytest

from harness import LINE_MAX_BYTES

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


@pytest.mark.needs("timestamped_log")
def test_connect_and_disconnect_are_logged_with_time_and_address(server, connections, target):
    client = server.connect()
    connections.append(client)
    client.round_trip(b"hi")
    port = client.sock.getsockname()[1]
    client.send(b"exit\n")
    client.expect_eof()
    for event in ("connected", "disconnected after 1 lines"):
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
    pattern = rf"^{TIME} server stopped: 3 clients served, 6 lines answered, 0 refused \(server full\)$"
    assert server.stderr.wait_for(pattern, target.deadline(5)), f"no stderr line matching {pattern!r}\n{server.log()}"
