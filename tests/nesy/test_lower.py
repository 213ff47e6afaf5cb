"""Lowering a NeSy model (CNN up to its last conv layer + thresholds + rule-set) into `dy`.

The oracle is the NeSy pipeline itself: for the test images of sklearn digits, the
compiled program (both backends, branchy and if-converted, at batch 1 and at the whole
test split as one batch) must predict exactly what the rule-set predicts on the
pipeline's binarized table, and a real run's program must reproduce its metrics.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from xdsl.dialects.builtin import FileLineColLoc

from frontends import rules
from frontends.nesy.__main__ import main
from frontends.nesy.binarize import binarize, thresholds
from frontends.nesy.data import load_dataset
from frontends.nesy.errors import NesyError
from frontends.nesy.lower import lower
from frontends.nesy.model import CnnConfig, VggCnn
from frontends.nesy.program import compile_run
from frontends.nesy.train import infer
from ir import dy
from ir.program import ProgramContext, parse_and_verify, print_module
from passes.if_convert import IfConvert
from runtime.program import compile_program

torch.set_num_threads(1)
FILTERS = [f"f{k}" for k in range(64)]


class NesyModel:
    """A randomly initialised VggCnn on digits with its binarized test table."""

    def __init__(self):
        self.dataset = load_dataset("digits", seed=0)
        torch.manual_seed(0)
        self.cnn = VggCnn(CnnConfig(in_channels=1, n_classes=10)).eval()
        _, train_norms = infer(self.cnn, self.dataset.train.images)
        _, test_norms = infer(self.cnn, self.dataset.test.images)
        self.thresholds = thresholds(train_norms)
        self.test_table = binarize(test_norms, self.thresholds)


@pytest.fixture(scope="module")
def model() -> NesyModel:
    return NesyModel()


def _hand_written(model: NesyModel) -> rules.RuleSet:
    """Filters, exceptions (one with two rules, one nested), two rules for one class,
    interleaved classes, `not target` and a default rule, over the five filters whose
    test activity is closest to one half, so that every rule decides some image."""
    activity = model.test_table.mean(axis=0)
    a, b, c, d, e = (int(k) for k in np.argsort(np.abs(activity - 0.5), kind="stable")[:5])
    text = (
        f"target(X,'0') :- f{a}(X), not ab1(X).\n"
        f"target(X,'1') :- f{b}(X), not f{c}(X).\n"
        f"target(X,'2') :- not ab2(X), not target(X,'0'), not target(X,'1').\n"
        f"target(X,'1') :- f{d}(X), ab1(X).\n"
        f"ab1(X) :- f{c}(X), f{d}(X).\n"
        f"ab1(X) :- not f{b}(X), not ab3(X).\n"
        f"ab2(X) :- f{e}(X).\n"
        f"ab3(X) :- f{d}(X).\n"
    )
    return rules.parse(text, "rules.txt", FILTERS)


def _run(conversion, images, backend, if_convert, tmp_path) -> np.ndarray:
    module = conversion.module.clone()
    if if_convert:
        IfConvert().apply(ProgramContext(), module)
    program = compile_program(module, conversion.params, backend=backend, cache_dir=tmp_path)
    indices, table = program(torch.from_numpy(images))
    return indices.numpy(), table.numpy(), program


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_whole_test_split_as_one_batch(model, backend, tmp_path):
    rule_set = _hand_written(model)
    images = model.dataset.test.images
    conversion = lower(model.cnn, model.thresholds, rule_set, (1, 8, 8), batch=len(images))
    expected = rules.predict(rule_set, model.test_table)
    assert set(expected.tolist()) == {-1, 0, 1, 2}
    for if_convert in (False, True):
        indices, table, program = _run(conversion, images, backend, if_convert, tmp_path)
        assert (table == model.test_table).all()
        assert (indices == expected).all()
        if backend == "llvm" and if_convert:
            assert program.stats.compiled == 1 and program.stats.fallback == 0


@pytest.mark.slow
def test_batch_of_one(model, tmp_path):
    rule_set = _hand_written(model)
    conversion = lower(model.cnn, model.thresholds, rule_set, (1, 8, 8), batch=1)
    expected = rules.predict(rule_set, model.test_table)
    for if_convert in (False, True):
        module = conversion.module.clone()
        if if_convert:
            IfConvert().apply(ProgramContext(), module)
        program = compile_program(module, conversion.params, backend="llvm", cache_dir=tmp_path)
        for index in range(0, len(expected), 30):
            image = torch.from_numpy(model.dataset.test.images[index : index + 1])
            assert program(image)[0].tolist() == [expected[index]]


def test_symbolic_ops_are_located_in_the_rule_file(model):
    text = "% a comment, then a rule over two lines\ntarget(X,'7') :- f3(X),\n    not ab1(X).\nab1(X) :- f5(X).\n"
    rule_set = rules.parse(text, "rules.txt", FILTERS)
    conversion = lower(model.cnn, model.thresholds, rule_set, (1, 8, 8), batch=2)
    places = {
        (op.name, op.location.line.data, op.location.column.data)
        for op in conversion.module.walk()
        if isinstance(op.location, FileLineColLoc) and op.location.filename.data == "rules.txt"
        and op.location.line.data > 0
    }
    assert ("dy.if", 2, 1) in places and ("dy.item", 2, 18) in places
    assert ("dy.item", 4, 11) in places and ("arith.xori", 3, 5) in places
    text_ir = print_module(conversion.module)
    assert print_module(parse_and_verify(text_ir, "lowered.mlir")) == text_ir


def test_lowering_rejects_a_mismatched_model(model):
    rule_set = rules.parse("target(X,'1') :- f7(X).\n", "rules.txt", FILTERS[:8])
    with pytest.raises(NesyError, match="the rules must read 64 binary filter features"):
        lower(model.cnn, model.thresholds, rule_set, (1, 8, 8))
    rule_set = rules.parse("target(X,'1') :- f7(X).\n", "rules.txt", FILTERS)
    with pytest.raises(NesyError, match=r"image shape must be \(1, H, W\) for this CNN, got \(3, 8, 8\)"):
        lower(model.cnn, model.thresholds, rule_set, (3, 8, 8))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    arguments = ["run", "--dataset", "digits", "--epochs", "2", "--out", str(out), "--no-progress"]
    assert main(arguments) == 0
    return out


@pytest.mark.parametrize("backend", ["interpreter", pytest.param("llvm", marks=pytest.mark.slow)])
def test_compiled_run_reproduces_its_metrics(run_dir, backend, tmp_path):
    """The acceptance check: nesy_accuracy of metrics.json, exactly, at batch 1 and with
    the whole test split as one batch, branchy and if-converted."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = load_dataset("digits", seed=0).test
    for if_convert in (False, True):
        program = compile_run(run_dir, backend=backend, if_convert=if_convert, cache_dir=tmp_path)
        whole = program.labels(test.images)
        assert float((whole == test.labels).mean()) == metrics["nesy_accuracy"]
        count = len(test) if backend == "llvm" else 60
        one_by_one = np.concatenate([program.labels(test.images[i : i + 1]) for i in range(count)])
        assert (one_by_one == whole[:count]).all()
    explanation = program.explain(test.images[:3])
    assert len(explanation) == 3 and str(explanation[0]).startswith("row 0: ")


