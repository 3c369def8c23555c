"""pytest set-up: which stages and builds to test, and the server fixtures.

Every test that takes the `target` fixture runs once per stage and build:
"linux" runs <stage>/server and <stage>/client, "wine" runs <stage>/server.exe
and <stage>/client.exe under Wine. A test states what it needs of a stage
with a marker, @pytest.mark.needs("concurrent"), or @pytest.mark.needs_not(...),
naming a key of the stage's stage.ini; stages without it are not collected.

Environment:
  COURSE_STAGES   the stage directories to test (make test LESSON=02 sets it)
  COURSE_BUILDS   "linux wine" (default) or just one of them; an event loop's server-poll runs with "linux"
  COURSE_VARIANTS "no" leaves out the other builds of a server (server-poll)
  CI              when set, missing Wine is an error instead of a skip
  COURSE_SANITIZER  set by scripts/sanitize: the programs are sanitizer builds, so deadlines stretch
  COURSE_IMPL     a student's copy of the stage (make test IMPL=...): its programs are tested
  COURSE_SERVER, COURSE_CLIENT  any server and client program (make test SERVER=... CLIENT=...)
  COURSE_ONLY_NEW when 1, only the tests of what the stage adds (make test ONLY=1)
  COURSE_ONE_STEP set by scripts/steps.py when it runs one step's tests: a Wine reply is waited for less long
  COURSE_STEP_REPORT  set by scripts/steps.py: a file where each failure is recorded (test, message, kind, hint)
These are every COURSE_ variable the harness reads; docs/testing.md lists them too.
"""

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess

import pytest

import course
import figures
import harness
from harness import COURSE_ROOT, Server, Target

# A program started in the background by a shell without job control (`cmd &`
# in a script, nohup) finds Ctrl+C (SIGINT) and SIGQUIT ignored, and every
# server started from here would inherit that: one without a handler of its
# own (lessons 01 and 02) then outlives each Ctrl+C the tests send, and each
# teardown waits for its deadline. Python leaves an ignored SIGINT ignored;
# restoring the defaults gives each server a terminal's usual Ctrl+C,
# however the tests were started.
for _sig in (signal.SIGINT, signal.SIGQUIT):
    if signal.getsignal(_sig) == signal.SIG_IGN:
        signal.signal(_sig, signal.default_int_handler if _sig == signal.SIGINT else signal.SIG_DFL)

WINE_PREFIX = COURSE_ROOT / "build" / "wineprefix"
WINE_ENV = {
    "WINEPREFIX": str(WINE_PREFIX),
    "WINEDEBUG": "-all",
    # No Mono or Gecko: console programs need neither, and nothing may be downloaded.
    "WINEDLLOVERRIDES": "mscoree=;mshtml=",
}
# The test sessions that share a Wine server one of them started: each holds a lock on a file of its own in
# this folder (named by its process ID) while it runs, and the last to end stops the server. The first to end
# would kill the others' Windows programs (make watch beside make test), and a server killed in a test of its
# stop can look as if it stopped. A session that crashed holds nothing, so its file counts for nothing. A server
# that no running session started (.ci/run starts one for both its lanes) is never stopped by a session.
WINE_SESSIONS = COURSE_ROOT / "build" / "wine-sessions"
# Held while a session starts or ends: one at a time, so none joins a server that another is stopping.
WINE_SESSIONS_LOCK = COURSE_ROOT / "build" / "wine-sessions.lock"


def selected_stages():
    """The stages to test (COURSE_STAGES, or all); their programs are a student's copy's with COURSE_IMPL."""
    return course.load_selected(os.environ.get("COURSE_STAGES", "").split(), os.environ.get("COURSE_IMPL") or None)


def wine_unavailable(stages):
    """Why the Windows build cannot be tested here, or None when it can."""
    if shutil.which("wine") is None:
        return "Wine is not installed (make deps installs it on Debian and Ubuntu)"
    for stage in stages:
        for program in ("server.exe", "client.exe"):
            # The programs under test: the stage's own, or a student's copy (IMPL=).
            if not (stage.programs / program).exists():
                return f"{stage.programs}/{program} is not built (make windows needs MinGW-w64)"
    return None


