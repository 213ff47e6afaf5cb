"""The fuzzing harness: budgets, seeds, per-input time limits and the counts every target
reports.

Each target mutates valid inputs for `DYNN_FUZZ_SECONDS` seconds (default 5: the bounded
run of the default test suite) from the seed `DYNN_FUZZ_SEED` (default 0, so CI runs are
reproducible). A long run on demand:

    DYNN_FUZZ_SECONDS=600 DYNN_FUZZ_SEED=$RANDOM .venv/bin/python -m pytest -m fuzz -s tests/fuzz

An input fails when the tool under test raises (a traceback), exits with a code other than 0
or 1, prints more than one line or an internal error on failure, runs past
`DYNN_FUZZ_INPUT_SECONDS` (default 60: a hang), or, where a reference exists, computes
something else than it. The counts of every target are printed at the end of the run.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

BUDGET_SECONDS = float(os.environ.get("DYNN_FUZZ_SECONDS", "5"))
SEED = int(os.environ.get("DYNN_FUZZ_SEED", "0"))
INPUT_SECONDS = float(os.environ.get("DYNN_FUZZ_INPUT_SECONDS", "60"))


class InputTimeout(Exception):
    """One input ran past its time limit."""


@dataclass
class Campaign:
    """One target's run: its random source, its budget, and what happened."""

    target: str
    budget: float
    rng: random.Random
    counts: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def seed(self) -> str:
        return f"{SEED}:{self.target}"

    def time_left(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def inputs(self, minimum: int = 1) -> Iterator[int]:
        """Input numbers until the budget is spent (at least `minimum` inputs)."""
        number = 0
        while number < minimum or time.monotonic() - self.started < self.budget:
            yield number
            number += 1

    def record(self, outcome: str, detail: str | None = None) -> None:
        self.counts["inputs"] += 1
        self.counts[outcome] += 1
        if detail is not None:
            self.failures.append(f"{outcome}: {detail}")

    def assert_clean(self) -> None:
        assert not self.failures, (
            f"{self.target}: {len(self.failures)} failing input(s) (seed {SEED}); first:\n"
            + self.failures[0]
        )


_CAMPAIGNS: list[Campaign] = []


@pytest.fixture
def campaign(request) -> Campaign:
    target = request.node.name.removeprefix("test_")
    run = Campaign(target, BUDGET_SECONDS, random.Random(f"{SEED}:{target}"))
    _CAMPAIGNS.append(run)
    return run


@contextmanager
def time_limit(seconds: float = INPUT_SECONDS):
    """Raise `InputTimeout` in the main thread when the block runs past `seconds`."""

    def expire(signum, frame):
        raise InputTimeout(f"ran past {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_terminal_summary(terminalreporter):
    if not _CAMPAIGNS:
        return
    terminalreporter.section(f"fuzz counts (seed {SEED}, {BUDGET_SECONDS:g} s per target)")
    for run in _CAMPAIGNS:
        counts = dict(sorted(run.counts.items()))
        terminalreporter.write_line(f"{run.target}: {counts}, failures: {len(run.failures)}")
