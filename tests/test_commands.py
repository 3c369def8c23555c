"""Lesson 05 on: commands in RESP, driven by tools nobody here wrote (redis-cli, redis-benchmark) and by raw
sockets that send what real clients send: pipelined requests in both framings, one byte at a time,
malformed RESP, subscribers that never read."""

import csv
import io
import os
import pty
import re
import select
import shutil
import socket
import subprocess
import time

import pytest

from harness import Server

pytestmark = pytest.mark.needs("commands")

SHUTDOWN_ERROR = b"-ERR server shutting down\r\n"


def tool(name, package="redis-tools"):
    """The path of a program nobody here wrote; CI must have it (make deps installs its package), elsewhere the
    test is skipped."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make deps installs {package})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def redis_cli(server, *args, input=None, timeout=10):
    """Runs redis-cli against the server; returns (exit code, stdout as text)."""
    done = subprocess.run([tool("redis-cli"), "-h", server.host, "-p", str(server.port), *args], input=input,
                          capture_output=True, timeout=server.target.deadline(timeout))
    return done.returncode, done.stdout.decode(errors="replace")


def resp(*words):
    """A request as a RESP array of bulk strings."""
    out = b"*%d\r\n" % len(words)
    for word in words:
        out += b"$%d\r\n%s\r\n" % (len(word), word)
    return out


def test_redis_cli_gets_the_reply_to_each_command(server):
    assert redis_cli(server, "PING") == (0, "PONG\n")
    assert redis_cli(server, "ECHO", "two words") == (0, "two words\n")
    code, out = redis_cli(server, "TIME")
    seconds = int(out.split()[0])
    assert code == 0 and abs(seconds - time.time()) < 60, f"TIME said {out!r}: not now in seconds since 1970"
    # One connection for several commands: stdin, one command a line.
    code, out = redis_cli(server, input=b"CLIENT GETNAME\nCLIENT SETNAME alice\nCLIENT GETNAME\nFOO bar\n")
    # (redis-cli follows an error with an empty line, whatever the server.)
    assert (code, out) == (0, "\nOK\nalice\nERR unknown command 'FOO', with args beginning with: 'bar' \n\n"), out
    code, out = redis_cli(server, "ECHO")
    assert out == "ERR wrong number of arguments for 'echo' command\n\n", out


def test_socat_speaks_inline_commands_as_telnet_would(server):
    """Lines typed at a terminal are inline commands: socat sends them as they are, and QUIT ends it all."""
    done = subprocess.run([tool("socat", "socat"), "-t", "5", "-", f"TCP:{server.host}:{server.port}"],
                          input=b"PING\r\nECHO hi\r\nTIME x\r\nQUIT\r\n", capture_output=True,
                          timeout=server.target.deadline(10))
    assert done.stdout == (b"+PONG\r\n$2\r\nhi\r\n-ERR wrong number of arguments for 'time' command\r\n"
                           b"+OK\r\n"), f"socat printed {done.stdout!r}; stderr {done.stderr!r}\n{server.log()}"


def read_until(fd, pattern, timeout, on_chunk=None):
    """Reads a descriptor until the text so far matches pattern; returns it (a readiness check). on_chunk(chunk)
    sees each piece read, to answer what the program asks of a terminal."""
    seen = b""
    end = time.monotonic() + timeout
    while not re.search(pattern, seen):
        left = end - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"waited {timeout:.0f} s for {pattern!r}; the output so far: {seen!r}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError(f"the output ended before {pattern!r}; it was: {seen!r}")
        if on_chunk:
            on_chunk(chunk)
        seen += chunk
    return seen


def test_a_message_published_reaches_every_subscriber(server):
    """SUBSCRIBE in two redis-cli processes, PUBLISH from a third: both print the message."""
    subscribers = [subprocess.Popen([tool("redis-cli"), "-p", str(server.port), "SUBSCRIBE", "news"],
                                    stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for sub in subscribers:
            read_until(sub.stdout.fileno(), rb"subscribe\nnews\n1\n", server.target.deadline(10))
        assert redis_cli(server, "PUBLISH", "news", "hello all") == (0, "2\n")
        assert redis_cli(server, "PUBLISH", "weather", "rain") == (0, "0\n")
        for sub in subscribers:
            read_until(sub.stdout.fileno(), rb"message\nnews\nhello all\n", server.target.deadline(10))
    finally:
        for sub in subscribers:
            sub.kill()
            sub.wait()


@pytest.mark.parametrize("pipeline", [1, 16])
def test_redis_benchmark_gets_an_answer_to_every_request(server, pipeline):
    requests = 20000
    done = subprocess.run([tool("redis-benchmark"), "-p", str(server.port), "-t", "ping_inline,ping_mbulk",
                           "-n", str(requests), "-c", "50", "-P", str(pipeline), "--csv"],
                          capture_output=True, timeout=server.target.deadline(120))
    assert done.returncode == 0, f"redis-benchmark exited {done.returncode}: {done.stderr!r}\n{server.log()}"
    rows = {row[0]: row for row in csv.reader(io.StringIO(done.stdout.decode())) if row and row[0] != "test"}
    assert set(rows) == {"PING_INLINE", "PING_MBULK"}, f"redis-benchmark reported {done.stdout!r}"
    for name, row in rows.items():
        assert float(row[1]) > 0, f"{name}: {row}"
    # It ends a test only when every request has its reply; the server counted them too.
    code, info = redis_cli(server, "INFO")
    processed = int(re.search(r"total_commands_processed:(\d+)", info).group(1))
    assert processed >= 2 * requests, f"the server ran {processed} commands for 2 x {requests} requests:\n{info}"


def test_pipelined_requests_in_both_framings_are_answered_in_order(server, connections):
    client = server.connect()
    connections.append(client)
    batch = b"PING\r\n" + resp(b"ECHO", b"a\r\nb") + b"echo inline\n" + resp(b"PING", b"x") + b"\r\n"
    client.send(batch * 50)
    client.expect((b"+PONG\r\n$4\r\na\r\nb\r\n$6\r\ninline\r\n$1\r\nx\r\n") * 50)


def test_a_request_dripped_one_byte_at_a_time_is_answered(server, connections):
    client = server.connect()
    connections.append(client)
    client.send_bytewise(resp(b"ECHO", b"slowly") + b"PING\r\n")
    client.expect(b"$6\r\nslowly\r\n+PONG\r\n")


@pytest.mark.parametrize("malformed, error", [
    (b"*1\r\n$-5\r\n", b"invalid bulk length"),
    (b"*x\r\n", b"invalid multibulk length"),
    (b"*1\r\n:1\r\n", b"expected '$', got ':'"),
    (b"*1\r\n$3\r\nabcXY", b"expected '\\r\\n' after a bulk string of 3 bytes"),
], ids=["negative-bulk-length", "bad-count", "not-a-bulk-string", "missing-crlf"])
def test_malformed_resp_gets_a_protocol_error_and_the_connection_closes(server, connections, malformed, error):
    client = server.connect()
    connections.append(client)
    client.send(b"PING\r\n" + malformed + b"PING\r\n")
    client.expect(b"+PONG\r\n-ERR Protocol error: " + error + b"\r\n")
    client.expect_eof(hint="after a protocol error the server cannot find the next request: it closes, as Redis")
    assert server.stderr.wait_for("error: Protocol error", server.target.deadline(5)), server.log()


@pytest.mark.parametrize("request_bytes", [
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\nPING",
    b"PING\r\nPOST /\r\nPING\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    resp(b"host:", b"x"),
], ids=["post", "ping-then-post", "get-with-host", "host-as-an-array"])
def test_an_http_request_is_dropped_without_a_word(server, connections, request_bytes):
    """A web page can make a browser send an HTTP request to any port. Its lines would be inline commands, so a
    page could smuggle commands in; Redis drops a client that sends POST or Host: at once, replies to what came
    before it included, and so does this server."""
    client = server.connect()
    connections.append(client)
    client.send(request_bytes)
    client.expect_eof(hint="POST and Host: are a web browser's: the session breaks, and nothing more is sent")
    assert server.stderr.wait_for("error: sent POST or Host:", server.target.deadline(5)), server.log()


def test_publish_does_not_count_a_subscriber_closed_by_a_protocol_error(server, connections):
    """After its protocol error a subscriber lingers (its socket is read and dropped for a while), but it can
    receive nothing more: it must have left its channels at once, or PUBLISH counts a message nobody gets."""
    subscriber = server.connect()
    connections.append(subscriber)
    subscriber.send(resp(b"SUBSCRIBE", b"news"))
    subscriber.expect(b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n")
    subscriber.send(b"*1\r\n$-5\r\n")
    subscriber.expect(b"-ERR Protocol error: invalid bulk length\r\n")
    publisher = server.connect()
    connections.append(publisher)
    publisher.send(resp(b"PUBLISH", b"news", b"anyone?"))
    publisher.expect(b":0\r\n", hint="a session whose verdict is in leaves its channels with it")


@pytest.mark.builds("linux")  # under Wine a send() never finds the buffer full: nothing would wait unsent
def test_a_subscriber_that_never_reads_is_closed_and_the_others_are_served(start_server, connections):
    server = start_server("--max-output", "65536")
    sub = server.connect(receive_buffer=4096)
    connections.append(sub)
    sub.send(resp(b"SUBSCRIBE", b"flood"))
    sub.expect(b"*3\r\n$9\r\nsubscribe\r\n$5\r\nflood\r\n:1\r\n")
    publisher = server.connect()
    other = server.connect()
    connections += [publisher, other]
    message = b"m" * 16384
    for _ in range(200):  # 3 MiB: far past what the socket buffers and --max-output hold
        publisher.send(resp(b"PUBLISH", b"flood", message))
        if reply_line(publisher) == b":0":
            break  # nobody subscribes any more: the server closed the subscriber
    else:
        raise AssertionError(f"the subscriber was never closed though it read nothing\n{server.log()}")
    assert server.stderr.wait_for("leaves more than 65536 bytes", server.target.deadline(5)), server.log()
    other.send(b"PING\r\n")
    other.expect(b"+PONG\r\n")


def reply_line(conn):
    """One line of reply from a harness connection, without its "\r\n"."""
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = conn.sock.recv(1)
        assert chunk, f"the connection closed after {line!r}"
        line += chunk
    return line[:-2]


def test_ctrl_c_tells_each_client_and_exits_0(server, connections):
    client = server.connect()
    connections.append(client)
    client.send(b"PING\r\n")
    client.expect(b"+PONG\r\n")
    server.interrupt()
    client.expect(SHUTDOWN_ERROR, step="wait for the notice after Ctrl+C")
    client.expect_eof()
    code = server.wait(server.target.deadline(5))
    assert code == 0, f"the server exited {code} after Ctrl+C, expected 0\n{server.log()}"


def test_the_course_client_prints_replies_as_redis_cli_does(server, target):
    typed = b'PING\nECHO "two words"\nCLIENT SETNAME bob\nCLIENT GETNAME\nFOO\nTIME x\nSUBSCRIBE a b\nQUIT\n'
    code, out, err = target.run("client", "--port", str(server.port), input=typed)
    assert code == 0, f"client exited {code}, printed {out!r}, for the input {typed!r}: {err!r}"
    expected = (b'PONG\n"two words"\nOK\n"bob"\n'
                b"(error) ERR unknown command 'FOO', with args beginning with: \n"
                b"(error) ERR wrong number of arguments for 'time' command\n"
                b'1) "subscribe"\n2) "a"\n3) (integer) 1\n1) "subscribe"\n2) "b"\n3) (integer) 2\nOK\n')
    assert out == expected, (f"for the input {typed!r} the client printed\n{out!r}, expected\n{expected!r}; "
                             f"its stderr: {err!r}")


def test_the_course_client_leaves_with_exit_and_exits_0(server, target):
    """The original's goodbye: "exit" gets no reply, and the client ends well (in any case, as the server reads
    command names)."""
    for goodbye in (b"exit", b"EXIT"):
        code, out, err = target.run("client", "--port", str(server.port), input=b"PING\n" + goodbye + b"\nPING\n")
        assert (code, out) == (0, b"PONG\n"), f"after {goodbye!r}: client exited {code}, printed {out!r}: {err!r}"


@pytest.mark.builds("linux")  # a pseudo-terminal for redis-cli; the server may be either build
def test_an_interactive_redis_cli_session(server):
    """redis-cli at a terminal, as a person uses it: a prompt, a command typed, its reply, the next."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(tool("redis-cli"), ["redis-cli", "-p", str(server.port)])
    def answer_cursor_queries(chunk):
        """The line editor asks where the cursor is (ESC [6n) and waits for a terminal's answer."""
        for _ in range(chunk.count(b"\x1b[6n")):
            os.write(fd, b"\x1b[1;1R")

    try:
        # Each answer ends with the next prompt: type only when the line editor waits for it.
        for typed, answer in ((None, rb"> $"), (b"PING\r", rb"PONG[\s\S]*> $"), (b"ECHO hi\r", rb'"hi"[\s\S]*> $'),
                              (b"CLIENT ID\r", rb"\(integer\) \d+[\s\S]*> $")):
            if typed:
                os.write(fd, typed)
            read_until(fd, answer, server.target.deadline(10), answer_cursor_queries)
        os.write(fd, b"QUIT\r")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
