"""The FileCheck convention: every pass NAME has `NAME.mlir` in a directory of FileCheck
tests, with a RUN line that runs `opt-pipeline` with NAME in its pipeline and CHECK lines
(of any prefix) saying what the output must contain."""

from __future__ import annotations

import re
from pathlib import Path

RUN_LINE = re.compile(r"^\s*//\s*RUN:\s?(.*)$", re.MULTILINE)
CHECK_LINE = re.compile(r"^\s*//\s*[A-Z][A-Z0-9-]*(-NEXT|-NOT|-LABEL|-SAME|-DAG)?:", re.MULTILINE)


def run_commands(path: Path) -> list[str]:
    """The file's RUN commands, continuation lines (a trailing `\\`) joined."""
    commands, pending = [], ""
    for text in RUN_LINE.findall(path.read_text(encoding="utf-8")):
        text = text.rstrip()
        if text.endswith("\\"):
            pending += text[:-1] + " "
            continue
        commands.append(pending + text)
        pending = ""
    return commands


def runs_pass(command: str, pass_name: str) -> bool:
    pipeline = r"(?:-p|--passes|--pass-pipeline)[= ]+['\"]?[^'\"\s]*"
    return "opt-pipeline" in command and bool(
        re.search(pipeline + rf"(?<![\w-]){re.escape(pass_name)}(?![\w-])", command)
    )


def filecheck_problem(pass_name: str, directory: Path) -> str | None:
    """What is missing for `pass_name`'s FileCheck test in `directory`, or None."""
    path = directory / f"{pass_name}.mlir"
    if not path.is_file():
        return f"pass '{pass_name}' has no FileCheck test {path}"
    if not any(runs_pass(command, pass_name) for command in run_commands(path)):
        return f"{path}: no RUN line runs opt-pipeline with '{pass_name}' in its pipeline"
    text = path.read_text(encoding="utf-8")
    if not any(not m.group(0).lstrip("/ ").startswith("RUN") for m in CHECK_LINE.finditer(text)):
        return f"{path}: no CHECK lines"
    return None
