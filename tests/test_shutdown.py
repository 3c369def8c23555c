"""Ctrl+C (SIGINT; CTRL_C_EVENT under Wine): a graceful stop, from lesson 03 on."""

import ctypes
import os
import re
import select
import signal
import subprocess
import time

import pytest

from harness import COURSE_ROOT, SHUTDOWN_NOTICE, CourseFailure, Server

SHUTDOWN_LIMIT = 2.0  # seconds, with 100 clients connected


@pytest.mark.needs("graceful_shutdown")
def test_ctrl_c_with_100_clients_tells_each_and_exits_0_in_time(server, connections, target):
    clients = [server.connect() for _ in range(100)]
    connections.extend(clients)
    for index, client in enumerate(clients):
        client.round_trip(f"ready {index}".encode())  # every client is accepted and has its thread

    started = time.monotonic()
    server.interrupt()
    goodbye = ("at the stop the loop queues the notice for every client still open (session_stop()), then closes "
               "each once it is sent" if target.stage.event_loop else
               "each client's thread says goodbye on its own socket, then closes it: the main thread only joins "
               "the threads, and never closes a socket another thread uses")
    for client in clients:
        client.expect(SHUTDOWN_NOTICE, step="wait for the shutdown notice", hint=goodbye)
        client.expect_eof(hint="after the notice the server closes the connection")
    code = server.wait(target.deadline(SHUTDOWN_LIMIT))
    elapsed = time.monotonic() - started
    assert code is not None, f"the server was still running {elapsed:.1f} s after Ctrl+C\n{server.log()}"
    assert code == 0, f"the server exited {code} after Ctrl+C, expected 0\n{server.log()}"
    assert elapsed < target.deadline(SHUTDOWN_LIMIT), f"shutdown took {elapsed:.2f} s\n{server.log()}"


@pytest.mark.needs("graceful_shutdown")
@pytest.mark.builds("linux")  # a client whose window stays shut: Wine's sends rarely find the buffer full
def test_ctrl_c_while_a_reply_waits_for_room_ends_once_that_client_leaves(server, connections, target):
    """A client that sends lines and reads no reply: the server's send to it waits for room when Ctrl+C comes.
    The client then leaves, and the send fails: the server ends, exit 0. All the while that send uses the
    client's socket, so nothing else may close it: under the ThreadSanitizer build of a step, a main thread
    that closes the clients' sockets at the stop (docs/classic-mistakes.md #9) is a data race on that socket."""
    conn = server.connect(receive_buffer=4096)
    connections.append(conn)
    conn.round_trip(b"then I stop reading")
    conn.flood_without_reading()  # the server's send to it now waits for room
    server.interrupt()
    # The stop has begun (its log line), and the send still waits: the client leaves now.
    assert server.stderr.wait_for(r"server:? stopping", target.deadline(5)), f"no 'stopping' line\n{server.log()}"
    conn.close()
    code = server.wait(target.deadline(SHUTDOWN_LIMIT))
    assert code == 0, (f"the server exited {code} (None: still running) after Ctrl+C, once the client it was "
                       f"sending to had left: a send to a client that has gone fails, and the thread ends\n"
                       f"{server.log()}")


@pytest.mark.needs("graceful_shutdown")
def test_ctrl_c_tells_a_client_that_waits_at_once(server, connections, target):
    """One client, answered, that sends nothing more: at Ctrl+C its thread (or the loop) must notice the stop
    where it waits for that client, and tell it, with nothing more from the client."""
    client = server.connect()
    connections.append(client)
    client.round_trip(b"hello")
    server.interrupt()
    hint = ("at the stop the loop queues the notice for every client still open (session_stop()), then closes each "
            "once it is sent" if target.stage.event_loop
            else "no 'server shutting down' came after Ctrl+C: a client's thread must wait where the stop reaches it "
                 "(sock_wait_readable(), not recv(), which the stop does not end), and its goodbye must read only "
                 "what has already arrived (the socket made non-blocking, sock_set_nonblocking()), never wait for more")
    client.expect(SHUTDOWN_NOTICE, step="wait for the shutdown notice", hint=hint)
    client.expect_eof(hint="after the notice the server closes the connection")
    assert server.wait(target.deadline(SHUTDOWN_LIMIT)) == 0, server.log()


