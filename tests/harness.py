"""The harness's tools: start a stage's real programs, talk to them, and
explain every failure in bytes.

A test never sleeps to guess that something is ready. The server prints one
line, ``listening on HOST:PORT``, and the harness waits for that line with a
deadline. Every wait here has a deadline, and a wait that runs out says what
it was waiting for.
"""

import errno
import fcntl
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from dataclasses import dataclass, field

from course import ROOT as COURSE_ROOT
from course import Stage

LINE_MAX_BYTES = 4096  # the framer's limit, from line_framer.h
TOO_LONG_REPLY = b"ERR line too long\n"
SHUTDOWN_NOTICE = b"server shutting down\n"
LISTENING = re.compile(r"^listening on (\S+):(\d+)\r?$")

# Wine starts programs more slowly than Linux does, and sanitizer builds run
# several times slower than plain ones: every deadline scales.
SLOWDOWN = {"linux": 1.0, "wine": 4.0}
SANITIZER_SLOWDOWN = 5.0 if os.environ.get("COURSE_SANITIZER") else 1.0
# Waiting for a reply, Wine needs less: its programs start slowly, but once
# running they answer in milliseconds. When scripts/steps.py runs one step's
# tests (COURSE_ONE_STEP is set), a missing Win32 function then shows in
# 7.5 s, not 20: a failing step should name itself fast. The whole stage's
# run, with its heavy reliability tests, keeps four times.
REPLY_SLOWDOWN = {"linux": 1.0, "wine": 1.5 if os.environ.get("COURSE_ONE_STEP") else 4.0}

# Wine (8.0, as Debian ships it) now and then ends a program before its
# main() runs: exit code 1, not a byte on stdout or stderr. Seen about once
# in 16 runs of the Wine tests (some 230 starts each): `server.exe --port`
# exited 1 instead of 2, and `server.exe --port 0` never said where it
# listened. The course's programs never exit without saying why, so that
# signature is Wine's. The harness then starts the program once more, and
# lists every such start at the end of the run.
WINE_FAILED_STARTS = []


def wine_failed_to_start(target, command, code, out, err):
    """Whether a run ended the way Wine ends a program it could not start (and records it if so)."""
    if target.build != "wine" or code != 1 or out or err:
        return False
    WINE_FAILED_STARTS.append(" ".join(command))
    return True


class CourseFailure(AssertionError):
    """A failure the harness explains. Its kind says what went wrong, and scripts/steps.py chooses a step's hint
    by it: start (no "listening on" line), refused, timeout (nothing came in time), closed (closed too early),
    reset, differs (other bytes came), exit (a wrong exit code), running (still running: it should have ended).
    Its hint, when the test has one, is what the student should look at first. tests/conftest.py records both
    for the step runner, so that nobody has to recover them from the message's words."""

    def __init__(self, message, kind="other", hint=None):
        super().__init__(message)
        self.kind = kind
        self.hint = hint


def first_difference(got, expected):
    """The offset of the first byte where got and expected differ (the shorter one's length if one is the other's
    start), or None when they are equal."""
    got, expected = bytes(got), bytes(expected)
    if got == expected:
        return None
    return next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))


def show(data, around=None):
    """Bytes as a Python literal, so that "\\n", "\\r" and "\\x00" are visible. A long one is cut, keeping the
    bytes around offset `around` (where it differs from what was expected) in view."""
    if data is None:
        return "(nothing)"
    data = bytes(data)
    text = repr(data)
    if len(text) <= 300:
        return text
    if around is None or around < 100:
        return repr(data[:100]) + " ... " + repr(data[-60:]) + f" ({len(data)} bytes)"
    start = max(0, around - 60)
    return (repr(data[:40]) + f" ... (from byte {start}) " + repr(data[start:around + 60])
            + f" ... ({len(data)} bytes)")


