"""Shared test support: IR snippets (the random program generator is `passkit`).

Test modules import it as `tests.support`; pytest puts the repository root on `sys.path`
(`pythonpath` in pyproject.toml).
"""