@pytest.mark.needs("graceful_shutdown")
def test_ctrl_c_leaves_the_port_free_for_a_new_server(server, connections, target):
    port = server.port
    client = server.connect()
    connections.append(client)
    client.round_trip(b"hello")
    server.interrupt()
    client.expect(SHUTDOWN_NOTICE)
    assert server.wait(target.deadline(SHUTDOWN_LIMIT)) == 0, server.log()
    again = Server(target, port=port)  # fails with the log if the port is still taken
    try:
        again.connect().round_trip(b"served by the new server")
    finally:
        again.stop()


@pytest.mark.needs("graceful_shutdown")
def test_ctrl_c_answers_lines_already_sent_before_the_notice(start_server, connections, target):
    # On Linux the line must be waiting when the client's thread hears the stop: only the goodbye can answer it.
    # Where the server has a thread per client, that thread is held (ptrace) while the main thread takes Ctrl+C
    # and the line arrives, and let go once both are there: it finds the stop and the line together, on every run.
    # An event loop's one thread is paused (SIGSTOP) instead, and takes Ctrl+C before it polls again. Under
    # Wine, or where ptrace is not allowed (a SIGSTOP of the whole process, whose threads then race for it), the
    # line may be answered before the stop is seen: five times, then.
    for attempt in range(5):
        server = start_server()
        client = server.connect()
        connections.append(client)
        client.round_trip(b"first")
        held = hold_client_threads(server, target.deadline(5)) if target.build == "linux" and \
            target.stage.thread_per_client else None
        paused = target.build == "linux" and held is None
        if paused:
            server.process.send_signal(signal.SIGSTOP)
        client.send(b"sent just before ctrl+c\n")
        if target.build == "linux":
            client.wait_until_acknowledged(target.deadline(5))  # in the server's queue, not still on the way
        server.interrupt()
        if paused:
            server.process.send_signal(signal.SIGCONT)
        if held is not None:
            # The main thread has taken Ctrl+C (its log says so): only now may the client's thread run again.
            stopping = server.stderr.wait_for(r"\bstopping\b", target.deadline(5))
            held()
            assert stopping, f"no 'stopping' line after Ctrl+C\n{server.log()}"
        client.expect(
            target.stage.reply(b"sent just before ctrl+c") + SHUTDOWN_NOTICE,
            step=f"attempt {attempt + 1}: wait for the answer, then the notice",
            hint="read what the client already sent, answer it, then send the notice",
        )
        client.expect_eof()
        assert server.wait(target.deadline(SHUTDOWN_LIMIT)) == 0, server.log()
        if held is not None or target.build == "wine":
            break  # one attempt: the line was surely waiting (or, under Wine, there is nothing to hold)


PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17
WAIT_ALL = 0x40000000  # __WALL: wait for a thread of a child, not only for the child itself


def waits_in_poll(pid, thread):
    """Whether a thread of the server is asleep in poll() (Linux's /proc): a client's thread waiting for its client,
    not a thread of the log, nor the main thread."""
    try:
        with open(f"/proc/{pid}/task/{thread}/wchan") as wchan:
            return "poll" in wchan.read()
    except OSError:
        return False


def hold_client_threads(server, timeout):
    """Stops, with ptrace (Linux), the threads of the server that wait in poll(), the main one left running, once
    there is one (a client's thread goes back to poll() after each reply); returns a function that lets them go, or
    None if none came to wait within timeout seconds, or if ptrace is not allowed here."""
    pid = server.process.pid
    end = time.monotonic() + timeout
    while True:
        threads = [int(task) for task in os.listdir(f"/proc/{pid}/task") if int(task) != pid and
                   waits_in_poll(pid, task)]
        if threads or time.monotonic() > end:
            break
        time.sleep(0.001)  # polling a condition with a deadline, not guessing readiness
    if not threads:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    held = []

    def release():
        for thread in held:
            libc.ptrace(PTRACE_DETACH, thread, None, None)  # it goes on where it was stopped

    for thread in threads:
        if libc.ptrace(PTRACE_SEIZE, thread, None, None) != 0:
            release()
            return None  # not allowed (a container, Yama): the caller pauses the whole process instead
        held.append(thread)
        libc.ptrace(PTRACE_INTERRUPT, thread, None, None)
        os.waitpid(thread, WAIT_ALL)  # until it has stopped
    return release


