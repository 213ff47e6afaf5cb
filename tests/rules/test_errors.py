"""Bad rule files give one located line, exit 1, in linear time; big files work."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from frontends import rules
from frontends.rules.__main__ import main


def _error(text: str, features=None) -> str:
    with pytest.raises(rules.RuleError) as raised:
        rules.parse(text, "r.txt", features)
    return str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("target(X,'a') :- f1(X) f2(X).", "r.txt:1:24: error: expected ',' or '.', found 'f2'"),
        ("target(X,'a') :- f1(X),", "r.txt:1:24: error: expected"),
        ("target(X,'a') :- f1(X) & f2(X).", "r.txt:1:24: error: expected ',' or '.', found unexpected character '&'"),
        ("a(X) :- not b(X). b(X) :- c(X). c(X) :- a(X).",
         "r.txt:1:9: error: cycle through negation: a(X) depends on not b(X) (rule at 1:1), "
         "b(X) depends on c(X) (rule at 1:19), c(X) depends on a(X) (rule at 1:33)"),
        ("target(X,'a') :- not ab7(X).", "r.txt:1:22: error: ab7 has no rule (exception predicates must be defined)"),
        ("target(X,'a') :- f1(X). label(X,'b') :- f2(X).", "r.txt:1:25: error: class atoms use 'target'"),
        ("target(X,'a') :- not target(X,'zz').", "r.txt:1:22: error: class 'zz' has no rule"),
        ("target(X,'a') :- t(X,N), N > 3, t(X).", "r.txt:1:33: error: 't' is used as a numeric feature at 1:18"),
        ("target(X,'a') :- color(X,'red').", "r.txt:1:18: error: color(X,'red') is a categorical literal"),
        ("target(X,'a') :- t(X,N), M > 3.", "r.txt:1:26: error: M is not bound"),
        ("target(X,'a') :- not t(X,N), N > 3.", "r.txt:1:18: error: a negated literal cannot bind N"),
        ("target(Y,'a') :- f(X).", "r.txt:1:20: error: expected the sample variable 'Y'"),
    ],
)
def test_located_errors(text, message):
    assert _error(text).startswith(message)


def test_unknown_predicates_with_declared_features():
    assert _error("target(X,'a') :- f1(X), g(X).", ["f1", "f2"]) == (
        "r.txt:1:25: error: unknown predicate 'g': it is not a feature and no rule defines it"
    )
    assert _error("f1(X) :- f2(X).", ["f1", "f2"]).startswith("r.txt:1:1: error: 'f1' is a feature")


def test_cli_errors_are_one_line_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"target(X,'a') :- f1(X).\ntarget(X,'\xff') :- f2(X).\n")
    assert main([str(bad)]) == 1
    assert capsys.readouterr().err == f"{bad}:2:11: error: the file is not UTF-8 text (byte 0xff)\n"
    assert main([str(tmp_path / "absent.txt")]) == 1
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'absent.txt'}:0:0: error: no such rule file")
    bad.write_text("a(X) :- not a(X).\n")
    assert main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cycle through negation" in err


def _exception_chain(depth: int) -> str:
    lines = ["target(X,'a') :- f0(X), not ab1(X).", "target(X,'b') :- f1(X)."]
    lines += [f"ab{i}(X) :- f{i % 7}(X), not ab{i + 1}(X)." for i in range(1, depth)]
    lines.append(f"ab{depth}(X) :- f2(X).")
    return "\n".join(lines) + "\n"


def test_a_5000_deep_exception_chain_is_checked_lowered_and_if_converted():
    rule_set = rules.parse(_exception_chain(5000), "chain.txt")
    program = rules.compile(rule_set, backend="interpreter", cache_dir=None)
    text = program.ir(batch=2)
    assert "dy.if" not in text and "dy.for" not in text


@pytest.mark.slow
def test_a_5000_deep_exception_chain_runs_and_explains():
    rule_set = rules.parse(_exception_chain(5000), "chain.txt")
    table = torch.rand(16, len(rule_set.features)) > 0.5
    expected = rules.class_names(rule_set, rules.predict(rule_set, table.numpy()))
    assert rules.predict_rows(rule_set, table.numpy().tolist()) == expected
    program = rules.compile(rule_set, backend="interpreter", cache_dir=None)
    assert program(table) == expected
    assert len(program.explain(table[:2])) == 2
    str(program.explain(table[:1])[0])


@pytest.mark.slow
def test_errors_in_a_100k_rule_file_come_in_linear_time(tmp_path):
    """The same error is found as fast per rule in 100k rules as in 10k (ratio of times)."""
    def file_of(count: int) -> str:
        rows = [f"target(X,'c{i % 10}') :- f{i % 50}(X), not f{(i * 7) % 50}(X), not ab{i % 100 + 1}(X)." for i in range(count)]
        rows += [f"ab{i}(X) :- f{i % 50}(X), not ab{i + 1}(X)." for i in range(1, 100)]
        rows.append("ab100(X) :- not ab1(X).")  # a cycle through negation, found last
        return "\n".join(rows) + "\n"

    times = {}
    for count in (10_000, 100_000):
        path = tmp_path / f"r{count}.txt"
        path.write_text(file_of(count))
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "frontends.rules", str(path), "-o", str(tmp_path / "o.mlir")],
            capture_output=True, text=True, check=False, timeout=600,
        )
        times[count] = time.perf_counter() - started
        assert completed.returncode == 1
        assert "cycle through negation" in completed.stderr and completed.stderr.count("\n") == 1
    assert times[100_000] < 15 * times[10_000], times
