"""tools/loadgen on a tiny load, so that `make bench`'s instrument keeps working."""

import re
import socket
import subprocess
import threading

import pytest

from harness import COURSE_ROOT

LOADGEN = COURSE_ROOT / "tools" / "loadgen"


def result(output):
    """The RESULT line as a dict of numbers."""
    line = next((line for line in output.splitlines() if line.startswith("RESULT ")), None)
    assert line, f"no RESULT line in loadgen's output:\n{output}"
    return {key: float(value) for key, value in re.findall(r"(\w+)=([\d.]+)", line)}


@pytest.mark.builds("linux")
def test_loadgen_counts_every_reply_of_a_closed_loop(server, target):
    clients = 5 if target.stage.concurrent else 1  # lesson 01 serves one client at a time
    done = subprocess.run(
        [str(LOADGEN), "--port", str(server.port), "--connections", str(clients), "--requests", "20"],
        capture_output=True, text=True, timeout=30,
    )
    numbers = result(done.stdout)
    assert done.returncode == 0, f"loadgen exited {done.returncode}\n{done.stdout}{done.stderr}"
    assert numbers["connections"] == clients and numbers["lines_sent"] == numbers["replies"] == 20 * clients
    assert numbers["errors"] == 0 and numbers["p50_us"] <= numbers["p99_us"] <= numbers["max_us"]


@pytest.mark.builds("linux")
def test_loadgen_holds_idle_connections_and_says_so(server):
    # Connections wait in the backlog when lesson 01 is busy: holding needs no reply.
    done = subprocess.run(
        [str(LOADGEN), "--port", str(server.port), "--connections", "3", "--idle", "0"],
        capture_output=True, text=True, timeout=30,
    )
    assert "holding 3 connections" in done.stdout, done.stdout + done.stderr
    assert result(done.stdout)["connections"] == 3 and done.returncode == 0


@pytest.mark.builds("linux")
@pytest.mark.needs("limits")
def test_loadgen_counts_idle_connections_the_server_turned_away_as_errors(start_server):
    server = start_server("--max-clients", "2")
    # The third is connected by the kernel, then told "ERR server full" and closed: not held.
    done = subprocess.run([str(LOADGEN), "--port", str(server.port), "--connections", "3", "--idle", "1"],
                          capture_output=True, text=True, timeout=30)
    numbers = result(done.stdout)
    assert numbers["connections"] == 3 and numbers["errors"] == 1, done.stdout
    assert done.returncode == 1, f"loadgen exited {done.returncode} with a connection turned away"


def test_loadgen_counts_each_refused_connection_as_an_error_and_exits_1():
    # A port that was free a moment ago: on loopback nothing listens there, so each connect is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run([str(LOADGEN), "--port", str(port), "--connections", "4", "--requests", "1"],
                          capture_output=True, text=True, timeout=30)
    numbers = result(done.stdout)
    assert numbers["connections"] == 0 and numbers["errors"] == 4, done.stdout
    assert done.returncode == 1, f"loadgen exited {done.returncode} with every connection refused"


@pytest.mark.builds("linux")
@pytest.mark.parametrize("requests, per_connection", [(64, 64), (50, 64)])
def test_loadgen_pipeline_counts_every_reply_of_every_batch(server, target, requests, per_connection):
    # 16 lines per send(); 50 is rounded up to 64, four whole batches.
    clients = 5 if target.stage.concurrent else 1
    done = subprocess.run(
        [str(LOADGEN), "--port", str(server.port), "--connections", str(clients), "--requests", str(requests),
         "--pipeline", "16"],
        capture_output=True, text=True, timeout=30,
    )
    numbers = result(done.stdout)
    assert done.returncode == 0, f"loadgen exited {done.returncode}\n{done.stdout}{done.stderr}"
    assert numbers["pipeline"] == 16 and numbers["batches"] == 4 * clients, done.stdout
    assert numbers["lines_sent"] == numbers["replies"] == per_connection * clients, done.stdout
    assert numbers["errors"] == 0 and numbers["p50_us"] <= numbers["p99_us"] <= numbers["max_us"], done.stdout
    assert "latency per batch of 16 lines" in done.stdout, done.stdout