@pytest.mark.needs("graceful_shutdown")
def test_ctrl_c_stops_in_time_while_a_client_never_stops_sending(start_server, connections, target):
    # The client sends lines without pause and reads every reply, so its thread always finds more
    # input waiting. At a stop the server must give it a bounded number of further reads, not wait
    # for it to fall silent. (final/ on Linux shuts the read side, and the reads end with what was
    # queued; under Wine only the server's own bound ends them, and without it this test fails.)
    # Where that bound is a count of reads (lesson 03), on Linux, a non-blocking recv() that finds nothing waits
    # a moment for bytes instead of failing (an injected fault): without it a server with no bound caught up with
    # the client now and then (one run in three), found nothing waiting, and ended as if bounded. With it, such a
    # server never ends, or, once its replies fill the connection, gives up on the client without the notice:
    # so there the notice must come, too.
    waits = target.build == "linux" and not target.stage.limits and not os.environ.get("COURSE_SANITIZER")
    server = start_server(env={"LD_PRELOAD": str(fault_library("reads_wait_for_data"))} if waits else None)
    client = server.connect()
    connections.append(client)
    client.round_trip(b"ready")
    sock = client.sock
    sock.setblocking(False)
    # Lines of ordinary length: with 2-byte lines each read of the server's bounded goodbye held 2048 lines,
    # and answering them one send() each took Wine 3.7-6.3 s of its 8 s. What is tested is that the reads
    # end, and without the bound they never do (checked under Wine for lesson 03 and final/).
    # The client sends its next chunk only once every reply to the last one has come: it never stops sending,
    # but its replies never pile up either. Lesson 03's goodbye drops the notice when the connection is full
    # (its socket is non-blocking then); a client that lagged behind its replies made the course's own server
    # fail this test now and then under load. With one chunk in flight, the connection never fills: a server
    # with a bound always has room for the notice, and one without never runs out of lines to read.
    line = b"still sending"
    chunk = (line + b"\n") * 1170
    reply_per_line = len(target.stage.reply(line))
    to_send = b""  # what is left of the chunk being sent
    lines_sent = received = 0
    interrupted_at = None
    closed = False
    tail = b""  # the last bytes received: the notice, at the end
    give_up = time.monotonic() + target.deadline(SHUTDOWN_LIMIT) + 5
    while not closed and time.monotonic() < give_up:
        all_answered = received >= lines_sent * reply_per_line
        if not to_send and all_answered:
            to_send = chunk
        readable, writable, _ = select.select([sock], [sock] if to_send else [], [], 0.1)
        if writable:
            try:
                sent = sock.send(to_send)
                lines_sent += to_send[:sent].count(b"\n")
                to_send = to_send[sent:]
            except BlockingIOError:
                pass
            except OSError:
                closed = True  # the server has closed, possibly with a reset for the unread lines
        if readable:
            try:
                got = sock.recv(1 << 16)
                received += len(got)
                tail = (tail + got)[-64:]
                closed = closed or not got
            except BlockingIOError:
                pass
            except OSError:
                closed = True
        if interrupted_at is None:
            server.interrupt()  # the client is already streaming when Ctrl+C comes
            interrupted_at = time.monotonic()
    code = server.wait(max(0.0, interrupted_at + target.deadline(SHUTDOWN_LIMIT) - time.monotonic()))
    hint = ("a client that never stops sending keeps a goodbye that reads until nothing is waiting reading for "
            "ever: at the stop, give it a bounded number of reads (GOODBYE_MAX_READS in lesson 03), then send "
            "the notice and close")
    if code != 0:
        raise CourseFailure(f"with a client that never stops sending, the server exited {code} (None: still running) "
                            f"{SHUTDOWN_LIMIT} s after Ctrl+C, expected 0: bound the reads after a stop\n"
                            f"hint: {hint}\n{server.log()}", kind="running" if code is None else "exit", hint=hint)
    assert closed, "the server exited but the client's connection was never closed"
    if waits:
        tail += read_what_is_left(sock)  # a send that met the reset may have ended the loop before the notice
        if not tail.endswith(SHUTDOWN_NOTICE):
            raise CourseFailure(f"with a client that never stops sending, the server closed the connection without "
                                f"the notice; the last bytes that came: {tail[-40:]!r}\nhint: {hint}\n{server.log()}",
                                kind="differs", hint=hint)


def read_what_is_left(sock):
    """What a closed connection still holds, up to its end or its reset."""
    left = b""
    sock.settimeout(1)
    try:
        while chunk := sock.recv(1 << 16):
            left += chunk
    except OSError:
        pass  # the reset that ends it
    return left


