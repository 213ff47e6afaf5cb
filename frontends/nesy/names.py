"""Filter names: semantic predicates (`bathtub1(X)`) in place of `f12(X)`.

A filter-names file has one line per named filter, ``FILTER NAME``, where FILTER is
``fK`` or ``K`` (``%`` starts a comment). Unnamed filters keep ``fK``. Names must be
predicate names of the rule language (a lowercase letter, then letters, digits, ``_``),
distinct, and not ``target`` or an exception name ``abN``.
"""

from __future__ import annotations

import re
from pathlib import Path

from frontends import rules
from frontends.nesy.errors import NesyError

_PREDICATE = re.compile(r"[a-z][A-Za-z0-9_]*")
_FILTER = re.compile(r"f?([0-9]+)")
_RESERVED = re.compile(r"target|not|ab[0-9]+")


def read_filter_names(path: Path, n_filters: int) -> tuple[str, ...]:
    """The predicate name of every filter, in filter order."""
    try:
        text = rules.read_rule_file(path)
    except rules.RuleError as error:
        raise NesyError(str(error)) from None
    names = [f"f{k}" for k in range(n_filters)]
    named_at: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("%", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"{path}:{number}:1: error:"
        if len(parts) != 2 or not _FILTER.fullmatch(parts[0]):
            raise NesyError(f"{where} expected 'fK NAME' (a filter and its predicate name)")
        index, name = int(_FILTER.fullmatch(parts[0]).group(1)), parts[1]
        if index >= n_filters:
            raise NesyError(f"{where} the CNN has no filter f{index} (it has {n_filters})")
        if not _PREDICATE.fullmatch(name) or _RESERVED.fullmatch(name):
            raise NesyError(f"{where} '{name}' cannot name a filter (a lowercase predicate name, not target or abN)")
        if name in named_at:
            raise NesyError(f"{where} '{name}' already names a filter on line {named_at[name]}")
        named_at[name] = number
        names[index] = name
    duplicates = [name for name in names if names.count(name) > 1]
    if duplicates:
        raise NesyError(f"{path}: error: '{duplicates[0]}' names two filters")
    return tuple(names)
