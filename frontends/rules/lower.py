"""Lowering a rule-set into `dy`: a per-sample decision list, mapped over the batch.

The program has two functions:

* `@classify_rules(%row) -> i64` decides one sample. Its entry block selects the feature
  columns the rules read from the row (one straight run of `torch.aten.select.int`, so
  one sub-graph), then walks the classes in order: for each rule of a class, in text
  order, the body is computed with `dy.item` and `arith` (AND over literals, OR over the
  rules of a derived atom, `not` as `xori true`, comparisons as `arith.cmpf` in float64)
  and a `dy.if` whose `then` region returns the class index. Control reaches a rule only
  when every earlier one failed, so a body (and the atoms and columns it is first to
  read) is evaluated only then, and a class atom of a class already passed is known to be
  false there (folded). The last statement returns `-1`: no class.
* `@forward(%table: [N, F]) -> [N] si64` is a `dy.for` over the rows that calls it and
  stacks the class indices: the form a user's `torch.stack([f(x[i]) for i in ...])` has.

`if-convert` (passes/if_convert.py) turns the decision list into selects and the loop
into one batched boolean tensor program. Every op is located at the rule text it comes
from, so a diagnostic points into the rule file. Nothing here recurses per rule, literal
or derived atom: a 5,000-deep exception chain lowers like a flat one.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import arith
from xdsl.dialects.builtin import (
    FileLineColLoc,
    FloatAttr,
    IntAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    f32,
    f64,
    i1,
    i64,
)
from xdsl.ir import Block, Operation, Region, SSAValue

from frontends.rules.evaluate import NO_CLASS
from frontends.rules.model import (
    AtomLiteral,
    ClassKey,
    ComparisonLiteral,
    FeatureLiteral,
    Key,
    Literal,
    RuleSet,
)
from frontends.rules.syntax import NOWHERE, Position
from ir import dy
from ir.torch_build import SI64, TorchBuilder, tensor_type

INPUT_DTYPES = {"bool": i1, "float32": f32, "float64": f64}
"""The element types a rule program's table may have (torch names -> IR types)."""

CLASSES_ATTR = "rules.classes"
"""`dy.func` attribute: JSON list of the class names the result indices refer to."""

_CMPF = {">": "ogt", "<": "olt", ">=": "oge", "=<": "ole", "=": "oeq", "\\=": "une"}
"""Ordered predicates (false on NaN) except `\\=`, which holds for NaN as Python's `!=`."""

Truth = SSAValue | bool
"""A truth value during lowering: an `i1` computed at run time, or one known statically."""


