"""Runs every FileCheck test under tests/filecheck as one pytest test per file.

Each `// RUN:` line (continued with a trailing `\\`) runs in bash with `set -o pipefail`,
`%s` replaced by the file's path, and `tests/filecheck/tools` (the `not` helper) plus the
virtualenv's scripts on PATH: the same contract as `lit tests/filecheck`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

FILECHECK_DIR = Path(__file__).parent / "filecheck"
TOOLS_DIR = FILECHECK_DIR / "tools"
RUN_LINE = re.compile(r"^\s*//\s*RUN:\s?(.*)$")


def run_commands(path: Path) -> list[str]:
    """The file's RUN commands, continuation lines joined, `%s` substituted."""
    commands: list[str] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        match = RUN_LINE.match(line)
        if not match:
            continue
        text = match.group(1).rstrip()
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        commands.append((pending + text).replace("%s", shlex.quote(str(path))))
        pending = ""
    return commands


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(
        [str(TOOLS_DIR), str(Path(sys.executable).parent), env.get("PATH", "")]
    )
    env.pop("OPT_PIPELINE_TRACEBACK", None)
    return env


TEST_FILES = sorted(p for p in FILECHECK_DIR.rglob("*.mlir") if TOOLS_DIR not in p.parents)


def test_every_file_has_run_lines():
    assert TEST_FILES, "no FileCheck tests found"
    missing = [str(p) for p in TEST_FILES if not run_commands(p)]
    assert not missing, f"FileCheck tests without RUN lines: {missing}"


@pytest.mark.parametrize(
    "path", TEST_FILES, ids=[str(p.relative_to(FILECHECK_DIR)) for p in TEST_FILES]
)
def test_filecheck(path: Path):
    for command in run_commands(path):
        result = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {command}"],
            check=False,
            capture_output=True,
            text=True,
            env=_environment(),
            cwd=FILECHECK_DIR,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"RUN: {command}\nexit {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