@dataclass
class Target:
    """A stage built for one platform: "linux" runs the programs, "wine" the .exe files under Wine. A variant
    names another build of the server on the same platform: "poll" runs lesson 04's server-poll."""

    stage: Stage
    build: str
    wine_env: dict = field(default_factory=dict)
    variant: str = ""

    @property
    def id(self):
        return f"{self.stage.name}-{self.build}" + (f"-{self.variant}" if self.variant else "")

    def command(self, program, *args):
        """The command line of "server" or "client"; SERVER= and CLIENT= put any program in their place."""
        if self.build == "wine":
            return ["wine", str(self.stage.programs / f"{program}.exe"), *args]
        chosen = os.environ.get(f"COURSE_{program.upper()}")
        if program == "server" and self.variant:
            program = f"server-{self.variant}"
        return [chosen if chosen else str(self.stage.programs / program), *args]

    def path_argument(self, path):
        """A file's path as the target's programs take it: Wine's programs see Linux's / as drive Z:."""
        return "Z:" + str(path).replace("/", "\\") if self.build == "wine" else str(path)

    def env(self):
        env = dict(os.environ)
        env.update(self.wine_env)
        return env

    def deadline(self, seconds):
        return seconds * SLOWDOWN[self.build] * SANITIZER_SLOWDOWN

    def reply_deadline(self, seconds):
        """How long to wait for a running server's reply (see REPLY_SLOWDOWN)."""
        return seconds * REPLY_SLOWDOWN[self.build] * SANITIZER_SLOWDOWN

    def run(self, program, *args, input=b"", timeout=10, env=None):
        """Runs a program to its end; returns a Ran (exit code, stdout, stderr) with Windows line ends made
        "\\n". env: variables added to the program's environment. A program that has not ended after its
        deadline is killed, and the failure says so in words, with what it had printed."""
        command = self.command(program, *args)
        limit = self.deadline(timeout)
        for _ in range(2):  # a second start only when Wine did not start the first (see WINE_FAILED_STARTS)
            try:
                done = subprocess.run(command, input=input, capture_output=True, timeout=limit,
                                      env={**self.env(), **(env or {})})
            except subprocess.TimeoutExpired as expired:
                ran = Ran(None, self.text(expired.stdout or b""), self.text(expired.stderr or b""), command)
                raise CourseFailure(f"{' '.join(command)} did not end within {limit:.0f} s, and was killed\n"
                                    f"{ran.describe()}", kind="running") from None
            if not wine_failed_to_start(self, command, done.returncode, done.stdout, done.stderr):
                break
        return Ran(done.returncode, self.text(done.stdout), self.text(done.stderr), command)

    def text(self, output):
        """A Windows console program ends its lines in "\\r\\n"; compare them as "\\n"."""
        return output.replace(b"\r\n", b"\n") if self.build == "wine" else output


class Ran(tuple):
    """What a program did that ran to its end: (code, stdout, stderr), as a tuple, so that `code, out, err =
    target.run(...)` reads as before; describe() says all of it, for a failure's message."""

    def __new__(cls, code, out, err, command=()):
        ran = super().__new__(cls, (code, out, err))
        ran.command = command
        return ran

    @property
    def code(self):
        return self[0]

    def describe(self):
        code = self[0]
        if code is None:
            ended = "it had not ended"
        elif code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else "unknown"
            ended = f"it was killed by signal {-code} ({name})"
        else:
            ended = f"it exited {code}"
        return f"{ended}; its stdout: {show(self[1])}; its stderr: {show(self[2])}"


class OutputReader:
    """Collects a pipe's lines on a thread of its own, so that nothing blocks on a full pipe."""

    def __init__(self, pipe):
        self.lines = []
        self.changed = threading.Condition()
        self.closed = False
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe):
        for raw in iter(pipe.readline, b""):
            with self.changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\r\n"))
                self.changed.notify_all()
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def _wait_until(self, look, enough, timeout):
        """Applies look() to the lines so far, and again after each new line, until enough(result), the end
        of the output or timeout seconds; returns the last result."""
        end = time.monotonic() + timeout
        with self.changed:
            while True:
                result = look(self.lines)
                left = end - time.monotonic()
                if enough(result) or left <= 0 or self.closed:
                    return result
                self.changed.wait(left)

    def wait_for(self, pattern, timeout):
        """Returns the first match of the regex on a line, waiting up to timeout seconds; None if none."""
        regex = re.compile(pattern)

        def first_match(lines):
            return next(filter(None, map(regex.search, lines)), None)

        return self._wait_until(first_match, lambda found: found is not None, timeout)

    def wait_for_count(self, pattern, count, timeout):
        """Waits up to timeout seconds until at least `count` lines match the regex; returns how many do."""
        regex = re.compile(pattern)

        def matching(lines):
            return sum(1 for line in lines if regex.search(line))

        return self._wait_until(matching, lambda found: found >= count, timeout)

    def text(self):
        with self.changed:
            return "\n".join(self.lines)


