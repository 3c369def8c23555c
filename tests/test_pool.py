"""Lesson 06 on: slow commands (DEBUG SLEEP, PRIMES) run by worker threads, off the event loop. Every other client
is served while they run; each client's replies keep the order of its requests; a reply never reaches anyone but
the client that asked, even one that took its place; a full queue says so at once; Ctrl+C cancels what runs and
what waits, and the server still exits 0 at once. Driven by raw sockets, redis-cli and redis-benchmark.

No test times the server: each checks an order of events (a PONG that comes before a sleeper's +OK, or after it)
with sleeps long enough that the order cannot come out otherwise on any machine."""

import re
import select
import socket
import struct
import subprocess

import pytest

from test_commands import SHUTDOWN_ERROR, redis_cli, resp, tool

pytestmark = [pytest.mark.needs("commands"), pytest.mark.needs("thread_pool")]

CANCELLED = b"-ERR cancelled: the server is shutting down\r\n"
QUEUE_FULL = b"-ERR job queue full, try again later\r\n"


def has_bytes_waiting(conn):
    """Whether the server has sent this connection anything not read yet (a check, not a wait)."""
    readable, _, _ = select.select([conn.sock], [], [], 0)
    return bool(readable)


def receive_some(conn, size, step):
    """Up to size bytes the server sent, failing the test (with the server's log) if it closed instead."""
    try:
        chunk = conn.sock.recv(size)
    except OSError as error:
        conn.fail(step, f"the connection broke: {error}", kind="reset")
    if not chunk:
        conn.fail(step, "the server closed the connection (did it crash? its log is below)", kind="closed")
    conn.received += chunk
    return chunk


def info_jobs(conn):
    """The counters of INFO jobs, asked on an open connection: {"jobs_running": 1, ...}."""
    step = "ask INFO jobs"
    conn.send(b"INFO jobs\r\n", step=step)
    header = b""
    while not header.endswith(b"\r\n"):
        header += receive_some(conn, 1, step)
    if not re.fullmatch(rb"\$\d+\r\n", header):
        conn.fail(step, f"INFO jobs began with {header!r}, not a bulk string's length", kind="differs")
    body, size = b"", int(header[1:-2]) + 2
    while len(body) < size:
        body += receive_some(conn, size - len(body), step)
    return {name.decode(): int(value) for name, value in re.findall(rb"(jobs_\w+):(\d+)", body)}


def wait_for_jobs(conn, target, **expected):
    """Asks INFO jobs until its counters are as expected (a readiness check: the server's own accounting), at most
    for the target's patience."""
    counts = {}
    for _ in range(int(target.deadline(10) / 0.05)):
        counts = info_jobs(conn)
        if all(counts.get(f"jobs_{name}") == value for name, value in expected.items()):
            return counts
        select.select([], [], [], 0.05)
    conn.fail("wait for INFO jobs", f"INFO jobs said {counts}, expected {expected}", kind="timeout")


def test_a_ping_is_answered_while_another_client_sleeps(start_server, connections):
    """DEBUG SLEEP 2 on one client; another's PING is answered while the sleeper has nothing yet. A server that
    runs the job on the loop answers the PING only after the sleep."""
    server = start_server()
    sleeper, other = server.connect(), server.connect()
    connections += [sleeper, other]
    sleeper.send(b"DEBUG SLEEP 2\r\n")
    sleeper.wait_until_read(sleeper.timeout)  # the loop has it
    other.send(b"PING\r\n")
    other.expect(b"+PONG\r\n", step="PING from another client while the first one's DEBUG SLEEP 2 runs",
                 hint="the loop itself ran the sleep: hand the job to the pool (pool_submit()) and go on")
    if has_bytes_waiting(sleeper):
        sleeper.fail("check the sleeper got nothing yet", "its reply came before another client's PONG: the "
                     "sleep held the loop up", expected=b"(nothing before the PONG)", kind="differs")
    sleeper.expect(b"+OK\r\n", step="wait for DEBUG SLEEP 2's reply")


def test_with_no_workers_the_loop_runs_the_job_and_every_client_waits(start_server, connections):
    """--workers 0 runs each job on the loop, as Redis runs DEBUG SLEEP: the PING sent during the sleep is answered
    only after it. This is the problem a pool solves, shown."""
    server = start_server("--workers", "0")
    sleeper, other = server.connect(), server.connect()
    connections += [sleeper, other]
    sleeper.send(b"DEBUG SLEEP 1\r\n")
    sleeper.wait_until_read(sleeper.timeout)  # the loop has it: from now on it sleeps
    other.send(b"PING\r\n")
    other.expect(b"+PONG\r\n")
    if not has_bytes_waiting(sleeper):
        other.fail("check the sleeper's reply came first", "the PONG came while the loop should have been asleep: "
                   "with --workers 0 the loop runs each job itself", expected=b"(the sleeper's +OK first)",
                   kind="differs")
    sleeper.expect(b"+OK\r\n")


