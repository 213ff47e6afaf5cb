"""Mutations of valid inputs: IR text, Python source, and file bytes.

Each mutator takes a `random.Random` and a valid input and returns a variant that is usually
invalid in one small way (a digit, a bracket, a type, a line): what a fuzzer needs to reach
the error paths next to the valid ones. Text mutators keep the text a `str`, so they test
the tools, not the UTF-8 decoder (which `test_fuzz_files` damages on purpose)."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

INTERESTING_NUMBERS = ["0", "1", "-1", "2", "3", "7", "255", "65536", "2147483648",
                       "9223372036854775807", "-9223372036854775808", "18446744073709551616",
                       "1e400", "-0.0", "nan", "0x7FC00000", "0xFF800000", "4294967295"]
IR_PUNCTUATION = list("{}()<>[],:%\"=@!#^?*-.") + ["->", "x", "\n", " "]
TYPES = ["f32", "f64", "f16", "bf16", "si64", "si32", "i1", "ui8", "i64", "unk",
         "!torch.int", "!torch.float", "!torch.none", "i1", "f64"]
_NUMBER = re.compile(r"-?\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b")
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9.]*")
_SSA = re.compile(r"%[\w$.-]+")
_DTYPE = re.compile(r"\b(f32|f64|f16|bf16|si64|si32|i1|i64|ui8)\b")


def _replace_random_match(rng: random.Random, text: str, pattern: re.Pattern, new) -> str:
    matches = list(pattern.finditer(text))
    if not matches:
        return text
    match = rng.choice(matches)
    replacement = new(match.group()) if callable(new) else new
    return text[: match.start()] + replacement + text[match.end() :]


def _lines(rng: random.Random, text: str) -> tuple[list[str], int]:
    lines = text.splitlines(keepends=True)
    return lines, rng.randrange(len(lines)) if lines else 0


def delete_line(rng, text):
    lines, i = _lines(rng, text)
    return "".join(lines[:i] + lines[i + 1 :])


def duplicate_line(rng, text):
    lines, i = _lines(rng, text)
    return "".join(lines[: i + 1] + lines[i:])


def swap_lines(rng, text):
    lines, i = _lines(rng, text)
    j = rng.randrange(len(lines)) if lines else 0
    if lines:
        lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


def change_number(rng, text):
    return _replace_random_match(rng, text, _NUMBER, lambda _: rng.choice(INTERESTING_NUMBERS))


def change_dtype(rng, text):
    return _replace_random_match(rng, text, _DTYPE, lambda _: rng.choice(TYPES))


def swap_ssa_name(rng, text):
    names = sorted(set(_SSA.findall(text)))
    return _replace_random_match(rng, text, _SSA, lambda _: rng.choice(names)) if names else text


def change_word(rng, text):
    words = sorted(set(_WORD.findall(text)))
    return _replace_random_match(rng, text, _WORD, lambda _: rng.choice(words)) if words else text


def insert_punctuation(rng, text):
    at = rng.randrange(len(text) + 1)
    return text[:at] + rng.choice(IR_PUNCTUATION) + text[at:]


def delete_span(rng, text):
    if not text:
        return text
    at = rng.randrange(len(text))
    return text[:at] + text[at + rng.randint(1, 8) :]


def truncate(rng, text):
    return text[: rng.randrange(len(text) + 1)]


def repeat_span(rng, text):
    if not text:
        return text
    at = rng.randrange(len(text))
    span = text[at : at + rng.randint(1, 40)]
    return text[:at] + span * rng.randint(2, 50) + text[at:]


TEXT_MUTATORS: list[Callable[[random.Random, str], str]] = [
    delete_line, duplicate_line, swap_lines, change_number, change_dtype, swap_ssa_name,
    change_word, insert_punctuation, delete_span, truncate, repeat_span,
]


def mutate_text(rng: random.Random, text: str, rounds: int | None = None) -> str:
    """`text` after one to three random mutations."""
    for _ in range(rounds or rng.randint(1, 3)):
        text = rng.choice(TEXT_MUTATORS)(rng, text)
    return text


_PYTHON_SNIPPETS = ["raise ValueError('fuzz')", "return None", "import sys; sys.exit(2)",
                    "x = x[None]", "x = x.sum()", "pass", "break", "while True: pass",
                    "return self.forward(x)", "x = undefined_name", "assert False",
                    "del x", "yield x", "global g", "x = x.view(-1, 3)", "x = x.int()"]


def mutate_python(rng: random.Random, source: str) -> str:
    """A model file after a mutation of its lines, numbers, names or operators, or with a
    statement inserted at a random line (with that line's indentation)."""
    choice = rng.random()
    if choice < 0.35:
        lines, i = _lines(rng, source)
        indent = re.match(r"[ \t]*", lines[i]).group() if lines else ""
        lines.insert(i, f"{indent}{rng.choice(_PYTHON_SNIPPETS)}\n")
        return "".join(lines)
    if choice < 0.5:
        return _replace_random_match(
            rng, source, re.compile(r"[<>]=?|==|!=|\band\b|\bor\b|[+\-*/]"),
            lambda _: rng.choice(["<", ">", "==", "!=", "and", "or", "+", "-", "*", "/", "@"]),
        )
    return rng.choice([delete_line, duplicate_line, change_number, change_word, delete_span])(
        rng, source
    )


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """`data` with bytes flipped, cut, inserted or repeated, or a number in it changed."""
    data = bytearray(data)
    kind = rng.randrange(6)
    if kind == 0 and data:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del data[rng.randrange(len(data) + 1) :]
    elif kind == 2:
        at = rng.randrange(len(data) + 1)
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 3 and data:
        at = rng.randrange(len(data))
        del data[at : at + rng.randint(1, 64)]
    elif kind == 4:
        text = bytes(data).decode("latin-1")
        data = bytearray(change_number(rng, text).encode("latin-1", "replace"))
    elif data:
        at = rng.randrange(len(data))
        data[at:at] = data[at : at + rng.randint(1, 32)] * rng.randint(2, 20)
    return bytes(data)


SMALL_MUTATORS = [change_number, change_dtype, swap_ssa_name, delete_line, duplicate_line,
                  swap_lines]


def mutate_lightly(rng: random.Random, text: str) -> str:
    """One mutation that keeps the text well-formed more often than not (a number, a type,
    a name, a line): what gets past the verifier and into the backends."""
    return rng.choice(SMALL_MUTATORS)(rng, text)