@pytest.mark.builds("linux")
def test_loadgen_pipeline_waits_for_a_batch_whose_replies_span_many_reads(server, target):
    # 16 lines of 1000 bytes: 16 KB sent at once, and (from the echo stages) 16 KB of replies, more than one read.
    clients = 3 if target.stage.concurrent else 1
    done = subprocess.run(
        [str(LOADGEN), "--port", str(server.port), "--connections", str(clients), "--requests", "48",
         "--pipeline", "16", "--line", "x" * 1000],
        capture_output=True, text=True, timeout=30,
    )
    numbers = result(done.stdout)
    assert done.returncode == 0, f"loadgen exited {done.returncode}\n{done.stdout}{done.stderr}"
    assert numbers["lines_sent"] == numbers["replies"] == 48 * clients and numbers["errors"] == 0, done.stdout
    assert numbers["batches"] == 3 * clients, done.stdout


class LineServer:
    """A one-connection line server in a thread: it keeps each recv()'s bytes, and answers the lines of each
    with `reply_per_line` per line, in one send(), or one byte per send() so that the load generator's reads
    cut the replies anywhere."""

    def __init__(self, reply_per_line, bytewise):
        self.reply_per_line = reply_per_line
        self.bytewise = bytewise
        self.chunks = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.listener.settimeout(20)
        with self.listener, self.listener.accept()[0] as conn:
            conn.settimeout(20)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                while chunk := conn.recv(65536):
                    self.chunks.append(chunk)
                    replies = self.reply_per_line * chunk.count(b"\n")
                    for piece in [replies[i:i + 1] for i in range(len(replies))] if self.bytewise else [replies]:
                        conn.sendall(piece)
            except ConnectionResetError:
                pass  # the load generator closed a connection it counted as an error

    def join(self):
        self.thread.join(20)
        assert not self.thread.is_alive(), "the test's server still waits for the load generator"


def test_loadgen_pipeline_sends_each_batch_in_one_piece_and_reads_its_replies_in_many():
    server = LineServer(b"+OK\r\n", bytewise=True)
    done = subprocess.run([str(LOADGEN), "--port", str(server.port), "--requests", "48", "--pipeline", "16",
                           "--line", "PING"], capture_output=True, text=True, timeout=30)
    server.join()
    numbers = result(done.stdout)
    assert done.returncode == 0 and numbers["replies"] == 48 and numbers["batches"] == 3, done.stdout
    # One send() of 80 bytes on loopback is one segment: each recv() above got one whole batch, never more,
    # since the next batch leaves only after the last byte of this one's replies.
    assert server.chunks == [b"PING\n" * 16] * 3, server.chunks


def test_loadgen_pipeline_counts_more_reply_lines_than_lines_in_flight_as_an_error():
    # Two reply lines per line, all 32 in one send(), so in one read: 16 more than the batch in flight. (Extra
    # lines that come after the batch's last reply cannot be told from the next batch's replies.)
    server = LineServer(b"one\ntwo\n", bytewise=False)
    done = subprocess.run([str(LOADGEN), "--port", str(server.port), "--requests", "32", "--pipeline", "16"],
                          capture_output=True, text=True, timeout=30)
    server.join()
    numbers = result(done.stdout)
    assert numbers["errors"] == 1 and numbers["batches"] == 0, done.stdout
    assert done.returncode == 1, f"loadgen exited {done.returncode} with twice the reply lines it was due"


@pytest.mark.parametrize("value", ["0", "-1", "16x", "1001", "99999999999999999999", ""])
def test_loadgen_refuses_a_pipeline_out_of_range(value):
    done = subprocess.run([str(LOADGEN), "--pipeline", value], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and f"invalid number '{value}'" in done.stderr, (done.returncode, done.stderr)
    assert "--pipeline K" in done.stderr, f"the usage text should explain --pipeline:\n{done.stderr}"


def test_loadgen_refuses_a_bad_number():
    done = subprocess.run([str(LOADGEN), "--connections", "lots"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and "invalid number 'lots'" in done.stderr, done.stderr


@pytest.mark.parametrize("port", ["0", "65536", "90x", "http"])
def test_loadgen_refuses_a_port_that_is_not_one(port):
    done = subprocess.run([str(LOADGEN), "--port", port], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and f"invalid number '{port}'" in done.stderr, (done.returncode, done.stderr)
    assert "exit status:" in done.stderr, f"the usage text should say what each exit code means:\n{done.stderr}"
