#!/usr/bin/env python3
"""steps - the steps in which a student builds a stage, what checks them, and the mistakes they catch.

Each stage's stage.ini lists its steps ([step NAME] sections, in the order of `steps =`): a title, the
functions the student writes (`code`), the source checks (`lint`), Check suites (`check`) and harness tests
(`tests`) that check them, and hints chosen by the kind of failure. Its starter.ini gives, for each of those
functions, the stub that `make start` puts in its place and the TODO that explains it; its mistakes.ini, the
mistakes a student makes at each step, which that step must catch. tests/course.py reads all three.

  steps.py start STAGE DEST [--through K]   copy a stage, its step code stubbed (steps 1..K kept)
  steps.py run STAGE [--impl DIR | --server P --client P] [--only] [--json FILE] [--step N] [--pytest-args A]
                                            run the steps in order, stopping at the first that fails; then the
                                            whole stage's tests. The step the last run stopped at runs first, the
                                            ones before it after it (DIR/build/steps-current)
  steps.py progress                         one line per stage: steps done, and the next one (from the last runs)
  steps.py watch STAGE [--impl DIR]         run the steps again whenever a file of DIR changes
  steps.py prove [STAGE ...] [--repeat N] [--mistakes-only] [--jobs J]
                                            CI: every step's tests catch its missing code, and every mistake
                                            of the catalogue is caught by its own step, N times of N (3);
                                            J stages at a time, each reported whole when it ends (1)
  steps.py check-stages                     CI: a file that differs from the stage before is declared
  steps.py figures                          per stage: steps, lines the student writes, lines the stage adds

Exit status: 0 when everything run passed, 1 when something failed, 2 on a bad command line or a stage whose
files do not hold together.
"""

import argparse
import difflib
import functools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import course  # noqa: E402 (tests/course.py: the stages, read once for the harness and for this script)
from course import Stage  # noqa: E402

STAGES = course.stage_paths()
SKIP = shutil.ignore_patterns("build", "server", "server-*", "client", "*.exe", "*.o")
WORK = ROOT / "work"
BUILD_TIMEOUT_S = 300  # a build that takes longer is stuck
STEP_TIMEOUT_S = 600  # one step's tests: minutes would be a hang; every test waits with deadlines of its own
WHOLE_TIMEOUT_S = 3600  # the whole stage's tests


def fail_usage(message):
    print(f"steps: {message}", file=sys.stderr)
    sys.exit(2)


@functools.cache
def find_python():
    """The Python that has pytest (scripts/find-python), looked for once."""
    found = subprocess.run([str(ROOT / "scripts" / "find-python")], capture_output=True, text=True).stdout.strip()
    return found or sys.executable


# --- what a stage's files must hold together ---------------------------------------------------------------------


def validate(stage):
    """The problems of a stage's steps: stubs without a step, step code without a stub, a step without its README
    section, a function a step removes that its section does not name, a mistake for no step."""
    problems = []
    claimed = set()
    readme = (stage.path / "README.md").read_text()
    sections = dict(re.findall(r"^#+ (.+?)\s*\n(.*?)(?=^#+ |\Z)", readme, flags=re.M | re.S))
    for step in stage.steps:
        if not step.checks and not step.tests and not step.lint:
            problems.append(f"step {step.name} has no tests, Check suites or source checks")
        for file_name, functions in step.code.items():
            for function in functions:
                if (file_name, function) not in stage.stubs:
                    problems.append(f"step {step.name}: {file_name} {function}() has no stub in starter.ini")
                if (file_name, function) in claimed:
                    problems.append(f"{file_name} {function}() belongs to two steps")
                claimed.add((file_name, function))
        if step.readme not in sections:
            problems.append(f"step {step.name}: README.md has no section \"{step.readme}\" for its failures to "
                            f"send the student to")
            continue
        text = " ".join(sections[step.readme].split())
        for file_name, functions in step.code.items():
            for function in functions:
                if f"`{function}()`" not in text:
                    problems.append(f"step {step.name}: README.md's \"{step.readme}\" does not name "
                                    f"`{function}()`, which make start removes ({file_name})")
    for key in stage.stubs:
        if key not in claimed:
            problems.append(f"starter.ini stubs {key[0]} {key[1]}(), which no step's code names")
    names = {step.name for step in stage.steps}
    for mistake in stage.mistakes:
        if mistake.step not in names:
            problems.append(f"mistakes.ini: {mistake.name} names no step of this stage ({mistake.step})")
        if not mistake.edits or not mistake.shows:
            problems.append(f"mistakes.ini: {mistake.name} needs an edit (edit, find, replace) and what its "
                            f"failure shows (shows)")
    return problems


# --- the functions of a C file -----------------------------------------------------------------------------------


def opens_body(line):
    """Whether a line opens a function's body: a brace alone (C, as .clang-format writes it), or a JavaScript
    `function name(...) {` at the first column."""
    return line == "{" or (line.startswith("function ") and line.rstrip().endswith("{"))


def function_spans(source):
    """{name: (first line, last line)} of the functions defined in a C file (or the top-level functions of a
    JavaScript one), numbered from 1: a definition starts at the first column, and its body ends with a brace
    alone at the first column; a C function's opening brace stands alone too (as .clang-format writes them)."""
    lines = source.splitlines()
    spans = {}
    for first, line in enumerate(lines):
        found = re.search(r"(\w+)\(", line) if re.match(r"[A-Za-z_]", line) else None
        if not found or line.rstrip().endswith(";"):
            continue
        brace = first
        while brace < len(lines) and not opens_body(lines[brace]) and not lines[brace].rstrip().endswith(";"):
            brace += 1
        if brace == len(lines) or not opens_body(lines[brace]):
            continue  # a declaration, not a definition
        end = lines.index("}", brace) if "}" in lines[brace:] else len(lines) - 1
        spans[found.group(1)] = (first + 1, end + 1)
    return spans


def function_at(path, line):
    """The function of the file whose definition holds this line, or None."""
    try:
        spans = function_spans(Path(path).read_text())
    except OSError:
        return None
    return next((name for name, (first, last) in spans.items() if first <= line <= last), None)


# --- make start ----------------------------------------------------------------------------------------------------


def stub_function(source, name, comment, stub):
    """Replaces the body of the function `name` with the stub, its TODO first."""
    spans = function_spans(source)
    if name not in spans:
        raise SystemExit(f"steps: no definition of {name}() to replace")
    lines = source.splitlines(keepends=True)
    first, last = spans[name]
    brace = next(i for i in range(first - 1, len(lines)) if opens_body(lines[i].rstrip("\n")))
    body = course.multiline(stub).splitlines()
    stubbed = [comment] + [f"    {text}\n" if text.strip() else "\n" for text in body]
    return "".join(lines[:brace + 1] + stubbed + lines[last - 1:])


