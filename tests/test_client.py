"""The client program, driven through a pipe as a script would."""

import os
import pty
import select
import socket
import subprocess
import threading
import time

import pytest

from harness import LINE_MAX_BYTES, CourseFailure, free_port


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


def test_client_sends_nul_bytes_inside_a_line_intact(server, target):
    code, out, err = target.run("client", "--port", str(server.port), input=b"a\0b\nafter\n")
    expected = target.stage.reply(b"a\0b") + target.stage.reply(b"after")
    assert out == expected, f"client stdout was {out!r}, expected {expected!r} (fgets() and strlen() lose NULs)"
    assert code == 0, f"client exited {code}; stderr: {err!r}"


def stand_in_server(target, serve):
    """A stand-in server on a free port: one client, handed to serve(conn) on a thread; returns (port, thread).
    The listener closes once the client has been served."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(target.deadline(10))

    def accept_one():
        with listener:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(target.deadline(10))
                serve(conn)

    thread = threading.Thread(target=accept_one, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def record_what_arrives(target):
    """A stand-in server that keeps every byte one client sends, answering "ok" to each line;
    returns (port, bytes, thread)."""
    received = bytearray()

    def keep(conn):
        try:
            while chunk := conn.recv(4096):
                received.extend(chunk)
                conn.sendall(b"ok\n" * chunk.count(b"\n"))
        except OSError:
            pass  # the client hung up first: what arrived is what counts

    port, thread = stand_in_server(target, keep)
    return port, received, thread


def test_client_sends_exit_and_stops_reading_input(target):
    port, received, thread = record_what_arrives(target)
    code, out, err = target.run("client", "--port", str(port), input=b"exit\nnever sent\n")
    thread.join(target.deadline(10))
    assert bytes(received) == b"exit\n", f"the server should receive exactly b'exit\\n', got {bytes(received)!r}"
    # This stand-in answers every line, "exit" too. A client that waits for each reply prints nothing after
    # "exit"; one that prints whatever the server sends until it closes prints that answer.
    expected = b"ok\n" if target.stage.live_client else b""
    assert out == expected, f"after exit the client printed {out!r}, expected {expected!r}"
    assert code == 0, f"client exited {code}, expected 0; stderr: {err!r}"


def test_client_sends_lines_that_only_start_with_exit_like_any_line(target):
    port, received, thread = record_what_arrives(target)
    code, out, err = target.run("client", "--port", str(port), input=b"exits\nexit now\nexit\n")
    thread.join(target.deadline(10))
    if bytes(received) != b"exits\nexit now\nexit\n":
        hint = ("only the line 'exit' itself ends the client: is_exit_line() compares the whole line, \"exit\\n\" or "
                "\"exit\\r\\n\", with its length and memcmp(), not a prefix")
        raise CourseFailure(f"the server should receive b'exits\\nexit now\\nexit\\n', it received "
                            f"{bytes(received)!r}; the client exited {code}, printed {out!r}\nhint: {hint}",
                            kind="differs", hint=hint)


def test_client_passes_carriage_returns_and_ctrl_z_through_a_pipe(target):
    """On Windows a text-mode stdin would turn '\\r\\n' into '\\n' and stop at byte 0x1A."""
    port, received, thread = record_what_arrives(target)
    target.run("client", "--port", str(port), input=b"a\r\nb\x1ac\nexit\n")
    thread.join(target.deadline(10))
    assert bytes(received).startswith(b"a\r\nb\x1ac\n"), f"the client sent {bytes(received)!r}"


# The client reads at most LINE_MAX_BYTES + 1 bytes at a time: a last line that fills its final read exactly
# (the first two lengths) meets the end of input only at the next read, empty, and must still be ended.
@pytest.mark.parametrize("length", [LINE_MAX_BYTES + 1, 2 * (LINE_MAX_BYTES + 1), LINE_MAX_BYTES + 2])
def test_client_ends_a_long_last_line_that_has_no_newline(target, length):
    port, received, thread = record_what_arrives(target)
    code, out, err = target.run("client", "--port", str(port), input=b"x" * length)
    thread.join(target.deadline(10))
    assert bytes(received) == b"x" * length + b"\n", (
        f"the server should receive the {length} bytes, then b'\\n'; it received {len(received)} bytes, "
        f"ending {bytes(received[-4:])!r}")
    assert out == b"ok\n", f"the client should print the reply to the ended line, printed {out!r}; {err!r}"
    assert code == 0, f"client exited {code}, expected 0 at end of input; stderr: {err!r}"


def test_client_prints_a_reply_longer_than_any_line_it_sends_whole(target):
    """A reply may be longer than the client's buffer (an echo of a long line, say): it is still one reply."""
    long_reply = b"r" * (3 * LINE_MAX_BYTES) + b"\n"

    def answer_long(conn):
        answered = 0
        with conn.makefile("rb") as lines:
            for _ in lines:  # the long reply to the first line, a short one to the next
                conn.sendall(long_reply if answered == 0 else b"short\n")
                answered += 1

    port, thread = stand_in_server(target, answer_long)
    code, out, err = target.run("client", "--port", str(port), input=b"first\nsecond\n")
    thread.join(target.deadline(10))
    assert out == long_reply + b"short\n", (f"the client should print the {len(long_reply)}-byte reply whole, then the "
                                            f"next one; it printed {len(out)} bytes, starting {out[:20]!r}; {err!r}")
    assert code == 0, f"client exited {code}, expected 0; stderr: {err!r}"