@pytest.mark.needs("graceful_shutdown")
@pytest.mark.builds("linux")  # SIGTERM is a POSIX signal; Windows has console events instead
def test_sigterm_stops_gracefully_like_ctrl_c(server, connections, target):
    client = server.connect()
    connections.append(client)
    client.round_trip(b"hello")
    server.process.send_signal(signal.SIGTERM)
    client.expect(SHUTDOWN_NOTICE, hint="SIGTERM (what `kill` sends) must stop the server like Ctrl+C")
    client.expect_eof()
    assert server.wait(target.deadline(SHUTDOWN_LIMIT)) == 0, server.log()


def main_thread_waits_in_a_futex(server):
    """Whether the server's main thread is asleep in a futex, in pthread_join() or on a mutex (Linux's /proc)."""
    try:
        with open(f"/proc/{server.process.pid}/wchan") as wchan:
            return "futex" in wchan.read()
    except OSError:
        return False  # it has ended


# Not where a stop ends every wait for room itself (final/, NET_SEND_STOPPED): there the thread does not wait for its
# client to go, and test_reliability.py checks that it does not.
@pytest.mark.needs("graceful_shutdown")
@pytest.mark.needs("thread_per_client")
@pytest.mark.needs_not("limits")
@pytest.mark.builds("linux")  # /proc shows where the main thread waits
def test_ctrl_c_joins_every_client_thread_even_one_that_ends_after_it(server, connections, target):
    """At a stop the main thread joins every client's thread, once each has ended: a thread that ends after the
    main thread has begun to join must still be joined, and must still be able to say that it has finished. The
    client fills its connection without reading, so that its thread waits in send() and cannot end, whether it
    hears the stop or not, until the client goes; the client goes only once the main thread waits to join. A main
    thread that joins while it holds the list's lock then waits for ever for a thread that waits for that lock,
    and one that skips the last client of the list ends without it: on every run."""
    client = server.connect(receive_buffer=4096)
    connections.append(client)
    client.round_trip(b"ready")
    client.flood_without_reading()  # its thread now waits in send() for room that only the client can make
    port = client.sock.getsockname()[1]
    server.interrupt()
    assert server.stderr.wait_for(r"\bstopping\b", target.deadline(5)), f"no 'stopping' after Ctrl+C\n{server.log()}"
    # The main thread goes on to join the client's thread: it waits in pthread_join() (a futex) until it ends.
    end = time.monotonic() + target.deadline(5)
    while server.process.poll() is None and not main_thread_waits_in_a_futex(server) and time.monotonic() < end:
        time.sleep(0.001)  # polling a condition with a deadline, not guessing readiness
    left = rf"127\.0\.0\.1:{port} disconnected\b"
    if server.process.poll() is None:
        client.close()  # the client goes, its replies unread: its thread's send() fails, and the thread ends
        if server.wait(target.deadline(SHUTDOWN_LIMIT)) is None:
            hint = ("the main thread waits for ever after Ctrl+C, once the client's thread has ended: does "
                    "join_clients() hold the list's lock while it joins? A thread that ends takes that lock to mark "
                    "itself finished: unlink the clients under the lock, then join them after unlocking it")
            raise CourseFailure(f"step: the client left after Ctrl+C\nthe server was still running "
                                f"{target.deadline(SHUTDOWN_LIMIT):.0f} s after its last client left\nhint: {hint}\n"
                                f"{server.log()}", kind="running", hint=hint)
    server.wait(0)  # it has ended (or the test has failed above): read what it wrote to the end
    if not re.search(left, server.stderr.text(), flags=re.M):
        hint = ("the server ended after Ctrl+C without waiting for its client's thread, which never logged "
                "'disconnected': join_clients(list, true) must unlink and join every client of the list, the last "
                "one too")
        raise CourseFailure(f"step: Ctrl+C with a client connected\nthe server ended ({server.process.poll()}) and "
                            f"no stderr line matches {left!r}\nhint: {hint}\n{server.log()}", kind="exit", hint=hint)
    assert server.wait(0) == 0, f"after Ctrl+C the server exited {server.wait(0)}, expected 0\n{server.log()}"


@pytest.mark.needs("graceful_shutdown")
def test_idle_server_stops_at_once_on_ctrl_c(server, target):
    server.interrupt()
    code = server.wait(target.deadline(SHUTDOWN_LIMIT))
    assert code == 0, f"an idle server exited {code} after Ctrl+C (None: still running), expected 0\n{server.log()}"