def todo_comment(step, count, todo):
    """The TODO a stub starts with, wrapped at 100 columns like the rest of the code."""
    words = f"TODO step {step.number}/{count} ({step.title}): {todo} README: \"{step.readme}\".".split()
    lines, line = [], "    /*"
    for word in words:
        if len(line) + 1 + len(word) > 110:
            lines.append(line)
            line = "     *"
        line += " " + word
    lines.append(line + " */" if len(lines) == 0 else line)
    if len(lines) > 1:
        lines.append("     */")
    return "\n".join(lines) + "\n"


def start(stage, dest, through=0, quiet=False):
    """Copies the stage to dest with the code of steps through+1.. replaced by their stubs. The copy is whole
    (its build rules, stage.mk, are in it): it builds wherever it is."""
    dest = Path(dest).resolve()
    if dest.exists():
        raise SystemExit(f"steps: {dest} exists already; remove it to start over")
    shutil.copytree(stage.path, dest, ignore=SKIP)
    count = len(stage.steps)
    for step in stage.steps[through:]:
        for file_name, functions in step.code.items():
            path = dest / file_name
            source = path.read_text()
            for function in functions:
                entry = stage.stubs[(file_name, function)]
                source = stub_function(source, function, todo_comment(step, count, entry["todo"]), entry["stub"])
            path.write_text(source)
    for own in ("starter.ini", "mistakes.ini"):
        (dest / own).unlink(missing_ok=True)
    if not quiet:
        print(f"{dest.relative_to(Path.cwd()) if dest.is_relative_to(Path.cwd()) else dest}: "
              f"{stage.name}, with the code of its steps left for you to write:")
        for step in stage.steps:
            where = ", ".join(f"{f} {' '.join(fn + '()' for fn in fns)}" for f, fns in step.code.items())
            print(f"  step {step.number}/{count}  {step.title:34} {where}")
        rel = os.path.relpath(dest, ROOT)
        print("Read the README's \"Your turn\", then test your copy; each run stops at the first failing step:")
        print(f"  make test LESSON={stage.lesson} IMPL={rel}")
        print(f"  make watch LESSON={stage.lesson}      (runs it again whenever you save a file)")


# --- the outcome of a step --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    result: str  # "pass", "fail", "not run", "skipped"
    seconds: float = 0.0
    detail: str = ""  # what failed, in bytes and words; the failing test's own hint included, if it has one
    kind: str = ""  # the kind of failure, which chooses the step's hint: start, timeout, closed, check, build, ...
    log: str = ""  # the server's log, shown once, apart
    hint: str = ""  # the failing test's own hint: it comes first, and the step's hint only where there is none


def wine_missing():
    """Why the Windows programs cannot be built and run here, or None."""
    if shutil.which("x86_64-w64-mingw32-gcc") is None:
        return "MinGW-w64 is not installed (make deps)"
    if shutil.which("wine") is None:
        return "Wine is not installed (make deps)"
    return None


# --- building a copy ----------------------------------------------------------------------------------------------


@dataclass
class BuildError:
    text: str  # the compiler's first lines
    step: object = None  # the step whose code has the first error, or None (given code, or no line named)
    where: str = ""  # "server.c, in serve_client()"


def blame(stage, impl, text):
    """The step that owns the first error (or warning: -Werror) the compiler names, and where it is."""
    for found in re.finditer(r"^([\w./-]+\.[ch]):(\d+):(?:\d+:)? (?:fatal )?(?:error|warning)", text, flags=re.M):
        file_name = os.path.normpath(found.group(1))
        function = function_at(Path(impl) / file_name, int(found.group(2)))
        where = f"{file_name}, in {function}()" if function else file_name
        step = stage.step_owning(file_name, function) if function else None
        return BuildError(text, step, where)
    return BuildError(text)


