"""The step runner's order (scripts/steps.py): a run starts with the step the last one stopped at, runs the steps
after it, then the steps before it again, and its verdict is the same as that of a run in order.

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
    monkeypatch.setattr(steps, "print_failure", lambda *args: None)

    def run(state, failing=(), linux_build_error=None, windows_build_error=None):
        saved = steps.current_step_file(tmp_path)
        saved.parent.mkdir(parents=True, exist_ok=True)
        if state:
            saved.write_text(state + "\n")
        ran = []

        def run_step(stage, step, impl):
            ran.append(step.number)
            return steps.Outcome("fail", 0.1, "the test's message", "other") if step.number in failing else \
                steps.Outcome("pass", 0.1)

        monkeypatch.setattr(steps, "build", lambda impl, windows: windows_build_error if windows else linux_build_error)
        monkeypatch.setattr(steps, "run_step", run_step)
        outcomes, _ = steps.run(STAGE, tmp_path, only=True, quiet=True, resume=True)
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


def test_a_linux_build_error_is_step_one_and_leaves_the_saved_step_alone(copy):
    results, ran, state = copy("win32", linux_build_error="server.c:1: error")
    assert ran == [], f"steps run without a build: {ran}"
    assert results == ["fail"] + ["not run"] * 6, results
    assert state == "win32", f"saved step after a build error: {state!r}"


def test_a_windows_build_error_fails_only_the_windows_step(copy):
    results, ran, state = copy("win32", windows_build_error="platform_win32.c:1: error")
    assert ran == [1, 2, 3, 4, 5, 6], f"steps run: {ran}; the Linux steps need no Windows build"
    assert results == ["pass"] * 6 + ["fail"], results
    assert state == "win32", f"saved step: {state!r}"
