"""The rule frontend's interfaces: text round trip, `compile`, `explain`, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings

from frontends import rules
from frontends.rules.__main__ import main
from ir.program import parse_and_verify
from tests.rules.strategies import rule_sets

NESYFOLD = """% NeSyFOLD style, interleaved classes
target(X,'bathroom') :- f12(X), not f7(X), not ab1(X).
target(X,'bedroom') :- bathtub1(X), not target(X,'bathroom').
target(X,'bathroom') :- f4(X), ab1(X).
ab1(X) :- f88(X), f4(X).
"""
FOLDRPP = "label(X,'ckd') :- sc(X,N1), N1>1.2, 9 >= N1, not ab2(X).\nab2(X) :- hemo(X,N1), N1\\=3.\n"


@settings(max_examples=40, deadline=None)
@given(rule_sets())
def test_printed_rule_sets_parse_back_to_the_same_program(generated):
    rule_set = rules.parse(generated.text, "g.txt", generated.features)
    again = rules.parse(str(rule_set), "printed.txt", generated.features)
    assert again.rules == rule_set.rules and again.classes == rule_set.classes


def test_compile_classifies_any_batch_size():
    program = rules.compile(NESYFOLD, features=["f12", "f7", "bathtub1", "f4", "f88"], backend="interpreter")
    table = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    assert program(table) == ["bathroom", "bedroom", "bathroom", None]
    assert program(table[:1]) == ["bathroom"]
    assert program(table[:0]) == []
    with pytest.raises(rules.RuleError, match=r"expected a table of shape \[N, 5\]"):
        program(torch.zeros(2, 3, dtype=torch.bool))


def test_numeric_rules_compare_in_float64_and_nan():
    program = rules.compile(FOLDRPP, backend="interpreter")
    assert program.rule_set.feature_names == ("sc", "hemo")
    table = np.array([[1.25, 3.0], [1.25, 4.0], [1.2, 3.0], [np.nan, 3.0], [5.0, np.nan]], dtype=np.float32)
    # float32 1.2 widened to float64 is 1.2000000476837158 > 1.2; NaN \= 3 holds.
    assert program(torch.from_numpy(table)) == ["ckd", None, "ckd", None, None]
    with pytest.raises(rules.RuleError, match="pass a float table"):
        program(torch.zeros(1, 2, dtype=torch.bool))


def test_explain_names_the_rule_and_the_literals():
    program = rules.compile(NESYFOLD, backend="interpreter")
    names = program.rule_set.feature_names
    row = dict.fromkeys(names, 0) | {"f4": 1, "f88": 1}
    (explanation,) = program.explain(torch.tensor([[row[n] for n in names]], dtype=torch.bool))
    assert explanation.predicted == "bathroom" and explanation.rule == 2
    text = str(explanation)
    assert text.startswith("row 0: 'bathroom' by <rules>:4:1: target(X,'bathroom') :- f4(X), ab1(X).")
    assert "ab1(X) holds by <rules>:5:1" in text
    (none,) = program.explain(torch.zeros(1, len(names), dtype=torch.bool))
    assert none.predicted is None and "no class" in str(none)


def test_positive_recursion_is_a_least_fixpoint_and_explained():
    text = "p(X) :- q(X).\nq(X) :- p(X).\nq(X) :- f1(X).\ntarget(X,'a') :- p(X).\n"
    program = rules.compile(text, backend="interpreter")
    assert program(torch.tensor([[True], [False]])) == ["a", None]
    (explanation,) = program.explain(torch.tensor([[True]]))
    assert "q(X) holds by <rules>:3:1" in str(explanation)


def test_cli_prints_ir_runs_and_explains(tmp_path, capsys):
    path = tmp_path / "rules.txt"
    path.write_text(NESYFOLD)
    assert main([str(path), "--batch", "3", "--if-convert"]) == 0
    module = parse_and_verify(capsys.readouterr().out, "printed.mlir")
    assert module is not None
    csv = tmp_path / "table.csv"
    csv.write_text("f4,f88,f12,f7,bathtub1\n1,1,0,0,0\n0,0,0,0,1\nfalse,false,false,false,false\n")
    assert main([str(path), "--input", str(csv), "--backend", "interpreter"]) == 0
    assert capsys.readouterr().out == "bathroom\nbedroom\nnone\n"
    assert main([str(path), "--input", str(csv), "--explain", "--backend", "interpreter"]) == 0
    assert capsys.readouterr().out.startswith("row 0: 'bathroom' by ")
    output = tmp_path / "out.mlir"
    assert main([str(path), "--features", "f12,f7,bathtub1,f4,f88", "-o", str(output)]) == 0
    assert "dy.func @classify_rules" in output.read_text()


def test_build_checks_rules_made_in_python():
    head = rules.ClassKey("a")
    with pytest.raises(rules.RuleError, match="rule 1: unknown feature 'g'"):
        rules.build([rules.Rule(head, (rules.FeatureLiteral("g"),))], ["f"])
    with pytest.raises(rules.RuleError, match="cycle through negation"):
        rules.build([rules.Rule(head, (rules.AtomLiteral(head, negated=True),))], ["f"])