def build(impl, windows, stage=None):
    """Builds the copy (Linux programs and Check runner, or the .exe files); returns a BuildError, or None."""
    target = ["windows"] if windows else ["all", "build/run_checks"]
    try:
        done = subprocess.run(["make", "-s", "-j2", "-C", str(impl), *target], capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return BuildError(f"make did not finish within {BUILD_TIMEOUT_S} s")
    if done.returncode == 0:
        return None
    text = "\n".join([line for line in (done.stdout + done.stderr).splitlines() if line.strip()][:25])
    return blame(stage, impl, text) if stage else BuildError(text)


# --- source checks ------------------------------------------------------------------------------------------------

# What a signal handler may call: POSIX's async-signal-safe functions that the course's handlers use, and the
# course's own helpers made of them. printf(), exit(), malloc() and a log are not among them.
SIGNAL_SAFE = {"write", "_exit", "signal", "sigaction", "raise", "kill", "send", "waker_raise", "raise_waker",
               "SetEvent", "ExitProcess", "_Exit", "atomic_store", "atomic_exchange", "atomic_load",
               "atomic_fetch_add", "sizeof"}


def body_of(impl, where):
    """The code (comments out) of a function, from "file.c:function"."""
    file_name, _, function = where.partition(":")
    source = (Path(impl) / file_name).read_text()
    spans = function_spans(source)
    if function not in spans:
        return None, f"{file_name} has no function {function}()"
    first, last = spans[function]
    return code_only("\n".join(source.splitlines()[first - 1:last])), None


def lint_signal_safe(impl, where):
    """A signal handler calls only async-signal-safe functions."""
    body, missing = body_of(impl, where)
    if missing:
        return missing
    calls = set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", body)) - {"if", "while", "for", "switch", "return"}
    function = where.partition(":")[2]
    unsafe = sorted(call for call in calls - SIGNAL_SAFE - {function} if not call.isupper())
    if unsafe:
        return (f"{where}() is a signal handler, and calls {', '.join(u + '()' for u in unsafe)}: a handler may "
                f"run in the middle of any function, even inside printf() or malloc() on the same thread, so it "
                f"may call only async-signal-safe functions (write(), _exit(), ...) and set a flag")
    return None


def lint_flag_type(impl, where):
    """A flag set by a signal handler is volatile sig_atomic_t or atomic."""
    file_name, _, name = where.partition(":")
    source = code_only((Path(impl) / file_name).read_text())
    found = re.search(rf"^[^;(){{}}]*\b{re.escape(name)}\b[^;(]*;", source, flags=re.M)
    if not found:
        return f"{file_name} declares no {name}"
    declaration = " ".join(found.group(0).split())
    if "sig_atomic_t" in declaration and "volatile" in declaration or re.search(r"\b_?[Aa]tomic", declaration):
        return None
    return (f"{file_name} declares `{declaration}`: a variable a signal handler sets and the program reads must be "
            f"`volatile sig_atomic_t` or atomic; with a plain type the compiler may keep it in a register, and "
            f"never see the handler's change")


def lint_calls_in_order(impl, where):
    """Within a function, the first call of each name comes in the order given: "file.c:function a b"."""
    target, *names = where.split()
    body, missing = body_of(impl, target)
    if missing:
        return missing
    places = []
    for name in names:
        found = re.search(rf"\b{re.escape(name)}\s*\(", body)
        if not found:
            return f"{target}() does not call {name}()"
        places.append(found.start())
    if places != sorted(places):
        return (f"{target}() calls {', '.join(n + '()' for n in names)} in another order: the first must come "
                f"first, or a wake-up that comes between them is lost")
    return None


LINTS = {"signal_safe": lint_signal_safe, "flag_type": lint_flag_type, "calls_in_order": lint_calls_in_order}


def run_lint(impl, checks):
    """Runs a step's source checks; returns (passed, what failed)."""
    for check in checks:
        name, _, where = check.partition(" ")
        why = LINTS[name](impl, where.strip())
        if why:
            return False, f"source check {name}: {why}"
    return True, ""


# --- Check suites -----------------------------------------------------------------------------------------------


def start_line(impl, file_name, test):
    """The line of START_TEST(test) in the copy's test file, for a failure that names no line of its own."""
    for number, line in enumerate((impl / file_name).read_text().splitlines(), start=1):
        if line.startswith(f"START_TEST({test})"):
            return number
    return 0


def run_suite(impl, env):
    """Runs the copy's Check runner, reading its TAP lines (CK_TAP_LOG_FILE_NAME=-) as each test ends, and stops
    it at the first failure: a suite whose code is missing would otherwise wait out every test's timeout.
    Returns (its output, the first failing TAP line's match or None, its exit status)."""
    env = dict(env, CK_TAP_LOG_FILE_NAME="-")
    runner = subprocess.Popen([str(impl / "build" / "run_checks")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=env, cwd=impl, start_new_session=True)
    # Check forks a process per test, each in a process group of its own: stopping the runner's group would leave
    # a hung test running, so the whole session goes; and a watchdog ends a runner that hangs.
    watchdog = threading.Timer(120, kill_session, (runner.pid,))
    watchdog.start()
    output, failed = [], None
    for line in runner.stdout:
        output.append(line)
        failed = re.match(r"^not ok \d+ - (?:.*/)?(tests/check_\w+\.c):(\w+):(\w+): ?(.*)$", line)
        if failed:
            break
    kill_session(runner.pid)  # a test still running (it hung) outlives its runner otherwise
    runner.stdout.close()
    status = runner.wait()
    watchdog.cancel()
    return "".join(output), failed, status


def kill_session(session_id):
    """Kills every process of the session whose leader was session_id (its id), read from /proc: the processes
    Check forked, whatever process group each put itself in."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        if int(fields[3]) == session_id:  # after the command: state, ppid, pgrp, session
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_checks(impl, suites):
    """Runs the named Check suites of the copy, each until its first failure; returns (passed, what failed)."""
    for suite in suites:
        # "suite" runs a whole suite, "suite:case" one of its test cases (tcase_create()'s name).
        suite, _, case = suite.partition(":")
        env = dict(os.environ, CK_RUN_SUITE=suite, **({"CK_RUN_CASE": case} if case else {}))
        # A test whose code is missing often waits for something that never comes, until its case's timeout;
        # half of it is still several times what a passing test takes, and a failing step reports sooner.
        env.setdefault("CK_TIMEOUT_MULTIPLIER", "0.5")
        output, failed, status = run_suite(impl, env)
        if failed:
            file_name, test, message = failed.group(1), failed.group(3), failed.group(4)
            return False, (f"{test} ({file_name}:{start_line(impl, file_name, test)})\n  {message}\n"
                           f"  (the suite's other tests were not run: it stops at its first failure)")
        summary = re.search(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", output)
        if summary is None or int(summary.group(1)) == 0:
            return False, (f"Check suite '{suite}'{f', case {case!r}' if case else ''}: no test of it ran "
                           f"(does tests/check_main.c add it?)")
        if int(summary.group(2)) or int(summary.group(3)) or status != 0:
            return False, f"Check suite '{suite}' failed:\n{output.strip()[-2000:]}"
    return True, ""


# --- harness tests -------------------------------------------------------------------------------------------------


@dataclass
class Programs:
    """What the harness runs: a copy's programs (impl), or programs of any kind (server, client)."""

    impl: Path = None
    server: str = None
    client: str = None

    @property
    def mine(self):
        return self.server is not None or self.client is not None

    def environment(self):
        if self.mine:
            return {"COURSE_SERVER": self.server or "", "COURSE_CLIENT": self.client or ""}
        return {"COURSE_IMPL": str(self.impl)}

    def log_dir(self):
        return Path(self.impl) / "build" if self.impl else ROOT / "build"


def run_pytest(stage, programs, tests, builds, one_step=True, extra_args=(), timeout=STEP_TIMEOUT_S):
    """Runs harness tests against the programs; returns (passed, failures as dicts, count run).
    one_step: the tests of one step (COURSE_ONE_STEP: Wine's replies are waited for less long)."""
    report = Path(tempfile.mkstemp(prefix="steps-", suffix=".jsonl")[1])
    env = dict(os.environ, COURSE_STAGES=str(stage.path.relative_to(ROOT)), COURSE_BUILDS=builds,
               COURSE_STEP_REPORT=str(report), **programs.environment())
    for name in ("COURSE_ONLY_NEW", "COURSE_ONE_STEP") + (("COURSE_IMPL",) if programs.mine else ()):
        env.pop(name, None)
    if one_step:
        env["COURSE_ONE_STEP"] = "1"
    args = [find_python(), "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "--tb=no", "-rN", "-x",
            *extra_args]
    # Each run writes its own file, renamed to build/steps-pytest.log at the end: two runs at once (make watch
    # beside make test) never read each other's.
    log_dir = programs.log_dir()
    log_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="steps-pytest-", suffix=".log", dir=log_dir)
    log = Path(name)
    with os.fdopen(fd, "w") as out:
        pytest = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            returncode = pytest.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pytest.pid, signal.SIGKILL)
            pytest.wait()
            returncode = None
    failures = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    report.unlink()
    text = log.read_text()
    log.replace(log.parent / "steps-pytest.log")
    ran = re.search(r"(\d+) passed", text)
    count = int(ran.group(1)) if ran else 0
    if returncode is None:
        failures.append({"test": "pytest", "kind": "running", "logs": [],
                         "message": f"the tests did not end within {timeout} s, and were stopped: something waits "
                                    f"with no end (the log: {log.parent / 'steps-pytest.log'})"})
    elif returncode not in (0, 1) or (returncode == 1 and not failures):
        # Not a test failure: a collection error, a missing test, pytest itself. Show its own words.
        failures.append({"test": "pytest", "message": text.strip()[-3000:], "logs": []})
    if returncode == 5 or (returncode == 0 and count == 0):
        failures.append({"test": "pytest", "message": f"no test ran: {' '.join(tests)}", "logs": []})
    return not failures, failures, count


