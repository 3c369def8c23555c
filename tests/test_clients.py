"""Lesson 05 on: Redis client libraries nobody here wrote, each with its default options, as an application uses
them: redis-py (Debian's python3-redis, with the hiredis parser when python3-hiredis is there, and with its own),
hiredis in C (libhiredis-dev), node-redis and ioredis (from the npm registry, tests/clients/package.json). Each
connects, runs commands, a transaction and a pipeline, and receives a published message.

What the libraries do at connect, found by running them against Redis itself: node-redis and ioredis speak RESP3
by default (HELLO 3, then CLIENT SETINFO; ioredis also INFO), and node-redis gives up on a server that refuses
HELLO 3; redis-py's default pipeline() is a MULTI/EXEC transaction."""

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import termios
import time

import pytest

from harness import COURSE_ROOT

pytestmark = pytest.mark.needs("commands")

CLIENTS = COURSE_ROOT / "tests" / "clients"
HINT = b"\x1b[0;90;49mattr value"  # how redis-cli's line editor draws a hint: grey


def missing(what, package):
    """Skips the test, or fails it on CI, where make deps must have installed the package."""
    message = f"{what} is not installed (make deps installs {package})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run_client(server, command, timeout=30):
    """Runs a client program to its end; fails with everything it said unless it printed "ok" and exited 0."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=server.target.deadline(timeout))
    said = done.stdout.strip().splitlines()
    assert done.returncode == 0 and said and said[-1] == "ok", (
        f"{' '.join(map(str, command))} exited {done.returncode}; its output:\n{done.stdout}{done.stderr}\n"
        f"{server.log()}")


@pytest.mark.parametrize("library", ["node-redis", "ioredis"])
def test_a_node_library_with_its_default_options_connects_pipelines_and_subscribes(server, library):
    node = shutil.which("node")
    if node is None:
        missing("Node.js", "nodejs")
    if not (CLIENTS / "node_modules" / ("redis" if library == "node-redis" else "ioredis")).exists():
        missing(f"the npm package of {library}", "it with npm ci in tests/clients")
    run_client(server, [node, str(CLIENTS / "redis_clients.js"), library, server.host, str(server.port)])


def test_hiredis_in_c_connects_pipelines_and_subscribes(server, tmp_path_factory):
    compiler = shutil.which("cc") or shutil.which("gcc")
    header = "/usr/include/hiredis/hiredis.h"
    if compiler is None or not os.path.exists(header):
        missing("hiredis", "libhiredis-dev")
    program = tmp_path_factory.mktemp("hiredis") / "hiredis_client"
    built = subprocess.run([compiler, "-o", str(program), str(CLIENTS / "hiredis_client.c"), "-lhiredis"],
                           capture_output=True, text=True)
    assert built.returncode == 0, f"tests/clients/hiredis_client.c did not build:\n{built.stderr}"
    run_client(server, [str(program), server.host, str(server.port)])


@pytest.mark.parametrize("parser", ["default", "python"])
def test_redis_py_with_its_default_options_connects_pipelines_and_subscribes(server, parser):
    try:
        import redis
        from redis.connection import PythonParser
    except ImportError:
        missing("redis-py", "python3-redis (for the Python that has pytest)")

    options = {"host": server.host, "port": server.port, "socket_timeout": server.target.reply_deadline(5)}
    if parser == "python":  # without python3-hiredis, the default is this one anyway
        client = redis.Redis(connection_pool=redis.ConnectionPool(parser_class=PythonParser, **options))
    else:
        client = redis.Redis(**options)
    try:
        assert client.ping() is True
        assert client.echo("a\0b") == b"a\0b"
        assert client.client_setname("app") is True and client.client_getname() == "app"
        pipe = client.pipeline()  # by default a transaction: MULTI ... EXEC in one write
        pipe.ping().echo("in a transaction").client_id()
        done = pipe.execute()
        assert done[:2] == [True, b"in a transaction"] and isinstance(done[2], int), done
        pipe = client.pipeline(transaction=False)
        assert pipe.echo("piped").ping().execute() == [b"piped", True]
        subscriber = client.pubsub()
        subscriber.subscribe("news")
        first = subscriber.get_message(timeout=server.target.reply_deadline(5))
        assert first and first["type"] == "subscribe", first
        assert client.publish("news", "hello all") == 1
        message = subscriber.get_message(timeout=server.target.reply_deadline(5))
        assert message and (message["channel"], message["data"]) == (b"news", b"hello all"), message
        subscriber.close()
    finally:
        client.close()


@pytest.mark.builds("linux")  # a pseudo-terminal for redis-cli; the server may be either build
def test_redis_cli_at_a_terminal_gets_its_hints_from_command_docs(server):
    """redis-cli asks for COMMAND DOCS when it starts, and builds the hints it shows as you type from the reply:
    "CLIENT SETINFO " shows "attr value" in grey. Without COMMAND DOCS it falls back to its own list (7.0's, which
    has no CLIENT SETINFO); with a reply it cannot read (a flag as a bulk string) it aborts."""
    cli = shutil.which("redis-cli")
    if cli is None:
        missing("redis-cli", "redis-tools")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(cli, ["redis-cli", "-p", str(server.port)])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))  # a window wide enough for hints
    seen = b""
    try:
        end = time.monotonic() + server.target.deadline(10)
        typed = False
        while time.monotonic() < end and HINT not in seen:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                seen += chunk
                for _ in range(chunk.count(b"\x1b[6n")):
                    os.write(fd, b"\x1b[1;1R")  # the line editor asks where the cursor is
            if not typed and re.search(rb"> $", seen):
                os.write(fd, b"CLIENT SETINFO ")
                typed = True
        assert HINT in seen, (f"after 'CLIENT SETINFO ', redis-cli showed no hint 'attr value'; the terminal "
                                                 f"showed {seen[-400:]!r}\n{server.log()}")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)
