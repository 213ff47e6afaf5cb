"""Runs every FileCheck test under tests/filecheck through lit, one pytest test per file,
with the virtualenv's scripts (`opt-pipeline`, `filecheck`, `lit`) off PATH: lit.cfg.py
must find them itself. Every registered pass has a FileCheck test (`passkit.filecheck`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from passes.registry import PASSES
from passkit.filecheck import filecheck_problem, run_commands

FILECHECK_DIR = Path(__file__).parent / "filecheck"
TEST_FILES = sorted(FILECHECK_DIR.rglob("*.mlir"))
VENV_BIN = Path(sys.executable).parent


def _environment_without_venv() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != VENV_BIN
    )
    env.pop("VIRTUAL_ENV", None)
    return env


def test_every_file_has_run_lines():
    assert TEST_FILES, "no FileCheck tests found"
    missing = [str(p) for p in TEST_FILES if not run_commands(p)]
    assert not missing, f"FileCheck tests without RUN lines: {missing}"


@pytest.mark.parametrize(
    "path", TEST_FILES, ids=[str(p.relative_to(FILECHECK_DIR)) for p in TEST_FILES]
)
def test_filecheck(path: Path):
    result = subprocess.run(
        [str(VENV_BIN / "lit"), "-v", str(path)],
        check=False,
        capture_output=True,
        text=True,
        env=_environment_without_venv(),
        timeout=300,
    )
    assert result.returncode == 0, f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.mark.parametrize("pass_name", sorted(PASSES))
def test_every_registered_pass_has_a_filecheck_test(pass_name: str):
    assert filecheck_problem(pass_name, FILECHECK_DIR / "passes") is None
