"""Lowering a neuro-symbolic model into one `dy` program.

A NeSy model is the CNN up to its last convolutional layer, the per-filter norms
(:func:`~frontends.nesy.model.filter_norms`), the binarization thresholds and a
:class:`~frontends.nesy.rules.RuleSet`. It becomes one `dy.func @forward` that maps an
image to the predicted class index (`i64`, ``NO_CLASS`` = -1 when no rule fires):

* the neural half, :class:`FilterActivations`, is straight-line PyTorch, so the torch
  frontend turns it into one stretch of torch-dialect ops whose weights (and thresholds)
  are `dy.param`s; it ends with one 0-d bool tensor per filter the rules read;
* the symbolic half is built here, directly as IR: `dy.item` turns a filter's activation
  into an `i1`, `arith` computes rule bodies (AND over literals, OR over the rules of an
  exception, `not` as `arith.xori` with `true`), and the decision list is a chain of
  `dy.if`s, one per target rule, whose `then` region returns the rule's class. Control
  only reaches a rule when every earlier rule failed, so a rule's body (and the
  exceptions and filters it is the first to read) is evaluated lazily, exactly as the
  decision-list semantics of :meth:`RuleSet.predict` orders it.

Every op of the symbolic half is located at the rule text it comes from
(`rules.txt:LINE:COL` of the rule head or literal), so a diagnostic about it points into
the rule file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from xdsl.dialects import arith
from xdsl.dialects.builtin import (
    FileLineColLoc,
    FunctionType,
    IntAttr,
    IntegerAttr,
    StringAttr,
    i1,
    i64,
)
from xdsl.ir import Block, Operation, Region, SSAValue

from frontends.nesy.errors import NesyError
from frontends.nesy.model import CnnConfig, VggCnn, filter_norms
from frontends.nesy.rules import (
    NO_CLASS,
    ExceptionHead,
    ExceptionLiteral,
    FilterLiteral,
    Literal,
    Rule,
    RuleSet,
    TargetLiteral,
    _RuleParser,
    parse_rules,
)
from frontends.torch import Conversion, UnsupportedError, convert
from ir import dy
from ir.program import print_module, verify_module

DEFAULT_RULES_FILE = "rules.txt"
"""The name locations use for a rule-set given without its text: the file `run` writes."""

CNN_PREFIX = "cnn."
THRESHOLDS_KEY = "binarization.thresholds"


class FilterActivations(nn.Module):
    """The neural half of a NeSy model, for one image: is each filter the rules read active?

    ``forward(image)`` runs the CNN up to its last conv layer, takes the per-filter norms
    exactly as the pipeline defines them (:func:`filter_norms`) and compares them with the
    thresholds. The comparison is done in float64, which is what numpy does in
    :func:`~frontends.nesy.binarize.binarize` for float32 norms against float64 thresholds
    and is exact for float32 thresholds, so the program's table equals the pipeline's.
    It returns one 0-d bool tensor per entry of ``filters``, in that order.
    """

    def __init__(self, cnn: VggCnn, thresholds: np.ndarray, filters: Sequence[int]):
        super().__init__()
        n_filters = cnn.config.n_filters
        thresholds = np.asarray(thresholds)
        if thresholds.shape != (n_filters,):
            raise NesyError(
                f"expected {n_filters} thresholds (one per filter), got shape {thresholds.shape}"
            )
        for index in filters:
            if not 0 <= index < n_filters:
                raise NesyError(f"the rules use f{index} but the CNN has only {n_filters} filters")
        self.features = cnn.features
        self.last_conv = cnn.last_conv
        self.register_buffer("thresholds", torch.from_numpy(thresholds.astype(np.float64)))
        self.filters = tuple(filters)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        norms = filter_norms(self.last_conv(self.features(image)))[0]
        active = norms.double() > self.thresholds
        return tuple(active[index] for index in self.filters)


@dataclass(frozen=True)
class _RulePlace:
    """Where a rule's head and each of its body literals are in the rule text."""

    head: FileLineColLoc
    literals: tuple[FileLineColLoc, ...]


def _rule_places(
    rule_set: RuleSet, text: str, source_name: str
) -> tuple[list[_RulePlace], FileLineColLoc]:
    """The place of every rule of ``rule_set`` in ``text``, and the end of the text.

    The text must spell exactly the rules of ``rule_set`` (it is their source).
    """
    parser = _RuleParser(text, source_name)
    parsed = parser.parse()
    if tuple(item.rule for item in parsed) != rule_set.rules:
        raise NesyError(
            f"{source_name}: error: the rule text does not spell the rule-set being lowered"
        )
    filename = StringAttr(source_name)

    def place(token) -> FileLineColLoc:
        return FileLineColLoc(filename, IntAttr(token.line), IntAttr(token.column))

    places = [
        _RulePlace(place(item.head_token), tuple(place(token) for token in item.literal_tokens))
        for item in parsed
    ]
    return places, place(parser.tokens[-1])


_Truth = SSAValue | bool
"""A truth value during lowering: an `i1` computed at run time, or one known statically
(an empty body, a `target` literal decided by the decision order), which is folded."""


