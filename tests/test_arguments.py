"""Command lines: --help, bad arguments (exit 2), a port in use (exit 1), the readiness line."""

import re
import select
import socket
import time

import pytest

from harness import CourseFailure

# Every stage's programs take these command lines, lesson 05's RESP ones too.
pytestmark = pytest.mark.any_protocol

PROGRAMS = ["server", "client"]
BAD_ARGUMENTS = [
    ["--port", "70000"],
    ["--port", "abc"],
    ["--port", "-1"],
    ["--port", "12abc"],
    ["--port"],
    ["--verbose"],
    ["extra"],
]


@pytest.mark.parametrize("program", PROGRAMS)
def test_help_prints_usage_and_exits_0(target, program):
    code, out, err = target.run(program, "--help")
    assert code == 0, f"{program} --help exited {code}, expected 0; stderr: {err!r}"
    assert out.startswith(f"usage: {program}".encode()), f"stdout starts {out[:60]!r}, expected 'usage: {program}'"
    assert b"--port" in out and b"--host" in out, f"the usage should name --host and --port: {out!r}"


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("args", BAD_ARGUMENTS, ids=lambda args: " ".join(args))
def test_bad_argument_prints_error_and_usage_and_exits_2(target, program, args):
    code, out, err = target.run(program, *args)
    assert code == 2, f"{program} {' '.join(args)} exited {code}, expected 2; stderr: {err!r}"
    lines = err.decode().splitlines()
    assert lines and lines[0].startswith(f"{program}: "), f"first stderr line should be '{program}: why', got {err!r}"
    assert any(line.startswith(f"usage: {program}") for line in lines), f"stderr should show the usage: {err!r}"
    assert out == b"", f"nothing should go to stdout on a usage error, got {out!r}"


def test_server_announces_where_it_listens_in_one_exact_line(server):
    first = server.stdout.lines[0]
    assert re.fullmatch(r"listening on 127\.0\.0\.1:\d+", first), f"stdout's first line was {first!r}"
    assert server.port != 0, "the line must name the real port, not 0"


def ipv6_loopback_works():
    """Whether this machine can listen on ::1 at all (a container may have IPv6 turned off)."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.needs_not("commands")  # the client sends a line and expects its reply
def test_server_on_ipv6_loopback_names_it_in_brackets_and_serves_the_client(start_server, target):
    if not ipv6_loopback_works():
        pytest.skip("this machine cannot listen on ::1: the IPv6 path cannot be tried here")
    server = start_server("--host", "::1")
    first = server.stdout.lines[0]
    assert re.fullmatch(r"listening on \[::1\]:\d+\r?", first), f"stdout's first line was {first!r}"
    code, out, err = target.run("client", "--host", "::1", "--port", str(server.port), input=b"over IPv6\nexit\n")
    assert (code, out) == (0, target.stage.reply(b"over IPv6")), f"client exited {code}: {out!r} {err!r}"


def test_port_in_use_is_a_clear_error_with_exit_1(server, target):
    code, out, err = target.run("server", "--port", str(server.port))
    assert code == 1, f"a second server on port {server.port} exited {code}, expected 1; stderr: {err!r}"
    assert f"127.0.0.1:{server.port}".encode() in err, f"the error should name the address: {err!r}"
    assert b"in use" in err.lower(), f"the error should say the address is in use: {err!r}"


@pytest.mark.builds("linux")  # Windows has no such wait at bind time: SO_EXCLUSIVEADDRUSE there, and no SO_REUSEADDR
def test_a_restarted_server_listens_at_once_though_its_old_connection_lingers(start_server, target):
    """A connection that the server closed first outlives the server by a minute (FIN_WAIT_2, then TIME_WAIT),
    still bound to the port. Without SO_REUSEADDR a server started again on that port fails, "Address already in
    use", until it is gone: everything works, until the first restart with a client connected."""
    first = start_server()
    with socket.create_connection((first.host, first.port), timeout=target.deadline(5)) as client:
        # The client sends nothing: bytes the server never reads would make its close a reset, which lingers not.
        # It is accepted once the server logs it, or closes it (a server that only accepts, as in step 2).
        connected = rf"127\.0\.0\.1:{client.getsockname()[1]} connected\b"
        end = time.monotonic() + target.deadline(5)
        while not first.stderr.wait_for(connected, 0.01) and not select.select([client], [], [], 0.01)[0]:
            if time.monotonic() > end:
                pytest.fail(f"the server neither logged nor closed the connection ({connected!r})\n{first.log()}")
        first.stop()  # Ctrl+C; the client stays connected
        try:
            again = start_server(port=first.port)
        except CourseFailure as failure:
            hint = ("a server started again on its port must listen at once, although the old server's connection to "
                    "a client still holds the port: set SO_REUSEADDR in sock_set_reuse_address(), which net_listen() "
                    "calls before bind()")
            words, _, log = str(failure).partition("\n--- server (")
            said = log.partition("--- server stderr, last lines:\n")[2].strip()
            raise CourseFailure(f"{words}\nthe new server's stderr: {said!r}\nhint: {hint}\n--- server ({log}",
                                kind=failure.kind, hint=hint) from None
        assert again.port == first.port, f"started with --port {first.port}, the server listens on {again.port}"


def test_unresolvable_host_is_a_clear_error_with_exit_1(target):
    # One try of one second per nameserver: a slow or unreachable resolver would otherwise take 5 s per
    # try (glibc's default) and outlast the run's timeout, though the server itself is right.
    code, out, err = target.run("server", "--host", "no-such-host.invalid", "--port", "0",
                                env={"RES_OPTIONS": "timeout:1 attempts:1"})
    assert code == 1, f"exited {code}, expected 1; stderr: {err!r}"
    assert b"no-such-host.invalid" in err, f"the error should name the host: {err!r}"
