"""Shared configuration: the hypothesis profile of the property tests (`fast` unless
`--hypothesis-profile=thorough` or `HYPOTHESIS_PROFILE` says otherwise, see
`passkit.profiles`) and the kit's summary of what the passes changed."""

from __future__ import annotations

import os

from hypothesis import settings

from passkit import REPORTS  # importing passkit registers its profiles

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORTS:
        terminalreporter.section("passkit: generated programs per pass")
        for report in REPORTS:
            terminalreporter.line(str(report))
