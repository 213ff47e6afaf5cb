"""MLIR's testing conventions for `opt-pipeline`: `--split-input-file` and
`--verify-diagnostics`.

A file split at lines `// -----` is a sequence of independent inputs; each keeps the line
numbers it has in the file, so diagnostics point into the file. An input may state the
diagnostics it must produce, as mlir-opt's `-verify-diagnostics` reads them:

    // expected-error@+1 {{must terminate the before region of 'dy.while'}}
    dy.condition(%t) %x : i64

`@+N` / `@-N` place the diagnostic N lines below / above the comment, `@above` / `@below`
one line, no suffix the comment's own line. The text between `{{` and `}}` must occur in
the message. Kinds other than `error` are accepted but never produced (this tool emits
errors only), so expecting one fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ir.program import IRError

SPLIT_MARKER = re.compile(r"^// -----[ \t]*$", re.MULTILINE)
SEPARATOR = "// -----\n"
"""What separates the outputs of the inputs of a split file."""
EXPECTATION = re.compile(
    r"//\s*expected-(?P<kind>error|warning|note|remark)"
    r"(?:@(?P<offset>[+-]\d+|above|below))?\s*\{\{(?P<text>.*?)\}\}"
)


@dataclass(frozen=True)
class Chunk:
    """One input of a split file: its text, padded with blank lines so that its first line
    has the number it has in the file."""

    text: str
    first_line: int


def split_input(text: str) -> list[Chunk]:
    chunks = []
    start = 0
    for marker in [*SPLIT_MARKER.finditer(text), None]:
        end = len(text) if marker is None else marker.start()
        line = text.count("\n", 0, start) + 1
        chunks.append(Chunk("\n" * (line - 1) + text[start:end], line))
        if marker is not None:
            start = min(marker.end() + 1, len(text))
    return chunks


@dataclass(frozen=True)
class Expectation:
    kind: str
    line: int
    text: str
    written_at: int
    """The line of the `expected-...` comment, where a missing diagnostic is reported."""


def expectations(text: str) -> list[Expectation]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in EXPECTATION.finditer(line):
            offset = match.group("offset")
            if offset is None:
                target = number
            elif offset == "above":
                target = number - 1
            elif offset == "below":
                target = number + 1
            else:
                target = number + int(offset)
            found.append(Expectation(match.group("kind"), target, match.group("text"), number))
    return found


def check_diagnostics(
    filename: str, expected: list[Expectation], produced: list[IRError]
) -> list[IRError]:
    """The mismatches between what `expected` asks for and what was `produced`, each as an
    error to report (empty: the input behaved as its comments say)."""
    problems: list[IRError] = []
    unmatched = list(expected)
    for error in produced:
        match = next(
            (
                e
                for e in unmatched
                if e.kind == "error"
                and error.filename == filename
                and e.line == error.line
                and e.text in error.message
            ),
            None,
        )
        if match is None:
            problems.append(
                IRError(
                    error.filename, error.line, error.column, f"unexpected error: {error.message}"
                )
            )
        else:
            unmatched.remove(match)
    for missing in unmatched:
        problems.append(
            IRError(
                filename,
                missing.written_at,
                1,
                f'expected {missing.kind} "{missing.text}" was not produced',
            )
        )
    return problems
