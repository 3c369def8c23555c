#!/usr/bin/env python3
"""steps - the steps in which a student builds a stage, and what checks them.

Each stage's stage.ini lists its steps ([step NAME] sections, in the order of
`steps =`): a title, the functions the student writes (`code`), the Check
suites and harness tests that check them, and hints chosen by symptom. Its
starter.ini gives, for each of those functions, the stub that `make start`
puts in its place and the TODO that explains it.

  steps.py start STAGE DEST [--through K]   copy a stage, its step code stubbed (steps 1..K kept)
  steps.py run STAGE [--impl DIR] [--only] [--json FILE] [--step N]
                                            build DIR and run the steps in order, stopping at the
                                            first that fails; then the whole stage's tests. The
                                            step the last run stopped at runs first, the ones
                                            before it after it (DIR/build/steps-current)
  steps.py progress                         one line per stage: steps done, and the next one
  steps.py watch STAGE [--impl DIR]         run the steps again whenever a file of DIR changes
  steps.py prove [STAGE ...]                CI: every step's tests catch its missing code
  steps.py check-stages                     CI: a file that differs from the stage before is declared
  steps.py figures                          per stage: steps, lines the student writes, lines the stage adds

Exit status: 0 when everything run passed, 1 when something failed, 2 on a
bad command line or a stage.ini that does not hold together.
"""

import argparse
import configparser
import difflib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from harness import course_stages  # noqa: E402 (the one list of the stages, stages.txt)

STAGES = course_stages()
SKIP = shutil.ignore_patterns("build", "server", "server-*", "client", "*.exe", "*.o")
WORK = ROOT / "work"

# What a failure looks like, tried in this order on its text: the name of the symptom a hint is chosen by.
SYMPTOMS = [
    ("start", r"without the line 'listening on"),
    ("refused", r"could not connect|Connection refused"),
    ("running", r"still running"),
    ("timeout", r"timed out"),
    ("closed", r"closed the connection before|closed before|never closed"),
    ("reset", r"connection broke|reset"),
    ("differs", r"differs from what was expected|stdout was|printed"),
    ("exit", r"exited -?\d+|exit code"),
]


def fail_usage(message):
    print(f"steps: {message}", file=sys.stderr)
    sys.exit(2)


@functools.cache
def find_python():
    """The Python that has pytest (scripts/find-python), looked for once."""
    found = subprocess.run([str(ROOT / "scripts" / "find-python")], capture_output=True, text=True).stdout.strip()
    return found or sys.executable


@dataclass
class Step:
    """One step of a stage: what the student writes and what checks it."""

    number: int
    name: str
    title: str
    code: dict  # file name -> [function names]
    checks: list  # Check suites
    tests: list  # harness tests, as "test_file.py::test_name"
    build: str  # "linux", or "wine" for a Win32 twin
    readme: str
    hints: dict  # symptom -> hint; "" is the default

    def label(self, count):
        return f"step {self.number}/{count}  {self.title}"

    def hint_for(self, symptom):
        return self.hints.get(symptom) or self.hints.get("")