def pytest_configure(config):
    config.addinivalue_line("markers", "needs(feature): run only on stages whose stage.ini has feature = yes")
    config.addinivalue_line("markers", "needs_not(feature): run only on stages whose stage.ini has feature = no")
    config.addinivalue_line(
        "markers", "measures_resources: asserts memory, CPU or latency bounds (left out of sanitizer runs)"
    )
    config.addinivalue_line(
        "markers", "plain_build_only: sets process limits that sanitizer runtimes cannot start under"
    )
    config.addinivalue_line("markers", "any_protocol: applies to every stage, RESP ones (commands = yes) included")
    config.addinivalue_line("markers", "builds(*names): run only on these builds, e.g. builds('linux') for POSIX signals")
    stages = selected_stages()
    builds = os.environ.get("COURSE_BUILDS", "linux wine").split()
    if os.environ.get("COURSE_SERVER") or os.environ.get("COURSE_CLIENT"):
        builds = [build for build in builds if build == "linux"]  # a program of yours runs as it is
    config.course_stages = stages
    config.course_wine_skip = None
    if "wine" in builds:
        reason = wine_unavailable(stages)
        if reason is not None:
            if os.environ.get("CI"):
                raise pytest.UsageError(f"the Windows tests must run on CI, but: {reason}")
            config.course_wine_skip = reason
            builds.remove("wine")
    config.course_builds = builds


def pytest_report_header(config):
    names = " ".join(stage.name for stage in config.course_stages)
    lines = [f"course stages: {names}", f"course builds: {' '.join(config.course_builds)}"]
    if config.course_wine_skip:
        lines.append(f"WINDOWS TESTS SKIPPED: {config.course_wine_skip}")
    return lines


def pytest_terminal_summary(terminalreporter, config):
    if config.course_wine_skip:
        terminalreporter.section("WINDOWS BUILD NOT TESTED", sep="!", red=True, bold=True)
        terminalreporter.line(f"The Winsock build was skipped: {config.course_wine_skip}", red=True)
    if harness.WINE_FAILED_STARTS:
        terminalreporter.section("Wine did not start a program; started again", sep="-", yellow=True)
        terminalreporter.line("Exit code 1 with no output at all: Wine's signature, never the course's (harness.py).")
        for command in harness.WINE_FAILED_STARTS:
            terminalreporter.line(f"  {command}", yellow=True)


def wants(item_or_function, stage):
    """Whether a test's needs/needs_not markers allow this stage. A stage that speaks RESP (commands = yes)
    answers no line with the same reply, so it runs only the tests that say they apply to it: those marked
    needs("commands") or any_protocol."""
    says_it_applies = any(mark.args[0] == "commands" for mark in item_or_function.iter_markers("needs")) or \
        item_or_function.get_closest_marker("any_protocol") is not None
    if stage.commands and not says_it_applies:
        return False
    for mark in item_or_function.iter_markers("needs"):
        if not getattr(stage, mark.args[0]):
            return False
    for mark in item_or_function.iter_markers("needs_not"):
        if getattr(stage, mark.args[0]):
            return False
    return True


def is_new_in(item_or_function, stage):
    """Whether a test checks something this stage adds (its needs markers name a key in stage.new)."""
    needs = {mark.args[0] for mark in item_or_function.iter_markers("needs")}
    if not needs:
        return "basics" in stage.new
    return bool(needs & set(stage.new))


def wants_build(item_or_function, build):
    """Whether a test's builds marker allows this build."""
    return all(build in mark.args for mark in item_or_function.iter_markers("builds"))


def variants_wanted():
    """Whether the other builds of a server (server-poll) are tested too: yes, but for a student's copy (IMPL=),
    a sanitizer run, or COURSE_VARIANTS=no."""
    return not os.environ.get("COURSE_IMPL") and not os.environ.get("COURSE_SANITIZER") and \
        os.environ.get("COURSE_VARIANTS", "yes") != "no"


def pytest_generate_tests(metafunc):
    if "target" not in metafunc.fixturenames:
        return
    config = metafunc.config
    targets = [
        Target(stage, build, WINE_ENV if build == "wine" else {}, variant)
        for stage in config.course_stages
        if wants(metafunc.definition, stage)
        for build in config.course_builds
        if wants_build(metafunc.definition, build)
        # An event loop's server is also built with poll() (server-poll): the same tests run on it, Linux ones.
        for variant in ([""] + (["poll"] if build == "linux" and stage.event_loop and variants_wanted() else []))
        if not os.environ.get("COURSE_ONLY_NEW") or is_new_in(metafunc.definition, stage)
    ]
    metafunc.parametrize("target", targets, ids=[t.id for t in targets], scope="module")


