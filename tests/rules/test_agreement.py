"""The compiled rule program agrees with an independent evaluator on generated rule-sets.

Rule-sets come from `strategies.rule_sets` (exceptions, positive recursion, numeric
comparisons, interleaved classes, both head predicates) and are evaluated by its own
row-by-row fixpoint; every program variant must give the same class on every row: the
numpy evaluator and plain Python evaluator of `frontends.rules`, the branchy program and
the if-converted one (chain, gemm and reduce conjunctions), on both backends.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontends import rules
from frontends.rules.program import RuleProgram
from tests.rules.strategies import rule_sets

torch.set_num_threads(1)

PIPELINES = {
    "branchy": "",
    "chain": "if-convert",
    "gemm": "if-convert{conjunctions=gemm}",
    "reduce": "if-convert{conjunctions=reduce}",
}


def _check(generated, data, pipelines, backend, rows=None):
    rule_set = rules.parse(generated.text, "generated.txt", generated.features)
    rows = rows or data.draw(st.integers(1, 9))
    dtype = np.float32 if generated.numeric_columns or data.draw(st.booleans()) else bool
    table = generated.table(data, rows, dtype)
    expected = generated.predict(table)
    assert rules.class_names(rule_set, rules.predict(rule_set, table)) == expected
    assert rules.predict_rows(rule_set, table.tolist()) == expected
    for name in pipelines:
        program = RuleProgram(rule_set, backend=backend, pipeline=PIPELINES[name], cache_dir=None)
        assert program(torch.from_numpy(table)) == expected, (name, generated.text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_sets(), st.data())
def test_interpreter_agrees_with_the_semantics(generated, data):
    _check(generated, data, PIPELINES, "interpreter")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_sets(max_rules=8), st.data())
def test_llvm_agrees_with_the_semantics(generated, data):
    _check(generated, data, ["branchy", "chain", "gemm"], "llvm")


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_sets(), st.data())
def test_llvm_agrees_with_the_semantics_long(generated, data):
    _check(generated, data, PIPELINES, "llvm")


def test_if_converted_program_is_one_subgraph():
    rule_set = rules.parse(
        "target(X,'a') :- f0(X), not ab1(X).\nab1(X) :- f1(X), t(X,N1), N1>0.5.\n"
        "target(X,'b') :- not f0(X).\n", "t.txt"
    )
    program = RuleProgram(rule_set, backend="llvm", cache_dir=None)
    table = torch.tensor([[1.0, 1.0, 0.7], [1.0, 0.0, 0.7], [0.0, 1.0, 0.0]])
    assert program(table) == [None, "a", "b"]
    compiled = program.compiled(3, "float32")
    assert compiled.stats.compiled == 1 and compiled.stats.fallback == 0
    assert "dy.for" not in compiled.ir and "dy.if" not in compiled.ir