@dataclass
class Stage:
    path: Path
    steps: list
    stubs: dict  # (file, function) -> {"todo": ..., "stub": ...}
    changes: list = field(default_factory=list)

    @property
    def name(self):
        return self.path.name

    @property
    def lesson(self):
        return "final" if self.name == "final" else self.name.split("-")[0]

    @classmethod
    def load(cls, path):
        path = (ROOT / path).resolve() if not Path(path).is_absolute() else Path(path)
        ini = configparser.ConfigParser(interpolation=None)
        ini.optionxform = str  # hint keys keep their case
        ini.read(path / "stage.ini")
        names = ini["stage"].get("steps", "").split()
        steps = []
        for number, name in enumerate(names, start=1):
            section = ini[f"step {name}"]
            code = {}
            file_name = None
            for line in section.get("code", "").strip().splitlines():
                if ":" in line:  # "file.c: function function", or more functions of the same file
                    file_name, _, line = line.partition(":")
                    file_name = file_name.strip()
                code.setdefault(file_name, []).extend(line.split())
            hints = {key[len("hint."):] if key.startswith("hint.") else "": value.replace("\n", " ")
                     for key, value in section.items() if key == "hint" or key.startswith("hint.")}
            title = section["title"]
            steps.append(Step(number, name, title, code, section.get("check", "").split(),
                              section.get("tests", "").split(), section.get("build", "linux"),
                              section.get("readme", f"Step {number}: {title}"), hints))
        starter = configparser.ConfigParser(interpolation=None)
        starter.read(path / "starter.ini")
        stubs = {}
        for section in starter.sections():
            file_name, function = section.split()
            stubs[(file_name, function)] = {"todo": starter[section].get("todo", "").replace("\n", " "),
                                            "stub": starter[section]["stub"]}
        return cls(path, steps, stubs, ini["stage"].get("changes", "").split())

    def validate(self):
        """The problems of this stage's steps: stubs without a step, step code without a stub, a step without its
        README section."""
        problems = []
        claimed = set()
        for step in self.steps:
            if not step.checks and not step.tests:
                problems.append(f"step {step.name} has no tests and no Check suites")
            for file_name, functions in step.code.items():
                for function in functions:
                    if (file_name, function) not in self.stubs:
                        problems.append(f"step {step.name}: {file_name} {function}() has no stub in starter.ini")
                    if (file_name, function) in claimed:
                        problems.append(f"{file_name} {function}() belongs to two steps")
                    claimed.add((file_name, function))
        for key in self.stubs:
            if key not in claimed:
                problems.append(f"starter.ini stubs {key[0]} {key[1]}(), which no step's code names")
        headings = re.findall(r"^#+ (.+?)\s*$", (self.path / "README.md").read_text(), flags=re.M)
        for step in self.steps:
            if step.readme not in headings:
                problems.append(f"step {step.name}: README.md has no section \"{step.readme}\" for its failures to send "
                                f"the student to")
        return problems


# --- make start ------------------------------------------------------------------------------------------------------


def stub_function(source, name, comment, stub):
    """Replaces the body of the function `name`: a definition that starts at the first column, whose braces
    stand alone on their lines (as .clang-format writes them)."""
    lines = source.splitlines(keepends=True)
    for first, line in enumerate(lines):
        if not re.match(r"[A-Za-z_]", line) or not re.search(rf"\b{re.escape(name)}\(", line):
            continue
        brace = first
        while brace < len(lines) and lines[brace].rstrip("\n") != "{" and ";" not in lines[brace]:
            brace += 1
        if brace == len(lines) or lines[brace].rstrip("\n") != "{":
            continue  # a declaration, not the definition
        end = lines.index("}\n", brace)
        # "| " keeps what follows it as it is, indent included
        body = [text[2:] if text.startswith("| ") else text[1:] if text.startswith("|") else text
                for text in stub.strip("\n").splitlines()]
        stubbed = [comment] + [f"    {text}\n" if text.strip() else "\n" for text in body]
        return "".join(lines[:brace + 1] + stubbed + lines[end:])
    raise SystemExit(f"steps: no definition of {name}() to replace")


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
    """Copies the stage to dest with the code of steps through+1.. replaced by their stubs."""
    dest = Path(dest).resolve()
    if dest.exists():
        raise SystemExit(f"steps: {dest} exists already; remove it to start over")
    shutil.copytree(stage.path, dest, ignore=SKIP)
    # The copy may be anywhere: its Makefile names the course's build rules by their full path.
    makefile = dest / "Makefile"
    makefile.write_text(re.sub(r"^include .*mk/stage.mk$", f"include {ROOT / 'mk' / 'stage.mk'}",
                               makefile.read_text(), flags=re.M))
    count = len(stage.steps)
    for step in stage.steps[through:]:
        for file_name, functions in step.code.items():
            path = dest / file_name
            source = path.read_text()
            for function in functions:
                entry = stage.stubs[(file_name, function)]
                source = stub_function(source, function, todo_comment(step, count, entry["todo"]), entry["stub"])
            path.write_text(source)
    (dest / "starter.ini").unlink()
    if not quiet:
        print(f"{dest.relative_to(Path.cwd()) if dest.is_relative_to(Path.cwd()) else dest}: "
              f"{stage.name}, with the code of its steps left for you to write:")
        for step in stage.steps:
            where = ", ".join(f"{f} {' '.join(fn + '()' for fn in fns)}" for f, fns in step.code.items())
            print(f"  step {step.number}/{count}  {step.title:34} {where}")
        rel = os.path.relpath(dest, ROOT)
        print(f"Read the README's \"Your turn\", then test your copy; each run stops at the first failing step:")
        print(f"  make test LESSON={stage.lesson} IMPL={rel}")
        print(f"  make watch LESSON={stage.lesson}      (runs it again whenever you save a file)")


