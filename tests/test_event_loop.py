"""Lesson 04 on: one thread serves every client, with an event loop."""

import os
import resource
import select
import selectors
import socket
import time

import pytest

from figures import record
from harness import SHUTDOWN_NOTICE, CourseFailure, Server, first_difference
from test_sockets import socket_descriptors

pytestmark = pytest.mark.needs("event_loop")


def as_many_descriptors_as_allowed():
    """Raises this process's open-file limit to its hard limit: one descriptor per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@pytest.mark.builds("linux")  # /proc, and ten thousand descriptors on both sides
@pytest.mark.measures_resources
def test_ten_thousand_clients_at_once_are_served_by_one_thread(target, connections):
    count = 10000
    if as_many_descriptors_as_allowed() < count + 100:
        pytest.skip(f"this machine allows fewer than {count + 100} open files per process")
    server = Server(target, "--max-clients", str(count + 10), preexec=as_many_descriptors_as_allowed)
    opened = []
    try:
        keeper = server.connect()
        connections.append(keeper)
        keeper.round_trip(b"baseline")
        _, threads, rss = server.resources()
        for _ in range(count):
            opened.append(socket.create_connection((server.host, server.port)))
        # Every client sends a line, then all replies are awaited at once: one thread must serve them all.
        selector = selectors.DefaultSelector()
        reply = target.stage.reply(b"x")
        pending = {}
        for sock in opened:
            sock.sendall(b"x\n")
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            pending[sock] = b""
        end = time.monotonic() + target.deadline(30)
        while pending and time.monotonic() < end:
            for key, _ in selector.select(timeout=1):
                got = key.fileobj.recv(100)
                pending[key.fileobj] += got
                if not got or len(pending[key.fileobj]) >= len(reply):
                    assert pending[key.fileobj] == reply, f"a client got {pending[key.fileobj]!r}"
                    selector.unregister(key.fileobj)
                    del pending[key.fileobj]
        assert not pending, f"{len(pending)} of {count} clients got no reply\n{server.log()}"
        fds, now_threads, now_rss = server.resources()
        # The main thread serves them; the log's writer is the only other thread.
        assert now_threads <= threads and now_threads <= 2, (
            f"{now_threads} threads serve {count} clients (before them: {threads}): one thread, and the log's "
            f"writer, should\n{server.log()}")
        per_client = (now_rss - rss) / count
        assert per_client < 8, (f"{per_client:.1f} KiB of resident memory per connected client: a buffer per "
                                f"client that waits for nothing? ({rss} -> {now_rss} KiB)\n{server.log()}")
        record(target, "KiB per connected client, 10000 clients", round(per_client, 2))
    finally:
        for sock in opened:
            sock.close()
        server.stop()


def test_a_hundred_clients_are_served_by_the_threads_that_served_one(server, connections):
    """Under Wine too: the Windows build's one thread and its poller (WSAPoll) serve every client. The Wine
    process is a Linux process, so /proc counts its threads (Wine's own among them) as it counts the Linux
    build's; a thread per client would add a hundred."""
    first = server.connect()
    connections.append(first)
    first.round_trip(b"the first")
    _, threads, _ = server.resources()
    clients = [server.connect() for _ in range(100)]
    connections.extend(clients)
    for client in clients:
        client.send(b"x\n")
    for client in clients:
        client.expect(server.target.stage.reply(b"x"))
    _, now_threads, _ = server.resources()
    assert now_threads <= threads, (f"{now_threads} threads serve 101 clients, {threads} served one: the loop serves "
                                    f"them all, it starts no thread\n{server.log()}")


O_NONBLOCK = 0o4000  # the flag in /proc/PID/fdinfo/FD's "flags:" field (octal), as in <fcntl.h>


@pytest.mark.builds("linux")  # /proc
def test_the_listener_and_every_accepted_socket_are_non_blocking(server, connections, target):
    """One thread serves everyone, so no call may wait: a recv() or a send() on a blocking socket that is not
    ready (a client that reads slowly, or the stop's last read) would stop every client. Read from /proc while
    three clients are connected: each of the server's sockets has O_NONBLOCK."""
    clients = [server.connect() for _ in range(3)]
    connections.extend(clients)
    connected = server.stderr.wait_for_count(r" connected$", 3, target.deadline(5))
    assert connected == 3, f"{connected} of 3 connections were logged 'connected'\n{server.log()}"
    sockets = socket_descriptors(server.process.pid)
    blocking = sorted(fd for fd, flags in sockets.items() if not flags & O_NONBLOCK)
    if len(sockets) < 4 or blocking:
        hint = ("make each accepted socket non-blocking (sock_set_nonblocking()) in accept_clients(), before admit() "
                "watches it, as start_watching() does the listener: on a blocking socket a recv() or send() that is "
                "not ready stops the whole loop, and every client with it")
        raise CourseFailure(f"the server holds {len(sockets)} sockets (the listener and 3 clients expected); "
                            f"blocking among them: {blocking or 'none'}\nhint: {hint}\n{server.log()}", hint=hint)


@pytest.mark.builds("linux")  # /proc
def test_a_thousand_connections_at_once_are_accepted_by_one_thread(target, connections):
    """The listener is non-blocking: one wake-up accepts every connection that waits, until accept() would
    block, and no thread is started for any of them. Each is logged as it comes and as it goes."""
    count = 1000
    as_many_descriptors_as_allowed()
    server = Server(target, "--max-clients", str(count + 10), preexec=as_many_descriptors_as_allowed)
    opened = []
    try:
        _, threads, _ = server.resources()
        opened = [socket.create_connection((server.host, server.port)) for _ in range(count)]
        connected = server.stderr.wait_for_count(r" connected$", count, target.deadline(10))
        assert connected == count, f"{connected} of {count} connections were logged 'connected'\n{server.log()}"
        _, now_threads, _ = server.resources()
        assert now_threads <= threads, (f"{now_threads} threads with {count} clients connected, {threads} before "
                                        f"them: the loop accepts them, it starts no thread\n{server.log()}")
        for sock in opened:
            sock.close()
        gone = server.stderr.wait_for_count(rf" disconnected after \d+ {target.stage.counted}$", count, target.deadline(10))
        assert gone == count, (f"{gone} of {count} closed connections were logged 'disconnected': close a "
                               f"connection when recv() says the client has gone\n{server.log()}")
    finally:
        for sock in opened:
            sock.close()
        server.stop()


@pytest.mark.builds("linux")  # under Wine a send() never finds the buffer full: nothing would wait unsent
def test_a_client_that_stops_reading_is_paused_not_dropped_and_gets_every_reply_once_it_reads(start_server,
                                                                                             connections, target):
    """Backpressure: a client that sends lines and reads nothing is not closed (--send-timeout 0 here) but
    paused: past the high-water mark its session answers nothing more and the loop reads nothing more from it,
    so its lines wait in the kernel. Another client is served meanwhile, and once the first reads again, it
    gets one reply for every line it sent, in order."""
    server = start_server("--send-timeout", "0")
    other = server.connect()
    connections.append(other)
    other.round_trip(b"before")
    flooder = server.connect(receive_buffer=4096)
    connections.append(flooder)
    sent = flooder.flood_without_reading()
    other.round_trip(b"while it does not read")
    flooder.sock.setblocking(True)
    reply = target.stage.reply(b"x")
    want = sent // 2 * len(reply)
    flooder.sock.settimeout(target.deadline(5))
    got = 0
    hint = ("a paused session answers what it held as its output is sent (session_sent()), and the loop reads from "
            "that client again once it wants input; a send() that took part of the bytes, or none (would block), "
            "must leave the rest to be sent when the socket has room again")
    try:
        while got < want:
            chunk = flooder.sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except (socket.timeout, ConnectionError) as error:
        raise CourseFailure(f"after {got} of {want} bytes of replies: {error}\nhint: {hint}\n{server.log()}",
                            kind="timeout" if isinstance(error, socket.timeout) else "reset", hint=hint) from None
    if got != want:
        raise CourseFailure(f"a client that sent {sent // 2} lines without reading got {got} of the {want} bytes of "
                            f"their replies once it read, then the end of the stream: it must be paused, never "
                            f"dropped\nhint: {hint}\n{server.log()}", kind="closed", hint=hint)
    flooder.round_trip(b"and it is still served")
    assert not server.stderr.wait_for(r"error: .*closing", 0), f"a client was closed:\n{server.log()}"


def pipelined_requests(stage):
    """Requests that ask for megabytes of replies, and those replies: 1,000,000 lines of lesson 04's protocol
    (18 MB of "Hello from server\\n"), or 200 ECHO of 60,000 bytes in RESP (12 MB)."""
    if not stage.commands:
        return b"x\n" * 1000000, stage.reply(b"x") * 1000000
    payload = b"x" * 60000
    return (b"*2\r\n$4\r\nECHO\r\n$60000\r\n%s\r\n" % payload) * 200, (b"$60000\r\n%s\r\n" % payload) * 200


def send_what_fits(sock, data, sent):
    """Non-blocking sends of what is left of data, until the socket takes no more; returns how much has gone."""
    try:
        while sent < len(data):
            sent += sock.send(data[sent:sent + 65536])
    except BlockingIOError:
        pass
    return sent


@pytest.mark.any_protocol
@pytest.mark.builds("linux")  # the kernel's send queue; the Win32 twin cannot read it (docs/posix-vs-winsock.md)
def test_the_send_timeout_closes_a_client_that_stops_reading_never_one_that_reads_slowly(start_server, connections,
                                                                                         target):
    """--send-timeout closes a client that takes none of its replies, never one that takes them slowly. Three
    clients with a small receive window pipeline megabytes of replies' worth of requests: one reads 5 KB/s for four
    times the timeout (then as fast as it can), one reads 5 KB/s for twice the timeout and then stops, one never
    reads. Linux grows the server's send buffer to megabytes for each, and then reports room only once a good part
    of it is free: at 5 KB/s no send() finds room for minutes. When only a send() that succeeded stopped the send
    clock, the slow readers were closed after the timeout ("not reading its replies") while the kernel's queue for
    them shrank all along: progress is that queue shrinking (sock_unacked_bytes()), not only a send that succeeds."""
    timeout = 2
    server = start_server("--send-timeout", str(timeout))
    request, replies = pipelined_requests(target.stage)
    slow, stops, never = (server.connect(receive_buffer=4096) for _ in range(3))
    reads_for = {slow: 4 * timeout, stops: 2 * timeout, never: 0}  # seconds of reading 5 KB/s
    connections += list(reads_for)
    sent, received = {conn: 0 for conn in reads_for}, {conn: bytearray() for conn in reads_for}
    for conn in reads_for:
        conn.sock.setblocking(False)
    started = time.monotonic()

    def cut_off(conn, how):
        hint = ("a client whose replies leave the kernel's send queue is making progress even when no send() finds "
                "room: the send clock starts with that queue measured (kernel_queue()), and when it runs out, a queue "
                "that has shrunk since (still_taking()) starts it again instead of giving up")
        raise CourseFailure(f"the server closed a client reading its replies at 5 KB/s ({how}) after "
                            f"{len(received[conn])} bytes, {time.monotonic() - started:.1f} s after it sent its "
                            f"requests, with --send-timeout {timeout}: a client that reads slowly must be slowed, "
                            f"never dropped\nhint: {hint}\n{server.log()}", kind="closed", hint=hint)

    tick = started
    while tick < started + 4 * timeout:
        for conn, seconds in reads_for.items():
            reading = tick < started + seconds
            try:
                sent[conn] = send_what_fits(conn.sock, request, sent[conn])
                piece = conn.sock.recv(500) if reading else None  # 500 bytes a tenth of a second: 5 KB/s
            except BlockingIOError:
                piece = None
            except ConnectionError as error:
                if reading:
                    cut_off(conn, error)
                sent[conn] = len(request)  # closed after it stopped reading: the log says so, below
                continue
            if piece == b"":
                cut_off(conn, "end of stream")
            received[conn] += piece or b""
        tick += 0.1
        time.sleep(max(0.0, tick - time.monotonic()))  # the pace of a slow reader, not a wait for readiness
    slow_read = len(received[slow])
    assert slow_read >= 5000 * 4 * timeout // 2, (
        f"the slow reader got only {slow_read} bytes in {4 * timeout} s: the test reads 5 KB/s, and the server has "
        f"megabytes of replies for it\n{server.log()}")
    for conn, who in ((never, "a client that never reads"), (stops, "a client that stopped reading")):
        pattern = rf"127\.0\.0\.1:{conn.sock.getsockname()[1]} error: not reading its replies, closing$"
        assert server.stderr.wait_for(pattern, target.deadline(4)), (
            f"no log line matching {pattern!r} for {who}, {4 * timeout} s after it sent its requests: a send that "
            f"finds no room must give up after --send-timeout once the kernel's queue no longer shrinks (and the "
            f"timer be set again each time the send clock starts again)\n{server.log()}")
    # Then as fast as it can: every reply comes, whole and in order.
    end = time.monotonic() + target.deadline(30)
    while len(received[slow]) < len(replies) and time.monotonic() < end:
        more = [slow.sock] if sent[slow] < len(request) else []
        readable, writable, _ = select.select([slow.sock], more, [], 1)
        if writable:
            sent[slow] = send_what_fits(slow.sock, request, sent[slow])
        if readable:
            try:
                chunk = slow.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                break
            received[slow] += chunk
    where = first_difference(received[slow], replies)
    assert where is None, (f"the slow reader got {len(received[slow])} of {len(replies)} bytes of replies, which "
                           f"differ from those expected from byte {where}\n{server.log()}")
    pattern = rf"127\.0\.0\.1:{slow.sock.getsockname()[1]} error: "
    assert not server.stderr.wait_for(pattern, 0), f"the slow reader was closed with an error:\n{server.log()}"
    record(target, "bytes a 5 KB/s reader took in 4 send timeouts, never closed", slow_read)