def test_lower_command_writes_batched_programs(run_dir, tmp_path, capsys):
    output = tmp_path / "nesy.mlir"
    assert main(["lower", "--run", str(run_dir), "-o", str(output), "--batch", "4", "--if-convert"]) == 0
    assert capsys.readouterr().err == ""
    module = parse_and_verify(output.read_text(), str(output))
    assert module.attributes[dy.PARAMS_FILE_ATTR].data == "nesy.safetensors"
    assert not any(isinstance(op, dy.ForOp | dy.IfOp) for op in module.walk())


def test_lower_command_reports_errors_in_one_line(run_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((run_dir / "model.safetensors").read_bytes())
    (broken / "rules.txt").write_text("target(X,'1') :- f1(X).\ntarget(X,'2') :- f2(X), not ab7(X).\n")
    output = str(tmp_path / "out.mlir")
    assert main(["lower", "--run", str(broken), "-o", output]) == 1
    assert capsys.readouterr().err == (
        f"{broken / 'rules.txt'}:2:29: error: ab7 has no rule (exception predicates must be defined)\n"
    )
    (broken / "rules.txt").write_text("target(X,'1') :- f99(X).\n")
    assert main(["lower", "--run", str(broken), "-o", output]) == 1
    assert capsys.readouterr().err == (
        f"{broken / 'rules.txt'}:1:18: error: unknown predicate 'f99': it is not a feature and no rule defines it\n"
    )
    assert main(["lower", "--run", str(tmp_path / "absent"), "-o", output]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{tmp_path / 'absent' / 'model.safetensors'}: error: cannot read weights")
    assert err.count("\n") == 1