def failure_text(message):
    """A failure's own words: without the server log it may carry (shown once, apart), and without pytest's
    rewrite of a plain assert, which indents the message's later lines by two spaces."""
    message = re.split(r"\n\s*--- server \(", message)[0]
    message = re.split(r"\n\s*assert ", message)[0]
    return re.sub(r"\n  ", "\n", message).strip()


def outcome_of(failure, seconds):
    """The Outcome of a step from the harness's record of its first failure: the kind and the hint as the
    harness recorded them (tests/conftest.py), the message, the server's log apart."""
    name = failure["test"].split("::")[-1]
    # The harness's guess ("likely: ...") gives way to the step's hint; the test's own hint stays in its words.
    # Its "reread:" too: the step's names the very section.
    text = re.sub(r"^(likely|reread): .*\n?", "", failure_text(failure["message"]), flags=re.M)
    hint = failure.get("hint") or ""
    detail = f"{name}\n" + "\n".join("  " + line for line in text.splitlines())
    logs = "\n".join(failure.get("logs", [])) or (
        "--- server" + failure["message"].split("\n--- server", 1)[1] if "\n--- server" in failure["message"] else "")
    return Outcome("fail", seconds, detail, failure.get("kind") or "other", logs, hint)


def sanitized_copy(impl, kind, stage):
    """The copy built again with a sanitizer (clang -fsanitize=KIND), in a folder of its own under its build/:
    its own programs stay as they are. Returns (that folder, a BuildError or None)."""
    dest = Path(impl) / "build" / f"sanitize-{kind}"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(impl, dest, ignore=SKIP)
    flags = f"-fsanitize={kind}"
    extra = ""
    if kind == "thread":
        # scripts/tsan-signal-context.c: without it, ThreadSanitizer may drop a Ctrl+C sent right at the start.
        extra = str(dest / "build" / "tsan-signal-context.o")
        (dest / "build").mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["clang", "-c", "-O1", flags, "-o", extra, str(ROOT / "scripts" /
                               "tsan-signal-context.c")], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        if done.returncode != 0:
            return dest, BuildError(done.stderr)
    try:
        done = subprocess.run(["make", "-s", "-j2", "-C", str(dest), "CC=clang", f"CFLAGS=-O1 -g {flags}",
                               f"LDFLAGS={flags} {extra}", "all", "build/run_checks"], capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return dest, BuildError(f"the {kind} sanitizer's build did not finish within {BUILD_TIMEOUT_S} s")
    if done.returncode != 0:
        return dest, blame(stage, dest, "\n".join((done.stdout + done.stderr).splitlines()[:25]))
    return dest, None


# What a sanitizer's report means, by the name a step's `sanitize =` gives it.
SANITIZER_FOUND = {"thread": "ThreadSanitizer found a data race",
                   "address": "AddressSanitizer found a memory error"}


def run_sanitized(stage, step, programs, started):
    """The step's Check suites and harness tests again, on the copy built with ThreadSanitizer: a data race is
    a mistake even when no run shows its effect. Returns a failing Outcome, or None."""
    if shutil.which("clang") is None:
        return None  # make deps installs it; without it the step runs as it always did
    copy, error = sanitized_copy(programs.impl, step.sanitize, stage)
    if error is not None:
        return Outcome("fail", time.monotonic() - started, build_detail(error, step, "the sanitizer's build"), "build")
    reports = copy / "build" / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    variable = {"thread": "TSAN_OPTIONS", "address": "ASAN_OPTIONS"}[step.sanitize]
    saved = {name: os.environ.get(name) for name in (variable, "COURSE_SANITIZER")}
    os.environ[variable] = f"log_path={reports}/report:second_deadlock_stack=1"
    os.environ["COURSE_SANITIZER"] = step.sanitize
    try:
        passed, detail = run_checks(copy, step.checks)
        if passed and step.tests:
            # As scripts/sanitize does: a sanitizer changes memory use and speed, and cannot start under a cap
            # on the address space.
            passed, failures, _ = run_pytest(stage, Programs(impl=copy), [f"tests/{t}" for t in step.tests],
                                             step.build,
                                             extra_args=("-m", "not measures_resources and not plain_build_only"))
            detail = "" if passed else outcome_of(failures[0], 0).detail
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    found = sorted(reports.iterdir())
    if found:
        report = found[0].read_text()
        summary = next((line for line in report.splitlines() if line.startswith("SUMMARY:")), "")
        text = "\n".join(report.splitlines()[:40])
        return Outcome("fail", time.monotonic() - started,
                       f"{SANITIZER_FOUND[step.sanitize]} in your copy ({summary.removeprefix('SUMMARY: ')}):\n"
                       f"{text}", "race")
    if not passed:
        return Outcome("fail", time.monotonic() - started,
                       f"the {step.sanitize} sanitizer's build of your copy failed this step:\n{detail}", "race")
    return None


def run_step(stage, step, programs):
    """Runs one step's source checks, Check suites, then harness tests, and for a step with `sanitize =` the
    same on a sanitizer's build; returns its Outcome. Programs of one's own (SERVER=, CLIENT=) have neither
    sources nor Check suites: only the harness tests run."""
    started = time.monotonic()
    if step.build == "wine":
        missing = wine_missing()
        if missing or programs.mine:
            return Outcome("skipped", detail=missing or "programs of your own run on Linux only")
    if not programs.mine:
        passed, detail = run_lint(programs.impl, step.lint)
        if not passed:
            return Outcome("fail", time.monotonic() - started, detail, "lint")
        passed, detail = run_checks(programs.impl, step.checks)
        if not passed:
            return Outcome("fail", time.monotonic() - started, detail, "check")
    if step.tests:
        node_ids = [f"tests/{test}" for test in step.tests]
        passed, failures, _ = run_pytest(stage, programs, node_ids, step.build)
        if not passed:
            return outcome_of(failures[0], time.monotonic() - started)
    if step.sanitize and not programs.mine:
        raced = run_sanitized(stage, step, programs, started)
        if raced:
            return raced
    if programs.mine and not step.tests:
        return Outcome("skipped", detail="this step has only Check suites and source checks")
    return Outcome("pass", time.monotonic() - started)


def format_failure(stage, step, outcome):
    """What a failure says: its detail (the test's own hint in it), the step's hint only where the test has none,
    the README section to reread, and the server's log."""
    indent = "    "
    lines = [""] + [indent + line for line in outcome.detail.splitlines()]
    # The test's own hint, when its message does not carry it already; else the step's, for this kind of failure.
    hint = outcome.hint if outcome.hint and outcome.hint not in outcome.detail else None
    if not outcome.hint and step:
        hint = step.hint_for(outcome.kind)
    if hint:
        lines += ["", f"{indent}hint: {hint}"]
    if step:
        readme = os.path.relpath(stage.path / "README.md", Path.cwd())
        lines.append(f"{indent}reread: {readme}, \"{step.readme}\"")
    if outcome.log.strip():
        lines.append("")
        lines += [indent + line for line in outcome.log.strip().splitlines()[-30:]]
    return "\n".join(lines) + "\n"


# --- a run of the steps -----------------------------------------------------------------------------------------


def current_step_file(impl):
    """Where a run leaves the name of the step it stopped at, for the next run to try first."""
    return Path(impl) / "build" / "steps-current"


def results_file(impl):
    """Where a run leaves its outcomes, for make progress."""
    return Path(impl) / "build" / "steps-result.json"


def run_order(stage, impl, single, resume):
    """The steps to run, as indexes: one step; or all in order; or, when the last run stopped at step k
    (resume), k first, then the steps after it, then 1..k-1 again (they passed then, and must still pass)."""
    if single:
        return [single - 1], 0
    names = [step.name for step in stage.steps]
    saved = current_step_file(impl) if impl else None
    current = saved.read_text().strip() if resume and saved and saved.exists() else ""
    resumed = names.index(current) if current in names else 0
    return list(range(resumed, len(names))) + list(range(resumed)), resumed


class StepRun:
    """One run of a stage's steps on a copy (or on programs of one's own), and what it said."""

    def __init__(self, stage, programs, quiet=False):
        self.stage, self.programs = stage, programs
        self.count = len(stage.steps)
        self.say = (lambda *a, **k: None) if quiet else print
        self.quiet = quiet
        self.results = {}  # step index -> Outcome
        self.failures = []  # the printed text of each failure

    def report(self, step, outcome):
        label = f"{step.label(self.count):48}"
        if outcome.result == "pass":
            self.say(f"{label} pass ({outcome.seconds:.1f} s)")
        elif outcome.result in ("skipped", "not run"):
            self.say(f"{label} {outcome.result}" + (f": {outcome.detail}" if outcome.detail else ""))
        else:
            self.say(f"{label} FAIL ({outcome.seconds:.1f} s, {outcome.kind})")
            text = format_failure(self.stage, step, outcome)
            self.failures.append(text)
            if not self.quiet:
                print(text)

    def steps(self, order, resumed):
        """Runs the steps in this order; a build error fails the step that owns the code, and stops the run."""
        stage, programs = self.stage, self.programs
        errors = None if programs.mine else build(programs.impl, windows=False, stage=stage)
        if errors is not None:
            self.build_failed(errors)
            return
        before = "step 1" if resumed == 1 else f"steps 1 to {resumed}"
        if resumed > 0:
            self.say(f"(step {resumed + 1} first: your last run stopped there; {before} run again after it)")
        windows_built, windows_error = False, None
        failed_ahead = failed_behind = None  # the first failing step from `resumed` on, and before it
        for position, index in enumerate(order):
            step = stage.steps[index]
            if position > 0 and index == 0:
                self.say(f"-- {before} again (passed when you were last here):")
            behind = index < resumed
            if (failed_behind if behind else failed_ahead) is not None:
                self.results[index] = Outcome("not run")
                self.report(step, self.results[index])
                continue
            if step.build == "wine" and not programs.mine and wine_missing() is None and not windows_built:
                # The .exe files only once something runs them: this saves seconds on every run before.
                windows_built = True
                windows_error = build(programs.impl, windows=True, stage=stage)
            if step.build == "wine" and windows_built and windows_error is not None:
                outcome = Outcome("fail", 0, build_detail(windows_error, step, "the Windows build of your copy"),
                                  "build")
            else:
                outcome = run_step(stage, step, programs)
            self.results[index] = outcome
            self.report(step, outcome)
            if outcome.result != "fail":
                continue
            if behind:
                failed_behind = index
                why = "" if failed_ahead is None else f" (step {failed_ahead + 1} may fail because of it)"
                self.say(f"    step {index + 1} passed before and fails now: mend it first{why}\n")
            else:
                failed_ahead = index

    def build_failed(self, error):
        """A copy that does not build: the step that owns the first error fails (the first step when the error
        is in code that is given), and no step is run."""
        step = error.step or self.stage.steps[0]
        for index, other in enumerate(self.stage.steps):
            self.results[index] = Outcome("fail", 0, build_detail(error, step, "your copy"), "build") \
                if other is step else Outcome("not run", detail="" if index else "the copy does not build")
            self.report(other, self.results[index])


    def outcomes(self):
        return [self.results.get(index, Outcome("not run")) for index in range(self.count)]

    def stopped_at(self):
        """The step the student is at: the first, in order, that failed (a build error fails the step that owns
        it), else the first not run; None when every step passed (skipped is a pass here)."""
        outcomes = list(enumerate(self.outcomes()))
        failed = next((i for i, o in outcomes if o.result == "fail"), None)
        if failed is None:
            failed = next((i for i, o in outcomes if o.result not in ("pass", "skipped")), None)
        return None if failed is None else self.stage.steps[failed]

    def remember(self):
        """Keeps where the run stopped (the next run starts there) and its outcomes (make progress)."""
        impl = self.programs.impl
        if impl is None:
            return
        stopped = self.stopped_at()
        saved = current_step_file(impl)
        saved.parent.mkdir(parents=True, exist_ok=True)
        if stopped:
            saved.write_text(stopped.name + "\n")
        elif saved.exists():
            saved.unlink()
        results_file(impl).write_text(json.dumps({
            "stage": self.stage.name, "when": time.time(),
            "steps": [{"name": s.name, "result": o.result, "kind": o.kind}
                      for s, o in zip(self.stage.steps, self.outcomes())]}, indent=1))

    def whole_stage(self, extra_args=()):
        """Once every step passes: every test of the stage, on Linux and (where it can) under Wine. A failure is
        reported like a step's, with the hint of the step that owns the failing test."""
        programs = self.programs
        missing = wine_missing() if not programs.mine else "programs of your own run on Linux only"
        if missing is None:
            error = build(programs.impl, windows=True, stage=self.stage)
            if error is not None:
                self.say(f"the Windows build of your copy does not build:\n{error.text}")
                return Outcome("fail", detail=error.text, kind="build")
        builds = "linux" if missing else "linux wine"
        started = time.monotonic()
        passed, failures, ran = run_pytest(self.stage, programs, ["tests"], builds, one_step=False,
                                           extra_args=extra_args, timeout=WHOLE_TIMEOUT_S)
        label = f"{'the whole stage (' + builds + ')':48}"
        if passed:
            whole = Outcome("pass", time.monotonic() - started)
            self.say(f"{label} pass ({ran} tests, {whole.seconds:.0f} s)")
        else:
            whole = outcome_of(failures[0], time.monotonic() - started)
            test = failures[0]["test"].split("::")[-1].split("[")[0]
            owner = next((s for s in self.stage.steps if any(t.endswith("::" + test) for t in s.tests)), None)
            self.say(f"{label} FAIL ({ran} passed before it)")
            text = format_failure(self.stage, owner, whole)
            if owner is None:
                text += "    (no step runs this test: it checks the stage as a whole)\n"
            self.failures.append(text)
            if not self.quiet:
                print(text)
        if missing:
            self.say(f"(the Windows build was not tested: {missing})")
        return whole


def build_detail(error, step, what):
    """What a failed build says: the file and function of its first error, and whether it is the step's code."""
    where = f" ({error.where})" if error.where else ""
    owner = f"step {step.number} owns that code" if error.step else "it is in code that is given, or no line was named"
    return f"{what} does not build{where}: {owner}\n{error.text}"


def run(stage, programs, only=False, json_path=None, single=None, quiet=False, resume=False, extra_args=(),
        said=None):
    """Runs the steps of a stage on a copy (programs.impl) or on programs of one's own; returns the Outcomes of the
    steps and the whole stage's (or None). The verdict is the order's: every step before the first that fails has
    passed in this run. With resume, the step that failed last time runs first, so that its failure shows within
    seconds; the steps before it run after. said: a list that gets the text of each failure, printed or not."""
    where = os.path.relpath(programs.impl, Path.cwd()) if programs.impl else "your programs"
    this = StepRun(stage, programs, quiet)
    this.say(f"== {stage.name}: the steps, on {where}")
    order, resumed = run_order(stage, programs.impl, single, resume)
    this.steps(order, resumed)
    outcomes = this.outcomes() if not single else [this.results.get(single - 1, Outcome("not run"))]
    stopped = this.stopped_at()
    if stopped and resumed > 0 and not single:
        this.say(f"stopped at {stopped.label(this.count)}")
    if resume and not single:
        this.remember()
    whole = None
    if stopped is None and not only and not single:
        whole = this.whole_stage(extra_args)
    if json_path:
        Path(json_path).write_text(json.dumps({
            "stage": stage.name, "impl": str(programs.impl),
            "steps": [{"name": s.name, "result": o.result} for s, o in zip(stage.steps, this.outcomes())],
            "whole": whole.result if whole else None}, indent=1))
    if said is not None:
        said += this.failures
    return outcomes, whole


def passed_count(outcomes):
    """How many steps passed, in order, before the first that did not."""
    count = 0
    for outcome in outcomes:
        if outcome.result != "pass":
            break
        count += 1
    return count


# --- make progress, make watch ---------------------------------------------------------------------------------


def progress():
    """One line per stage, from what the last run on its copy in work/ recorded: no step is run here."""
    for stage_path in STAGES:
        stage = Stage.load(stage_path)
        work = WORK / stage.name
        if not work.exists():
            print(f"{stage.name:22} not started       make start LESSON={stage.lesson}")
            continue
        saved = results_file(work)
        if not saved.exists():
            print(f"{stage.name:22} not tested yet    make test LESSON={stage.lesson} IMPL=work/{stage.name}")
            continue
        record = json.loads(saved.read_text())
        outcomes = [Outcome(step["result"], kind=step.get("kind", "")) for step in record["steps"]]
        done, count = passed_count(outcomes), len(stage.steps)
        age = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.get("when", saved.stat().st_mtime)))
        if done >= count:
            print(f"{stage.name:22} {done}/{count} steps  all done: make test LESSON={stage.lesson} "
                  f"IMPL=work/{stage.name} runs the whole stage (as of {age})")
        else:
            why = outcomes[done].result if outcomes[done].result != "fail" else outcomes[done].kind
            print(f"{stage.name:22} {done}/{count} steps  next: {stage.steps[done].title} ({why}; as of {age})")