def test_a_ping_is_answered_while_the_workers_count_primes(start_server, connections):
    """Two PRIMES of seconds of CPU each keep both workers busy; PINGs are still answered at once."""
    server = start_server("--workers", "2")
    counters = [server.connect() for _ in range(2)]
    other = server.connect()
    connections.extend(counters + [other])
    for counter in counters:
        counter.send(b"PRIMES 4000000000\r\n")
    wait_for_jobs(other, server.target, running=2)
    for _ in range(3):
        other.send(b"PING\r\n")
        other.expect(b"+PONG\r\n", step="PING while two workers count primes",
                     hint="a worker held the pool's lock while it ran its job, or the loop waited for it")


def test_replies_come_in_the_order_of_the_requests(server, connections):
    """Pipelined slow and fast requests: each reply in the order of its request, as Redis answers."""
    client = server.connect()
    connections.append(client)
    client.send(b"DEBUG SLEEP 0.2\r\nPING\r\nPRIMES 100\r\nECHO x\r\n*2\r\n$6\r\nPRIMES\r\n$4\r\n1000\r\nPING\r\n")
    client.expect(b"+OK\r\n+PONG\r\n:25\r\n$1\r\nx\r\n:168\r\n+PONG\r\n",
                  hint="the requests after a slow one wait until its reply is in the output (session_defer()); "
                  "then session_finish_job() runs them")


def test_a_half_closed_client_still_gets_its_slow_reply(server, connections):
    """A client that sends its requests and ends its side (as `nc -N` does) is owed its replies, the slow one's
    too: the connection must not close while a job's reply is still to come."""
    client = server.connect()
    connections.append(client)
    client.send(b"DEBUG SLEEP 0.3\r\nPING\r\n")
    client.sock.shutdown(socket.SHUT_WR)
    client.expect(b"+OK\r\n+PONG\r\n", hint="a client whose stream ended waits for its job's reply before it is "
                  "closed (session_awaits_job())")
    client.expect_eof()


def test_a_slow_command_behind_big_replies_starts_as_they_are_sent(server, connections):
    """Two 100 KB replies take the output past the high-water mark, so the DEBUG SLEEP behind them waits in the
    session and runs only as the client reads them: from inside a send. Its job must start then, not when the client
    next sends something (it sends nothing more)."""
    client = server.connect()
    connections.append(client)
    big = b"x" * 100000
    client.send(resp(b"ECHO", big) * 2 + b"DEBUG SLEEP 0\r\nPING\r\n")
    reply = b"$100000\r\n" + big + b"\r\n"
    client.expect(reply * 2 + b"+OK\r\n+PONG\r\n", hint="a held request run as the output drains (in "
                  "session_sent()) may be a slow command: its job must be started there too (start_jobs() after each "
                  "session_sent())")


@pytest.mark.measures_resources
@pytest.mark.builds("linux")  # /proc
@pytest.mark.parametrize("how", ["half-closed", "past --max-query"])
def test_a_client_that_waits_for_its_job_unread_costs_no_cpu_even_when_it_resets(start_server, connections, how):
    """A client that half-closed, or sent --max-query bytes behind its DEBUG SLEEP, is read no more while its job
    runs. If it then resets, a poller still reports the error for a socket it watches for nothing, at every wait:
    the loop must not keep such a socket in its poller, or it spins at full CPU until the job ends. The client is
    closed when its reply cannot be sent."""
    server = start_server("--max-bulk", "512", "--max-inline", "512", "--max-query", "1024")
    client = server.connect()
    connections.append(client)
    if how == "half-closed":
        client.send(b"DEBUG SLEEP 2\r\n")
        client.wait_until_read(client.timeout)
        client.sock.shutdown(socket.SHUT_WR)
    else:
        client.send(b"DEBUG SLEEP 2\r\n" + b"PING\r\n" * 200)  # 1,200 bytes wait behind the job
        client.wait_until_read(client.timeout)
    peer = "%s:%d" % client.sock.getsockname()[:2]
    cpu_before = server.cpu_seconds()
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()  # a reset
    if not server.stderr.wait_for(f"{peer} disconnected", server.target.deadline(10)):
        pytest.fail(f"the client that reset was not closed after its 2 s job\n{server.log()}")
    used = server.cpu_seconds() - cpu_before
    assert used < 0.5, (f"the server used {used:.2f} s of CPU during a 2 s job of a client that reset: its loop "
                        f"woke for the dead socket at every wait\n{server.log()}")
    other = server.connect()
    connections.append(other)
    other.send(b"PING\r\n")
    other.expect(b"+PONG\r\n")