class _DecisionListLowering:
    """Appends the symbolic half to the entry block of `@forward`.

    The chain of target rules stays in one block: each rule is a `dy.if` whose `then`
    region returns, so everything after it runs only when it failed. Filter items,
    negations and exception values are therefore computed in that block where first
    needed and memoised: a value defined there is visible to every later rule.
    """

    def __init__(
        self,
        block: Block,
        rule_set: RuleSet,
        places: Sequence[_RulePlace],
        activations: dict[int, SSAValue],
    ):
        self.block = block
        self.rule_set = rule_set
        self.activations = activations
        self.exception_rules: dict[int, list[tuple[Rule, _RulePlace]]] = {}
        self.target_rules: list[tuple[Rule, _RulePlace]] = []
        for rule, place in zip(rule_set.rules, places):
            if isinstance(rule.head, ExceptionHead):
                self.exception_rules.setdefault(rule.head.exception_id, []).append((rule, place))
            else:
                self.target_rules.append((rule, place))
        self.filters: dict[int, SSAValue] = {}
        self.exceptions: dict[int, _Truth] = {}
        self.true: SSAValue | None = None
        self.negations: dict[SSAValue, SSAValue] = {}
        """`not v` for every `v` negated so far, both ways: `not not v` is `v` again."""

    def _add(self, op: Operation, location: FileLineColLoc) -> SSAValue | None:
        self.block.add_op(_located(op, location))
        return op.results[0] if op.results else None

    def lower(self, end: FileLineColLoc) -> None:
        for rule, place in self.target_rules:
            holds = self._body(rule, place)
            if holds is False:
                continue
            class_index = self.rule_set.class_names.index(rule.head.class_name)
            if holds is True:
                self._add(dy.ReturnOp(self._add(_i64(class_index), place.head)), place.head)
                return
            predicted = _located(_i64(class_index), place.head)
            fires = Block([predicted, _located(dy.ReturnOp(predicted), place.head)])
            fails = Block([_located(dy.YieldOp(), place.head)])
            self._add(dy.IfOp(holds, [], Region(fires), Region(fails)), place.head)
        self._add(dy.ReturnOp(self._add(_i64(NO_CLASS), end)), end)

    def _body(self, rule: Rule, place: _RulePlace) -> _Truth:
        holds: _Truth = True
        for literal, location in zip(rule.body, place.literals):
            holds = self._and(holds, self._literal(literal, location), location)
        return holds

    def _literal(self, literal: Literal, location: FileLineColLoc) -> _Truth:
        match literal:
            case FilterLiteral(filter_index=index):
                atom = self._filter(index, location)
            case ExceptionLiteral(exception_id=exception_id):
                atom = self._exception(exception_id)
            case TargetLiteral():
                # Stratification: the class was tried by earlier rules, and a rule is only
                # reached when all of them failed, so `target(X, c)` is false here.
                atom = False
        return self._not(atom, location) if literal.negated else atom

    def _filter(self, index: int, location: FileLineColLoc) -> SSAValue:
        if index not in self.filters:
            self.filters[index] = self._add(dy.ItemOp(self.activations[index], i1), location)
        return self.filters[index]

    def _exception(self, exception_id: int) -> _Truth:
        if exception_id not in self.exceptions:
            holds: _Truth = False
            for rule, place in self.exception_rules[exception_id]:
                holds = self._or(holds, self._body(rule, place), place.head)
            self.exceptions[exception_id] = holds
        return self.exceptions[exception_id]

    def _not(self, value: _Truth, location: FileLineColLoc) -> _Truth:
        if isinstance(value, bool):
            return not value
        if value not in self.negations:
            if self.true is None:
                self.true = self._add(arith.ConstantOp(IntegerAttr(1, i1)), location)
            negation = self._add(arith.XOrIOp(value, self.true), location)
            self.negations[value], self.negations[negation] = negation, value
        return self.negations[value]

    def _and(self, left: _Truth, right: _Truth, location: FileLineColLoc) -> _Truth:
        if isinstance(left, bool):
            return right if left else False
        if isinstance(right, bool):
            return left if right else False
        return self._add(arith.AndIOp(left, right), location)

    def _or(self, left: _Truth, right: _Truth, location: FileLineColLoc) -> _Truth:
        if isinstance(left, bool):
            return True if left else right
        if isinstance(right, bool):
            return True if right else left
        return self._add(arith.OrIOp(left, right), location)


def _place_text(location: FileLineColLoc) -> str:
    return f"{location.filename.data}:{location.line.data}:{location.column.data}"


def _located(op: Operation, location: FileLineColLoc) -> Operation:
    op.location = location
    return op


def _i64(value: int) -> arith.ConstantOp:
    return arith.ConstantOp(IntegerAttr(value, i64))