def newest_change(impl):
    times = [path.stat().st_mtime for path in impl.rglob("*") if path.suffix in (".c", ".h") and "build" not in
             path.parts]
    return max(times, default=0)


def watch(stage, impl):
    impl = Path(impl).resolve()
    waiter = shutil.which("inotifywait")
    while True:
        run(stage, Programs(impl=impl), only=True, resume=True)
        print(f"\nwatching {os.path.relpath(impl, Path.cwd())} for changes (Ctrl+C to stop)...", flush=True)
        if waiter:
            subprocess.run([waiter, "-q", "-r", "-e", "close_write,moved_to,create,delete", "--exclude", "/build/",
                            str(impl)], stdout=subprocess.DEVNULL)
        else:
            seen = newest_change(impl)
            while newest_change(impl) == seen:
                time.sleep(1)  # no inotify: look at the files once a second
        print()


# --- make prove ------------------------------------------------------------------------------------------------


def indented(text, lines=12):
    return "\n".join("          " + line for line in text.splitlines()[:lines])


def apply_edits(copy, mistake):
    """Makes the mistake in a copy: each edit's text, found exactly once in its file, replaced. Returns what
    went wrong, or None."""
    for edit in mistake.edits:
        path = copy / edit.file
        source = path.read_text()
        found = source.count(edit.find)
        if found != 1:
            return f"{edit.file}: the text to replace is there {found} times, not once:\n{indented(edit.find, 4)}"
        path.write_text(source.replace(edit.find, edit.replace))
    return None


