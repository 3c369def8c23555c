"""Lesson 08 on: the web port's HTTP/1.1 and WebSocket (RFC 6455), case by case over raw sockets, in the spirit of
the Autobahn testsuite: the handshake and its errors, the pages, framing, fragments, UTF-8, control frames, the close
handshake, the limits, the session behind the WebSocket; then clients nobody here wrote (python3-websockets, Node's
ws, over ws:// and wss://) and hostile ones (heads that never end, frames half sent, pings never read).

Every frame a test sends is built here (frame()), masked as a client's must be; every frame the server sends is
checked as it is read (read_frame()): FIN'd or not, never masked, no RSV bit, its length in the fewest bytes. The
server's replies are RESP cut anywhere across binary messages: expect_replies() puts them back together.

Most tests share one server per build (the `web` fixture), each with connections of its own, as the clients of one
server are; a test that needs options of its own, or stops the server, starts its own."""

import asyncio
import base64
import hashlib
import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

import pytest

import harness
from harness import CourseFailure, Server, show
from test_clients import CLIENTS, missing
from test_commands import SHUTDOWN_ERROR, redis_cli, resp
from test_tls import certs

pytestmark = [pytest.mark.needs("commands"), pytest.mark.needs("browser")]

HTTP_LISTENING = re.compile(r"listening for HTTP on (\S+):(\d+)")
HTTPS_LISTENING = re.compile(r"listening for HTTPS on (\S+):(\d+)")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, 1.3
EXAMPLE_KEY, EXAMPLE_ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455, 1.3's own
MAX_HEAD = 8192  # the server's limit on an HTTP request's line and headers

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
RSV1, RSV2, RSV3 = 4, 2, 1  # frame(rsv=...): the three bits after FIN, as a number


# --- the protocol's bytes, built and checked here -----------------------------------------------------------------


def accept_of(key):
    """Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), computed here, not by the server."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def masked(payload, key):
    """payload XOR the 4-byte key repeated (RFC 6455, 5.3), fast for big payloads."""
    n = len(payload)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def frame_head(opcode, length, fin=True, rsv=0, mask=True, form=None, key=None):
    """A frame's header: FIN, RSV, opcode, MASK, the length in `form` (7, 16 or 64 bits; by default the fewest
    bytes, as the RFC demands), then the masking key if masked. Returns (head, key)."""
    form = form or (7 if length < 126 else 16 if length <= 0xFFFF else 64)
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    bit = 0x80 if mask else 0
    if form == 7:
        head = bytes([first, bit | length])
    elif form == 16:
        head = bytes([first, bit | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([first, bit | 127]) + length.to_bytes(8, "big")
    key = (key or os.urandom(4)) if mask else b""
    return head + key, key


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, form=None):
    """A whole client frame, masked unless mask=False."""
    head, key = frame_head(opcode, len(payload), fin, rsv, mask, form)
    return head + (masked(payload, key) if mask else payload)


def close_payload(code, reason=b""):
    return code.to_bytes(2, "big") + reason


def echo_request(total):
    """An ECHO request in RESP of exactly `total` bytes, and its reply."""
    for digits in range(1, 10):
        size = total - 19 - digits  # *2\r\n $4\r\nECHO\r\n $<size>\r\n <size bytes> \r\n
        if size >= 0 and len(str(size)) == digits:
            word = bytes(b"abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(size))
            request = resp(b"ECHO", word)
            assert len(request) == total
            return request, b"$%d\r\n%s\r\n" % (size, word)
    raise ValueError(f"no ECHO request is exactly {total} bytes")


def echo_requests(total, first=10000):
    """Two ECHO requests in RESP of exactly `total` bytes together (no bulk string longer than total - first),
    and their replies."""
    one, one_reply = echo_request(first)
    two, two_reply = echo_request(total - first)
    return one + two, one_reply + two_reply


def parse_resp(data, at=0):
    """One RESP2 value from data[at:]: (value, end), or None while it is not whole. Simple strings are str, errors
    RespError, integers int, bulk strings bytes (None for the null one), arrays lists."""
    line_end = data.find(b"\r\n", at)
    if line_end < 0:
        return None
    kind, line, after = data[at:at + 1], data[at + 1:line_end], line_end + 2
    if kind == b"+":
        return line.decode(), after
    if kind == b"-":
        return RespError(line.decode()), after
    if kind == b":":
        return int(line), after
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, after
        if len(data) < after + size + 2:
            return None
        return data[after:after + size], after + size + 2
    if kind == b"*":
        items = []
        for _ in range(int(line)):
            got = parse_resp(data, after)
            if got is None:
                return None
            item, after = got
            items.append(item)
        return items, after
    raise ValueError(f"not RESP at byte {at}: {show(data[at:at + 40])}")


class RespError(str):
    pass


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    @property
    def code(self):
        """A close frame's code, or None when it has no payload."""
        return int.from_bytes(self.payload[:2], "big") if len(self.payload) >= 2 else None

    @property
    def reason(self):
        return self.payload[2:]

    def __str__(self):
        names = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}
        return f"{names.get(self.opcode, self.opcode)} frame{'' if self.fin else ' (FIN 0)'} {show(self.payload)}"


@dataclass
class Response:
    status: int
    reason: str
    headers: list  # (name in lower case, value), in order
    body: bytes
    raw: bytes

    def header(self, name):
        values = [value for key, value in self.headers if key == name.lower()]
        return values[0] if values else None

    def has(self, name):
        return any(key == name.lower() for key, _ in self.headers)