def lower(
    cnn: VggCnn,
    thresholds: np.ndarray,
    rule_set: RuleSet,
    image_shape: Sequence[int],
    *,
    rules_text: str | None = None,
    rules_file: str = DEFAULT_RULES_FILE,
) -> Conversion:
    """Lowers a NeSy model into one verified `dy` program ``@forward(image) -> i64``.

    ``image_shape`` is (C, H, W); the program takes one image of shape (1, C, H, W) and
    returns the index in ``rule_set.class_names`` that :meth:`RuleSet.predict` gives for
    the image's binarized filter norms, or ``NO_CLASS``. ``rules_text`` is the text the
    rule-set was parsed from (by default ``str(rule_set)``, which is what ``run`` writes)
    and ``rules_file`` its name in op locations. The CNN's weights and the thresholds are
    the returned conversion's ``params``.
    """
    channels = cnn.config.in_channels
    if len(image_shape) != 3 or image_shape[0] != channels:
        raise NesyError(
            f"image shape must be ({channels}, H, W) for this CNN, got {tuple(image_shape)}"
        )
    places, end = _rule_places(
        rule_set, str(rule_set) if rules_text is None else rules_text, rules_file
    )
    for rule, place in zip(rule_set.rules, places):
        for literal, location in zip(rule.body, place.literals):
            if isinstance(literal, FilterLiteral) and literal.filter_index >= cnn.config.n_filters:
                raise NesyError(
                    f"{_place_text(location)}: error: the CNN has no filter "
                    f"f{literal.filter_index} (it has {cnn.config.n_filters})"
                )
    filters = rule_set.used_filters()
    activations = FilterActivations(cnn, thresholds, filters)
    was_training = cnn.training
    try:
        conversion = convert(activations.eval(), (torch.zeros(1, *image_shape),))
    except UnsupportedError as error:
        raise NesyError(f"cannot convert the CNN: {error}") from None
    finally:
        cnn.train(was_training)
    function = _entry_function(conversion)
    block = function.body.block
    returned = block.last_op
    assert isinstance(returned, dy.ReturnOp) and len(returned.values) == len(filters)
    activations_by_filter = dict(zip(filters, returned.values))
    block.erase_op(returned)
    _DecisionListLowering(block, rule_set, places, activations_by_filter).lower(end)
    function.function_type = FunctionType.from_lists(function.arg_types, [i64])
    function.attributes[dy.RESULT_TREE_ATTR] = StringAttr(
        json.dumps({"int": 0}, separators=(",", ":"))
    )
    verify_module(conversion.module)
    return conversion


def _entry_function(conversion: Conversion) -> dy.FuncOp:
    for op in conversion.module.ops:
        if isinstance(op, dy.FuncOp) and op.sym_name.data == dy.ENTRY_FUNCTION:
            return op
    raise AssertionError("the torch frontend produced no entry function")


def lower_run(run_dir: Path, output: Path) -> None:
    """Lowers what ``python -m frontends.nesy run --out RUN_DIR`` wrote into ``output``.

    Reads ``model.safetensors`` (CNN weights, thresholds, class names, image shape) and
    ``rules.txt``; writes the program to ``output`` and its parameters next to it
    (``output`` with the suffix ``.safetensors``), which the module's `dy.params` names.
    """
    weights_path = run_dir / "model.safetensors"
    rules_path = run_dir / "rules.txt"
    try:
        with safe_open(str(weights_path), "pt") as weights:
            metadata = weights.metadata() or {}
        tensors = load_file(str(weights_path))
    except (OSError, ValueError, RuntimeError) as failure:
        raise NesyError(
            f"{weights_path}: error: cannot read weights ({_first_line(failure)})"
        ) from None
    missing = [key for key in ("cnn_config", "class_names", "image_shape") if key not in metadata]
    if THRESHOLDS_KEY not in tensors or missing:
        what = f"metadata '{missing[0]}'" if missing else f"tensor '{THRESHOLDS_KEY}'"
        raise NesyError(
            f"{weights_path}: error: no {what} (not written by 'run', or by an older version)"
        )
    config = json.loads(metadata["cnn_config"])
    cnn = VggCnn(CnnConfig(**{**config, "widths": tuple(config["widths"])}))
    state = {
        key[len(CNN_PREFIX) :]: value
        for key, value in tensors.items()
        if key.startswith(CNN_PREFIX)
    }
    try:
        cnn.load_state_dict(state)
    except RuntimeError as failure:
        raise NesyError(
            f"{weights_path}: error: weights do not fit the CNN ({_first_line(failure)})"
        ) from None
    try:
        text = rules_path.read_text()
    except OSError as failure:
        raise NesyError(
            f"{rules_path}: error: cannot read rule file ({failure.strerror})"
        ) from None
    rule_set = parse_rules(text, str(rules_path), json.loads(metadata["class_names"]))
    conversion = lower(
        cnn,
        tensors[THRESHOLDS_KEY].numpy(),
        rule_set,
        json.loads(metadata["image_shape"]),
        rules_text=text,
        rules_file=str(rules_path),
    )
    try:
        conversion.save_params(output.with_suffix(".safetensors"))
        output.write_text(print_module(conversion.module))
    except OSError as failure:
        raise NesyError(f"{output}: error: cannot write the program ({failure.strerror})") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