# Only where a client that does not read can hold up the first stop: final/ ends every wait for room a second
# after a stop (NET_SEND_STOPPED), too soon to aim a second Ctrl+C at, and test_reliability.py checks that it does.
# Its second Ctrl+C is checked by the next test, on Linux; the Windows console handler behind it is the same code as
# lesson 03's, checked here.
@pytest.mark.needs("graceful_shutdown")
@pytest.mark.needs_not("limits")
def test_second_ctrl_c_exits_at_once_with_code_130(server, connections, target):
    client = server.connect(receive_buffer=4096)
    connections.append(client)
    client.round_trip(b"ready")
    client.flood_without_reading()  # its thread now waits in send() and cannot notice a stop
    server.interrupt()
    assert server.wait(0.5) is None, f"the first Ctrl+C should not finish while a thread is stuck\n{server.log()}"
    server.interrupt()
    code = server.wait(target.deadline(SHUTDOWN_LIMIT))
    assert code is not None, f"the server was still running after a second Ctrl+C\n{server.log()}"
    assert code == 130, f"after a second Ctrl+C the exit code was {code}, expected 130\n{server.log()}"


@pytest.mark.needs("graceful_shutdown")
@pytest.mark.builds("linux")  # SIGSTOP, SIGTERM and SIGCONT are POSIX signals
def test_second_stop_signal_during_a_stop_exits_at_once_with_code_130(server, target):
    # A stopped process cannot finish the first stop before the second signal comes: both wait, and both are
    # handled when it continues. SIGTERM is the second, because a second SIGINT would merge with the first.
    # With no client the server has one thread, so the second handler runs as soon as the first returns,
    # before the stop goes any further (a client's thread could end meanwhile, unjoined).
    server.process.send_signal(signal.SIGSTOP)
    server.process.send_signal(signal.SIGINT)
    server.process.send_signal(signal.SIGTERM)
    server.process.send_signal(signal.SIGCONT)
    code = server.wait(target.deadline(SHUTDOWN_LIMIT))
    assert code == 130, (f"with two stop signals at once the server exited {code} (None: still running), "
                         f"expected 130: the second must end it at once\n{server.log()}")


FAULTS = COURSE_ROOT / "tests" / "faults"


def fault_library(name):
    """Builds tests/faults/NAME.c into a shared library for LD_PRELOAD (once per run); returns its path."""
    library = COURSE_ROOT / "build" / "faults" / f"{name}.so"
    source = FAULTS / f"{name}.c"
    if not library.exists() or library.stat().st_mtime < source.stat().st_mtime:
        library.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"], check=True)
    return library


@pytest.mark.needs("graceful_shutdown")
@pytest.mark.builds("linux")  # LD_PRELOAD
@pytest.mark.plain_build_only  # a sanitizer runtime must come first in the process, before any preloaded library
def test_a_wait_for_clients_that_keeps_failing_is_reported_and_neither_spins_nor_blocks_ctrl_c(start_server, target):
    """poll() can fail (ENOMEM). A loop that just waits again at once spins at full speed, saying nothing."""
    server = start_server(env={"LD_PRELOAD": str(fault_library("waiting_fails"))})
    if not server.stderr.wait_for(r"waiting for (clients|events): Cannot allocate memory", target.deadline(5)):
        said = ("server error: waiting for events: REASON" if target.stage.event_loop else
                "server error: waiting for clients: REASON" if target.stage.timestamped_log else
                "server: waiting for clients: REASON")
        hint = (f"when the wait for clients fails, say so on stderr in exactly these words: '{said}', REASON from "
                f"sock_strerror(sock_last_error()) (here 'Cannot allocate memory'), then pause with wait_for_stop()")
        raise CourseFailure(f"the failed wait was not reported on stderr\nhint: {hint}\n{server.log()}", hint=hint)
    cpu_before = server.cpu_seconds()
    started = time.monotonic()
    time.sleep(1)  # a fixed measuring window for CPU use, not a wait for readiness
    cpu_used = server.cpu_seconds() - cpu_before
    elapsed = time.monotonic() - started
    if cpu_used >= 0.2 * elapsed:
        hint = "pause after a failed wait (wait_for_stop(), which Ctrl+C still ends) instead of waiting again at once"
        raise CourseFailure(f"with its wait failing, the server used {cpu_used:.2f} s of CPU in {elapsed:.1f} s\n"
                            f"hint: {hint}\n{server.log()}", hint=hint)
    server.interrupt()
    code = server.wait(target.deadline(SHUTDOWN_LIMIT))
    assert code == 0, f"Ctrl+C during failing waits: exit {code} (None: still running), expected 0\n{server.log()}"
