"""Lesson 05 on: one client, with requests any Redis client may send, can neither freeze the others nor leave the
server big; and a client that reads is slowed, never cut off. Found with independent clients: each case below
was minutes of frozen service or hundreds of MiB kept for good before the session owned its output.

The bounds are generous (ten times what this server takes here, and more than Redis takes); `make bench` puts the
figures next to Redis's, measured in the same run."""

import select
import socket
import time

import pytest

from figures import record
from harness import Server
from test_event_loop import as_many_descriptors_as_allowed

pytestmark = [pytest.mark.needs("commands"), pytest.mark.builds("linux")]  # /proc; Wine's sends never fill


def resp(*words):
    out = b"*%d\r\n" % len(words)
    for word in words:
        out += b"$%d\r\n%s\r\n" % (len(word), word)
    return out


def ping_time(conn):
    """Seconds for one PING round trip on an open harness connection."""
    started = time.monotonic()
    conn.send(b"PING\r\n")
    conn.expect(b"+PONG\r\n")
    return time.monotonic() - started


def read_exactly(sock, size, timeout):
    """Reads size bytes from a blocking socket, failing with how many came."""
    sock.settimeout(timeout)
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(1 << 20, size - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


@pytest.mark.measures_resources
def test_a_client_with_two_hundred_thousand_channels_costs_little_cpu_and_freezes_nobody_when_it_leaves(
        start_server, connections, target):
    """200 SUBSCRIBE requests of 1,000 distinct channels each, then the client closes. A subscription found by a
    search of the client's channels made this quadratic: 9.5 s of CPU to subscribe, and every other client
    frozen 14.8 s at the close (Redis: 0.25 s and 0.10 s)."""
    server = start_server("--max-subscriptions", "200000")
    other = server.connect()
    connections.append(other)
    ping_time(other)
    cpu_before = server.cpu_seconds()
    subscriber = socket.create_connection((server.host, server.port))
    batch = b"".join(resp(b"SUBSCRIBE", *[b"ch:%d:%d" % (i, j) for j in range(1000)]) for i in range(200))
    subscriber.sendall(batch)
    confirmations = b"".join(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\nch:%d:%d\r\n:%d\r\n" % (
        len(b"ch:%d:%d" % (i, j)), i, j, i * 1000 + j + 1) for i in range(200) for j in range(1000))
    got = read_exactly(subscriber, len(confirmations), target.deadline(30))
    assert got == confirmations, f"{len(got)} of {len(confirmations)} bytes of confirmations\n{server.log()}"
    subscribe_cpu = server.cpu_seconds() - cpu_before
    subscriber.close()
    frozen = ping_time(other)  # answered only once the server has taken the 200,000 subscriptions apart
    assert subscribe_cpu < 3.0, f"200,000 subscriptions took {subscribe_cpu:.2f} s of the server's CPU"
    assert frozen < 2.0, f"another client waited {frozen:.2f} s for PONG while the subscriber left\n{server.log()}"
    record(target, "CPU for 200,000 subscriptions (s)", round(subscribe_cpu, 2))
    record(target, "PING while a 200,000-channel subscriber leaves (s)", round(frozen, 3))


@pytest.mark.measures_resources
def test_a_burst_of_requests_from_a_client_that_never_reads_leaves_the_server_small(target, connections):
    """With 1,000 idle clients, one sends 5,041 CLIENT LIST in one 64 KiB write and reads nothing. Replies built
    for the whole write at once took the server from 2.6 MB to 308 MB, for good, and stalled the others 2 s."""
    count = 1000
    as_many_descriptors_as_allowed()
    server = Server(target, "--max-clients", str(count + 10), preexec=as_many_descriptors_as_allowed)
    idle = []
    try:
        other = server.connect()
        connections.append(other)
        ping_time(other)
        idle = [socket.create_connection((server.host, server.port)) for _ in range(count)]
        ping_time(other)
        _, _, rss_before = server.resources()
        flooder = server.connect(receive_buffer=4096)
        connections.append(flooder)
        burst = b"CLIENT LIST\r\n" * 5041
        flooder.sock.sendall(burst)
        stalled = max(ping_time(other) for _ in range(20))
        _, _, rss_during = server.resources()
        flooder.close()
        for sock in idle:
            sock.close()
        idle = []
        ping_time(other)
        _, _, rss_after = server.resources()
        assert rss_during - rss_before < 16 * 1024, (
            f"a client that sent 5,041 CLIENT LIST and read nothing took the server from {rss_before} to "
            f"{rss_during} KiB: requests must wait while its output is over the high-water mark\n{server.log()}")
        assert rss_after - rss_before < 8 * 1024, (
            f"after every client left the server still held {rss_after} KiB ({rss_before} before): an idle "
            f"buffer must give its memory back\n{server.log()}")
        assert stalled < 0.5, f"another client waited {stalled:.2f} s for PONG during the burst"
        record(target, "server growth, 5,041 CLIENT LIST unread (KiB)", rss_during - rss_before)
        record(target, "slowest PING beside that burst (s)", round(stalled, 3))
    finally:
        for sock in idle:
            sock.close()
        server.stop()