@pytest.fixture(scope="session", autouse=True)
def wine_session(request):
    """One Wine server for the whole run, in the build tree's own prefix, stopped by the last session using it."""
    if "wine" not in request.config.course_builds:
        yield
        return
    env = dict(os.environ, **WINE_ENV)
    # wineserver refuses a prefix directory that does not exist yet, so make it first.
    WINE_PREFIX.mkdir(parents=True, exist_ok=True)
    mine = None  # this session's file in WINE_SESSIONS, locked while it runs, when it shares a session's server
    with locked(WINE_SESSIONS_LOCK):
        # Persistent (-p) before anything else, so that the prefix is set up once and stays warm for every test.
        # It fails when a wineserver of this prefix runs already: then that one serves.
        started = subprocess.run(["wineserver", "-p"], env=env, check=False).returncode == 0
        if started:
            shutil.rmtree(WINE_SESSIONS, ignore_errors=True)  # a new server: any files there are of sessions gone
        if started or any(held_by_a_session(other) for other in session_files()):
            WINE_SESSIONS.mkdir(exist_ok=True)
            mine = open(WINE_SESSIONS / str(os.getpid()), "w")
            fcntl.flock(mine, fcntl.LOCK_EX)
    # Output to DEVNULL: Wine's helper processes outlive wineboot and would hold a pipe open.
    subprocess.run(["wineboot", "-i"], env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    yield
    if mine is None:
        return  # a server no running session started: not this session's to stop
    with locked(WINE_SESSIONS_LOCK):
        os.unlink(mine.name)
        mine.close()  # and with it, its lock
        if not any(held_by_a_session(other) for other in session_files()):
            shutil.rmtree(WINE_SESSIONS, ignore_errors=True)
            subprocess.run(["wineserver", "-k"], env=env, check=False)
            subprocess.run(["wineserver", "-w"], env=env, check=False, timeout=60)


@contextlib.contextmanager
def locked(path):
    """The block runs holding an exclusive lock on the file at path (made if need be)."""
    with open(path, "a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def session_files():
    return list(WINE_SESSIONS.iterdir()) if WINE_SESSIONS.is_dir() else []


def held_by_a_session(path):
    """Whether a running session holds its lock on this file: a crashed session's is free, whatever process now
    has its ID."""
    try:
        with open(path) as file:  # read only: a probe must not make the file it asks about
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except FileNotFoundError:
        return False
    return False


@pytest.fixture
def start_server(request, target):
    """Starts servers of the target on free ports; stops every one at the end of the test, or kills it if the
    test failed (pytest counts a failure before the teardown): the failure is reported already, and a server
    that missed its reply may miss its Ctrl+C too."""
    servers = []

    def start(*args, port=0, env=None):
        server = Server(target, *args, port=port, env=env)
        servers.append(server)
        request.node.course_servers = servers
        return server

    failed_before = request.session.testsfailed
    yield start
    for server in servers:
        server.stop(graceful=request.session.testsfailed == failed_before)


@pytest.fixture
def server(start_server):
    """A fresh server of the target, started on a free port."""
    return start_server()


@pytest.fixture
def connections(request):
    """Connections opened through this list are closed at the end of the test, pass or fail."""
    opened = []
    yield opened
    for conn in opened:
        conn.close()


def pytest_sessionfinish(session):
    figures.save()


def pytest_collection_modifyitems(config, items):
    """A test that applies to none of the selected stages is left out, not reported as skipped."""
    unused = [
        item
        for item in items
        if "target" in item.fixturenames
        and not isinstance(getattr(item, "callspec", None) and item.callspec.params.get("target"), Target)
    ]
    if unused:
        config.hook.pytest_deselected(items=unused)
        items[:] = [item for item in items if item not in unused]


# The kind of a failure that a test raised with a plain assert, not through the harness (which records its own):
# read off its message, tried in this order. Each test that has a likelier cause says so in its message.
PLAIN_ASSERT_KINDS = [
    ("running", r"still running|did not end|None: still running"),
    ("exit", r"exited -?\d+|exit code|exited with"),
    ("differs", r"printed|stdout was|expected .* got|got .* expected"),
]


def failure_kind(error, text):
    """What went wrong, as tests/harness.py's CourseFailure records it, or as a plain assert's words say it."""
    kind = getattr(error, "kind", None)
    if kind:
        return kind
    # The test's own words only: the server's log it carries says "still running" of any live server.
    words = re.split(r"\n\s*--- server \(", text)[0]
    return next((name for name, pattern in PLAIN_ASSERT_KINDS if re.search(pattern, words)), "other")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the server's own output to every failed test whose message does not show it already, and
    records the failure for scripts/steps.py when COURSE_STEP_REPORT names a file: the test, its message, the
    kind of failure and the test's own hint (as the harness raised them), and the servers' logs."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    servers = getattr(item, "course_servers", [])
    text = report.longreprtext
    if "--- server (" not in text:
        for server in servers:
            report.sections.append((f"server log ({' '.join(server.command)})", server.log(last=60)))
    record = os.environ.get("COURSE_STEP_REPORT")
    if record:
        error = call.excinfo.value if call.excinfo else None
        message = str(error) if error is not None else text
        with open(record, "a") as out:
            out.write(json.dumps({"test": item.nodeid, "message": message, "kind": failure_kind(error, message),
                                  "hint": getattr(error, "hint", None) or "",
                                  "logs": [server.log(last=30) for server in servers]}) + "\n")