def runnable_ns(pid):
    """Nanoseconds a process's main thread has spent runnable since it started: running, or waiting for a CPU
    (the first two fields of /proc/PID/task/PID/schedstat). Exact, and counted as it goes: the kernel's decaying
    average (se.avg.runnable_avg in .../sched), which this test read before, is brought up to date only when
    the thread runs again, so a loop asleep showed the average of its busy moment before sleeping, and failed
    the test on a busy machine. None when the kernel does not show it, or the process has gone."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as schedstat:
            on_cpu, waiting = schedstat.read().split()[:2]
        return int(on_cpu) + int(waiting)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None


@pytest.mark.builds("linux")  # /proc, and a client whose window stays shut
def test_the_loop_sleeps_while_the_stop_waits_for_a_client_that_never_reads(start_server, connections, target):
    """At the stop a client that never reads may not take its notice, and the loop then waits for it until the
    stop's second is over. It must sleep meanwhile: a descriptor left ready in the poller (the stop waker stays
    readable once raised) makes every wait return at once, and the loop spins through that second. A thread
    that spins is runnable all the time however busy the machine is (running, or waiting for a CPU); one asleep
    in a wait, almost never. Whether the stop must wait depends on the kernel: it sometimes takes the last of
    what the client is owed, and the stop ends at once; then a new server and client are tried, up to five
    times."""
    for attempt in range(1, 6):
        server = start_server("--send-timeout", "60")
        if runnable_ns(server.process.pid) is None:
            pytest.skip("this kernel has no /proc/PID/task/PID/schedstat")
        hog = server.connect(receive_buffer=1)  # the smallest window there is
        connections.append(hog)
        hog.flood_without_reading()  # the server's send buffer and the session's output full, its reads paused
        server.interrupt()
        assert server.stderr.wait_for(r"stopping: no new clients", target.deadline(2)), \
            f"attempt {attempt}: no 'stopping' line after Ctrl+C\n{server.log()}"
        seen = time.monotonic()
        first = last = None  # (seconds, runnable ns) at the first and the last reading
        while server.process.poll() is None and time.monotonic() - seen < target.deadline(3):
            time.sleep(0.05)  # reading a counter at a steady pace, not waiting for readiness
            if time.monotonic() - seen < 0.25:
                continue  # the stop's own work: telling the clients, sending what fits
            now = (time.monotonic(), runnable_ns(server.process.pid))
            if now[1] is not None:
                first, last = first or now, now
        if first is not None and last[0] - first[0] >= 0.2:
            break
        server.stop()  # it ended at once: the kernel took the rest, and the stop had nothing to wait for
    else:
        pytest.fail(f"in 5 attempts the stop never waited for the client that does not read: each time the kernel "
                    f"took all it was owed\n{server.log()}")
    share = (last[1] - first[1]) / 1e9 / (last[0] - first[0])
    if share > 0.5:
        hint = ("the loop spun through the stop's second instead of sleeping in its wait: a descriptor that stays "
                "ready is still watched. The stop waker stays readable once raised: begin_stop() must stop watching "
                "it (poller_remove()), and the listener it closes")
        raise CourseFailure(f"while the stop waited for a client that never reads, the loop's thread was runnable "
                            f"{share:.0%} of {last[0] - first[0]:.2f} s (attempt {attempt})\n"
                            f"hint: {hint}\n{server.log()}", hint=hint)


@pytest.mark.builds("linux")  # thousands of descriptors on both sides
def test_ctrl_c_with_two_thousand_clients_on_one_thread_tells_each_and_ends_within_the_stops_second(target):
    """The stop reaches the loop as one more readable descriptor: it stops accepting, queues the notice for
    every client, sends what fits, and closes each client as soon as it has it all; none is waited on past
    the stop's second (NET_STOP_SEND_WAIT_MS). The same thread serves them all, and stops them all."""
    count = 2000
    as_many_descriptors_as_allowed()
    server = Server(target, "--max-clients", str(count + 10), preexec=as_many_descriptors_as_allowed)
    opened = []
    try:
        _, threads, _ = server.resources()
        opened = [socket.create_connection((server.host, server.port)) for _ in range(count)]
        connected = server.stderr.wait_for_count(r" connected$", count, target.deadline(10))
        assert connected == count, f"{connected} of {count} connections were logged 'connected'\n{server.log()}"
        _, now_threads, _ = server.resources()
        assert now_threads <= threads, (f"{now_threads} threads with {count} clients connected, {threads} before "
                                        f"them: one loop serves them, and stops them\n{server.log()}")
        started = time.monotonic()
        server.interrupt()
        code = server.wait(target.deadline(3))
        took = time.monotonic() - started
        assert code == 0, (f"the server exited {code} (None: still running) {took:.1f} s after Ctrl+C with {count} "
                           f"idle clients connected, expected 0 within the stop's second and some margin: does the "
                           f"stop wake the loop, and each client close once its notice is out?\n{server.log()}")
        told = 0
        for sock in opened:
            sock.settimeout(target.deadline(2))
            received = b""
            while True:
                chunk = sock.recv(100)
                if not chunk:
                    break
                received += chunk
            told += received == SHUTDOWN_NOTICE
        assert told == count, f"{told} of {count} clients got the notice and then the end of the stream\n" \
                              f"{server.log()}"
        record(target, f"Ctrl+C with {count} clients connected (s)", round(took, 2))
    finally:
        for sock in opened:
            sock.close()
        server.stop()