def test_client_shows_why_the_server_refused_a_long_line(server, target):
    # Whether the rest of the line still goes out before the server hangs up depends on buffering
    # (Wine buffers without limit), so the exit code is not what this test is about.
    code, out, err = target.run("client", "--port", str(server.port), input=b"x" * 100000 + b"\n")
    assert out == b"ERR line too long\n", f"the client should print the server's reason, printed {out!r}; {err!r}"


def test_client_refused_connection_says_so_and_exits_1(target):
    port = free_port()
    code, out, err = target.run("client", "--port", str(port), input=b"hi\n")
    assert code == 1, f"client exited {code}, expected 1 when nobody listens; stderr: {err!r}"
    assert f"cannot connect to 127.0.0.1:{port}".encode() in err, f"stderr should say so: {err!r}"


def test_client_reports_a_server_that_goes_away(target):
    """A stand-in server that reads the client's line and hangs up without a reply. A client that hears the
    server while it types (final/ on) has first said all it will (its end of stream): whether every line got its
    reply is then the only question, and a close before that one is an early close, exit 1, whichever of the
    client's two threads sees it first."""
    def hang_up(conn):
        if not target.stage.live_client:
            conn.recv(100)  # a client that waits for each reply before it reads the next line
            return
        while conn.recv(100):
            continue  # until the client's end of stream: its input has ended, and it has said so
    port, thread = stand_in_server(target, hang_up)
    code, out, err = target.run("client", "--port", str(port), input=b"hello\n")
    thread.join(target.deadline(10))
    assert code == 1, f"client exited {code}, expected 1 when the server hangs up; stderr: {err!r}"
    assert b"closed the connection" in err, f"stderr should say the server closed the connection: {err!r}"


@pytest.mark.builds("linux")  # a pseudo-terminal is a POSIX device
def test_client_shows_a_prompt_when_stdin_is_a_terminal(server, target):
    """Runs the client on a pseudo-terminal, as a person at a keyboard would."""
    pid, terminal = run_on_a_terminal(target, server.port)
    output, code = b"", None
    try:
        output += read_until(terminal, b"> ", target.deadline(5))
        os.write(terminal, b"typed\n")
        output += read_until(terminal, target.stage.reply(b"typed").rstrip(b"\n"), target.deadline(5))
        os.write(terminal, b"exit\n")
    finally:
        # Bounded, on every path: a client still waiting for a reply that never came is killed, not waited for.
        code = exit_code_within(pid, target.deadline(5))
        os.close(terminal)
    assert output.startswith(b"> "), f"the first thing on the terminal should be the prompt '> ': {output!r}"
    assert code == 0, (f"after 'exit' the client exited {code} (None: it was still running {target.deadline(5):.0f} s "
                       f"later, and was killed), expected 0; the terminal showed {output!r}")


