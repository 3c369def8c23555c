"""Figures the reliability tests saw, written to build/figures.json for docs/reliability.md.

record(target, "lines sent", 100, "replies", 100) stores one row per build;
accumulate=True adds to a row instead of replacing it (for counting inputs
tried across tests).
"""

import json

from harness import COURSE_ROOT

FIGURES_FILE = COURSE_ROOT / "build" / "figures.json"
_figures = {}


def record(target, name, value, *more, accumulate=False):
    name = f"{name} [{target.build}]"
    row = [value, *more]
    if accumulate and name in _figures:
        row = [_figures[name][0] + value, *more]
    _figures[name] = row


def save():
    """Merges this run's figures into the file (a run may cover only some tests)."""
    if not _figures:
        return
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(FIGURES_FILE.read_text()) if FIGURES_FILE.exists() else {}
    old.update(_figures)
    FIGURES_FILE.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
