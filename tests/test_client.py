"""The client program, driven through a pipe as a script would."""

import socket
import threading

from harness import free_port


def test_client_prints_each_reply_and_no_prompt_when_piped(server, target):
    code, out, err = target.run("client", "--port", str(server.port), input=b"hi\nthere\nexit\n")
    expected = target.stage.reply(b"hi") + target.stage.reply(b"there")
    assert out == expected, f"client stdout was {out!r}, expected {expected!r} (no prompt when stdin is a pipe)"
    assert code == 0, f"client exited {code}, expected 0; stderr: {err!r}"


def test_client_end_of_input_exits_0_and_sends_unfinished_last_line(server, target):
    code, out, err = target.run("client", "--port", str(server.port), input=b"one\ntwo")
    expected = target.stage.reply(b"one") + target.stage.reply(b"two")
    assert out == expected, f"client stdout was {out!r}, expected {expected!r}"
    assert code == 0, f"client exited {code}, expected 0 at end of input; stderr: {err!r}"


def test_client_sends_exit_and_stops_reading_input(server, target):
    code, out, err = target.run("client", "--port", str(server.port), input=b"exit\nnever sent\n")
    assert out == b"", f"nothing should be printed after exit, got {out!r}"
    assert code == 0, f"client exited {code}, expected 0; stderr: {err!r}"


def test_client_refused_connection_says_so_and_exits_1(target):
    port = free_port()
    code, out, err = target.run("client", "--port", str(port), input=b"hi\n")
    assert code == 1, f"client exited {code}, expected 1 when nobody listens; stderr: {err!r}"
    assert f"cannot connect to 127.0.0.1:{port}".encode() in err, f"stderr should say so: {err!r}"


def test_client_reports_a_server_that_goes_away(target):
    """A stand-in server that reads one line and hangs up without a reply."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(target.deadline(10))

    def hang_up():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(target.deadline(10))
            conn.recv(100)

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        port = listener.getsockname()[1]
        code, out, err = target.run("client", "--port", str(port), input=b"hello\n")
    finally:
        thread.join(target.deadline(10))
        listener.close()
    assert code == 1, f"client exited {code}, expected 1 when the server hangs up; stderr: {err!r}"
    assert b"closed the connection" in err, f"stderr should say the server closed the connection: {err!r}"