def lower(rule_set: RuleSet, batch: int, dtype: str = "bool") -> ModuleOp:
    """The `dy` program deciding a [batch, len(features)] table of ``dtype``."""
    if dtype not in INPUT_DTYPES:
        raise ValueError(f"table dtype must be one of {', '.join(INPUT_DTYPES)}, got {dtype}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    table_type = tensor_type([batch, len(rule_set.features)], INPUT_DTYPES[dtype])
    result_type = tensor_type([batch], SI64)
    module = ModuleOp([])
    forward = dy.FuncOp(dy.ENTRY_FUNCTION, [table_type], [result_type])
    forward.location = _location(rule_set, NOWHERE)
    module.body.block.add_op(forward)
    block = forward.body.block
    predictions = append_classifier(module, block, block.args[0], rule_set)
    block.add_op(dy.ReturnOp(predictions))
    return module


def append_classifier(
    module: ModuleOp, block: Block, table: SSAValue, rule_set: RuleSet
) -> SSAValue:
    """Adds `@classify_rules` to ``module`` and, at the end of ``block``, the loop that
    applies it to every row of ``table`` ([N, F]); returns the [N] si64 class indices."""
    shape, element = table.type.shape, table.type.element_type
    batch = shape[0]
    if element not in (i1, f32, f64) or len(shape) != 2 or shape[1] != len(rule_set.features):
        raise ValueError(f"cannot classify a table of type {table.type}")
    if rule_set.numeric and element == i1:
        raise ValueError("the rules compare numbers: the table must be float")
    classify = _classify_function(rule_set, tensor_type([shape[1]], element))
    module.body.block.insert_op_before(classify, module.body.block.first_op)
    where = _location(rule_set, NOWHERE)
    prediction_list = dy.ListType(tensor_type([], SI64))
    empty = _add(block, dy.ListEmptyOp(prediction_list), where)
    bounds = [_add(block, arith.ConstantOp(IntegerAttr(v, i64)), where) for v in (0, batch, 1)]
    body = Block(arg_types=[i64, prediction_list])
    index, accumulated = body.args
    torch_ops = TorchBuilder(body.add_op, where)
    position = _add(body, dy.ScalarToTensorOp(index, tensor_type([], SI64)), where)
    row = torch_ops.select(table, 0, torch_ops.item_index(position))
    decided = _add(body, dy.CallOp(classify.sym_name.data, [row], [i64]), where)
    boxed = _add(body, dy.ScalarToTensorOp(decided, tensor_type([], SI64)), where)
    appended = _add(body, dy.ListAppendOp(accumulated, boxed), where)
    _add(body, dy.YieldOp(appended), where)
    loop = _add(block, dy.ForOp(*bounds, [empty], Region(body)), where)
    return _add(block, dy.ListStackOp(loop, 0, tensor_type([batch], SI64)), where)


def _add(block: Block, op: Operation, location: FileLineColLoc) -> SSAValue | None:
    op.location = location
    block.add_op(op)
    return op.results[0] if op.results else None


def _location(rule_set: RuleSet, position: Position) -> FileLineColLoc:
    return FileLineColLoc(
        StringAttr(rule_set.source), IntAttr(position.line), IntAttr(position.column)
    )


def _classify_function(rule_set: RuleSet, row_type) -> dy.FuncOp:
    function = dy.FuncOp("classify_rules", [row_type], [i64])
    function.location = _location(rule_set, NOWHERE)
    _DecisionList(rule_set, function.body.block).lower()
    return function


class _DecisionList:
    """Builds the body of `@classify_rules`, memoising every value it computes."""

    def __init__(self, rule_set: RuleSet, block: Block):
        self.rule_set = rule_set
        self.block = block
        self.row = block.args[0]
        self.numeric_table = row_element(self.row) != i1
        self.columns: dict[str, SSAValue] = {}
        self.scalars: dict[str, SSAValue] = {}
        self.compared: dict[tuple[str, str, float], SSAValue] = {}
        self.atoms: dict[Key, Truth] = {}
        self.known_false: set[Key] = set()
        self.negations: dict[SSAValue, SSAValue] = {}
        self.true: SSAValue | None = None
        self.stratum_of = {key: n for n, stratum in enumerate(rule_set.strata) for key in stratum}
        self.dependencies: dict[Key, set[Key]] = {key: set() for key in self.stratum_of}
        for rule in rule_set.rules:
            for literal in rule.body:
                if isinstance(literal, AtomLiteral):
                    self.dependencies[rule.head].add(literal.key)

    def at(self, position: Position) -> FileLineColLoc:
        return _location(self.rule_set, position)

    def add(self, op: Operation, position: Position) -> SSAValue:
        return _add(self.block, op, self.at(position))

    def lower(self) -> None:
        self._select_columns()
        rules = self.rule_set.rules
        for class_index, name in enumerate(self.rule_set.classes):
            for rule_index in self.rule_set.rules_by_head[ClassKey(name)]:
                rule = rules[rule_index]
                holds = self.body(rule.body)
                if holds is False:
                    continue
                if holds is True:
                    self.add(dy.ReturnOp(self.add(_i64(class_index), rule.position)), rule.position)
                    return
                result = _i64(class_index)
                located = [result, dy.ReturnOp(result)]
                for op in located:
                    op.location = self.at(rule.position)
                then_block = Block(located)
                else_block = Block([dy.YieldOp()])
                else_block.last_op.location = self.at(rule.position)
                self.add(dy.IfOp(holds, [], Region(then_block), Region(else_block)), rule.position)
            self.known_false.add(ClassKey(name))
        end = NOWHERE
        self.add(dy.ReturnOp(self.add(_i64(NO_CLASS), end)), end)

    def _select_columns(self) -> None:
        torch_ops = TorchBuilder(self.block.add_op, self.at(NOWHERE))
        for name in self.rule_set.used_features():
            self.columns[name] = torch_ops.select(self.row, 0, self.rule_set.feature_index[name])

    # ------------------------------------------------------------------ values

    def body(self, literals: Sequence[Literal]) -> Truth:
        holds: Truth = True
        for literal in literals:
            holds = self.conjoin(holds, self.literal(literal), literal.position)
            if holds is False:
                break
        return holds

    def literal(self, literal: Literal) -> Truth:
        match literal:
            case FeatureLiteral(feature=name, negated=negated):
                value = self.binary_feature(name, literal.position)
                return self.negate(value, literal.position) if negated else value
            case ComparisonLiteral(feature=name, operator=op, value=threshold):
                return self.comparison(name, op, threshold, literal.position)
            case AtomLiteral(key=key, negated=negated):
                value = self.atom(key)
                return self.negate(value, literal.position) if negated else value
        raise TypeError(literal)

    def scalar(self, name: str, position: Position) -> SSAValue:
        if name not in self.scalars:
            kind = f64 if self.numeric_table else i1
            self.scalars[name] = self.add(dy.ItemOp(self.columns[name], kind), position)
        return self.scalars[name]

    def binary_feature(self, name: str, position: Position) -> SSAValue:
        if not self.numeric_table:
            return self.scalar(name, position)
        return self.comparison(name, "\\=", 0.0, position)

    def comparison(self, name: str, op: str, threshold: float, position: Position) -> SSAValue:
        key = (name, op, threshold)
        if key not in self.compared:
            value = self.scalar(name, position)
            constant = self.add(arith.ConstantOp(FloatAttr(threshold, f64)), position)
            self.compared[key] = self.add(arith.CmpfOp(value, constant, _CMPF[op]), position)
        return self.compared[key]

    def atom(self, key: Key) -> Truth:
        """The value of a derived atom, computing its dependencies first, in stratum order
        (iteratively: no recursion however long the chain of atoms)."""
        if key in self.known_false:
            return False
        if key not in self.atoms:
            for stratum in self._pending_strata(key):
                self._compute_stratum(stratum)
        return self.atoms[key]

    def _pending_strata(self, key: Key) -> list[int]:
        pending, stack = set(), [key]
        while stack:
            current = stack.pop()
            number = self.stratum_of[current]
            if current in self.atoms or current in self.known_false or number in pending:
                continue
            pending.add(number)
            for member in self.rule_set.strata[number]:
                stack.extend(self.dependencies[member])
        return sorted(pending)

    def _compute_stratum(self, number: int) -> None:
        stratum = self.rule_set.strata[number]
        recursive = stratum[0] in self.rule_set.recursive
        if recursive:  # the least fixpoint, from all false, within one round per member
            for key in stratum:
                self.atoms[key] = False
        for _ in range(len(stratum) if recursive else 1):
            updated = {key: self._disjunction(key) for key in stratum}
            self.atoms.update(updated)

    def _disjunction(self, key: Key) -> Truth:
        holds: Truth = False
        for index in self.rule_set.rules_by_head[key]:
            rule = self.rule_set.rules[index]
            holds = self.disjoin(holds, self.body(rule.body), rule.position)
            if holds is True:
                break
        return holds

    # ------------------------------------------------------------------ logic

    def constant_true(self) -> SSAValue:
        if self.true is None:
            op = arith.ConstantOp(IntegerAttr(1, i1))
            op.location = self.at(NOWHERE)
            if self.block.first_op is None:
                self.block.add_op(op)
            else:
                self.block.insert_op_before(op, self.block.first_op)
            self.true = op.result
        return self.true

    def negate(self, value: Truth, position: Position) -> Truth:
        if isinstance(value, bool):
            return not value
        if value not in self.negations:
            negation = self.add(arith.XOrIOp(value, self.constant_true()), position)
            self.negations[value], self.negations[negation] = negation, value
        return self.negations[value]

    def conjoin(self, left: Truth, right: Truth, position: Position) -> Truth:
        if isinstance(left, bool):
            return right if left else False
        if isinstance(right, bool):
            return left if right else False
        return self.add(arith.AndIOp(left, right), position)

    def disjoin(self, left: Truth, right: Truth, position: Position) -> Truth:
        if isinstance(left, bool):
            return True if left else right
        if isinstance(right, bool):
            return True if right else left
        return self.add(arith.OrIOp(left, right), position)


def row_element(row: SSAValue):
    return row.type.element_type


def _i64(value: int) -> arith.ConstantOp:
    return arith.ConstantOp(IntegerAttr(value, i64))