# --- running the steps -----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    result: str  # "pass", "fail", "not run", "skipped"
    seconds: float = 0.0
    detail: str = ""  # what failed, in bytes and words
    symptom: str = ""
    log: str = ""


def wine_missing():
    """Why the Windows programs cannot be built and run here, or None."""
    if shutil.which("x86_64-w64-mingw32-gcc") is None:
        return "MinGW-w64 is not installed (make deps)"
    if shutil.which("wine") is None:
        return "Wine is not installed (make deps)"
    return None


def build(impl, windows):
    """Builds the copy (Linux programs and Check runner, and the .exe files); returns the errors, or None."""
    targets = [["all", "build/run_checks"]]
    if windows:
        targets.append(["windows"])
    for target in targets:
        done = subprocess.run(["make", "-s", "-j2", "-C", str(impl), *target], capture_output=True, text=True)
        if done.returncode != 0:
            errors = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
            return "\n".join(errors[:25])
    return None


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
    # Check forks a process per test: the whole session goes, and a watchdog ends a runner that hangs.
    watchdog = threading.Timer(120, os.killpg, (runner.pid, signal.SIGKILL))
    watchdog.start()
    output, failed = [], None
    for line in runner.stdout:
        output.append(line)
        failed = re.match(r"^not ok \d+ - (?:.*/)?(tests/check_\w+\.c):(\w+):(\w+): ?(.*)$", line)
        if failed:
            os.killpg(runner.pid, signal.SIGKILL)
            break
    runner.stdout.close()
    status = runner.wait()
    watchdog.cancel()
    return "".join(output), failed, status


def run_checks(impl, suites):
    """Runs the named Check suites of the copy, each until its first failure; returns (passed, what failed)."""
    failures = []
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
            failures.append(f"{test} ({file_name}:{start_line(impl, file_name, test)})\n  {message}\n"
                            f"  (the suite's other tests were not run: it stops at its first failure)")
            break
        summary = re.search(r"Checks: (\d+), Failures: (\d+), Errors: (\d+)", output)
        if summary is None or int(summary.group(1)) == 0:
            failures.append(f"Check suite '{suite}'{f', case {case!r}' if case else ''}: no test of it ran "
                            f"(does tests/check_main.c add it?)")
        elif int(summary.group(2)) or int(summary.group(3)) or status != 0:
            failures.append(f"Check suite '{suite}' failed:\n{output.strip()[-2000:]}")
    return not failures, "\n".join(failures)