def read_until(fd, wanted, timeout):
    """Reads a terminal until `wanted` shows up; fails with what came if it does not in time."""
    got = b""
    end = time.monotonic() + timeout
    while wanted not in got:
        ready, _, _ = select.select([fd], [], [], max(0, end - time.monotonic()))
        if not ready:
            raise AssertionError(f"waited {timeout} s for {wanted!r} on the terminal; got {got!r}")
        got += os.read(fd, 1024)
    return got


@pytest.mark.needs("live_client")
def test_client_prints_what_the_server_sends_on_its_own_and_says_when_it_closes(target):
    """A line the server sends unasked ("server shutting down", "ERR idle timeout") is printed when it comes,
    not as the 'reply' to the next line typed: the client waits on the server and the keyboard at once."""
    port, thread = stand_in_server(target, lambda conn: conn.sendall(b"unsolicited\n"))  # then it closes
    # stdin stays open and empty: a client that waits for a line to type before it reads would wait for ever.
    client = subprocess.Popen(target.command("client", "--port", str(port)), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=target.env())
    try:
        code = client.wait(target.deadline(10))
    except subprocess.TimeoutExpired:
        client.kill()
        code = None
    out, err = (target.text(stream.read()) for stream in (client.stdout, client.stderr))
    client.stdin.close()
    thread.join(target.deadline(10))
    assert code is not None, (f"with nothing typed, the client was still running {target.deadline(10):.0f} s after "
                              f"the server spoke and closed: it must read the server while it waits for the keyboard "
                              f"(printed so far: {out!r})")
    assert out == b"unsolicited\n", f"the client printed {out!r}, expected the server's line as it came"
    assert code == 1 and b"closed the connection" in err, f"exit {code}, stderr {err!r}: say the server closed, exit 1"


def run_on_a_terminal(target, server_port):
    """Starts the client on a pseudo-terminal, as a person at a keyboard would; returns (pid, terminal)."""
    pid, terminal = pty.fork()
    if pid == 0:
        os.execv(target.command("client")[0], target.command("client", "--port", str(server_port)))
    return pid, terminal


def exit_code_within(pid, timeout):
    """The child's exit code, or None if it is still running after timeout seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)  # polling a condition with a deadline, not guessing readiness
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


@pytest.mark.needs("live_client")
@pytest.mark.needs("graceful_shutdown")
@pytest.mark.builds("linux")  # a pseudo-terminal is a POSIX device
def test_client_at_a_terminal_shows_the_shutdown_notice_at_once_and_exits(server, target):
    pid, terminal = run_on_a_terminal(target, server.port)
    try:
        output = read_until(terminal, b"> ", target.deadline(5))
        server.interrupt()  # Ctrl+C on the server while the user has typed nothing
        output += read_until(terminal, b"server shutting down", target.deadline(5))
        code = exit_code_within(pid, target.deadline(5))
    finally:
        os.close(terminal)
    assert code == 1, (f"after the server's notice and close, the client exited {code} (None: still running, "
                       f"waiting for a line): it must see the close itself, and exit 1; terminal: {output!r}")


@pytest.mark.needs("live_client")
@pytest.mark.builds("linux")  # a pseudo-terminal is a POSIX device
def test_client_at_a_terminal_ends_its_line_after_ctrl_d(server, target):
    pid, terminal = run_on_a_terminal(target, server.port)
    try:
        output = read_until(terminal, b"> ", target.deadline(5))
        os.write(terminal, b"\x04")  # Ctrl+D at the start of a line: the end of the input
        code = exit_code_within(pid, target.deadline(5))
        output += read_rest(terminal)
    finally:
        os.close(terminal)
    assert code == 0, f"after Ctrl+D the client exited {code}, expected 0; terminal: {output!r}"
    assert output.endswith(b"\n"), (f"after Ctrl+D the terminal shows {output!r}: the client must end the prompt's "
                                    f"line, or the shell's prompt lands on it")


def read_rest(fd):
    """What a terminal still holds once its program has ended (EIO when there is nothing more)."""
    got = b""
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    return got
