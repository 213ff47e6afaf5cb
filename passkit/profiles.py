"""Hypothesis profiles of the property tests: `fast` (the default run), `thorough`
(`pytest -m property --hypothesis-profile=thorough`) and `smoke` (a few examples: does
the property run at all, while writing a pass). A property that does not state its
own example count runs `max_examples` programs; costly ones (LLVM compiles) scale it down
with `scaled`."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

settings.register_profile("fast", max_examples=25, **_COMMON)
settings.register_profile("thorough", max_examples=600, **_COMMON)
settings.register_profile("smoke", max_examples=5, **_COMMON)


def scaled(fraction: float, minimum: int = 1) -> settings:
    """Settings of the current profile with `fraction` of its examples (at least
    `minimum`): read when a test module is imported, after the profile was chosen."""
    return settings(max_examples=max(minimum, int(settings.default.max_examples * fraction)))