def upgrade_request(host, path="/ws", key=EXAMPLE_KEY, replace=(), drop=(), add=(), request_line=None):
    """An upgrade request, as a browser sends it but for what replace (header: value), drop (headers) and add
    ((header, value) pairs, after the others) change."""
    headers = {"Host": host, "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key,
               "Sec-WebSocket-Version": "13"}
    headers.update(dict(replace))
    lines = [request_line or f"GET {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items() if name not in drop]
    lines += [f"{name}: {value}" for name, value in add]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def get_request(host, path="/"):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test_websocket\r\nAccept: */*\r\n\r\n".encode()


# --- a client over a raw socket, whose failures say what was sent and what came -----------------------------------


class Client:
    """One TCP connection to the web port (or any port), speaking HTTP then WebSocket byte by byte as a test says.
    Every wait has a deadline; a failure names the step, what was sent and received, and the server's log."""

    def __init__(self, server, port=None, opened=None, timeout=5, receive_buffer=None):
        self.server = server
        self.port = port or server.http_port
        self.host = f"127.0.0.1:{self.port}"
        self.timeout = server.target.reply_deadline(timeout)
        self.sent = b""
        self.received = b""
        self.pending = b""  # received, not yet taken by a reader
        self.stream = b""  # the RESP stream put together from binary messages, not yet expected
        self.sock = socket.socket(socket.AF_INET)
        if receive_buffer:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(self.timeout)
        try:
            self.sock.connect(("127.0.0.1", self.port))
        except OSError as error:
            self.fail("connect", f"could not connect to port {self.port}: {error}", kind="refused")
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if opened is not None:
            opened.append(self)

    def fail(self, step, problem, expected=None, kind="differs", hint=None):
        __tracebackhide__ = True
        message = [f"step: {step}", problem, f"sent so far:     {show(self.sent[-2000:])}"]
        if expected is not None:
            message.append(f"expected:        {expected}")
        message.append(f"received so far: {show(self.received[-2000:])}")
        if hint:
            message.append(f"hint: {hint}")
        message.append("reread: lessons/08-browser/ws.h (the rules it enforces) and RFC 6455")
        message.append(self.server.log())
        failure = CourseFailure("\n".join(message), kind, hint)
        failure.__suppress_context__ = True
        raise failure

    def close(self):
        self.sock.close()

    # Bytes.

    def send(self, data, step="send"):
        __tracebackhide__ = True
        try:
            self.sock.sendall(data)
        except OSError as error:
            self.fail(step, f"sending {show(data)} failed: {error}", kind="reset")
        self.sent += data

    def drip(self, data):
        """One send per byte, each sent only once the server has read the one before: every recv() of the server
        gets exactly one byte."""
        __tracebackhide__ = True
        for i in range(len(data)):
            self.send(data[i:i + 1])
            self.wait_until_read()

    def wait_until_read(self):
        """Waits until the server's socket holds no unread byte (harness.wait_until_server_read())."""
        __tracebackhide__ = True
        queued = harness.wait_until_server_read(self.sock, self.port, self.timeout)
        if queued is not None:
            self.fail("wait for the server to read what was sent", f"{queued} bytes still unread", kind="timeout")

    def _receive(self, step, expected):
        """More bytes into self.pending; fails on the deadline, a reset or the end of the stream."""
        __tracebackhide__ = True
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            self.fail(step, f"nothing more came within {self.timeout:.0f} s", expected, "timeout")
        except OSError as error:
            self.fail(step, f"the connection broke: {error}", expected, "reset")
        if not chunk:
            self.fail(step, "the server closed the connection", expected, "closed")
        self.received += chunk
        self.pending += chunk

    def take(self, size, step, expected):
        __tracebackhide__ = True
        while len(self.pending) < size:
            self._receive(step, expected)
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def expect_eof(self, step="wait for the server to end the TCP connection", reset_allowed=False, hint=None):
        """The server ends the connection (FIN; a reset too when reset_allowed) and sends nothing more first."""
        __tracebackhide__ = True
        if self.pending:
            self.fail(step, f"bytes came that were not expected: {show(self.pending)}", "(end of stream)")
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            self.fail(step, f"the connection was still open after {self.timeout:.0f} s", "(end of stream)",
                      "timeout", hint)
        except ConnectionResetError:
            if not reset_allowed:
                self.fail(step, "the server reset the connection instead of ending it", "(end of stream: FIN)",
                          "reset", hint)
            chunk = b""
        if chunk:
            self.received += chunk
            self.fail(step, f"expected the end of the stream, but more bytes came: {show(chunk)}", "(end of stream)",
                      hint=hint)

    def expect_silence(self, seconds, step="check that nothing comes"):
        __tracebackhide__ = True
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            chunk = None
        except OSError as error:
            self.fail(step, f"the connection broke: {error}", "(nothing)", "reset")
        finally:
            self.sock.settimeout(self.timeout)
        if chunk is not None:
            self.received += chunk
            self.fail(step, f"expected nothing for {seconds} s, but this came: {show(chunk)}" if chunk else
                      f"expected nothing for {seconds} s, but the server closed the connection", "(nothing)",
                      "differs" if chunk else "closed")

    # HTTP.

    def read_response(self, step="read the HTTP response"):
        """One HTTP response: its head, then its body by its Content-Length (what follows stays pending)."""
        __tracebackhide__ = True
        while b"\r\n\r\n" not in self.pending:
            if len(self.pending) > 65536:
                self.fail(step, "a response head of more than 64 KiB")
            self._receive(step, "an HTTP response")
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        match = re.fullmatch(r"HTTP/1\.1 (\d{3}) (.*)", lines[0])
        if match is None:
            self.fail(step, f"not an HTTP/1.1 status line: {lines[0]!r}", "HTTP/1.1 NNN Reason")
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                self.fail(step, f"a malformed header line in the response: {line!r}")
            headers.append((name.lower(), value.strip()))
        response = Response(int(match.group(1)), match.group(2), headers, b"", head + b"\r\n\r\n")
        if response.status != 101:
            length = response.header("Content-Length")
            if length is None or not length.isdigit():
                self.fail(step, f"a {response.status} response without a Content-Length: {show(response.raw)}")
            response.body = self.take(int(length), step, f"a body of {length} bytes")
            response.raw += response.body
        return response

    def request(self, data, step="send an HTTP request and read its response"):
        self.send(data, step)
        return self.read_response(step)

    def expect_status(self, data, status, step="send an HTTP request that must fail"):
        """Sends a request and demands an answer with this status, then the end of the connection."""
        __tracebackhide__ = True
        response = self.request(data, step)
        if response.status != status:
            self.fail(step, f"the response was {response.status} {response.reason}, not {status}",
                      f"HTTP/1.1 {status} ...")
        return response

    def upgrade(self, path="/ws", key=None, replace=(), drop=(), add=(), step="the WebSocket handshake"):
        """The opening handshake; checks the 101 and its Sec-WebSocket-Accept against one computed here."""
        __tracebackhide__ = True
        key = key or new_key()
        response = self.request(upgrade_request(self.host, path, key, replace, drop, add), step)
        self.check_switched(response, key, step)
        return response

    def check_switched(self, response, key, step):
        __tracebackhide__ = True
        if response.status != 101:
            self.fail(step, f"the answer was {response.status} {response.reason}: {show(response.raw)}",
                      "HTTP/1.1 101 Switching Protocols")
        upgrade, connection = response.header("Upgrade") or "", response.header("Connection") or ""
        if upgrade.lower() != "websocket" or "upgrade" not in [t.strip().lower() for t in connection.split(",")]:
            self.fail(step, f"a 101 without 'Upgrade: websocket' and 'Connection: Upgrade': {show(response.raw)}")
        if response.header("Sec-WebSocket-Accept") != accept_of(key):
            self.fail(step, f"Sec-WebSocket-Accept: {response.header('Sec-WebSocket-Accept')!r} for the key {key!r}",
                      f"{accept_of(key)!r} (base64 of SHA-1 of the key and the RFC's GUID)")

    # WebSocket.

    def read_frame(self, step="read a frame"):
        """One frame from the server, checked as the RFC wants a server's: not masked, no RSV bit, a known opcode,
        control frames whole and short, the length in the fewest bytes."""
        __tracebackhide__ = True
        first, second = self.take(2, step, "a frame")
        fin, rsv, opcode, length = bool(first & 0x80), (first >> 4) & 7, first & 0x0F, second & 0x7F
        if second & 0x80:
            self.fail(step, "the server masked a frame: a server's frames must not be (RFC 6455, 5.1)")
        if rsv:
            self.fail(step, f"the server set RSV bits {rsv:03b}, with no extension agreed")
        if opcode not in (CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG):
            self.fail(step, f"the server sent a frame of reserved opcode {opcode}")
        if length == 126:
            length = int.from_bytes(self.take(2, step, "a 16-bit length"), "big")
            if length < 126:
                self.fail(step, f"the server put a length of {length} in 16 bits: not the fewest bytes")
        elif length == 127:
            length = int.from_bytes(self.take(8, step, "a 64-bit length"), "big")
            if length <= 0xFFFF or length >> 63:
                self.fail(step, f"the server put a length of {length} in 64 bits")
        if opcode >= CLOSE and (not fin or length > 125):
            self.fail(step, f"the server sent a control frame fragmented or of {length} bytes")
        return Frame(fin, rsv, opcode, self.take(length, step, f"a payload of {length} bytes"))

    def send_frame(self, opcode, payload=b"", **options):
        self.send(frame(opcode, payload, **options))

    def send_message(self, data, opcode=BINARY):
        self.send(frame(opcode, data))

    def command(self, *words, opcode=BINARY):
        """A request in RESP, as one message."""
        self.send_message(resp(*words), opcode)

    def next_data(self, step, hint=None):
        """The payload of the next binary frame (the server's replies come in nothing else, whole frames)."""
        __tracebackhide__ = True
        got = self.read_frame(step)
        if got.opcode != BINARY or not got.fin:
            self.fail(step, f"while waiting for replies, a {got} came", "binary frames, FIN set, holding the replies",
                      kind="closed" if got.opcode == CLOSE else "differs", hint=hint)
        return got.payload

    def expect_replies(self, expected, step="wait for the replies", hint=None):
        """The RESP stream, put together from binary messages cut anywhere, holds expected next. Each byte is
        compared once, as it comes (a flood's replies are megabytes in tens of thousands of frames)."""
        __tracebackhide__ = True
        stream = bytearray(self.stream)
        checked = 0
        while True:
            end = min(len(stream), len(expected))
            if stream[checked:end] != expected[checked:end]:
                at = harness.first_difference(stream[:end], expected)
                self.fail(step, f"the replies differ from byte {at}: {show(stream[:end], at)}", show(expected, at),
                          hint=hint)
            checked = end
            if checked == len(expected):
                break
            stream += self.next_data(step, hint)
        self.stream = bytes(stream[len(expected):])

    def read_reply(self, step="read a reply"):
        """The next whole RESP value of the stream."""
        __tracebackhide__ = True
        while True:
            got = parse_resp(self.stream)
            if got is not None:
                value, end = got
                self.stream = self.stream[end:]
                return value
            self.stream += self.next_data(step)

    def round_trip(self, step="PING over the WebSocket"):
        """Seconds for a PING command and its +PONG."""
        started = time.monotonic()
        self.command(b"PING")
        self.expect_replies(b"+PONG\r\n", step)
        return time.monotonic() - started

    def expect_frame(self, opcode, payload, step):
        __tracebackhide__ = True
        got = self.read_frame(step)
        if (got.opcode, got.fin, got.payload) != (opcode, True, payload):
            self.fail(step, f"a {got} came", str(Frame(True, 0, opcode, payload)))

    def expect_close(self, code, step=None, reason=None, then_eof=True, hint=None):
        """The server's next frame is a close with this code (and reason, if given), and no replies come first;
        then, by default, the server ends TCP."""
        __tracebackhide__ = True
        step = step or f"wait for a close frame with code {code}"
        if self.stream:
            self.fail(step, f"replies came before the close: {show(self.stream)}")
        got = self.read_frame(step)
        if got.opcode != CLOSE or got.code != code or (reason is not None and got.reason != reason):
            self.fail(step, f"a {got} came" + (f" (code {got.code})" if got.opcode == CLOSE else ""),
                      f"a close frame with code {code}" + (f" and reason {reason!r}" if reason is not None else ""),
                      hint=hint)
        if got.reason:
            try:
                got.reason.decode("utf-8")
            except UnicodeDecodeError:
                self.fail(step, f"the close's reason is not UTF-8: {show(got.reason)}")
        if then_eof:
            self.expect_eof(f"after its close ({code}), the server ends the TCP connection")
        return got


def ws_client(server, opened, **options):
    """A client whose handshake is done."""
    client = Client(server, opened=opened, **options)
    client.upgrade()
    return client


# --- servers -----------------------------------------------------------------------------------------------------


def web_port(server, pattern, name):
    found = server.stdout.wait_for(pattern.pattern, server.target.deadline(5))
    if found is None:
        raise CourseFailure(f"the server did not say 'listening for {name} on HOST:PORT'\n{server.log()}",
                            kind="start")
    return int(found.group(2))


def start_web(start, target, *extra, https=False):
    """A server with its HTTP port (and its HTTPS port, with the stage's development certificate), started by
    start (start_server, or Server); returns it with .http_port (and .https_port) set."""
    if https:
        folder = certs(target)
        extra = ("--https-port", "0", "--tls-cert-file", target.path_argument(folder / "server.crt"),
                 "--tls-key-file", target.path_argument(folder / "server.key"), *extra)
    server = start("--http-port", "0", *extra)
    server.http_port = web_port(server, HTTP_LISTENING, "HTTP")
    if https:
        server.https_port = web_port(server, HTTPS_LISTENING, "HTTPS")
    return server


@pytest.fixture(scope="module")
def shared_web(target):
    """One server with an HTTP port for the module's tests of this build (each test its own connections)."""
    server = start_web(lambda *args: Server(target, *args), target)
    yield server
    server.stop()


@pytest.fixture
def web(shared_web, request):
    """The shared server, checked alive; its log goes with any failure of the test."""
    request.node.course_servers = [shared_web]
    if shared_web.process.poll() is not None:
        raise CourseFailure(f"the shared server has ended (a test before this one?)\n{shared_web.log()}",
                            kind="exit")
    return shared_web


@pytest.fixture
def opened():
    """Clients opened through this list are closed at the end of the test, pass or fail."""
    clients = []
    yield clients
    for client in clients:
        client.close()


# === 1. The handshake, and the pages ==============================================================================


def test_the_rfcs_example_key_gets_the_rfcs_example_accept(web, opened):
    assert accept_of(EXAMPLE_KEY) == EXAMPLE_ACCEPT  # this file's own computation, against RFC 6455, 1.3
    client = Client(web, opened=opened)
    response = client.upgrade(key=EXAMPLE_KEY)
    assert response.header("Sec-WebSocket-Accept") == EXAMPLE_ACCEPT
    client.command(b"PING")
    client.expect_replies(b"+PONG\r\n")


BAD_HANDSHAKES = [
    # (id, request from the Host value, status)
    ("no-connection", lambda host: upgrade_request(host, drop=["Connection"]), 400),
    ("connection-keep-alive-only", lambda host: upgrade_request(host, replace={"Connection": "keep-alive"}), 400),
    # Without "Upgrade: websocket" it is no upgrade, but a GET of /ws, which is no page (docs/protocol.md).
    ("no-upgrade-is-a-get-of-no-page", lambda host: upgrade_request(host, drop=["Upgrade"]), 404),
    ("upgrade-on-another-path", lambda host: upgrade_request(host, path="/chat"), 404),
    ("upgrade-on-a-subpath", lambda host: upgrade_request(host, path="/ws/x"), 404),
    ("version-8", lambda host: upgrade_request(host, replace={"Sec-WebSocket-Version": "8"}), 426),
    ("no-version", lambda host: upgrade_request(host, drop=["Sec-WebSocket-Version"]), 426),
    ("no-key", lambda host: upgrade_request(host, drop=["Sec-WebSocket-Key"]), 400),
    ("key-of-15-bytes", lambda host: upgrade_request(host, key=base64.b64encode(b"k" * 15).decode()), 400),
    ("key-of-17-bytes", lambda host: upgrade_request(host, key=base64.b64encode(b"k" * 17).decode()), 400),
    ("key-not-base64", lambda host: upgrade_request(host, key="!!!!!!!!!!!!!!!!!!!!!!=="), 400),
    ("two-keys", lambda host: upgrade_request(host, add=[("Sec-WebSocket-Key", new_key())]), 400),
    ("post", lambda host: upgrade_request(host, request_line="POST /ws HTTP/1.1"), 405),
    ("http-1.0", lambda host: upgrade_request(host, request_line="GET /ws HTTP/1.0"), 505),
    ("no-host", lambda host: upgrade_request(host, drop=["Host"]), 400),
    ("foreign-origin", lambda host: upgrade_request(host, add=[("Origin", "http://evil.example")]), 403),
    ("origin-of-another-port", lambda host: upgrade_request(host, add=[("Origin", "http://127.0.0.1:1")]), 403),
    ("origin-null", lambda host: upgrade_request(host, add=[("Origin", "null")]), 403),
    ("origin-with-a-path", lambda host: upgrade_request(host, add=[("Origin", f"http://{host}/x")]), 403),
    ("folded-header", lambda host: upgrade_request(host).replace(b"Upgrade: websocket\r\n",
                                                                  b"Upgrade:\r\n websocket\r\n"), 400),
    ("header-without-colon", lambda host: upgrade_request(host, add=[("X-No-Colon", "")]).replace(
        b"X-No-Colon: ", b"X-No-Colon"), 400),
    ("request-line-of-two-words", lambda host: upgrade_request(host, request_line="GET /ws"), 400),
    ("nul-in-the-head", lambda host: upgrade_request(host, add=[("X-Nul", "a\0b")]), 400),
]


@pytest.mark.parametrize("make_request, status", [(row[1], row[2]) for row in BAD_HANDSHAKES],
                         ids=[row[0] for row in BAD_HANDSHAKES])
def test_a_bad_handshake_gets_its_http_error_and_the_connection_ends(web, opened, make_request, status):
    client = Client(web, opened=opened)
    response = client.expect_status(make_request(client.host), status)
    if status == 426:
        assert response.header("Sec-WebSocket-Version") == "13", \
            f"a 426 must say the version spoken (RFC 6455, 4.4): {show(response.raw)}"
    assert response.header("Connection") == "close", f"an error that ends the connection says so: {show(response.raw)}"
    assert int(response.header("Content-Length")) == len(response.body) > 0, "an error says why, in a line of text"
    assert not response.has("Sec-WebSocket-Accept")
    client.expect_eof(hint="after an HTTP error what follows cannot be trusted to be read right: the server ends")


def test_an_upgrade_on_ws_with_a_query_is_accepted(web, opened):
    """Only GET /ws is the WebSocket (404 elsewhere, in the table above), its query aside."""
    client = Client(web, opened=opened)
    client.upgrade(path="/ws?from=test")
    client.command(b"PING")
    client.expect_replies(b"+PONG\r\n")


@pytest.mark.parametrize("size, status", [(MAX_HEAD - 200, 101), (MAX_HEAD + 200, 431)], ids=["under", "over"])
def test_a_head_over_8192_bytes_gets_431(web, opened, size, status):
    client = Client(web, opened=opened)
    request = upgrade_request(client.host)
    filler = size - (len(request) - 4) - len("\r\nX-Filler: ")
    request = request[:-2] + b"X-Filler: " + b"f" * filler + b"\r\n\r\n"
    assert len(request) - 4 == size
    if status == 101:
        client.check_switched(client.request(request), EXAMPLE_KEY, f"a handshake of {size} bytes")
        client.command(b"PING")
        client.expect_replies(b"+PONG\r\n")
    else:
        client.expect_status(request, 431)
        client.expect_eof()


def test_a_head_that_never_ends_gets_431_without_the_server_reading_on(web, opened):
    """Header lines keep coming, never a blank line: the server answers 431 as soon as the head passes its limit
    (each line is sent once the server has read the one before), not after taking in whatever comes."""
    client = Client(web, opened=opened)
    client.send(b"GET / HTTP/1.1\r\nHost: " + client.host.encode() + b"\r\n")
    line = b"X-Endless: " + b"e" * 1000 + b"\r\n"
    for sent in range(1, 1025):  # at most 1 MiB
        client.send(line)
        client.wait_until_read()  # the server has it all: its answer, if it has one, is on its way
        if select.select([client.sock], [], [], 0.05)[0]:
            break
    else:
        client.fail("send header lines without end", "1 MiB of head was read without an answer", "431")
    assert sent * len(line) < 2 * MAX_HEAD, f"the 431 came only after {sent * len(line)} bytes of head"
    response = client.read_response()
    assert response.status == 431, show(response.raw)
    client.expect_eof(reset_allowed=True)


@pytest.mark.parametrize("origin", [None, "http://{host}", "https://{host}"], ids=["none", "http-same", "https-same"])
def test_a_page_of_the_same_origin_or_no_origin_is_let_in(web, opened, origin):
    client = Client(web, opened=opened)
    add = [("Origin", origin.format(host=client.host))] if origin else []
    client.upgrade(add=add)
    client.command(b"ECHO", b"same origin")
    client.expect_replies(b"$11\r\nsame origin\r\n")


def test_a_page_loaded_as_localhost_may_open_its_websocket(web, opened):
    client = Client(web, opened=opened)
    host = f"localhost:{web.http_port}"
    key = new_key()
    response = client.request(upgrade_request(host, key=key, add=[("Origin", f"http://{host}")]))
    client.check_switched(response, key, "upgrade with Host and Origin localhost")


@pytest.mark.parametrize("replace", [
    {"Connection": "keep-alive, Upgrade"},
    {"Connection": "Upgrade,keep-alive"},
    {"Upgrade": "WebSocket", "Connection": "upgrade"},
    {"Host": "  {host}  "},
], ids=["firefox-connection", "no-space", "values-in-other-case", "spaces-around-a-value"])
def test_handshakes_as_browsers_write_them_are_accepted(web, opened, replace):
    client = Client(web, opened=opened)
    client.upgrade(replace={name: value.format(host=client.host) for name, value in replace.items()})
    client.command(b"PING")
    client.expect_replies(b"+PONG\r\n")


def test_header_names_in_lower_case_are_accepted(web, opened):
    client = Client(web, opened=opened)
    key = new_key()
    request = upgrade_request(client.host, key=key).decode()
    lines = request.split("\r\n")
    request = "\r\n".join([lines[0]] + [line.split(":", 1)[0].lower() + ":" + line.split(":", 1)[1] if line else ""
                                        for line in lines[1:]]).encode()
    client.check_switched(client.request(request), key, "a handshake in lower case")


def test_permessage_deflate_offered_is_not_taken(web, opened):
    """Browsers offer compression; the server takes no extension, so its 101 names none, and a frame with RSV1
    (compressed) is then a protocol error."""
    client = Client(web, opened=opened)
    response = client.upgrade(add=[("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")])
    assert not response.has("Sec-WebSocket-Extensions"), f"an extension was taken: {show(response.raw)}"
    client.command(b"ECHO", b"plain")
    client.expect_replies(b"$5\r\nplain\r\n")
    client.send_frame(TEXT, b"PING\r\n", rsv=RSV1)
    client.expect_close(1002)


def test_a_subprotocol_offered_is_not_chosen(web, opened):
    client = Client(web, opened=opened)
    response = client.upgrade(add=[("Sec-WebSocket-Protocol", "chat, superchat")])
    assert not response.has("Sec-WebSocket-Protocol"), f"a subprotocol was chosen: {show(response.raw)}"


PAGES = [("/", "index.html", "text/html"), ("/app.js", "app.js", "text/javascript"),
         ("/style.css", "style.css", "text/css"), ("/?from=test", "index.html", "text/html")]


@pytest.mark.parametrize("path, file, media", PAGES, ids=[row[0] for row in PAGES])
def test_the_pages_are_served_with_their_type_and_length(web, opened, target, path, file, media):
    client = Client(web, opened=opened)
    response = client.request(get_request(client.host, path))
    assert response.status == 200, show(response.raw)
    content_type = response.header("Content-Type") or ""
    assert content_type.split(";")[0].strip().lower() == media, f"{path}: Content-Type {content_type!r}"
    assert "charset=utf-8" in content_type.lower().replace(" ", ""), f"{path}: Content-Type {content_type!r}"
    assert int(response.header("Content-Length")) == len(response.body)
    assert response.body == (target.stage.programs / "web" / file).read_bytes(), f"{path} is not web/{file}"
    assert response.header("Connection") == "close", f"one page a connection (ws.h): {show(response.raw)}"
    client.expect_eof(hint="after a page with 'Connection: close' the server ends the stream (a FIN, not a reset)")


@pytest.mark.parametrize("path", ["/../etc/passwd", "/%2e%2e/server.key", "/%2E%2E/%2E%2E/etc/passwd",
                                  "/certs/server.key", "/web/index.html", "/index.html", "/server.c",
                                  "//etc/passwd", "/app.js/.."])
def test_any_other_path_gets_404_and_nothing_of_the_disk(web, opened, path):
    client = Client(web, opened=opened)
    response = client.request(get_request(client.host, path))
    assert response.status == 404, f"GET {path}: {show(response.raw)}"
    assert b"PRIVATE KEY" not in response.body and b"root:" not in response.body
    assert response.header("Connection") == "close", show(response.raw)
    client.expect_eof()


@pytest.mark.parametrize("behind", ["get", "upgrade"])
def test_a_request_pipelined_behind_a_page_is_not_answered_and_the_stream_ends_cleanly(web, opened, target, behind):
    """One page a connection (Connection: close): a second request in the same send is read and dropped, and the
    stream ends with a FIN: a reset could cost the browser the page it was sent."""
    client = Client(web, opened=opened)
    second = get_request(client.host, "/app.js") if behind == "get" else upgrade_request(client.host)
    client.send(get_request(client.host, "/style.css") + second)
    first = client.read_response()
    assert first.status == 200 and first.header("Connection") == "close", show(first.raw)
    assert first.body == (target.stage.programs / "web" / "style.css").read_bytes()
    client.expect_eof()


def test_an_upgrade_and_a_message_in_one_send(web, opened):
    client = Client(web, opened=opened)
    key = new_key()
    client.send(upgrade_request(client.host, key=key) + frame(PING, b"early") + frame(TEXT, b"PING\r\n"))
    client.check_switched(client.read_response(), key, "an upgrade with frames behind it")
    client.expect_frame(PONG, b"early", "the pong of a ping sent with the handshake")
    client.expect_replies(b"+PONG\r\n")


def test_a_resp_command_on_the_web_port_gets_400(web, opened):
    client = Client(web, opened=opened)
    client.expect_status(b"PING\r\n\r\n", 400)
    client.expect_eof()


# === 2. Framing ===================================================================================================


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("request_bytes, reply", [
    (resp(b"ECHO", b"hello"), b"$5\r\nhello\r\n"),
    (b"ECHO inline\r\n", b"$6\r\ninline\r\n"),
    (b"PING\n", b"+PONG\r\n"),
], ids=["resp-array", "inline", "inline-lf"])
def test_a_command_in_a_message_is_answered_in_binary_frames(web, opened, opcode, request_bytes, reply):
    client = ws_client(web, opened)
    client.send_message(request_bytes, opcode)
    client.expect_replies(reply)


@pytest.mark.parametrize("cut", [1, 5, 14, 20])
def test_a_command_cut_across_two_messages_is_answered(web, opened, cut):
    client = ws_client(web, opened)
    request = resp(b"ECHO", b"across")
    client.send_message(request[:cut], TEXT)
    client.send_message(request[cut:], BINARY)
    client.expect_replies(b"$6\r\nacross\r\n")


def test_two_commands_in_one_message_are_both_answered(web, opened):
    client = ws_client(web, opened)
    client.send_message(resp(b"ECHO", b"one") + b"ECHO two\r\n")
    client.expect_replies(b"$3\r\none\r\n$3\r\ntwo\r\n")


@pytest.mark.parametrize("total", [0, 125, 126, 127, 65535, 65536, 200000])
def test_a_message_of_each_length_form_is_taken_whole(web, opened, total):
    """125 bytes: the 7-bit length; 126 and 65535: the 16-bit one; 65536 on: the 64-bit one."""
    client = ws_client(web, opened)
    request, reply = echo_request(total) if total else (b"", b"")
    client.send_message(request)
    client.command(b"PING")
    client.expect_replies(reply + b"+PONG\r\n")


def test_the_servers_frames_use_the_fewest_length_bytes(web, opened):
    """Replies of 120, 200 and 70,000 bytes: read_frame() fails on any length not in the fewest bytes."""
    client = ws_client(web, opened)
    for size in (114, 194, 69990):
        request, reply = echo_request(size + 19 + len(str(size)))
        client.send_message(request)
        client.expect_replies(reply)


@pytest.mark.parametrize("length, form", [(5, 16), (125, 16), (0, 64), (5, 64), (65535, 64)],
                         ids=["5-in-16-bits", "125-in-16-bits", "0-in-64-bits", "5-in-64-bits", "65535-in-64-bits"])
def test_a_length_not_in_the_fewest_bytes_is_failed_with_1002(web, opened, length, form):
    client = ws_client(web, opened)
    client.send_frame(BINARY, b"P" * length, form=form)
    client.expect_close(1002)


@pytest.mark.parametrize("rsv", [RSV1, RSV2, RSV3, RSV1 | RSV2 | RSV3], ids=["rsv1", "rsv2", "rsv3", "all"])
@pytest.mark.parametrize("opcode", [TEXT, PING], ids=["text", "ping"])
def test_a_frame_with_an_rsv_bit_is_failed_with_1002(web, opened, rsv, opcode):
    client = ws_client(web, opened)
    client.send_frame(opcode, b"PING\r\n", rsv=rsv)
    client.expect_close(1002)


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_a_reserved_opcode_is_failed_with_1002(web, opened, opcode):
    client = ws_client(web, opened)
    client.send_frame(opcode, b"PING\r\n")
    client.expect_close(1002)


@pytest.mark.parametrize("opcode, payload", [(TEXT, b"PING\r\n"), (BINARY, b"PING\r\n"), (PING, b"hi"),
                                             (CLOSE, close_payload(1000))],
                         ids=["text", "binary", "ping", "close"])
def test_an_unmasked_frame_is_failed_with_1002(web, opened, opcode, payload):
    client = ws_client(web, opened)
    client.send_frame(opcode, payload, mask=False)
    client.expect_close(1002, hint="RFC 6455, 5.1: a server must close the connection on an unmasked client frame")


def test_a_thousand_commands_in_one_send_are_all_answered_in_order(web, opened):
    client = ws_client(web, opened)
    client.send(b"".join(frame(TEXT if i % 2 else BINARY, b"ECHO %d\r\n" % i) for i in range(1000)))
    client.expect_replies(b"".join(b"$%d\r\n%d\r\n" % (len(str(i)), i) for i in range(1000)))


def test_a_thousand_ping_frames_in_one_send_get_a_thousand_pongs_in_order(web, opened):
    client = ws_client(web, opened)
    client.send(b"".join(frame(PING, b"%d" % i) for i in range(1000)) + frame(TEXT, b"PING\r\n"))
    for i in range(1000):
        client.expect_frame(PONG, b"%d" % i, f"pong {i} of 1000")
    client.expect_replies(b"+PONG\r\n")


def test_the_handshake_and_frames_one_byte_at_a_time_still_work(start_server, target, opened):
    # Its own server, whose --http-timeout is no part of the test: each byte waits until the server has read the
    # one before, seen in /proc/net/tcp, which lists every socket of the machine; with the tens of thousands a
    # busy test run leaves there, the default 10 s ran out during the head.
    server = start_web(start_server, target, "--http-timeout", "300")
    client = Client(server, opened=opened)
    key = new_key()
    client.drip(upgrade_request(client.host, key=key) + frame(TEXT, b"ECHO", fin=False)
                + frame(PING, b"drip") + frame(CONTINUATION, b" slowly\r\n"))
    client.check_switched(client.read_response(), key, "a handshake sent one byte at a time")
    client.expect_frame(PONG, b"drip", "the pong of a ping sent one byte at a time")
    client.expect_replies(b"$6\r\nslowly\r\n")


def test_a_binary_message_may_hold_any_bytes(web, opened):
    client = ws_client(web, opened)
    word = bytes(range(256))
    client.command(b"ECHO", word)
    client.expect_replies(b"$256\r\n" + word + b"\r\n")


def test_an_empty_message_is_nothing_to_answer(web, opened):
    client = ws_client(web, opened)
    client.send_message(b"", TEXT)
    client.send_message(b"", BINARY)
    client.send_frame(TEXT, b"", fin=False)
    client.send_frame(CONTINUATION, b"")
    client.command(b"PING")
    client.expect_replies(b"+PONG\r\n")


# === 3. Fragmentation =============================================================================================


@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
def test_a_message_in_three_fragments_with_a_ping_between_gets_the_pong_then_the_reply(web, opened, opcode):
    client = ws_client(web, opened)
    client.send(frame(opcode, b"ECH", fin=False) + frame(PING, b"between") + frame(CONTINUATION, b"O frag", fin=False))
    client.expect_frame(PONG, b"between", "the pong, while the message is still open")
    client.expect_silence(0.2, "no reply before the message's last fragment")
    client.send_frame(CONTINUATION, b"ments\r\n")
    client.expect_replies(b"$9\r\nfragments\r\n")


def test_a_continuation_without_a_start_is_failed_with_1002(web, opened):
    client = ws_client(web, opened)
    client.send_frame(CONTINUATION, b"PING\r\n")
    client.expect_close(1002)


@pytest.mark.parametrize("second", [TEXT, BINARY], ids=["text", "binary"])
def test_a_new_data_frame_inside_a_fragmented_message_is_failed_with_1002(web, opened, second):
    client = ws_client(web, opened)
    client.send(frame(TEXT, b"ECHO ", fin=False) + frame(second, b"PING\r\n"))
    client.expect_close(1002)


def test_a_continuation_after_a_whole_message_is_failed_with_1002(web, opened):
    client = ws_client(web, opened)
    client.send_frame(TEXT, b"PING\r\n")
    client.expect_replies(b"+PONG\r\n")
    client.send_frame(CONTINUATION, b"PING\r\n")
    client.expect_close(1002)


@pytest.mark.parametrize("broken, code", [(frame(CONTINUATION, b"PING\r\n"), 1002),
                                          (frame(TEXT, b"PING\r\n", rsv=RSV1), 1002), (frame(TEXT, b"\xff"), 1007)],
                         ids=["continuation", "rsv1", "not-utf8"])
def test_the_replies_owed_before_a_broken_frame_come_before_the_close(web, opened, broken, code):
    """Commands, then a frame that breaks a rule, in one send: the commands were whole before it, so their
    replies go before the close, as they would had the bad frame come in a later segment (a cut must not change
    what the client gets; the RESP port, too, answers what came before a protocol error)."""
    client = ws_client(web, opened)
    client.send(frame(TEXT, b"ECHO before\r\nPING\r\n") + broken)
    client.expect_replies(b"$6\r\nbefore\r\n+PONG\r\n", "the replies to what came before the broken frame",
                          hint="the close was queued before the replies were framed: they were dropped")
    client.expect_close(code)


@pytest.mark.parametrize("character, cut", [("\U0001F600", 2), ("\U0001F600", 1), ("\U0001F600", 3),
                                            ("\u20ac", 1), ("\u00e9", 1)],
                         ids=["4-bytes-cut-2+2", "4-bytes-cut-1+3", "4-bytes-cut-3+1", "3-bytes-cut-1+2",
                              "2-bytes-cut-1+1"])
def test_utf8_cut_inside_a_character_across_fragments_is_accepted(web, opened, character, cut):
    client = ws_client(web, opened)
    encoded = character.encode()
    client.send(frame(TEXT, b"ECHO " + encoded[:cut], fin=False) + frame(CONTINUATION, encoded[cut:] + b"\r\n"))
    client.expect_replies(b"$%d\r\n%s\r\n" % (len(encoded), encoded))


INVALID_UTF8 = [
    ("overlong-slash", b"\xc0\xaf"), ("overlong-nul", b"\xc0\x80"), ("overlong-3-bytes", b"\xe0\x80\xaf"),
    ("overlong-4-bytes", b"\xf0\x80\x80\xaf"), ("surrogate-high", b"\xed\xa0\x80"), ("surrogate-low", b"\xed\xbf\xbf"),
    ("past-u+10ffff", b"\xf4\x90\x80\x80"), ("f5-lead", b"\xf5\x80\x80\x80"), ("ff", b"\xff"),
    ("lone-continuation", b"\x80"), ("missing-continuation", b"\xe2\x82A"),
]


@pytest.mark.parametrize("bad", [row[1] for row in INVALID_UTF8], ids=[row[0] for row in INVALID_UTF8])
def test_invalid_utf8_in_a_text_message_is_failed_with_1007(web, opened, bad):
    client = ws_client(web, opened)
    client.send_frame(TEXT, b"ECHO x" + bad + b"\r\n")
    client.expect_close(1007, hint="a text message must be UTF-8 (RFC 6455, 8.1); no reply, the connection fails")


def test_a_text_message_ending_inside_a_character_is_failed_with_1007(web, opened):
    client = ws_client(web, opened)
    client.send(frame(TEXT, b"ECHO x\r\n\xe2", fin=False) + frame(CONTINUATION, b"\x82"))
    client.expect_close(1007)


@pytest.mark.parametrize("bad", [b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90"], ids=["overlong", "surrogate",
                                                                              "past-u+10ffff"])
def test_invalid_utf8_fails_at_its_fragment_before_the_message_ends(web, opened, bad):
    """A good fragment, then one with a bad sequence, and the message never finished: 1007 comes anyway."""
    client = ws_client(web, opened)
    client.send(frame(TEXT, b"ECHO ", fin=False) + frame(CONTINUATION, b"x" + bad, fin=False))
    client.expect_close(1007)


def test_invalid_utf8_in_a_binary_message_is_taken(web, opened):
    client = ws_client(web, opened)
    client.send(frame(BINARY, b"ECHO \xc0", fin=False) + frame(CONTINUATION, b"\xaf\xff\r\n"))
    client.expect_replies(b"$3\r\n\xc0\xaf\xff\r\n")


# === 4. Control frames and the close handshake ====================================================================


@pytest.mark.parametrize("size", [0, 1, 125])
def test_a_ping_is_answered_with_a_pong_of_the_same_payload(web, opened, size):
    client = ws_client(web, opened)
    payload = os.urandom(size)
    client.send_frame(PING, payload)
    client.expect_frame(PONG, payload, f"the pong of a {size}-byte ping")


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE], ids=["ping", "pong", "close"])
def test_a_control_frame_of_126_bytes_is_failed_with_1002(web, opened, opcode):
    client = ws_client(web, opened)
    client.send_frame(opcode, close_payload(1000, b"r" * 124) if opcode == CLOSE else b"p" * 126)
    client.expect_close(1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE], ids=["ping", "pong", "close"])
def test_a_fragmented_control_frame_is_failed_with_1002(web, opened, opcode):
    client = ws_client(web, opened)
    client.send_frame(opcode, close_payload(1000) if opcode == CLOSE else b"part", fin=False)
    client.expect_close(1002)


def test_an_unsolicited_pong_is_ignored(web, opened):
    client = ws_client(web, opened)
    client.send(frame(PONG, b"heartbeat") + frame(PONG, b"") + frame(TEXT, b"PING\r\n"))
    client.expect_replies(b"+PONG\r\n")
    client.expect_silence(0.2)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1014, 3000, 3999,
                                  4000, 4999])
def test_a_close_with_a_valid_code_is_answered_with_that_code_then_tcp_ends(web, opened, code):
    client = ws_client(web, opened)
    client.send_frame(CLOSE, close_payload(code, "bye \u2764".encode()))
    client.expect_close(code)


def test_a_close_without_a_payload_is_answered_with_1000(web, opened):
    """RFC 6455, 5.5.1: a close without a code says none; the server's answer then carries 1000 (normal)."""
    client = ws_client(web, opened)
    client.send_frame(CLOSE)
    got = client.expect_close(1000)
    assert got.payload == b"\x03\xe8", f"the answer's payload: {show(got.payload)}"


def test_the_replies_owed_before_the_clients_close_come_before_its_answer(web, opened):
    """Commands, then the close, in one send: the commands were taken before the close, so their replies are sent
    before the answering close (RFC 6455, 1.4: a peer may send data until it has sent its close)."""
    client = ws_client(web, opened)
    client.send(frame(TEXT, b"ECHO before\r\nPING\r\n") + frame(CLOSE, close_payload(1000)))
    client.expect_replies(b"$6\r\nbefore\r\n+PONG\r\n", "the replies to what came before the close",
                          hint="the close's answer was queued before the replies were framed: they were dropped")
    client.expect_close(1000)


def test_a_message_behind_the_close_is_not_answered(web, opened):
    client = ws_client(web, opened)
    client.send(frame(CLOSE, close_payload(1000)) + frame(TEXT, b"PING\r\n"))
    client.expect_close(1000, then_eof=False)
    client.expect_eof(reset_allowed=True)  # the PING behind it is never read: a close with it unread is a reset


def test_a_fragmented_message_open_at_the_close_is_dropped(web, opened):
    client = ws_client(web, opened)
    client.send(frame(TEXT, b"PING\r\n", fin=False) + frame(CLOSE, close_payload(1001)))
    client.expect_close(1001)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
def test_an_invalid_close_code_is_failed_with_1002(web, opened, code):
    client = ws_client(web, opened)
    client.send_frame(CLOSE, close_payload(code))
    client.expect_close(1002)


def test_a_close_of_one_byte_is_failed_with_1002(web, opened):
    client = ws_client(web, opened)
    client.send_frame(CLOSE, b"\x03")
    client.expect_close(1002)


@pytest.mark.parametrize("reason", [b"\xff", b"ok \xc0\xaf", b"\xed\xa0\x80", b"cut \xe2\x82"],
                         ids=["ff", "overlong", "surrogate", "truncated"])
def test_a_close_reason_that_is_not_utf8_is_failed_with_1007(web, opened, reason):
    client = ws_client(web, opened)
    client.send_frame(CLOSE, close_payload(1000, reason))
    client.expect_close(1007)


def test_after_a_protocol_error_nothing_more_is_read_or_answered(web, opened):
    """After its close 1002 the server takes nothing more: not the PING behind the bad frame, nor a ping."""
    client = ws_client(web, opened)
    client.send(frame(TEXT, b"PING\r\n", rsv=RSV2) + frame(TEXT, b"PING\r\n") + frame(PING, b"late"))
    client.expect_close(1002, then_eof=False)
    client.expect_eof(reset_allowed=True)


def test_a_resp_protocol_error_is_said_then_the_websocket_closes(web, opened):
    """A malformed request in a message: the session's error comes as a reply, then the WebSocket's close (1000:
    the WebSocket itself was spoken right), then the end of TCP."""
    client = ws_client(web, opened)
    client.send_message(b"PING\r\n*1\r\n$-5\r\n")
    client.expect_replies(b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n")
    client.expect_close(1000)


# === 5. Limits ====================================================================================================

SMALL_LIMITS = ("--max-query", "65536", "--max-bulk", "60000", "--max-inline", "1024")


@pytest.fixture
def small(start_server, target):
    """A server whose messages may be 65,536 bytes at most (--max-query)."""
    return start_web(start_server, target, *SMALL_LIMITS)


def test_a_message_of_max_query_bytes_is_taken(small, opened):
    client = ws_client(small, opened)
    request, reply = echo_requests(65536)
    client.send_message(request)
    client.expect_replies(reply)
    request, reply = echo_requests(65536)
    pieces = [request[:30000], request[30000:60000], request[60000:]]
    client.send(frame(TEXT, pieces[0], fin=False) + frame(CONTINUATION, pieces[1], fin=False)
                + frame(CONTINUATION, pieces[2]))
    client.expect_replies(reply)


@pytest.mark.parametrize("length", [65537, 1 << 32, (1 << 63) - 1], ids=["max-query+1", "4-GiB", "2^63-1"])
def test_a_frame_longer_than_max_query_is_failed_with_1009_at_its_header(small, opened, length):
    """Only the header is sent: the server must refuse it there, not wait for (or allocate) the payload."""
    client = ws_client(small, opened)
    head, _ = frame_head(BINARY, length)
    client.send(head + b"PING")
    client.expect_close(1009, hint="a frame's header says its length: refuse one too big at once (RFC 6455, 10.4)")


@pytest.mark.parametrize("length", [1 << 63, (1 << 64) - 1], ids=["2^63", "2^64-1"])
def test_a_64_bit_length_with_its_top_bit_set_is_failed_with_1002(web, opened, length):
    """RFC 6455, 5.2: the most significant bit of a 64-bit length must be 0."""
    client = ws_client(web, opened)
    head, _ = frame_head(BINARY, length)
    client.send(head)
    client.expect_close(1002)


def test_fragments_that_together_pass_max_query_are_failed_at_the_header_that_passes_it(small, opened):
    client = ws_client(small, opened)
    client.send_frame(BINARY, b"E" * 40000, fin=False)
    head, _ = frame_head(CONTINUATION, 30000)
    client.send(head)  # 70,000 bytes in all: past the limit, said before this fragment's payload
    client.expect_close(1009)


def test_a_ping_between_big_fragments_is_still_answered(small, opened):
    client = ws_client(small, opened)
    request, reply = echo_requests(60000)
    client.send(frame(BINARY, request[:30000], fin=False) + frame(PING, b"mid"))
    client.expect_frame(PONG, b"mid", "the pong between two big fragments")
    client.send_frame(CONTINUATION, request[30000:])
    client.expect_replies(reply)


@pytest.mark.parametrize("unfinished", ["frame-cut-short", "header-cut-short", "fragments-left-open"])
def test_an_unfinished_message_is_closed_with_1008_after_request_timeout(start_server, target, opened, unfinished):
    """A message begun and never finished has --request-timeout, as a RESP request has: a close 1008 (policy)."""
    server = start_web(start_server, target, "--request-timeout", "1")
    client = ws_client(server, opened)
    client.command(b"PING")
    client.expect_replies(b"+PONG\r\n")
    started = time.monotonic()
    if unfinished == "frame-cut-short":
        client.send(frame(TEXT, b"ECHO never finished\r\n")[:-5])
    elif unfinished == "header-cut-short":
        client.send(frame_head(BINARY, 1000)[0][:3])
    else:
        client.send(frame(TEXT, b"ECHO ", fin=False) + frame(CONTINUATION, b"never", fin=False))
    client.expect_close(1008, "wait for the close of a message not finished within --request-timeout 1")
    waited = time.monotonic() - started
    assert 0.8 <= waited <= target.deadline(4), f"closed after {waited:.2f} s with --request-timeout 1"


def test_a_websocket_idle_between_messages_is_not_closed_by_request_timeout(start_server, target, opened):
    server = start_web(start_server, target, "--request-timeout", "1")
    client = ws_client(server, opened)
    client.command(b"PING")
    client.expect_replies(b"+PONG\r\n")
    client.expect_silence(2.0, "a WebSocket with no message begun stays open past --request-timeout 1")
    client.command(b"PING")
    client.expect_replies(b"+PONG\r\n")


@pytest.fixture
def hurried(start_server, target):
    """A server whose web connections must upgrade within 1 s (--http-timeout 1)."""
    return start_web(start_server, target, "--http-timeout", "1")


def test_a_connection_that_never_upgrades_is_closed_after_http_timeout(hurried, opened, target):
    silent = Client(hurried, opened=opened)
    halfway = Client(hurried, opened=opened)
    started = time.monotonic()
    halfway.send(upgrade_request(halfway.host)[:-2])  # all but the blank line
    for client in (silent, halfway):
        client.expect_eof("wait for --http-timeout 1 to close a connection that never upgrades", reset_allowed=True)
    waited = time.monotonic() - started
    assert 0.8 <= waited <= target.deadline(4), f"closed after {waited:.2f} s with --http-timeout 1"
    assert hurried.stderr.wait_for("no WebSocket upgrade within --http-timeout", target.deadline(5)), hurried.log()


def test_a_head_sent_one_byte_at_a_time_slowly_is_closed_after_http_timeout(hurried, opened, target):
    """A byte every 0.1 s, never the end of the head: each byte must not put the deadline off."""
    client = Client(hurried, opened=opened)
    request = b"GET / HTTP/1.1\r\nHost: " + client.host.encode() + b"\r\nX-Slow: " + b"s" * 1000
    started = time.monotonic()
    for i in range(len(request)):
        if time.monotonic() - started > target.deadline(5):
            client.fail("send a head slowly", f"still open after {time.monotonic() - started:.1f} s",
                        "closed about 1 s after it opened (--http-timeout 1)", kind="timeout")
        try:
            client.sock.sendall(request[i:i + 1])
        except OSError:
            break  # closed, and said so to our send
        if select.select([client.sock], [], [], 0.1)[0]:  # the pace: a tenth of a second, unless the end comes
            break
    client.expect_eof(reset_allowed=True)
    waited = time.monotonic() - started
    assert waited <= target.deadline(4), f"closed only after {waited:.2f} s with --http-timeout 1"


def test_an_upgraded_connection_outlives_http_timeout(hurried, opened):
    client = ws_client(hurried, opened)
    client.expect_silence(2.0, "an upgraded connection stays open past --http-timeout 1")
    client.command(b"PING")
    client.expect_replies(b"+PONG\r\n")


# === 6. The session through the WebSocket ========================================================================


def test_a_websocket_subscriber_hears_publish_from_redis_cli_and_from_another_websocket(web, opened):
    subscriber = ws_client(web, opened)
    subscriber.command(b"SUBSCRIBE", b"chat")
    subscriber.expect_replies(b"*3\r\n$9\r\nsubscribe\r\n$4\r\nchat\r\n:1\r\n")
    assert redis_cli(web, "PUBLISH", "chat", "hi") == (0, "1\n")
    subscriber.expect_replies(b"*3\r\n$7\r\nmessage\r\n$4\r\nchat\r\n$2\r\nhi\r\n", "the message of redis-cli")
    publisher = ws_client(web, opened)
    publisher.command(b"PUBLISH", b"chat", "h\u00e9llo".encode())
    publisher.expect_replies(b":1\r\n")
    subscriber.expect_replies(b"*3\r\n$7\r\nmessage\r\n$4\r\nchat\r\n$6\r\nh\xc3\xa9llo\r\n",
                              "the message of another WebSocket")
    subscriber.send_frame(PING, b"still here")  # a subscriber's pings are answered too
    subscriber.expect_frame(PONG, b"still here", "a subscriber's pong")


@pytest.mark.parametrize("answered", [True, False], ids=["close-answered", "close-unanswered"])
def test_quit_over_websocket_gets_ok_then_close_1000_then_tcp_ends(web, opened, answered):
    """After its own close the server ends its stream at once, whether or not the client answers the close (it
    reads what the client still sends, for a while): docs/protocol.md."""
    client = ws_client(web, opened)
    client.send_message(b"QUIT\r\nPING\r\n")
    client.expect_replies(b"+OK\r\n")
    client.expect_close(1000, then_eof=not answered)
    if answered:
        client.send_frame(CLOSE, close_payload(1000))  # the client's answer, as the RFC asks
        client.expect_eof()


def test_ctrl_c_sends_the_notice_then_close_1001_then_tcp_ends(start_server, target, opened):
    server = start_web(start_server, target)
    client = ws_client(server, opened)
    midway = ws_client(server, opened)
    unupgraded = Client(server, opened=opened)
    client.command(b"PING")
    client.expect_replies(b"+PONG\r\n")
    midway.send(frame(TEXT, b"ECHO half", fin=False))
    unupgraded.send(upgrade_request(unupgraded.host)[:-2])  # its head, all but the blank line
    unupgraded.wait_until_read()
    midway.send_frame(PING, b"before the stop")
    midway.expect_frame(PONG, b"before the stop", "a pong before the stop")
    server.interrupt()
    for each in (client, midway):
        each.expect_replies(SHUTDOWN_ERROR, "wait for the notice after Ctrl+C")
        each.expect_close(1001, "wait for the close after the notice", reason=b"the server is stopping",
                          then_eof=False)
        each.send_frame(CLOSE, close_payload(1001))
        each.expect_eof("after the stop's close, TCP ends", reset_allowed=True)
    unupgraded.expect_eof("a connection still in HTTP is closed at the stop without a word", reset_allowed=True)
    assert server.wait(target.deadline(5)) == 0, server.log()


def test_ctrl_c_over_wss_sends_the_close_frame_then_the_close_notify(start_server, target, opened):
    """Over TLS the WebSocket's close goes first, then TLS's close_notify: the other way round, the close frame
    is never sent (nothing is encrypted after a close_notify), and a browser sees the connection lost, not closed."""
    server = start_web(start_server, target, https=True)
    context = ssl.create_default_context(cafile=str(certs(target) / "ca.crt"))
    # Python takes a TLS stream cut without a close_notify for a clean end unless told otherwise.
    context.options &= ~getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    client = Client(server, port=server.https_port, opened=opened)
    client.sock = context.wrap_socket(client.sock, server_hostname="localhost")
    client.upgrade()
    client.command(b"PING")
    client.expect_replies(b"+PONG\r\n")
    server.interrupt()
    client.expect_replies(SHUTDOWN_ERROR, "wait for the notice after Ctrl+C, over wss://")
    client.expect_close(1001, "the close frame, before TLS's close_notify", reason=b"the server is stopping",
                        then_eof=False)
    client.send_frame(CLOSE, close_payload(1001))
    client.expect_eof("then the close_notify: a clean end of the TLS stream", reset_allowed=False,
                      hint="say_goodbye(): the WebSocket's close first, then tls_close() once it has gone")
    assert server.wait(target.deadline(5)) == 0, server.log()


# === 7. The RESP port refuses HTTP ===============================================================================


@pytest.mark.parametrize("request_bytes", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    upgrade_request("x"),
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nPING",
], ids=["get", "upgrade", "post"])
def test_the_resp_port_drops_an_http_request_and_serves_others(web, opened, request_bytes):
    intruder = Client(web, port=web.port, opened=opened)
    intruder.send(request_bytes)
    intruder.expect_eof("the RESP port ends a connection that speaks HTTP, without a word", reset_allowed=True)
    other = Client(web, port=web.port, opened=opened)
    other.send(b"PING\r\n")
    assert other.take(7, "PING on the RESP port", "+PONG") == b"+PONG\r\n"


# === 8. Clients nobody here wrote =================================================================================


def websockets_module():
    try:
        import websockets
    except ImportError:
        missing("python3-websockets", "python3-websockets (for the Python that has pytest)")
    return websockets


async def talk_with_websockets(websockets, uri, timeout, **options):
    """Commands over python3-websockets with its defaults (it offers permessage-deflate): returns what happened."""
    said = {}
    async with websockets.connect(uri, open_timeout=timeout, close_timeout=timeout, **options) as ws:
        said["extensions"] = list(ws.extensions)
        said["response_extensions"] = ws.response_headers.get("Sec-WebSocket-Extensions")
        stream = b""

        async def replies(count):
            nonlocal stream
            values = []
            while len(values) < count:
                got = parse_resp(stream)
                if got is None:
                    message = await asyncio.wait_for(ws.recv(), timeout)
                    if not isinstance(message, bytes):
                        raise AssertionError(f"a text message came: {message[:100]!r}; replies come in binary")
                    stream += message
                    continue
                value, end = got
                stream = stream[end:]
                values.append(value)
            return values

        await ws.send("PING\r\n")  # a str goes as a text message
        said["ping"] = await replies(1)
        big = b"w" * 100000
        await ws.send(resp(b"ECHO", big) + resp(b"ECHO", "\u00e9t\u00e9".encode()))  # bytes: a binary message
        said["echo"] = await replies(2)
        said["echo_ok"] = said["echo"][0] == big
        said["echo"][0] = len(said["echo"][0])
        await ws.send("ECHO cut-acr")
        await ws.send("oss\r\n")
        said["cut"] = await replies(1)
        pong = await ws.ping(b"python")
        await asyncio.wait_for(pong, timeout)
        said["pong"] = True
    said["close_code"] = ws.close_code
    return said


def test_python_websockets_with_its_defaults_runs_commands(web, target):
    websockets = websockets_module()
    said = asyncio.run(talk_with_websockets(websockets, f"ws://127.0.0.1:{web.http_port}/ws",
                                            target.reply_deadline(5)))
    assert said == {"extensions": [], "response_extensions": None, "ping": ["PONG"], "echo": [100000,
                    "\u00e9t\u00e9".encode()], "echo_ok": True, "cut": [b"cut-across"], "pong": True,
                    "close_code": 1000}, f"{said}\n{web.log()}"


def test_python_websockets_over_wss_with_the_development_ca(start_server, target):
    websockets = websockets_module()
    server = start_web(start_server, target, https=True)
    context = ssl.create_default_context(cafile=str(certs(target) / "ca.crt"))
    said = asyncio.run(talk_with_websockets(websockets, f"wss://localhost:{server.https_port}/ws",
                                            target.reply_deadline(5), ssl=context))
    assert said["ping"] == ["PONG"] and said["echo_ok"] and said["cut"] == [b"cut-across"] and \
        said["close_code"] == 1000, f"{said}\n{server.log()}"


def test_python_websockets_hears_quit_as_a_normal_close(web, target):
    websockets = websockets_module()

    async def quit_():
        async with websockets.connect(f"ws://127.0.0.1:{web.http_port}/ws") as ws:
            await ws.send("QUIT\r\n")
            reply = await asyncio.wait_for(ws.recv(), target.reply_deadline(5))
            try:
                more = await asyncio.wait_for(ws.recv(), target.reply_deadline(5))
            except websockets.ConnectionClosedOK as closed:
                return reply, closed.rcvd.code
            return reply, more

    assert asyncio.run(quit_()) == (b"+OK\r\n", 1000)


def node_ws():
    node = shutil.which("node")
    if node is None:
        missing("Node.js", "nodejs")
    if not (CLIENTS / "node_modules" / "ws").exists():
        missing("the npm package ws", "it with npm ci in tests/clients")
    return node


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_node_ws_with_its_defaults_runs_commands(start_server, target, tls):
    node = node_ws()
    server = start_web(start_server, target, https=tls)
    url = f"wss://localhost:{server.https_port}/ws" if tls else f"ws://127.0.0.1:{server.http_port}/ws"
    command = [node, str(CLIENTS / "ws_client.js"), url, *([str(certs(target) / "ca.crt")] if tls else [])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=target.deadline(30))
    said = done.stdout.strip().splitlines()
    assert done.returncode == 0 and said and said[-1] == "ok", (
        f"{' '.join(command)} exited {done.returncode}; its output:\n{done.stdout}{done.stderr}\n{server.log()}")


# === 9. Hostile clients ===========================================================================================


def hostile_crowd(server, opened, count):
    """count/2 connections with a head that has not ended (4 KB so far), count/2 upgraded ones in the middle of a
    frame that says 1,000,000 bytes (under the default --max-query) of which 30,000 came. Returns both lists."""
    heads, halves = [], []
    for _ in range(count // 2):
        client = Client(server, opened=opened)
        client.send(b"GET / HTTP/1.1\r\nHost: " + client.host.encode() + b"\r\nX-Slow: " + b"h" * 4000 + b"\r\n")
        heads.append(client)
    for _ in range(count // 2):
        client = ws_client(server, opened)
        head, _ = frame_head(BINARY, 1_000_000)
        client.send(head + os.urandom(30000))
        halves.append(client)
    return heads, halves


def owed_nothing(clients):
    """Fails if any of the clients has had a byte (or the end of its stream) since its handshake."""
    readable = select.select([client.sock for client in clients], [], [], 0)[0]
    if readable:
        client = next(c for c in clients if c.sock is readable[0])
        client.expect_silence(0.01, f"{len(readable)} slow clients were sent something, or closed")


def trickle(heads, halves, round_):
    """One more piece from each: a header line, and 1,000 more bytes of the frame."""
    for client in heads:
        client.send(b"X-More-%d: %s\r\n" % (round_, b"m" * 40))
    for client in halves:
        client.send(os.urandom(1000))


def test_slow_heads_and_half_sent_frames_hold_up_nobody(start_server, target, opened):
    server = start_web(start_server, target, "--http-timeout", "60")
    probe = ws_client(server, opened)
    probe.round_trip()
    heads, halves = hostile_crowd(server, opened, 100)
    for round_ in range(3):
        trickle(heads, halves, round_)
        waited = probe.round_trip(f"PING among 100 slow clients, round {round_}")
        assert waited < target.reply_deadline(0.5), f"PING took {waited:.2f} s among 100 slow clients"
    owed_nothing(heads + halves)


@pytest.mark.measures_resources
@pytest.mark.builds("linux")  # /proc
def test_two_hundred_slow_clients_cost_bounded_memory(start_server, target, opened):
    """100 heads that do not end and 100 frames that say 1,000,000 bytes and send 30,000: what the server keeps is
    what came (about 3.5 MB in all), not what a header promised (100 MB)."""
    server = start_web(start_server, target, "--http-timeout", "60")
    probe = ws_client(server, opened)
    probe.round_trip()
    before = server.resources()[2]
    heads, halves = hostile_crowd(server, opened, 200)
    for round_ in range(3):
        trickle(heads, halves, round_)
        waited = probe.round_trip(f"PING among 200 slow clients, round {round_}")
        assert waited < 0.5, f"PING took {waited:.2f} s among 200 slow clients"
    grown = server.resources()[2] - before
    assert grown < 32 * 1024, f"200 slow clients grew the server by {grown} KiB (bound: 32 MiB; ~3.5 MB came)"


@pytest.mark.measures_resources
@pytest.mark.builds("linux")  # /proc; under Wine a send() never finds the buffer full: nothing would wait unsent
@pytest.mark.parametrize("flood", ["pings", "commands"])
def test_a_client_that_sends_and_never_reads_is_read_no_more(start_server, target, opened, flood):
    """Pings (each owed a pong) or ECHO commands, sent without reading a byte: the server's answers wait unsent, and
    past its high-water mark it stops reading, so the client's own sends stall and the memory stays bounded. When
    it reads at last, every answer comes, in order."""
    server = start_web(start_server, target)
    other = ws_client(server, opened)
    client = ws_client(server, opened, receive_buffer=4096)
    before = server.resources()[2]
    payload = b"p" * 125
    unit = frame(PING, payload) if flood == "pings" else frame(BINARY, resp(b"ECHO", payload))
    answer = frame(PONG, payload, mask=False) if flood == "pings" else None
    batch = unit * 256
    client.sock.setblocking(False)
    sent = 0
    while sent < (64 << 20):
        if not select.select([], [client.sock], [], 0.5)[1]:
            break  # nothing taken for 0.5 s: the server reads no more
        try:
            sent += client.sock.send(batch[sent % len(batch):])
        except BlockingIOError:
            continue
    else:
        client.fail("flood without reading", f"the server took {sent} bytes while none of its answers was read")
    grown = server.resources()[2] - before
    assert grown < 16 * 1024, f"{sent} bytes sent, never read, grew the server by {grown} KiB (bound: 16 MiB)"
    waited = other.round_trip("PING from another client meanwhile")
    assert waited < 0.5, f"another client waited {waited:.2f} s"
    # The client reads at last: every answer to what was sent comes (a partly sent frame is finished first).
    whole = sent // len(unit)
    rest = sent % len(unit)
    client.sock.setblocking(True)
    if rest:
        client.sock.sendall(unit[rest:])
        whole += 1
    client.sock.settimeout(target.reply_deadline(10))
    if flood == "pings":
        expected = answer * whole
        got = bytearray()
        while len(got) < len(expected):
            try:
                chunk = client.sock.recv(1 << 20)
            except OSError as error:
                chunk = error
            assert isinstance(chunk, bytes) and chunk, (
                f"after {len(got)} of {len(expected)} bytes of pongs: {chunk!r}\n{server.log()}")
            got += chunk
        assert got == expected, f"the pongs to {whole} pings differ from byte {harness.first_difference(got, expected)}"
    else:
        client.expect_replies((b"$125\r\n" + payload + b"\r\n") * whole, f"the replies to {whole} ECHOs")
