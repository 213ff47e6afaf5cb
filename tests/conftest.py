"""Shared configuration: the hypothesis profile of the property tests (`fast` unless
`--hypothesis-profile=thorough` or `HYPOTHESIS_PROFILE` says otherwise, see
`passkit.profiles`) and the kit's summary of what the passes changed.

The default run shares the tests among one worker per core (pytest-xdist, `-n auto` in
`pyproject.toml`); each worker sends its kit reports to the controller, which prints them
all (`-n 0` runs everything in one process)."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from passkit import REPORTS  # importing passkit registers its profiles

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

_WORKER_REPORTS: list[str] = []
_REPORTS_KEY = "passkit_reports"


def pytest_sessionfinish(session) -> None:
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output[_REPORTS_KEY] = [str(report) for report in REPORTS]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    _WORKER_REPORTS.extend(getattr(node, "workeroutput", {}).get(_REPORTS_KEY, ()))


def pytest_terminal_summary(terminalreporter) -> None:
    lines = [str(report) for report in REPORTS] + _WORKER_REPORTS
    if lines:
        terminalreporter.section("passkit: generated programs per pass")
        for line in lines:
            terminalreporter.line(line)
