"""The step runner (scripts/steps.py): its order (a run starts with the step the last one stopped at, runs the steps
after it, then the steps before it again, and its verdict is the same as that of a run in order), whom it blames
for a build error, which hint it shows, what it records for make progress, and how it makes a catalogue's mistake.

The copy's build and each step's tests are stood in for, so these tests run no compiler and no server: they check
the runner's bookkeeping, which `make prove` (always in order) does not exercise."""

import importlib.util

import pytest

from harness import COURSE_ROOT

spec = importlib.util.spec_from_file_location("steps", COURSE_ROOT / "scripts" / "steps.py")
steps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(steps)

STAGE = steps.Stage.load("final")  # seven steps; the last is the Windows one


@pytest.fixture
def copy(tmp_path, monkeypatch):
    """A student's copy whose build and steps are stood in for; returns run(state, failing=..., ...)."""

    def run(state, failing=(), linux_build_error=None, windows_build_error=None):
        """failing: step numbers that fail; a build error: a steps.BuildError."""
        saved = steps.current_step_file(tmp_path)
        saved.parent.mkdir(parents=True, exist_ok=True)
        if state:
            saved.write_text(state + "\n")
        ran = []

        def run_step(stage, step, programs):
            ran.append(step.number)
            return steps.Outcome("fail", 0.1, "the test's message", "other") if step.number in failing else \
                steps.Outcome("pass", 0.1)

        monkeypatch.setattr(steps, "build", lambda impl, windows, stage=None: windows_build_error if windows else
                            linux_build_error)
        monkeypatch.setattr(steps, "run_step", run_step)
        monkeypatch.setattr(steps, "wine_missing", lambda: None)
        outcomes, _ = steps.run(STAGE, steps.Programs(impl=tmp_path), only=True, quiet=True, resume=True)
        state_after = saved.read_text().strip() if saved.exists() else None
        return [o.result for o in outcomes], ran, state_after

    return run


def test_without_a_saved_step_the_steps_run_in_order_and_the_first_failure_is_saved(copy):
    results, ran, state = copy(None, failing={3})
    assert ran == [1, 2, 3], f"steps run: {ran}, expected 1, 2, 3 and a stop"
    assert results == ["pass", "pass", "fail"] + ["not run"] * 4, results
    assert state == "max-clients", f"saved step: {state!r}, expected step 3's name"


def test_the_saved_step_runs_first_and_the_steps_before_it_run_again_after_it(copy):
    results, ran, state = copy("win32", failing={7})
    assert ran == [7, 1, 2, 3, 4, 5, 6], f"steps run: {ran}, expected 7 first, then 1 to 6"
    assert steps.passed_count([steps.Outcome(r) for r in results]) == 6, results
    assert state == "win32", f"saved step: {state!r}"


def test_a_step_before_the_saved_one_that_fails_now_is_the_verdict(copy):
    results, ran, state = copy("send-limit", failing={6, 3})
    assert ran == [5, 6, 1, 2, 3], f"steps run: {ran}, expected 5, 6 (fails), then 1, 2, 3 (fails)"
    assert results[:3] == ["pass", "pass", "fail"], f"results: {results}; step 3 failed in this run"
    assert state == "max-clients", f"saved step: {state!r}, expected step 3, the first failure in order"


def test_when_every_step_passes_the_saved_step_is_forgotten(copy):
    results, ran, state = copy("log-queue")
    assert sorted(ran) == [1, 2, 3, 4, 5, 6, 7] and ran[0] == 2, f"steps run: {ran}"
    assert state is None, f"saved step after a run that passed: {state!r}"


def test_a_build_error_in_given_code_fails_step_one_and_runs_nothing(copy):
    results, ran, state = copy("win32", linux_build_error=steps.BuildError("server.c:1: error"))
    assert ran == [], f"steps run without a build: {ran}"
    assert results == ["fail"] + ["not run"] * 6, results
    assert state == "log-line", f"saved step: {state!r}: the build error is where the student is"


def test_a_build_error_in_a_steps_code_fails_that_step_not_step_one(copy):
    error = steps.BuildError("log.c:40: error: ...", STAGE.step_named("log-queue"), "log.c, in log_event()")
    results, ran, state = copy(None, linux_build_error=error)
    assert ran == [], f"steps run without a build: {ran}"
    assert results[:2] == ["not run", "fail"], f"results: {results}; step 2 owns the code that does not build"
    assert state == "log-queue", f"saved step: {state!r}"


def test_a_windows_build_error_fails_only_the_windows_step(copy):
    error = steps.BuildError("platform_win32.c:1: error", STAGE.step_named("win32"))
    results, ran, state = copy("win32", windows_build_error=error)
    assert ran == [7, 1, 2, 3, 4, 5, 6] or ran == [1, 2, 3, 4, 5, 6], f"steps run: {ran}"
    assert results == ["pass"] * 6 + ["fail"], results
    assert state == "win32", f"saved step: {state!r}"


def test_the_compiler_is_blamed_on_the_step_that_owns_the_function(tmp_path):
    (tmp_path / "log.c").write_text("/* a banner */\nstatic int helper(void)\n{\n    return 1;\n}\n\n"
                                    "void log_event(const char *who)\n{\n    undeclared();\n}\n")
    error = steps.blame(STAGE, tmp_path, "log.c:9:5: error: implicit declaration of function 'undeclared'")
    assert (error.step.name, error.where) == ("log-queue", "log.c, in log_event()"), error
    given = steps.blame(STAGE, tmp_path, "log.c:4:5: warning: unused [-Werror]")
    assert given.step is None and given.where == "log.c, in helper()", given


def test_the_failing_tests_own_hint_comes_instead_of_the_steps(tmp_path):
    step = STAGE.steps[0]
    own = steps.outcome_of({"test": "t::test_x", "message": "step: x\nhint: the test's own hint", "kind": "timeout",
                            "hint": "the test's own hint", "logs": []}, 1.0)
    text = steps.format_failure(STAGE, step, own)
    assert "the test's own hint" in text and f"hint: {step.hint_for('timeout')}" not in text, text
    bare = steps.outcome_of({"test": "t::test_y", "message": "something failed", "kind": "timeout", "logs": []}, 1.0)
    assert f"hint: {step.hint_for('timeout')}" in steps.format_failure(STAGE, step, bare)


def test_progress_reads_the_last_runs_record_and_runs_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(steps, "WORK", tmp_path)
    monkeypatch.setattr(steps, "STAGES", ["final"])
    monkeypatch.setattr(steps, "run", lambda *a, **k: pytest.fail("make progress ran the steps"))
    record = steps.results_file(tmp_path / "final")
    record.parent.mkdir(parents=True)
    record.write_text('{"stage": "final", "when": 0, "steps": [{"name": "cli", "result": "pass", "kind": ""}, '
                      '{"name": "log-queue", "result": "fail", "kind": "check"}]}')
    steps.progress()
    out = capsys.readouterr().out
    assert "1/7 steps  next: A log that never blocks (check" in out, out


def test_a_mistake_is_made_by_replacing_text_found_once(tmp_path):
    (tmp_path / "net.c").write_text("a\nsetsockopt(REUSE)\nb\n")
    edit = steps.course.Edit("net.c", "setsockopt(REUSE)\n", "")
    mistake = steps.course.Mistake("no-reuse", "listen", "", [edit], "SO_REUSEADDR")
    assert steps.apply_edits(tmp_path, mistake) is None
    assert (tmp_path / "net.c").read_text() == "a\nb\n"
    assert "0 times" in steps.apply_edits(tmp_path, mistake), "a text no longer there is an error, not a no-op"