def run_pytest(stage, impl, tests, build_name, first_failure_only=True, one_step=True):
    """Runs harness tests against the copy's programs; returns (passed, failures as dicts, count run).
    one_step: the tests of one step (COURSE_ONE_STEP: Wine's replies are waited for less long)."""
    report = Path(tempfile.mkstemp(prefix="steps-", suffix=".jsonl")[1])
    env = dict(os.environ, COURSE_STAGES=str(stage.path.relative_to(ROOT)), COURSE_BUILDS=build_name,
               COURSE_IMPL=str(impl), COURSE_STEP_REPORT=str(report))
    env.pop("COURSE_ONLY_NEW", None)
    env.pop("COURSE_ONE_STEP", None)
    if one_step:
        env["COURSE_ONE_STEP"] = "1"
    args = [find_python(), "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "--tb=no", "-rN"]
    if first_failure_only:
        args.append("-x")
    # Each run writes its own file, renamed to the copy's build/steps-pytest.log at the end: two runs at once
    # (make watch beside make test) never read each other's.
    (Path(impl) / "build").mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="steps-pytest-", suffix=".log", dir=Path(impl) / "build")
    log = Path(name)
    with os.fdopen(fd, "w") as out:
        done = subprocess.run(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    failures = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    report.unlink()
    text = log.read_text()
    log.replace(log.parent / "steps-pytest.log")
    ran = re.search(r"(\d+) passed", text)
    count = int(ran.group(1)) if ran else 0
    if done.returncode not in (0, 1) or (done.returncode == 1 and not failures):
        # Not a test failure: a collection error, a missing test, pytest itself. Show its own words.
        failures.append({"test": "pytest", "message": text.strip()[-3000:], "logs": []})
    if done.returncode == 5 or (done.returncode == 0 and count == 0):
        failures.append({"test": "pytest", "message": f"no test ran: {' '.join(tests)}", "logs": []})
    return not failures, failures, count


def failure_text(message):
    """A failure's own words: without the server log it may carry (shown once, apart), and without pytest's
    rewrite of a plain assert, which indents the message's later lines by two spaces."""
    message = re.split(r"\n\s*--- server \(", message)[0]
    message = re.split(r"\n\s*assert ", message)[0]
    return re.sub(r"\n  ", "\n", message).strip()


def symptom_of(text):
    text = failure_text(text)
    for name, pattern in SYMPTOMS:
        if re.search(pattern, text):
            return name
    return "other"


def describe(failure):
    """The failure's message without the server log it may carry (shown once, apart)."""
    name = failure["test"].split("::")[-1]
    return f"{name}\n" + "\n".join("  " + line for line in failure_text(failure["message"]).splitlines())


def run_step(stage, step, impl):
    """Runs one step's Check suites, then its harness tests; returns its Outcome."""
    started = time.monotonic()
    if step.build == "wine":
        missing = wine_missing()
        if missing:
            return Outcome("skipped", detail=missing)
    if step.checks:
        passed, detail = run_checks(impl, step.checks)
        if not passed:
            return Outcome("fail", time.monotonic() - started, detail, "check")
    if step.tests:
        node_ids = [f"tests/{test}" for test in step.tests]
        passed, failures, _ = run_pytest(stage, impl, node_ids, step.build)
        if not passed:
            first = failures[0]
            symptom = symptom_of(first["message"])
            logs = "\n".join(first.get("logs", [])) or (
                "--- server" + first["message"].split("\n--- server", 1)[1] if "\n--- server" in first["message"] else "")
            return Outcome("fail", time.monotonic() - started, describe(first), symptom, logs)
    return Outcome("pass", time.monotonic() - started)


def print_failure(stage, step, outcome):
    indent = "    "
    print()
    for line in outcome.detail.splitlines():
        print(indent + line)
    hint = step.hint_for(outcome.symptom)
    if hint:
        print()
        print(f"{indent}hint: {hint}")
    readme = os.path.relpath(stage.path / "README.md", Path.cwd())
    print(f"{indent}reread: {readme}, \"{step.readme}\"")
    if outcome.log.strip():
        print()
        for line in outcome.log.strip().splitlines()[-30:]:
            print(indent + line)
    print()


def current_step_file(impl):
    """Where a run leaves the name of the step it stopped at, for the next run to try first."""
    return Path(impl) / "build" / "steps-current"


def run_order(stage, impl, single, resume):
    """The steps to run, as indexes: one step; or all in order; or, when the last run stopped at step k
    (resume), k first, then the steps after it, then 1..k-1 again (they passed then, and must still pass)."""
    if single:
        return [single - 1], 0
    names = [step.name for step in stage.steps]
    saved = current_step_file(impl)
    current = saved.read_text().strip() if resume and saved.exists() else ""
    resumed = names.index(current) if current in names else 0
    return list(range(resumed, len(names))) + list(range(resumed)), resumed


def run(stage, impl, only=False, json_path=None, single=None, quiet=False, resume=False):
    """Builds the copy and runs its steps; returns the list of Outcomes (and the whole stage's). The verdict is
    the order's: every step before the first that fails has passed in this run. With resume, the step that
    failed last time runs first, so that its failure shows within seconds; the steps before it run after."""
    impl = Path(impl).resolve()
    count = len(stage.steps)
    missing = wine_missing()
    say = (lambda *a, **k: None) if quiet else print
    say(f"== {stage.name}: the steps, on {os.path.relpath(impl, Path.cwd())}")
    order, resumed = run_order(stage, impl, single, resume)
    errors = build(impl, windows=False)  # the Linux build: nothing runs without it
    if errors is not None and not single:
        order, resumed = list(range(count)), 0  # said once, at step 1, as in an ordered run
    before = "step 1" if resumed == 1 else f"steps 1 to {resumed}"
    if resumed > 0:
        say(f"(step {resumed + 1} first: your last run stopped there; {before} run again after it)")
    windows_errors, windows_built = None, False
    results = {}
    failed_ahead = failed_behind = None  # the first failing step from `resumed` on, and before it
    for position, index in enumerate(order):
        step = stage.steps[index]
        if position > 0 and index == 0:
            say(f"-- {before} again (passed when you were last here):")
        behind = index < resumed
        if (failed_behind if behind else failed_ahead) is not None or (errors is not None and results):
            results[index] = Outcome("not run")  # behind a failure, or the build failed (said once)
            say(f"{step.label(count):48} not run")
            continue
        if step.build == "wine" and missing is None and not windows_built:
            # The .exe files only once something runs them: this saves seconds on every run before.
            windows_errors, windows_built = build(impl, windows=True), True
        step_errors = errors if errors is not None else windows_errors if step.build == "wine" else None
        if step_errors is not None:
            outcome = Outcome("fail", detail="your copy does not build:\n" + step_errors, symptom="build")
        else:
            outcome = run_step(stage, step, impl)
        results[index] = outcome
        if outcome.result == "pass":
            say(f"{step.label(count):48} pass ({outcome.seconds:.1f} s)")
        elif outcome.result == "skipped":
            say(f"{step.label(count):48} skipped: {outcome.detail}")
        else:
            say(f"{step.label(count):48} FAIL ({outcome.seconds:.1f} s, {outcome.symptom})")
            if not quiet:
                print_failure(stage, step, outcome)
            if behind:
                failed_behind = index
                why = "" if failed_ahead is None else f" (step {failed_ahead + 1} may fail because of it)"
                say(f"    step {index + 1} passed before and fails now: mend it first{why}\n")
            else:
                failed_ahead = index
    chosen = [stage.steps[index] for index in sorted(results)]
    outcomes = [results[index] for index in sorted(results)]
    stopped = next((step for step, o in zip(chosen, outcomes) if o.result not in ("pass", "skipped")), None)
    failed = stopped is not None
    if stopped and resumed > 0:
        say(f"stopped at {stopped.label(count)}")
    if resume and not single and errors is None:  # a Linux build error leaves the step you are on as it was
        saved = current_step_file(impl)
        if stopped:
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text(stopped.name + "\n")
        elif saved.exists():
            saved.unlink()
    whole = None
    if not failed and not only and not single and missing is None and not windows_built:
        windows_errors = build(impl, windows=True)
        if windows_errors is not None:
            failed = True
            say("the Windows build of your copy does not build:\n" + windows_errors)
    if not failed and not only and not single:
        builds = "linux" if missing else "linux wine"
        started = time.monotonic()
        passed, failures, ran = run_pytest(stage, impl, ["tests"], builds, one_step=False)
        whole = Outcome("pass" if passed else "fail", time.monotonic() - started)
        if passed:
            say(f"{'the whole stage (' + builds + ')':48} pass ({ran} tests, {whole.seconds:.0f} s)")
        else:
            first = failures[0]
            whole.detail, whole.symptom = describe(first), symptom_of(first["message"])
            whole.log = "\n".join(first.get("logs", []))
            say(f"{'the whole stage (' + builds + ')':48} FAIL ({ran} passed before it)")
            if not quiet:
                print()
                for line in whole.detail.splitlines():
                    print("    " + line)
                print()
        if missing:
            say(f"(the Windows build was not tested: {missing})")
    if json_path:
        Path(json_path).write_text(json.dumps({
            "stage": stage.name, "impl": str(impl),
            "steps": [{"name": s.name, "result": o.result} for s, o in zip(chosen, outcomes)],
            "whole": whole.result if whole else None}, indent=1))
    return outcomes, whole


def passed_count(outcomes):
    """How many steps passed, in order, before the first that did not."""
    count = 0
    for outcome in outcomes:
        if outcome.result != "pass":
            break
        count += 1
    return count


# --- make progress, make watch ---------------------------------------------------------------------------------------


def progress():
    for stage_path in STAGES:
        stage = Stage.load(stage_path)
        work = WORK / stage.name
        if not work.exists():
            print(f"{stage.name:22} not started       make start LESSON={stage.lesson}")
            continue
        outcomes, _ = run(stage, work, only=True, quiet=True, resume=True)
        done = passed_count(outcomes)
        count = len(stage.steps)
        if done == count:
            print(f"{stage.name:22} {done}/{count} steps  all done: make test LESSON={stage.lesson} "
                  f"IMPL=work/{stage.name} runs the whole stage", flush=True)
        else:
            step = stage.steps[done]
            why = outcomes[done].result if outcomes[done].result != "fail" else outcomes[done].symptom
            print(f"{stage.name:22} {done}/{count} steps  next: {step.title} ({why})", flush=True)


def newest_change(impl):
    times = [path.stat().st_mtime for path in impl.rglob("*") if path.suffix in (".c", ".h") and "build" not in
             path.parts]
    return max(times, default=0)


def watch(stage, impl):
    impl = Path(impl).resolve()
    waiter = shutil.which("inotifywait")
    while True:
        run(stage, impl, only=True, resume=True)
        print(f"\nwatching {os.path.relpath(impl, Path.cwd())} for changes (Ctrl+C to stop)...", flush=True)
        if waiter:
            subprocess.run([waiter, "-q", "-r", "-e", "close_write,moved_to,create,delete", "--exclude", "/build/",
                            str(impl)], stdout=subprocess.DEVNULL)
        else:
            seen = newest_change(impl)
            while newest_change(impl) == seen:
                time.sleep(1)  # no inotify: look at the files once a second
        print()


# --- make prove ------------------------------------------------------------------------------------------------------


def indented(text, lines=12):
    return "\n".join("          " + line for line in text.splitlines()[:lines])


def prove(stage_paths):
    """For each stage: the reference passes every step; the starter fails at step 1; filling steps 1..k passes
    exactly through k; the previous stage's reference fails each of the stage's steps."""
    problems = []
    scratch = Path(tempfile.mkdtemp(prefix="prove-", dir=ROOT / "build"))

    def check(condition, message):
        print(("  ok    " if condition else "  FAIL  ") + message, flush=True)
        if not condition:
            problems.append(message)

    for stage_path in stage_paths:
        stage = Stage.load(stage_path)
        count = len(stage.steps)
        print(f"== {stage.name}: {count} steps", flush=True)
        for problem in stage.validate():
            check(False, f"{stage.name}: {problem}")
        started = time.monotonic()
        outcomes, _ = run(stage, stage.path, only=True, quiet=True)
        ok = all(o.result == "pass" for o in outcomes)
        check(ok, f"the reference passes all {count} steps ({time.monotonic() - started:.0f} s)"
              + ("" if ok else f": stops at step {passed_count(outcomes) + 1}\n"
                 + indented(outcomes[passed_count(outcomes)].detail)))
        for through in range(count):
            copy = scratch / f"{stage.name}-{through}"
            start(stage, copy, through=through, quiet=True)
            started = time.monotonic()
            outcomes, _ = run(stage, copy, only=True, quiet=True)
            done = passed_count(outcomes)
            took = time.monotonic() - started
            what = "the starter" if through == 0 else f"steps 1..{through} filled in"
            ok = done == through and outcomes[done].result == "fail"
            check(ok, f"{what}: passes {done} step(s), fails step {done + 1} (that step {outcomes[done].seconds:.0f} s, "
                      f"the run {took:.0f} s)"
                  + ("" if ok else "\n" + indented(outcomes[done].detail or outcomes[done].result)))
            shutil.rmtree(copy)
        index = STAGES.index(str(stage.path.relative_to(ROOT)))
        if index > 0:
            previous = ROOT / STAGES[index - 1]
            for step in stage.steps:
                outcomes, _ = run(stage, previous, single=step.number, quiet=True)
                check(outcomes[0].result == "fail", f"the previous stage ({previous.name}) fails step "
                      f"{step.number} ({step.title}): {outcomes[0].result}")
    shutil.rmtree(scratch, ignore_errors=True)
    if problems:
        print(f"\nprove: {len(problems)} problem(s):")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print("\nprove: every step's tests catch its missing code")
    return 0


# --- the figures in docs/testing.md -----------------------------------------------------------------------------------


def code_only(text):
    """The text without its comments: what is left is code (and blank lines)."""
    return re.sub(r"/\*.*?\*/", lambda found: "\n" * found.group().count("\n"), text, flags=re.S)


def body_lines(source, name):
    """Lines of code (not blank, not comment) in a function's body: what a student types."""
    lines = code_only(source).splitlines()
    for first, line in enumerate(lines):
        if re.match(r"[A-Za-z_]", line) and re.search(rf"\b{re.escape(name)}\(", line):
            brace = first
            while brace < len(lines) and lines[brace] != "{" and ";" not in lines[brace]:
                brace += 1
            if brace < len(lines) and lines[brace] == "{":
                end = lines.index("}", brace)
                return sum(1 for text in lines[brace + 1:end] if text.strip())
    return 0


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


# --- make check-stages -----------------------------------------------------------------------------------------------

STAGE_METADATA = {"README.md", "stage.ini", "starter.ini"}  # a stage's own words: they differ by nature


def stage_files(path):
    """The files of a stage that `make diff` compares: sources, tests, Makefile (not what a build makes)."""
    found = set()
    for file in path.rglob("*"):
        relative = file.relative_to(path)
        if file.is_file() and not any(part in ("build",) for part in relative.parts) \
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
        for name in sorted(differ - declared):
            problems.append(f"{after.name}/{name} differs from {before.name}/{name}, but {after.name}/stage.ini does "
                            f"not list it in `changes`")
        for name in sorted(declared - differ):
            problems.append(f"{after.name}/stage.ini lists {name} in `changes`, but it is the same as in {before.name}")
        print(f"{before.name} -> {after.name}: {len(differ)} files differ, all declared" if not problems else
              f"{before.name} -> {after.name}: {len(differ)} files differ")
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
    p.add_argument("--only", action="store_true")
    p.add_argument("--json")
    p.add_argument("--step", type=int)
    commands.add_parser("progress")
    p = commands.add_parser("watch")
    p.add_argument("stage")
    p.add_argument("--impl")
    p = commands.add_parser("prove")
    p.add_argument("stages", nargs="*")
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
        return prove(args.stages or STAGES)
    stage = Stage.load(args.stage)
    if not stage.steps:
        fail_usage(f"{stage.name} has no steps in its stage.ini")
    if args.command == "start":
        start(stage, args.dest, args.through)
        return 0
    impl = Path(args.impl) if args.impl else stage.path
    if not impl.exists():
        fail_usage(f"{impl} does not exist (make start LESSON={stage.lesson} makes work/{stage.name})")
    if args.command == "watch":
        watch(stage, impl)
        return 0
    outcomes, whole = run(stage, impl, args.only, args.json, args.step, resume=True)
    ok = all(o.result in ("pass", "skipped") for o in outcomes) and (whole is None or whole.result == "pass")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
