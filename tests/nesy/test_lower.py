"""Lowering a NeSy model (CNN up to its last conv layer + thresholds + rule-set) into `dy`.

The oracle is the NeSy pipeline itself: for every test image of sklearn digits, the
compiled program (interpreter and LLVM backends) must predict exactly
``RuleSet.predict(binarize(norms, thresholds))``, and the interpreter's region counts must
show that each rule's `dy.if` ran on exactly the images that reached it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from xdsl.dialects.builtin import FileLineColLoc

from frontends.nesy.__main__ import main
from frontends.nesy.binarize import binarize, thresholds
from frontends.nesy.data import load_dataset
from frontends.nesy.errors import NesyError
from frontends.nesy.foldsem import learn_rule_set
from frontends.nesy.lower import lower
from frontends.nesy.model import CnnConfig, VggCnn
from frontends.nesy.rules import (
    NO_CLASS,
    ExceptionHead,
    Rule,
    RuleSet,
    TargetHead,
    TargetLiteral,
    parse_rules,
)
from frontends.nesy.train import infer
from ir import dy
from ir.program import error_at, parse_and_verify, print_module
from passes.cli import run as opt_pipeline
from runtime.interpreter import control_flow_regions, run_program
from runtime.program import compile_program

torch.set_num_threads(1)


class NesyModel:
    """A randomly initialised VggCnn on digits with its binarized train and test tables."""

    def __init__(self):
        self.dataset = load_dataset("digits", seed=0)
        torch.manual_seed(0)
        self.cnn = VggCnn(CnnConfig(in_channels=1, n_classes=10)).eval()
        _, train_norms = infer(self.cnn, self.dataset.train.images)
        _, test_norms = infer(self.cnn, self.dataset.test.images)
        self.thresholds = thresholds(train_norms)
        self.train_table = binarize(train_norms, self.thresholds)
        self.test_table = binarize(test_norms, self.thresholds)

    def images(self) -> list[torch.Tensor]:
        test = self.dataset.test.images
        return [torch.from_numpy(test[index : index + 1]) for index in range(len(test))]


@pytest.fixture(scope="module")
def model() -> NesyModel:
    return NesyModel()


def _balanced_filters(model: NesyModel, count: int) -> list[int]:
    """The filters whose activity on the test images is closest to one half."""
    activity = model.test_table.mean(axis=0)
    return [int(k) for k in np.argsort(np.abs(activity - 0.5), kind="stable")[:count]]


def _hand_written(model: NesyModel) -> RuleSet:
    """Every kind of literal and rule: filters, exceptions (one with two rules, one nested),
    two rules for one class, `not target` literals and a default rule. The filters are the
    five whose test activity is closest to one half, so that every branch is taken."""
    a, b, c, d, e = _balanced_filters(model, 5)
    text = (
        f"target(X,'0') :- f{a}(X), not ab1(X).\n"
        f"target(X,'1') :- f{b}(X), not f{c}(X), not target(X,'0').\n"
        f"target(X,'1') :- f{d}(X), ab1(X), not target(X,'0').\n"
        f"target(X,'2') :- not ab2(X), not target(X,'0'), not target(X,'1').\n"
        f"ab1(X) :- f{c}(X), f{d}(X).\n"
        f"ab1(X) :- not f{b}(X), not ab3(X).\n"
        f"ab2(X) :- f{e}(X).\n"
        f"ab3(X) :- f{d}(X).\n"
    )
    return parse_rules(text, "rules.txt", model.dataset.class_names)


def _deciding_rule(rule_set: RuleSet, table: np.ndarray) -> np.ndarray:
    """Per row, the position among the target rules of the rule that decides it (the
    number of target rules when none fires), from `RuleSet.predict` one rule at a time.

    A target rule is reached only when all earlier ones failed, so there its `not target`
    literals hold and a positive `target` literal cannot.
    """
    exception_rules = tuple(rule for rule in rule_set.rules if isinstance(rule.head, ExceptionHead))
    target_rules = [rule for rule in rule_set.rules if isinstance(rule.head, TargetHead)]
    deciding = np.full(len(table), len(target_rules))
    for position in reversed(range(len(target_rules))):
        rule = target_rules[position]
        if any(isinstance(lit, TargetLiteral) and not lit.negated for lit in rule.body):
            continue
        body = tuple(lit for lit in rule.body if not isinstance(lit, TargetLiteral))
        alone = RuleSet(rule_set.class_names, (Rule(rule.head, body), *exception_rules))
        deciding[alone.predict(table) != NO_CLASS] = position
    return deciding


def _rule_branches(module) -> list[dy.IfOp]:
    return [op for op in module.walk() if isinstance(op, dy.IfOp)]


def _check_branch_counts(rule_set: RuleSet, table: np.ndarray, module, counts: Counter) -> None:
    """One `dy.if` per target rule, located at its line of the rule text; its `then` region
    ran on the images that rule decides, its `else` region on those decided later."""
    deciding = _deciding_rule(rule_set, table)
    target_lines = [
        line for line, rule in enumerate(rule_set.rules, 1) if isinstance(rule.head, TargetHead)
    ]
    branches = _rule_branches(module)
    assert [branch.location.line.data for branch in branches] == target_lines
    for position, branch in enumerate(branches):
        assert counts[(branch, 0)] == np.sum(deciding == position)
        assert counts[(branch, 1)] == np.sum(deciding > position)


def test_hand_written_rule_set_runs_every_branch(model, tmp_path):
    rule_set = _hand_written(model)
    conversion = lower(model.cnn, model.thresholds, rule_set, model.dataset.image_shape)
    counts: Counter = Counter()
    expected = rule_set.predict(model.test_table)
    assert set(expected) == {NO_CLASS, 0, 1, 2}
    for image, label in zip(model.images(), expected):
        (predicted,) = run_program(
            conversion.module, conversion.params, (image,), region_counts=counts
        )
        assert predicted == label
    regions = control_flow_regions(conversion.module)
    assert len(regions) == 2 * 4
    assert all(counts[region] > 0 for region in regions)
    _check_branch_counts(rule_set, model.test_table, conversion.module, counts)
    compiled = compile_program(
        conversion.module.clone(), conversion.params, backend="llvm", cache_dir=tmp_path
    )
    assert [compiled(image)[0] for image in model.images()] == expected.tolist()


def test_learned_rule_set_takes_the_decision_list_paths(model, tmp_path):
    rule_set = learn_rule_set(
        model.train_table, model.dataset.train.labels, model.dataset.class_names
    )
    assert any(isinstance(rule.head, ExceptionHead) for rule in rule_set.rules)
    conversion = lower(model.cnn, model.thresholds, rule_set, model.dataset.image_shape)
    expected = rule_set.predict(model.test_table)
    counts: Counter = Counter()
    interpreted = [
        run_program(conversion.module, conversion.params, (image,), region_counts=counts)[0]
        for image in model.images()
    ]
    assert interpreted == expected.tolist()
    compiled = compile_program(
        conversion.module.clone(), conversion.params, backend="llvm", cache_dir=tmp_path
    )
    assert compiled.stats.compiled == 1 and compiled.stats.fallback == 0
    assert [compiled(image)[0] for image in model.images()] == expected.tolist()

    _check_branch_counts(rule_set, model.test_table, conversion.module, counts)


def test_statically_decided_rules_fold(model):
    """A positive `target` literal can never hold where its rule is reached (no branch);
    an empty body always holds (the chain ends there, later rules are unreachable)."""
    a, b = _balanced_filters(model, 2)
    rule_set = parse_rules(
        f"target(X,'3') :- f{a}(X).\n"
        f"target(X,'4') :- target(X,'3'), f{b}(X).\n"
        "target(X,'5') :- not target(X,'3').\n"
        f"target(X,'6') :- f{b}(X), not target(X,'3'), not target(X,'5').\n",
        "rules.txt",
        model.dataset.class_names,
    )
    conversion = lower(model.cnn, model.thresholds, rule_set, model.dataset.image_shape)
    assert [branch.location.line.data for branch in _rule_branches(conversion.module)] == [1]
    expected = rule_set.predict(model.test_table)
    assert set(expected) == {3, 5}
    for image, label in zip(model.images()[:40], expected):
        assert run_program(conversion.module, conversion.params, (image,)) == [label]


def test_symbolic_ops_are_located_in_the_rule_file(model):
    text = (
        "% a comment, then a rule over two lines\n"
        "target(X,'7') :- f3(X),\n"
        "    not ab1(X).\n"
        "ab1(X) :- f5(X).\n"
    )
    rule_set = parse_rules(text, "rules.txt", model.dataset.class_names)
    conversion = lower(
        model.cnn, model.thresholds, rule_set, (1, 8, 8), rules_text=text, rules_file="rules.txt"
    )
    (function,) = [op for op in conversion.module.ops if isinstance(op, dy.FuncOp)]
    places = {
        (op.name, op.location.line.data, op.location.column.data)
        for op in function.walk()
        if isinstance(op.location, FileLineColLoc) and op.location.filename.data == "rules.txt"
    }
    assert places == {
        ("dy.item", 2, 18),  # f3
        ("dy.item", 4, 11),  # f5, read by ab1 where rule 1 first needs it
        ("arith.constant", 3, 5),  # true, for the `not` of ab1
        ("arith.xori", 3, 5),
        ("arith.andi", 3, 5),
        ("dy.if", 2, 1),
        ("arith.constant", 2, 1),  # the class index
        ("dy.return", 2, 1),
        ("dy.yield", 2, 1),
        ("arith.constant", 5, 1),  # NO_CLASS, at the end of the file
        ("dy.return", 5, 1),
    }
    (branch,) = _rule_branches(conversion.module)
    assert str(error_at(branch, "message")) == "rules.txt:2:1: error: 'dy.if' op message"


def test_program_round_trips_and_passes_the_default_pipeline(model, tmp_path):
    rule_set = _hand_written(model)
    conversion = lower(model.cnn, model.thresholds, rule_set, model.dataset.image_shape)
    text = print_module(conversion.module)
    assert print_module(parse_and_verify(text, "lowered.mlir")) == text
    generic = print_module(conversion.module, generic=True)
    assert print_module(parse_and_verify(generic, "generic.mlir")) == text
    source, outlined = tmp_path / "lowered.mlir", tmp_path / "outlined.mlir"
    source.write_text(text)
    assert opt_pipeline([str(source), "-o", str(outlined)]) == 0
    module = parse_and_verify(outlined.read_text(), str(outlined))
    assert sorted(op.name for op in module.ops) == ["dy.func", "dy.graph"]
    expected = rule_set.predict(model.test_table)
    for image, label in list(zip(model.images(), expected))[:40]:
        assert run_program(module, conversion.params, (image,)) == [label]


def test_lowering_rejects_a_mismatched_model(model):
    rule_set = parse_rules("target(X,'1') :- f70(X).\n", "rules.txt", model.dataset.class_names)
    with pytest.raises(
        NesyError, match=r"^rules.txt:1:18: error: the CNN has no filter f70 \(it has 64\)$"
    ):
        lower(model.cnn, model.thresholds, rule_set, (1, 8, 8))
    rule_set = parse_rules("target(X,'1') :- f7(X).\n", "rules.txt", model.dataset.class_names)
    with pytest.raises(
        NesyError, match=r"image shape must be \(1, H, W\) for this CNN, got \(3, 8, 8\)"
    ):
        lower(model.cnn, model.thresholds, rule_set, (3, 8, 8))
    with pytest.raises(
        NesyError, match="rules.txt: error: the rule text does not spell the rule-set"
    ):
        lower(
            model.cnn, model.thresholds, rule_set, (1, 8, 8), rules_text="target(X,'1') :- f8(X)."
        )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    arguments = ["run", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main(arguments) == 0
    return out


def test_lower_command_writes_a_program_that_predicts_like_the_run(run_dir, tmp_path, capsys):
    output = tmp_path / "nesy.mlir"
    assert main(["lower", "--run", str(run_dir), "-o", str(output)]) == 0
    assert capsys.readouterr().err == ""
    module = parse_and_verify(output.read_text(), str(output))
    assert module.attributes[dy.PARAMS_FILE_ATTR].data == "nesy.safetensors"
    params = load_file(str(tmp_path / "nesy.safetensors"))

    weights = load_file(str(run_dir / "model.safetensors"))
    with safe_open(str(run_dir / "model.safetensors"), "pt") as stored:
        metadata = stored.metadata()
    cnn = VggCnn(CnnConfig(**json.loads(metadata["cnn_config"])))
    cnn.load_state_dict(
        {key[4:]: value for key, value in weights.items() if key.startswith("cnn.")}
    )
    dataset = load_dataset("digits", seed=0)
    _, norms = infer(cnn, dataset.test.images)
    rule_set = parse_rules((run_dir / "rules.txt").read_text(), "rules.txt", dataset.class_names)
    expected = rule_set.predict(binarize(norms, weights["binarization.thresholds"].numpy()))
    program = compile_program(module, params, backend="interpreter")
    for index in range(60):
        image = torch.from_numpy(dataset.test.images[index : index + 1])
        assert program(image) == [expected[index]]


def test_lower_command_reports_errors_in_one_line(run_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes((run_dir / "model.safetensors").read_bytes())
    (broken / "rules.txt").write_text(
        "target(X,'1') :- f1(X).\ntarget(X,'2') :- f2(X), not ab7(X).\n"
    )
    output = str(tmp_path / "out.mlir")
    assert main(["lower", "--run", str(broken), "-o", output]) == 1
    assert (
        capsys.readouterr().err == f"{broken / 'rules.txt'}:2:25: error: ab7 has no defining rule\n"
    )

    (broken / "rules.txt").write_text("target(X,'1') :- f99(X).\n")
    assert main(["lower", "--run", str(broken), "-o", output]) == 1
    assert capsys.readouterr().err == (
        f"{broken / 'rules.txt'}:1:18: error: the CNN has no filter f99 (it has 64)\n"
    )

    save_file({"x": torch.zeros(1)}, str(broken / "model.safetensors"))
    assert main(["lower", "--run", str(broken), "-o", output]) == 1
    assert capsys.readouterr().err == (
        f"{broken / 'model.safetensors'}: error: no metadata 'cnn_config' "
        "(not written by 'run', or by an older version)\n"
    )
    assert main(["lower", "--run", str(tmp_path / "absent"), "-o", output]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"{tmp_path / 'absent' / 'model.safetensors'}: error: cannot read weights"
    )
    assert err.count("\n") == 1