def built_copy(source, dest):
    """A copy of a stage that keeps its built objects (not its step runner's records): a change to one file
    compiles only that file again. Returns dest."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("steps-*"), symlinks=True)
    return dest


def prove_mistake(stage, mistake, scratch, repeat):
    """Makes the mistake in a copy of the course's code and runs its step `repeat` times: each run must fail that
    step and show the catalogue's text. Returns (problem or None, the seconds each run took to fail)."""
    step = stage.step_named(mistake.step)
    copy = built_copy(stage.path, scratch / f"{stage.name}-{mistake.name}")
    try:
        wrong = apply_edits(copy, mistake)
        if wrong:
            return wrong, []
        seconds = []
        for attempt in range(1, repeat + 1):
            started = time.monotonic()
            failures = []
            outcomes, _ = run(stage, Programs(impl=copy), single=step.number, quiet=True, said=failures)
            seconds.append(time.monotonic() - started)
            said = "".join(failures)
            if outcomes[0].result == "skipped":
                return None, []  # no Wine here: the step cannot run, so it cannot prove anything
            if outcomes[0].result != "fail":
                return f"run {attempt} of {repeat}: step {step.number} passed: nothing caught it", seconds
            if mistake.shows not in " ".join(said.split()):
                return (f"run {attempt} of {repeat}: step {step.number} failed, but did not show "
                        f"\"{mistake.shows}\":\n{indented(said, 16)}"), seconds
        return None, seconds
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def prove_in_parallel(stage_paths, repeat, mistakes_only, jobs):
    """prove, `jobs` stages at a time, each in a process of its own whose report is printed whole when it ends
    (so the log reads stage by stage). The biggest catalogues start first, so that the lanes end together."""
    logs = ROOT / "build" / "prove"
    logs.mkdir(parents=True, exist_ok=True)

    def size(path):
        stage = Stage.load(path)
        return len(stage.mistakes) * repeat + 3 * len(stage.steps)

    waiting = sorted(stage_paths, key=size, reverse=True)
    running, failed, figures_of = {}, [], {}
    while waiting or running:
        while waiting and len(running) < jobs:
            path = waiting.pop(0)
            name = Path(path).name
            out = open(logs / f"{name}.log", "w")
            command = [sys.executable, __file__, "prove", str(path), "--repeat", str(repeat),
                       "--figures", str(logs / f"{name}.json")] + (["--mistakes-only"] if mistakes_only else [])
            running[subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)] = (name, out, time.monotonic())
        pid, status = os.wait()  # whichever stage ends first
        finished = next(process for process in running if process.pid == pid)
        finished.returncode = os.waitstatus_to_exitcode(status)
        name, out, started = running.pop(finished)
        out.close()
        print(f"-- {name}: {time.monotonic() - started:.0f} s, exit status {finished.returncode}", flush=True)
        print((logs / f"{name}.log").read_text(), end="", flush=True)
        if finished.returncode != 0:
            failed.append(name)
        if (logs / f"{name}.json").exists():
            figures_of.update(json.loads((logs / f"{name}.json").read_text()))
    ordered = {Path(path).name: figures_of[Path(path).name] for path in stage_paths if Path(path).name in figures_of}
    (ROOT / "build" / "prove-figures.json").write_text(json.dumps(ordered, indent=1))
    if failed:
        print(f"\nprove: problems in {', '.join(failed)} (each stage's report is above)")
        return 1
    print("\nprove: every step's tests catch its missing code, and every mistake of the catalogues")
    return 0