def test_a_reply_never_reaches_the_client_that_came_after_one_that_left(server, connections):
    """A client resets during its DEBUG SLEEP; the next client (likely given the same socket number) must not
    get the +OK meant for the first one: a reply finds its client by CLIENT ID, which is never given again."""
    watcher = server.connect()
    connections.append(watcher)
    before = info_jobs(watcher)["jobs_finished"]
    leaver = socket.create_connection((server.host, server.port))
    leaver.sendall(b"DEBUG SLEEP 0.5\r\n")
    wait_for_jobs(watcher, server.target, running=1)
    leaver.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    leaver.close()  # a reset: the client is gone for good
    newcomer = server.connect()
    connections.append(newcomer)
    newcomer.send(b"PING\r\n")
    newcomer.expect(b"+PONG\r\n")
    wait_for_jobs(newcomer, server.target, finished=before + 1)
    newcomer.send(b"PING\r\n")
    newcomer.expect(b"+PONG\r\n", step="PING after the job of the client that left has finished",
                    hint="the reply went to whoever has the socket now: find the session by the job's CLIENT ID "
                    "(hub_session()), and drop the reply when it is gone")


def test_a_full_queue_refuses_a_job_at_once(start_server, connections):
    """One worker, a queue of one: the third slow request is refused at once, not waited for."""
    server = start_server("--workers", "1", "--max-queue", "1")
    running, queued, refused, watcher = (server.connect() for _ in range(4))
    connections.extend([running, queued, refused, watcher])
    running.send(b"DEBUG SLEEP 60\r\n")
    wait_for_jobs(watcher, server.target, running=1)
    queued.send(b"DEBUG SLEEP 60\r\n")
    wait_for_jobs(watcher, server.target, queued=1)
    refused.send(b"DEBUG SLEEP 0\r\nPING\r\n")
    refused.expect(QUEUE_FULL + b"+PONG\r\n", hint="pool_submit() returns -1 when the queue is full: the job's "
                   "reply is the error (job_refuse()), at once")
    assert wait_for_jobs(watcher, server.target, refused=1)["jobs_refused"] == 1


@pytest.mark.parametrize("workers", ["1", "0"])
def test_ctrl_c_cancels_running_and_waiting_jobs_and_exits_0(start_server, connections, workers):
    """Ctrl+C during an hour's DEBUG SLEEP, with a PRIMES waiting behind it: each client gets its job's cancelled
    reply, then the notice, and the server exits 0 at once, without waiting for the hour."""
    server = start_server("--workers", workers)
    sleeper, counter, idle = server.connect(), server.connect(), server.connect()
    connections.extend([sleeper, counter, idle])
    idle.send(b"PING\r\n")
    idle.expect(b"+PONG\r\n")
    sleeper.send(b"DEBUG SLEEP 3600\r\n")
    if workers != "0":
        wait_for_jobs(idle, server.target, running=1)
    counter.send(b"PRIMES 4000000000\r\n")
    if workers != "0":
        wait_for_jobs(idle, server.target, queued=1)
    server.interrupt()
    hint = "begin_stop() stops the pool first (pool_stop()), gives each job's reply to its client, then the notice"
    sleeper.expect(CANCELLED + SHUTDOWN_ERROR, step="the sleeper at Ctrl+C", hint=hint)
    counter.expect(CANCELLED + SHUTDOWN_ERROR, step="the waiting PRIMES at Ctrl+C", hint=hint)
    idle.expect(SHUTDOWN_ERROR, step="an idle client at Ctrl+C")
    for conn in (sleeper, counter, idle):
        conn.expect_eof()
    code = server.wait(server.target.deadline(5))
    assert code == 0, f"the server exited {code} after Ctrl+C, expected 0\n{server.log()}"


def test_many_clients_pipelining_small_jobs_all_get_every_answer(server, connections):
    """50 clients, 40 PRIMES each in one send: 2,000 jobs through the pool; each client gets its 40 answers."""
    clients = [server.connect(timeout=20) for _ in range(50)]
    connections.extend(clients)
    for client in clients:
        client.send(b"PRIMES 1000\r\n" * 40)
    for client in clients:
        client.expect(b":168\r\n" * 40, hint="a finished job whose waker was already raised was never handed "
                      "back: raise the waker when the list of finished jobs goes from empty to not, and clear "
                      "it under the lock as the loop takes them all")


def test_redis_cli_and_redis_benchmark_drive_the_slow_commands(server, connections):
    assert redis_cli(server, "DEBUG", "SLEEP", "0.1") == (0, "OK\n")
    assert redis_cli(server, "PRIMES", "1000000") == (0, "78498\n")
    watcher = server.connect()
    connections.append(watcher)
    before = info_jobs(watcher)["jobs_finished"]
    done = subprocess.run([tool("redis-benchmark"), "-p", str(server.port), "-n", "2000", "-c", "20", "-P", "4",
                           "--csv", "PRIMES", "10000"], capture_output=True,
                          timeout=server.target.deadline(60))
    assert done.returncode == 0, f"redis-benchmark exited {done.returncode}: {done.stderr!r}\n{server.log()}"
    counts = wait_for_jobs(watcher, server.target, finished=before + 2000)
    assert counts["jobs_refused"] == 0, counts