class NeverRead:
    """Stands in for an OutputReader where a pipe is left unread on purpose (Server(stderr_unread=True)):
    once it is full, the server's next write to it blocks."""

    def __init__(self, read_end):
        self.read_end = read_end
        self.lines = []
        self.closed = False
        self.thread = None

    def text(self):
        return "(stderr is a pipe that nobody reads, on purpose)"

    def close(self):
        os.close(self.read_end)


class Server:
    """A stage's server started on a free port (--port 0), ready once it says where it listens."""

    def __init__(self, target, *args, port=0, prefix=(), slowdown=1, preexec=None, env=None, stderr_unread=False):
        """prefix: a wrapper such as valgrind; slowdown: how much longer it may take to start;
        preexec: a function run in the child before the server starts (to set limits);
        env: variables added to the server's environment;
        stderr_unread: stderr is a pipe that nobody reads, as if the server's log were piped into a stalled program."""
        self.target = target
        self.extra_env = env or {}
        self.stderr_unread = stderr_unread
        self.command = [*prefix, *target.command("server", "--port", str(port), *args)]
        start_limit = target.deadline(10) * slowdown
        found = self._start(preexec, start_limit)
        if found is None and self._wine_failed_to_start():
            self._close_finished_pipes()
            found = self._start(preexec, start_limit)
        if found is None:
            ended = self.stdout.closed  # before kill(): did it end its output by itself?
            self.kill()
            waited = "its output ended" if ended else f"waited {start_limit:.0f} s"
            raise CourseFailure(
                f"step: start the server\n"
                f"{waited} without the line 'listening on HOST:PORT' on its stdout\n"
                f"command: {' '.join(self.command)}\n" + self.log(),
                kind="start",
            )
        # "[::1]" names an IPv6 address in brackets, so that its colons do not run into the port.
        self.host, self.port = found.group(1).removeprefix("[").removesuffix("]"), int(found.group(2))

    def _start(self, preexec, start_limit):
        """Starts the process; returns the match of its readiness line, or None if none came in time."""
        unread = os.pipe() if self.stderr_unread else None
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=unread[1] if unread else subprocess.PIPE,
            env={**self.target.env(), **self.extra_env},
            preexec_fn=preexec,
        )
        self.stdout = OutputReader(self.process.stdout)
        if unread:
            os.close(unread[1])  # the server holds the only write end
            self.stderr = NeverRead(unread[0])
        else:
            self.stderr = OutputReader(self.process.stderr)
        return self.stdout.wait_for(LISTENING.pattern, start_limit)

    def _wine_failed_to_start(self):
        """Whether the process ended, silent, the way Wine ends a program it could not start."""
        if not self.stdout.closed:
            return False  # still running: a hang is the server's, not Wine's start-up
        code = self.wait(self.target.deadline(1))
        if self.stderr.thread:
            self.stderr.thread.join(self.target.deadline(1))
        return wine_failed_to_start(self.target, self.command, code, self.stdout.text(), self.stderr.text())

    def log(self, last=25):
        """The last lines of the server's own output, for a failure message."""
        out = self.stdout.text().splitlines()[-last:]
        err = self.stderr.text().splitlines()[-last:]
        code = self.process.poll()
        state = "still running" if code is None else f"exited with {code}"
        return (
            f"--- server ({state}) stdout, last lines:\n"
            + "\n".join(out)
            + "\n--- server stderr, last lines:\n"
            + "\n".join(err)
        )

    def interrupt(self):
        """Ctrl+C: SIGINT (Wine turns it into CTRL_C_EVENT for the console handler)."""
        self.process.send_signal(signal.SIGINT)

    def wait(self, timeout):
        """The exit code, or None if the server is still running after timeout seconds. Once it has ended, its
        output is read to the end before this returns: a test that looks for its last line must find it (on a
        busy machine the reader threads were found behind the exit, and a line the server wrote was missed)."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in (self.stdout, self.stderr):
            if reader.thread:
                reader.thread.join(5)
        return code

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, graceful=True):
        """Teardown: Ctrl+C, a bounded wait, then kill; or, after a failed test (graceful=False), kill at once:
        the failure is reported already, and a server that missed its reply may miss its Ctrl+C too."""
        if self.process.poll() is None:
            if graceful:
                self.interrupt()
            if not graceful or self.wait(self.target.deadline(3)) is None:
                self.kill()
        self.stdout.thread.join(5)
        if self.stderr.thread:
            self.stderr.thread.join(5)
        self._close_finished_pipes()

    def _close_finished_pipes(self):
        """Closes the pipes whose readers have reached their end (the lines stay): a session starts hundreds
        of servers, and each open pipe is a descriptor the tests' own clients may need."""
        for reader, pipe in ((self.stdout, self.process.stdout), (self.stderr, self.process.stderr)):
            if isinstance(reader, NeverRead):
                if self.process.poll() is not None and not reader.closed:
                    reader.close()  # the server has ended: nobody can write to it any more
                    reader.closed = True
            elif not reader.thread.is_alive():
                pipe.close()

    def connect(self, **options):
        return Connection(self, **options)

    def resources(self):
        """(open descriptors, threads, resident KiB) of the server process, read from /proc."""
        pid = self.process.pid
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        threads = len(os.listdir(f"/proc/{pid}/task"))
        with open(f"/proc/{pid}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return fds, threads, rss

    def virtual_kib(self):
        """Address space the server has reserved (VmSize): an unjoined thread keeps its stack there."""
        with open(f"/proc/{self.process.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))

    def stack_sized_mappings(self):
        """How many of the server's memory mappings have the size of a default thread stack (8 MiB, give or
        take its guard page): those of live threads, of ended but unjoined ones, and the few glibc keeps
        cached for reuse."""
        count = 0
        with open(f"/proc/{self.process.pid}/maps") as maps:
            for line in maps:
                start, end = (int(address, 16) for address in line.split()[0].split("-"))
                count += abs((end - start) - (8 << 20)) <= (64 << 10)
        return count

    def cpu_seconds(self):
        """User plus system CPU time the server has used so far."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_for_resources(self, fds, threads, timeout):
        """Waits until descriptors and threads are back to at most the given counts; returns the last reading."""
        end = time.monotonic() + timeout
        while True:
            now = self.resources()
            if (now[0] <= fds and now[1] <= threads) or time.monotonic() > end:
                return now
            time.sleep(0.05)  # polling a condition with a deadline, not guessing readiness


def unread_by_server(sock, server_port):
    """The bytes that the server's end of this client socket holds unread (its receive queue), as a list of one,
    or an empty list when the kernel lists no such socket (yet, or any more), whichever build the server is:
    under Wine its sockets are Linux sockets too. Asked of the kernel for that one socket (sock_diag), or where
    that is refused, read from /proc/net/tcp, which lists every socket of the machine: with the tens of
    thousands a busy run leaves, reading it once per byte sent made a test outlast the server's deadline."""
    try:
        peer = sock.getpeername()[0]
    except OSError:
        return []  # no longer connected: the server's end is gone
    try:
        return _unread_by_sock_diag(sock, peer, server_port)
    except OSError:
        return _unread_in_proc_net_tcp(sock, server_port)


def wait_until_server_read(sock, server_port, timeout):
    """Waits until the server's end of this client socket holds no unread byte: None then, or, once timeout
    seconds have passed, what unread_by_server() last said (for the caller's failure)."""
    end = time.monotonic() + timeout
    while True:
        queued = unread_by_server(sock, server_port)
        if queued and queued[0] == 0:
            return None
        if time.monotonic() > end:
            return queued
        time.sleep(0.001)  # polling a condition with a deadline, not guessing readiness


def _unread_by_sock_diag(sock, server_host, server_port):
    """unread_by_server() through a netlink socket (NETLINK_SOCK_DIAG, sock_diag(7)): one request for the socket
    whose source is the server's address and port and whose destination is this socket's."""
    client_host, client_port = sock.getsockname()[:2]
    padded = [socket.inet_pton(sock.family, host).ljust(16, b"\0") for host in (server_host, client_host)]
    no_cookie = 0xFFFFFFFF  # INET_DIAG_NOCOOKIE: found by its addresses alone
    sockid = (struct.pack("!HH16s16s", server_port, client_port, *padded)
              + struct.pack("=III", 0, no_cookie, no_cookie))
    request = struct.pack("=BBBBI", sock.family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid  # every state
    sock_diag_by_family, nlm_f_request, nlmsg_error = 20, 1, 2
    header = struct.pack("=IHHII", 16 + len(request), sock_diag_by_family, nlm_f_request, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4) as diag:  # 4: NETLINK_SOCK_DIAG
        diag.settimeout(5)
        diag.send(header + request)
        answer = diag.recv(65536)
    if struct.unpack_from("=H", answer, 4)[0] == nlmsg_error:
        code = -struct.unpack_from("=i", answer, 16)[0]
        if code == errno.ENOENT:
            return []
        raise OSError(code, os.strerror(code))
    # inet_diag_msg after the 16-byte header: family, state, timer, retrans, the 48-byte id, expires, rqueue, ...
    return [struct.unpack_from("=I", answer, 16 + 4 + 48 + 4)[0]]


def _unread_in_proc_net_tcp(sock, server_port):
    """unread_by_server() from /proc/net/tcp (tcp6)."""
    table = "/proc/net/tcp6" if sock.family == socket.AF_INET6 else "/proc/net/tcp"
    mine = sock.getsockname()[1]
    with open(table) as rows:
        # Fields: sl local_address rem_address st tx_queue:rx_queue ...; addresses are HEXIP:HEXPORT.
        return [int(fields[4].split(":")[1], 16) for fields in (row.split() for row in rows)
                if fields[1].endswith(f":{server_port:04X}") and fields[2].endswith(f":{mine:04X}")]


class Connection:
    """One client socket to a Server, whose failures say what was sent, expected and received."""

    def __init__(self, server, timeout=5, receive_buffer=None):
        """receive_buffer: a small SO_RCVBUF makes a client that does not read fill up quickly."""
        self.server = server
        self.timeout = server.target.reply_deadline(timeout)
        self.sent = b""
        self.received = b""
        try:
            self.sock = socket.socket(socket.AF_INET6 if ":" in server.host else socket.AF_INET)
            if receive_buffer:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            self.sock.settimeout(self.timeout)
            self.sock.connect((server.host, server.port))
        except OSError as error:
            self.fail("connect", f"could not connect: {error}", kind="refused")
        # Small sends must leave at once, one segment each, for the chunking tests.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # The likely mistake behind each kind of failure, for tests that give no hint of their own: the message says
    # it as "likely: ...", which scripts/steps.py replaces with the step's own hint.
    DEFAULT_HINTS = {
        "timeout": "the server sent nothing, or not all of the reply: a missing '\\n', a send() never made, "
        "or a thread blocked somewhere else (its log is below)",
        "closed": "the server hung up early: did it take one recv() for a whole line, or stop at an error? "
        "(its log is below)",
        "differs": "compare the bytes from the first that differs: a missing or extra '\\n', a '\\r' not "
        "dropped, or the reply to another line",
        "reset": "the connection was reset: the server closed with bytes unread, or crashed (its log is below)",
    }

    def fail(self, step, problem, expected=None, hint=None, kind="other", reply=None):
        """Ends the test with a message that names the step, the bytes sent, expected and received (and, given
        this reply's bytes, where they first differ from the expected ones), a hint and the server's log."""
        # pytest leaves this frame out of a failure's traceback: the message names the step and the bytes.
        __tracebackhide__ = True
        guess = self.DEFAULT_HINTS.get(kind) if hint is None else None
        message = [f"step: {step}", problem]
        message.append(f"sent so far:      {show(self.sent)}")
        where = first_difference(reply, expected) if reply is not None and expected is not None else None
        if where is not None:
            cut = " (it ends there)" if where == len(reply) else ""
            message.append(f"first difference: at byte {where} of this reply{cut}")
        if expected is not None:
            message.append(f"expected:         {show(expected, where)}")
        message.append(f"received so far:  {show(self.received)}")
        if hint:
            message.append(f"hint: {hint}")
        elif guess:
            message.append(f"likely: {guess}")  # the harness's guess; a step's own hint replaces it
        stage = self.server.target.stage.path.relative_to(COURSE_ROOT)
        message.append(f"reread: {stage}/README.md (what this stage adds) and docs/protocol.md (the exact bytes)")
        message.append(self.server.log())
        failure = CourseFailure("\n".join(message), kind, hint)
        failure.__suppress_context__ = True  # the socket error inside is in the message already
        raise failure

    def send(self, data, step="send"):
        __tracebackhide__ = True
        try:
            self.sock.sendall(data)
        except OSError as error:
            self.fail(step, f"sending {show(data)} failed: {error}", kind="reset")
        self.sent += data

    def send_bytewise(self, data, each_read=False):
        """One send() per byte: the server sees the worst chunking there is. each_read: each byte is sent only
        once the server has read the one before (see wait_until_read()), so that every recv() of the server gets
        exactly one byte, on every run; without it, bytes that arrive while the server is busy are read together."""
        __tracebackhide__ = True
        for i in range(len(data)):
            self.send(data[i : i + 1])
            if each_read:
                self.wait_until_read(self.timeout)

    def wait_until_read(self, timeout):
        """Waits until the server has read every byte sent (its socket's receive queue is empty)."""
        __tracebackhide__ = True
        queued = wait_until_server_read(self.sock, self.server.port, timeout)
        if queued is not None:
            self.fail("wait for the server to read what was sent",
                      f"the server's socket still held {queued[0] if queued else '?'} unread bytes after "
                      f"{timeout:.0f} s: it does not read", kind="timeout")

    def wait_until_acknowledged(self, timeout):
        """Linux: waits until the peer's kernel has acknowledged every byte sent (nothing left in the send
        queue), so that what was sent is in the server's receive queue even if the server is stopped."""
        __tracebackhide__ = True
        end = time.monotonic() + timeout
        while struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0] > 0:
            if time.monotonic() > end:
                self.fail("wait for the bytes sent to be acknowledged", f"still unacknowledged after {timeout} s")
            time.sleep(0.001)  # polling a condition with a deadline, not guessing readiness

    def flood_without_reading(self, limit=64 << 20):
        """Sends lines and reads no reply until the server takes nothing for 0.5 s: both directions
        are then full, and the server's thread for this client waits in send(). Returns the bytes
        sent; self.flood_started is when the first of them went, self.stalled_since when the last did. Leaves
        the socket non-blocking.
        Open with receive_buffer=4096 so that this happens after a few MiB, not hundreds."""
        __tracebackhide__ = True
        chunk = b"x\n" * 32768
        self.sock.setblocking(False)
        sent = 0
        self.flood_started = self.stalled_since = time.monotonic()
        while sent < limit:
            _, writable, _ = select.select([], [self.sock], [], 0.5)
            if not writable:
                return sent
            try:
                sent += self.sock.send(chunk)
                self.stalled_since = time.monotonic()
            except BlockingIOError:
                continue
        self.fail("fill the connection", f"the server kept reading {sent} bytes while no reply was read",
                  hint="a client that reads none of its replies must not be read from without end: once its replies "
                       "wait unsent past a limit, the server must read nothing more from it (backpressure), so that "
                       "its own sends stall")

    def expect(self, expected, step="wait for the reply", hint=None):
        """Receives exactly len(expected) bytes and demands they are expected."""
        __tracebackhide__ = True
        got = b""
        while len(got) < len(expected):
            try:
                chunk = self.sock.recv(len(expected) - len(got))
            except socket.timeout:
                self.received += got
                self.fail(step, f"no reply came within {self.timeout:.0f} s (timed out)", expected, hint, "timeout",
                          got)
            except OSError as error:
                self.received += got
                self.fail(step, f"the connection broke: {error}", expected, hint, "reset", got)
            if not chunk:
                self.received += got
                self.fail(step, "the server closed the connection before the whole reply came", expected, hint,
                          "closed", got)
            got += chunk
            if not expected.startswith(got):
                self.received += got
                self.fail(step, "the reply differs from what was expected", expected, hint, "differs", got)
        self.received += got

    def expect_eof(self, step="wait for the server to close", hint=None, reset_allowed=True):
        """Demands that the server closes the connection and sends nothing more first.

        With reset_allowed=False the close must be an end of stream (FIN), not a reset (RST).
        """
        __tracebackhide__ = True
        try:
            chunk = self.sock.recv(4096)
        except socket.timeout:
            self.fail(step, f"the connection was still open after {self.timeout:.0f} s (timed out)",
                      b"(end of stream)", hint, "timeout")
        except ConnectionResetError:
            if not reset_allowed:
                self.fail(step, "the server reset the connection instead of ending the stream", b"(end of stream)",
                          hint, "reset")
            chunk = b""  # a reset is a close, too
        if chunk:
            self.received += chunk
            self.fail(step, "expected the connection to close, but more bytes came", b"(end of stream)", hint,
                      "differs")

    def expect_silence(self, seconds, step="check that nothing comes", hint=None):
        """Demands that no byte arrives for `seconds` (a bounded wait, not a guess at readiness)."""
        __tracebackhide__ = True
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(4096)
        except socket.timeout:
            chunk = None
        finally:
            self.sock.settimeout(self.timeout)
        if chunk is not None:
            self.received += chunk
            self.fail(step, f"expected nothing for {seconds} s, but this came", b"(nothing)", hint, "differs")

    def round_trip(self, line):
        """Sends one line and expects its reply."""
        __tracebackhide__ = True
        self.send(line + b"\n")
        self.expect(self.server.target.stage.reply(line))

    def close(self):
        self.sock.close()


def free_port():
    """A port nobody listens on right now (for the "connection refused" tests)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