def prove(stage_paths, repeat=3, mistakes_only=False, figures_path=None):
    """For each stage: its files hold together; the reference passes every step; the starter builds and fails at
    step 1; filling steps 1..k passes exactly through k; the previous stage's reference fails each of the stage's
    steps; every mistake of its catalogue is caught by its step, with its text, `repeat` times of `repeat`."""
    problems = []
    scratch = Path(tempfile.mkdtemp(prefix="prove-", dir=ROOT / "build"))
    figures = {}

    def check(condition, message):
        print(("  ok    " if condition else "  FAIL  ") + message, flush=True)
        if not condition:
            problems.append(message)

    for stage_path in stage_paths:
        stage = Stage.load(stage_path)
        count = len(stage.steps)
        print(f"== {stage.name}: {count} steps, {len(stage.mistakes)} mistakes", flush=True)
        for problem in validate(stage):
            check(False, f"{stage.name}: {problem}")
        started = time.monotonic()
        outcomes, _ = run(stage, Programs(impl=stage.path), only=True, quiet=True)
        ok = all(o.result in ("pass", "skipped") for o in outcomes)
        check(ok, f"the reference passes all {count} steps ({time.monotonic() - started:.0f} s)"
              + ("" if ok else f": stops at step {passed_count(outcomes) + 1}\n"
                 + indented(outcomes[passed_count(outcomes)].detail)))
        if not mistakes_only:
            prove_steps(stage, scratch, check)
        caught, times = 0, []
        for mistake in stage.mistakes:
            problem, seconds = prove_mistake(stage, mistake, scratch, repeat)
            times += seconds
            caught += problem is None
            check(problem is None, f"mistake {mistake.name}: caught by step {stage.step_named(mistake.step).number} "
                                   f"({mistake.step}), {repeat} of {repeat} runs, "
                                   f"{statistics.median(seconds) if seconds else 0:.1f} s each"
                  + ("" if problem is None else f"\n{indented(problem, 20)}"))
        figures[stage.name] = {"mistakes": len(stage.mistakes), "caught": caught,
                               "median_s": round(statistics.median(times), 1) if times else None}
    shutil.rmtree(scratch, ignore_errors=True)
    (ROOT / "build").mkdir(exist_ok=True)
    Path(figures_path or ROOT / "build" / "prove-figures.json").write_text(json.dumps(figures, indent=1))
    if problems:
        print(f"\nprove: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem.splitlines()[0]}")
        return 1
    print("\nprove: every step's tests catch its missing code, and every mistake of the catalogues")
    return 0


