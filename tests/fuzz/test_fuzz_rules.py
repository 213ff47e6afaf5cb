"""Fuzzing the rule-file frontend: mutated rule texts never escape as a traceback.

Inputs are generated rule-sets (tests/rules/strategies.py) mutated byte-wise (flips,
deletions, insertions of rule-language tokens or random bytes, truncation, splicing two
files). Every outcome must be a checked rule-set, whose compiled (interpreter) program
agrees with the numpy evaluator, or a `RuleError` of one line `FILE:LINE:COL: error: ...`.
Bounded by default (`FUZZ_EXAMPLES`, 150 inputs); a long run:
`FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -m fuzz tests/fuzz/test_fuzz_rules.py`.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontends import rules
from frontends.rules.syntax import decode_rule_bytes
from tests.rules.strategies import rule_sets

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
ERROR_LINE = re.compile(r"^[^\n]+:\d+:\d+: error: [^\n]+$")
TOKENS = [b"not ", b":-", b",", b".", b"(", b")", b"'", b"X", b"N1", b">", b"=<", b"\\=",
          b"ab1(X)", b"target(X,'a')", b"label(X,'b')", b"%", b"/*", b"\n", b"\xff", b"\x00",
          b"f0(X)", b"t(X,N1)", b"1e999", b"-", b"''", b"\\+"]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(rule_sets(max_rules=8)).text.encode())
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete" and data:
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=4))
        elif kind == "truncate":
            del data[at:]
        else:
            data[at:at] = draw(rule_sets(max_rules=4)).text.encode()
    return bytes(data)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated(), st.data())
def test_mutated_rule_files_give_a_rule_set_or_one_located_line(data, draw):
    try:
        rule_set = rules.parse(decode_rule_bytes(data, "fuzz.txt"), "fuzz.txt")
    except rules.RuleError as error:
        assert ERROR_LINE.match(str(error)), str(error)
        return
    if not rule_set.rules:
        return
    rows = draw.draw(st.integers(1, 4))
    table = np.random.default_rng(len(data)).random((rows, len(rule_set.features))) * 4 - 2
    if not rule_set.numeric:
        table = table > 0
    program = rules.compile(rule_set, backend="interpreter", cache_dir=None)
    assert program(table) == rules.class_names(rule_set, rules.predict(rule_set, table))