def test_a_client_that_reads_gets_every_reply_of_a_long_pipeline_however_big(start_server, target, connections):
    """With 100 idle clients, one pipelines 5,000 CLIENT LIST (some 40 MB of replies) and reads as fast as it can.
    It was cut off mid-reply after 731 ("leaves more than 1048576 bytes of replies unread"); it must be slowed down
    instead, and get them all."""
    server = start_server()
    idle = [socket.create_connection((server.host, server.port)) for _ in range(100)]
    try:
        reader = server.connect()
        connections.append(reader)
        ping_time(reader)  # every idle client is in CLIENT LIST now
        reader.sock.setblocking(False)
        request = b"CLIENT LIST\r\n" * 5000
        sent, got, replies, pending = 0, 0, 0, b""
        end = time.monotonic() + target.deadline(60)
        while replies < 5000 and time.monotonic() < end:
            readable, writable, _ = select.select([reader.sock], [reader.sock] if sent < len(request) else [], [], 1)
            if writable:
                try:
                    sent += reader.sock.send(request[sent:sent + 65536])
                except BlockingIOError:
                    pass
            if readable:
                chunk = reader.sock.recv(1 << 20)
                assert chunk, f"the server closed the reader after {replies} of 5,000 replies\n{server.log()}"
                got += len(chunk)
                pending += chunk
                while pending.startswith(b"$"):  # count whole bulk replies
                    header_end = pending.index(b"\r\n") if b"\r\n" in pending else -1
                    if header_end < 0:
                        break
                    size = int(pending[1:header_end])
                    if len(pending) < header_end + 2 + size + 2:
                        break
                    pending = pending[header_end + 2 + size + 2:]
                    replies += 1
        assert replies == 5000, f"{replies} of 5,000 replies came ({got} bytes)\n{server.log()}"
        assert not server.stderr.wait_for(r"error: .*closing", 0), f"a client was closed:\n{server.log()}"
        record(target, "bytes of 5,000 pipelined CLIENT LIST, all read", got)
    finally:
        for sock in idle:
            sock.close()


def test_unsubscribing_from_many_channels_at_once_reaches_a_reader_whole(start_server, target, connections):
    """UNSUBSCRIBE without a channel answers once per channel: 200,000 confirmations, some 9 MB, in one reply to
    one request, to a client with a small receive window. It must get them all, however big they are next to
    --max-output: the limit is for messages nobody asked for, not for replies."""
    server = start_server("--max-subscriptions", "200000")
    client = server.connect(receive_buffer=4096)
    connections.append(client)
    channels = 200000
    client.sock.sendall(b"".join(resp(b"SUBSCRIBE", *[b"c%d" % (i * 1000 + j) for j in range(1000)])
                                 for i in range(channels // 1000)))
    subscribed = b"".join(b"*3\r\n$9\r\nsubscribe\r\n$%d\r\nc%d\r\n:%d\r\n" % (len(b"c%d" % n), n, n + 1)
                          for n in range(channels))
    got = read_exactly(client.sock, len(subscribed), target.deadline(30))
    assert got == subscribed, f"{len(got)} of {len(subscribed)} bytes of confirmations\n{server.log()}"
    client.sock.sendall(b"UNSUBSCRIBE\r\n")
    left = b"".join(b"*3\r\n$11\r\nunsubscribe\r\n$%d\r\nc%d\r\n:%d\r\n" % (len(b"c%d" % n), n, channels - n - 1)
                    for n in range(channels))
    got = read_exactly(client.sock, len(left), target.deadline(30))
    assert got == left, f"{len(got)} of {len(left)} bytes of the UNSUBSCRIBE confirmations\n{server.log()}"
    client.sock.settimeout(target.deadline(5))
    client.send(b"PING\r\n")
    client.expect(b"+PONG\r\n")