def prove_steps(stage, scratch, check):
    """The starter, steps 1..k filled, and the stage before."""
    count = len(stage.steps)
    for through in range(count):
        copy = scratch / f"{stage.name}-{through}"
        start(stage, copy, through=through, quiet=True)
        # The starter and every partial copy build with both compilers: a stub that leaves a helper unused
        # would otherwise fail its student's first build, and be reported as a failing step. The gcc build
        # (the default compiler) comes last and stays, for the run below.
        for compiler in ("clang", "gcc"):
            if shutil.which(compiler):
                subprocess.run(["make", "-s", "-C", str(copy), "clean"], capture_output=True)
                done = subprocess.run(["make", "-s", "-j2", "-C", str(copy), f"CC={compiler}", "all",
                                       "build/run_checks"], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
                check(done.returncode == 0, f"steps 1..{through} filled in: builds with {compiler}"
                      + ("" if done.returncode == 0 else "\n" + indented(done.stdout + done.stderr)))
        started = time.monotonic()
        outcomes, _ = run(stage, Programs(impl=copy), only=True, quiet=True)
        done = passed_count(outcomes)
        took = time.monotonic() - started
        what = "the starter" if through == 0 else f"steps 1..{through} filled in"
        ok = done == through and outcomes[done].result == "fail"
        check(ok, f"{what}: passes {done} step(s), fails step {done + 1} (that step {outcomes[done].seconds:.0f} s, "
                  f"the run {took:.0f} s)" + ("" if ok else "\n" + indented(outcomes[done].detail or outcomes[done].result)))
        shutil.rmtree(copy)
    index = STAGES.index(str(stage.path.relative_to(ROOT)))
    if index > 0:
        # A copy: `prove --jobs` may be proving that stage at the same time, in its own folder (a step's
        # sanitizer build goes under the folder it runs).
        previous = built_copy(ROOT / STAGES[index - 1], scratch / f"{stage.name}-previous")
        for step in stage.steps:
            outcomes, _ = run(stage, Programs(impl=previous), single=step.number, quiet=True)
            check(outcomes[0].result == "fail", f"the previous stage ({Path(STAGES[index - 1]).name}) fails step "
                  f"{step.number} ({step.title}): {outcomes[0].result}")
        shutil.rmtree(previous)


# --- the figures in docs/testing.md -------------------------------------------------------------------------


def code_only(text):
    """The text without its comments: what is left is code (and blank lines)."""
    return re.sub(r"/\*.*?\*/", lambda found: "\n" * found.group().count("\n"), text, flags=re.S)


def body_lines(source, name):
    """Lines of code (not blank, not comment) in a function's body: what a student types."""
    spans = function_spans(source)
    if name not in spans:
        return 0
    first, last = spans[name]
    lines = code_only(source).splitlines()[first - 1:last]
    brace = next(i for i, text in enumerate(lines) if opens_body(text))
    return sum(1 for text in lines[brace + 1:-1] if text.strip())


def added_lines(before, after):
    """Lines of code (not blank, not comment) in the stage's .c files, tests left out, that the stage before
    does not have. Headers are left out too: declarations are the contract a student writes to."""
    added = 0
    for path in sorted(after.glob("*.c")):
        old = code_only((before / path.name).read_text()).splitlines() if before and (before / path.name).exists() \
            else []
        new = code_only(path.read_text()).splitlines()
        added += sum(1 for line in difflib.ndiff(old, new) if line.startswith("+ ") and line[2:].strip())
    return added


def figures():
    print("| Stage | Steps | Lines the student writes | Lines the stage adds | Share |")
    print("|---|---:|---:|---:|---:|")
    for index, stage_path in enumerate(STAGES):
        stage = Stage.load(stage_path)
        written = sum(body_lines((stage.path / file_name).read_text(), function)
                      for step in stage.steps for file_name, functions in step.code.items() for function in functions)
        before = ROOT / STAGES[index - 1] if index > 0 else None
        added = added_lines(before, stage.path)
        print(f"| {stage.name} | {len(stage.steps)} | {written} | {added} | {written / added:.0%} |")


# --- make check-stages --------------------------------------------------------------------------------------

STAGE_METADATA = {"README.md", "stage.ini", "starter.ini", "mistakes.ini"}  # a stage's own words


def stage_files(path):
    """The files of a stage that `make diff` compares: sources, tests, Makefile (not what a build makes)."""
    found = set()
    for file in path.rglob("*"):
        relative = file.relative_to(path)
        # build/ and certs/ (lesson 07's make certs) are what make makes.
        if file.is_file() and not any(part in ("build", "certs") for part in relative.parts) \
                and not (file.suffix == "" and os.access(file, os.X_OK)) and not file.name.endswith((".exe", ".o")):
            found.add(str(relative))
    return found - STAGE_METADATA


def check_stages():
    """Each stage's `changes =` names exactly the files that differ from the stage before it."""
    problems = []
    for before_path, after_path in zip(STAGES, STAGES[1:]):
        before, after = ROOT / before_path, ROOT / after_path
        declared = set(Stage.load(after_path).changes)
        files = stage_files(before) | stage_files(after)
        differ = {name for name in files
                  if not (before / name).is_file() or not (after / name).is_file()
                  or (before / name).read_bytes() != (after / name).read_bytes()}
        found = []
        for name in sorted(differ - declared):
            found.append(f"{after.name}/{name} differs from {before.name}/{name}, but {after.name}/stage.ini does "
                         f"not list it in `changes`")
        for name in sorted(declared - differ):
            found.append(f"{after.name}/stage.ini lists {name} in `changes`, but it is the same as in {before.name}")
        print(f"{before.name} -> {after.name}: {len(differ)} files differ" + ("" if found else ", all declared"))
        problems += found
    for problem in problems:
        print(f"  {problem}")
    return 1 if problems else 0


def main():
    parser = argparse.ArgumentParser(prog="steps.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("start")
    p.add_argument("stage")
    p.add_argument("dest")
    p.add_argument("--through", type=int, default=0)
    p = commands.add_parser("run")
    p.add_argument("stage")
    p.add_argument("--impl")
    p.add_argument("--server")
    p.add_argument("--client")
    p.add_argument("--only", action="store_true")
    p.add_argument("--json")
    p.add_argument("--step", type=int)
    p.add_argument("--pytest-args", default="")
    commands.add_parser("progress")
    p = commands.add_parser("watch")
    p.add_argument("stage")
    p.add_argument("--impl")
    p = commands.add_parser("prove")
    p.add_argument("stages", nargs="*")
    p.add_argument("--repeat", type=int, default=int(os.environ.get("REPEAT") or 3))
    p.add_argument("--mistakes-only", action="store_true")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS") or 1))
    p.add_argument("--figures", help="where the figures go (build/prove-figures.json)")
    commands.add_parser("check-stages")
    commands.add_parser("figures")
    args = parser.parse_args()

    if args.command == "figures":
        figures()
        return 0
    if args.command == "check-stages":
        return check_stages()
    if args.command == "progress":
        progress()
        return 0
    if args.command == "prove":
        stages = args.stages or STAGES
        if args.jobs > 1 and len(stages) > 1:
            return prove_in_parallel(stages, args.repeat, args.mistakes_only, args.jobs)
        return prove(stages, args.repeat, args.mistakes_only, args.figures)
    stage = Stage.load(args.stage)
    if not stage.steps:
        fail_usage(f"{stage.name} has no steps in its stage.ini")
    if args.command == "start":
        start(stage, args.dest, args.through)
        return 0
    if args.command == "run" and (args.server or args.client):
        programs = Programs(server=str(Path(args.server).resolve()) if args.server else None,
                            client=str(Path(args.client).resolve()) if args.client else None)
    else:
        impl = Path(args.impl) if args.impl else stage.path
        if not impl.exists():
            fail_usage(f"{impl} does not exist (make start LESSON={stage.lesson} makes work/{stage.name})")
        programs = Programs(impl=impl.resolve())
    if args.command == "watch":
        watch(stage, programs.impl)
        return 0
    outcomes, whole = run(stage, programs, args.only, args.json, args.step, resume=not programs.mine,
                          extra_args=args.pytest_args.split())
    ok = all(o.result in ("pass", "skipped") for o in outcomes) and (whole is None or whole.result == "pass")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
