"""tools/loadgen on a tiny load, so that `make bench`'s instrument keeps working."""

import re
import socket
import subprocess

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


def test_loadgen_refuses_a_bad_number():
    done = subprocess.run([str(LOADGEN), "--connections", "lots"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and "invalid number 'lots'" in done.stderr, done.stderr


@pytest.mark.parametrize("port", ["0", "65536", "90x", "http"])
def test_loadgen_refuses_a_port_that_is_not_one(port):
    done = subprocess.run([str(LOADGEN), "--port", port], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and f"invalid number '{port}'" in done.stderr, (done.returncode, done.stderr)
    assert "exit status:" in done.stderr, f"the usage text should say what each exit code means:\n{done.stderr}"
