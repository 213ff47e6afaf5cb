"""The `dy` dialect: dynamic neural-network programs with explicit, structured control flow.

A program is a `builtin.module` holding one host function (`dy.func`, entry `@forward`) and
any number of straight-line sub-graphs (`dy.graph`). Tensor compute is torch-mlir's `torch`
dialect, exactly as its FX importer emits it; `dy` adds what tracing compilers lose:

* `dy.if` / `dy.switch`: branches whose regions yield values;
* `dy.while` (data-dependent condition) and `dy.for` (counted), with loop-carried values;
* `dy.break`, `dy.continue` and `dy.return`: structured exits. Each is a region terminator
  whose target is the innermost enclosing loop (or the function), so control never jumps
  into the middle of a region and every exit is checked against the types it lands in;
* `dy.graph` / `dy.call` / `dy.output`: outlined straight-line sub-graphs, isolated from
  above so they can be handed to torch-mlir as functions;
* `dy.param`: a weight named by its key in the side-car `.safetensors` file that the module
  attribute `dy.params` names, so weights never travel inside the IR text;
* `dy.item` / `dy.scalar_to_tensor`: the crossing between tensors and host scalars, which
  are builtin `i1`/`i64`/`f64` values computed with the `arith` dialect;
* `!dy.list<T>` and its ops: Python lists whose length depends on the data, of tensors,
  host scalars, lists or `tuple<...>`s of these (a beam search's hypotheses), with
  `dy.tuple` / `dy.tuple_get` to build and read the tuples on the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects import arith
from xdsl.dialects.builtin import (
    I64,
    ArrayAttr,
    DenseArrayBase,
    FlatSymbolRefAttrConstr,
    FunctionType,
    IntegerAttr,
    StringAttr,
    SymbolNameConstraint,
    SymbolRefAttr,
    TupleType,
    UnitAttr,
    UnregisteredOp,
    f64,
    i1,
    i64,
)
from xdsl.dialects.utils import parse_func_op_like, print_func_op_like
from xdsl.interfaces import ConditionallySpeculatableInterface
from xdsl.ir import (
    Attribute,
    Block,
    BlockArgument,
    Dialect,
    Operation,
    ParametrizedAttribute,
    Region,
    SSAValue,
    TypeAttribute,
)
from xdsl.irdl import (
    IRDLOperation,
    VarConstraint,
    base,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_region_def,
    var_result_def,
)
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.traits import (
    AlwaysSpeculatable,
    EffectInstance,
    HasCanonicalizationPatternsTrait,
    HasParent,
    IsolatedFromAbove,
    IsTerminator,
    MemoryEffect,
    NoMemoryEffect,
    Pure,
    SymbolOpInterface,
    SymbolTable,
)
from xdsl.utils.exceptions import VerifyException

from ir.effects import (
    ExitAwareEffects,
    LeavesRegion,
    all_speculatable,
    is_torch_op,
    op_effects,
)
from ir.torch import DYNAMIC_DIM, ValueTensorType, is_bool_dtype, is_integer_dtype

PARAMS_FILE_ATTR = "dy.params"
"""Module attribute naming the side-car safetensors file that `dy.param` keys refer to."""

ENTRY_FUNCTION = "forward"

UPDATED_INPUTS_ATTR = "dy.updated_inputs"
"""`dy.func` attribute: JSON `[[input, result], ...]`, the inputs the source program updates
in place (as PyTorch mutates the caller's tensor) and the result holding each one's final
value, which a caller copies back."""

APPENDED_ATTRIBUTES_ATTR = "dy.appended_attributes"
"""`dy.func` attribute: JSON `[["module.attribute", result], ...]`, tensors the source
program appends to a list attribute of one of its modules (a log such as saved actions),
in order; a caller appends each result to that list after the call."""

SIZE_ONE_CHECKS_ATTR = "dy.size_one_checks"
"""`dy.func` unit attribute: some sub-graph of the program asserts that a dynamic size is not
1 (it squeezes that dimension, which eager drops only at size 1). A caller that can recompile
gives inputs with a dynamic size of 1 a specialisation where that size is static."""

RESULT_TREE_ATTR = "dy.result_tree"
"""`dy.func` attribute: JSON of the Python structure the entry function returns, so a caller
can nest the flat results as the source program did (tuples, lists, dicts, constants)."""

HOST_SCALAR_TYPES = (i1, i64, f64)
"""The host scalar types: Python bools, ints and floats."""


# ----------------------------------------------------------------------------- types


@irdl_attr_definition
class ListType(ParametrizedAttribute, TypeAttribute):
    """`!dy.list<T>`: a host list of items of one type `T`.

    `T` is a tensor type (`!torch.vtensor<[1],si64>`; dynamic dims when items differ in
    size), a host scalar (`i1`, `i64`, `f64`: a hypothesis's token ids), another list, or a
    builtin `tuple<...>` of these (a hypothesis: `tuple<!dy.list<i64>, f64, !torch.vtensor<...>>`).
    A Python list of records is one list of tuples, so a join or a loop carries it as one
    value and its items keep their fields together.
    """

    name = "dy.list"

    element_type: Attribute

    def __init__(self, element_type: Attribute):
        super().__init__(element_type)

    def verify(self) -> None:
        if not is_list_item_type(self.element_type):
            raise VerifyException(
                f"list items must be tensors, i1/i64/f64, lists or tuples of these, "
                f"got {self.element_type}"
            )

    def print_parameters(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_attribute(self.element_type)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            return (parser.parse_type(),)


def is_list_item_type(item_type: Attribute) -> bool:
    """Whether a `!dy.list` may hold items of this type."""
    if isinstance(item_type, ValueTensorType | ListType) or item_type in HOST_SCALAR_TYPES:
        return True
    return isinstance(item_type, TupleType) and all(
        is_list_item_type(field) for field in item_type.types.data
    )


def item_conforms(value: Attribute, pattern: Attribute) -> bool:
    """Whether an item of type `value` may be stored where items of type `pattern` are:
    tensors by `tensor_conforms`, lists and tuples part by part, anything else equal."""
    if value == pattern:
        return True
    if isinstance(value, ValueTensorType) and isinstance(pattern, ValueTensorType):
        return tensor_conforms(value, pattern)
    if isinstance(value, ListType) and isinstance(pattern, ListType):
        return item_conforms(value.element_type, pattern.element_type)
    if isinstance(value, TupleType) and isinstance(pattern, TupleType):
        fields, expected = value.types.data, pattern.types.data
        return len(fields) == len(expected) and all(
            item_conforms(f, e) for f, e in zip(fields, expected)
        )
    return False


def tensor_conforms(value: ValueTensorType, pattern: ValueTensorType) -> bool:
    """Whether a tensor of type `value` may be stored where `pattern` is expected.

    `pattern` may be less precise: unranked, dynamic dims, unknown dtype.
    """
    if pattern.element_type is not None and value.element_type != pattern.element_type:
        return False
    if pattern.shape is None:
        return True
    if value.shape is None or len(value.shape) != len(pattern.shape):
        return False
    return all(p in (DYNAMIC_DIM, v) for v, p in zip(value.shape, pattern.shape))


def scalar_type_for_dtype(dtype: Attribute | None) -> Attribute | None:
    """The host scalar type that `.item()` of a tensor with this dtype produces."""
    if dtype is None:
        return None
    if is_bool_dtype(dtype):
        return i1
    if is_integer_dtype(dtype):
        return i64
    return f64


# ------------------------------------------------------------ functions and sub-graphs


def _verify_entry_block_matches(op: Operation, body: Region, function_type: FunctionType):
    if len(body.blocks) != 1:
        raise VerifyException("body must have exactly one block")
    arg_types = tuple(body.block.arg_types)
    if arg_types != function_type.inputs.data:
        raise VerifyException(
            f"entry block argument types {_types(arg_types)} do not match "
            f"the function inputs {_types(function_type.inputs.data)}"
        )


def _types(types: Sequence[Attribute]) -> str:
    return "(" + ", ".join(str(t) for t in types) + ")"


def _check_types(what: str, got: Sequence[Attribute], expected: Sequence[Attribute]):
    if tuple(got) != tuple(expected):
        raise VerifyException(
            f"{what}: got {len(got)} value(s) of types {_types(got)}, "
            f"expected {len(expected)} of types {_types(expected)}"
        )


class _FunctionLike(IRDLOperation):
    """Shared syntax of `dy.func` and `dy.graph`: `@name(%arg: T, ...) -> (T, ...) {...}`."""

    body = region_def("single_block")
    sym_name = prop_def(SymbolNameConstraint())
    function_type = prop_def(FunctionType)

    def __init__(
        self,
        name: str,
        inputs: Sequence[Attribute],
        outputs: Sequence[Attribute],
        region: Region | None = None,
    ):
        function_type = FunctionType.from_lists(inputs, outputs)
        if region is None:
            region = Region(Block(arg_types=inputs))
        super().__init__(
            properties={"sym_name": StringAttr(name), "function_type": function_type},
            regions=[region],
        )

    @property
    def arg_types(self) -> tuple[Attribute, ...]:
        return self.function_type.inputs.data

    @property
    def result_types_declared(self) -> tuple[Attribute, ...]:
        return self.function_type.outputs.data

    @classmethod
    def parse(cls, parser: Parser):
        name, inputs, outputs, region, extra_attrs, _, _ = parse_func_op_like(
            parser, reserved_attr_names=("sym_name", "function_type")
        )
        if region is None:
            parser.raise_error(f"'{cls.name}' requires a body")
        op = cls(name, inputs, outputs, region)
        if extra_attrs is not None:
            op.attributes |= extra_attrs.data
        return op

    def print(self, printer: Printer):
        print_func_op_like(
            printer,
            self.sym_name,
            self.function_type,
            self.body,
            self.attributes,
            reserved_attr_names=("sym_name", "function_type"),
        )


@irdl_op_definition
class FuncOp(_FunctionLike):
    """The host function: control flow, scalar glue and (before outlining) tensor compute.

    dy.func @forward(%x: !torch.vtensor<[1,8],f32>) -> (!torch.vtensor<[1,8],f32>) {
      ...
      dy.return %y : !torch.vtensor<[1,8],f32>
    }
    """

    name = "dy.func"
    traits = traits_def(IsolatedFromAbove(), SymbolOpInterface())

    def verify_(self) -> None:
        _verify_entry_block_matches(self, self.body, self.function_type)
        last = self.body.block.last_op
        if not isinstance(last, ReturnOp):
            raise VerifyException("body must end with 'dy.return'")


@irdl_op_definition
class GraphOp(_FunctionLike):
    """A straight-line sub-graph of torch ops: what one compiled kernel computes.

    Isolated from above and free of control flow, so it converts to a `func.func` that
    torch-mlir lowers as it is. Parameters it uses are `dy.param` ops in its body.

        dy.graph @g0(%x: !torch.vtensor<[1,4],f32>) -> (!torch.vtensor<[1,4],f32>) {
          %r = "torch.aten.relu"(%x) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
          dy.output %r : !torch.vtensor<[1,4],f32>
        }
    """

    name = "dy.graph"
    traits = traits_def(IsolatedFromAbove(), SymbolOpInterface())

    def verify_(self) -> None:
        _verify_entry_block_matches(self, self.body, self.function_type)
        block = self.body.block
        if not isinstance(block.last_op, OutputOp):
            raise VerifyException("body must end with 'dy.output'")
        for op in block.ops:
            if op.regions:
                raise VerifyException(
                    f"must be straight-line, but contains '{op_name(op)}' with regions"
                )
            if not (is_torch_op(op) or isinstance(op, ParamOp | OutputOp)):
                raise VerifyException(
                    f"may only hold torch ops and 'dy.param', found '{op_name(op)}'"
                )


@irdl_op_definition
class OutputOp(IRDLOperation):
    """Terminates a `dy.graph` with the values it returns."""

    name = "dy.output"
    values = var_operand_def()
    traits = traits_def(IsTerminator(), Pure(), HasParent(GraphOp))
    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, *values: SSAValue | Operation):
        super().__init__(operands=[values])

    def verify_(self) -> None:
        graph = self.parent_op()
        if not isinstance(graph, GraphOp):
            return  # detached; `HasParent` reports any other parent
        _check_types(
            "values do not match the graph's results",
            [v.type for v in self.values],
            graph.result_types_declared,
        )


def _called_graph(call: Operation) -> GraphOp | None:
    """The `dy.graph` a `dy.call` names, or None (a `dy.func`, or not found)."""
    if call.parent_op() is None:
        return None
    try:
        target = SymbolTable.lookup_symbol(call, call.callee)
    except ValueError:  # not inside a module
        return None
    return target if isinstance(target, GraphOp) else None


class CalleeEffects(MemoryEffect):
    """A call of a `dy.graph` has the effects of the graph's ops; a call of a `dy.func`
    is not analysed (functions may recurse), so its effects are unknown."""

    @classmethod
    def get_effects(cls, op: Operation) -> frozenset[EffectInstance] | None:
        graph = _called_graph(op)
        if graph is None:
            return None
        effects: set[EffectInstance] = set()
        for nested in graph.body.block.ops:
            nested_effects = op_effects(nested)
            if nested_effects is None:
                return None
            effects.update(nested_effects)
        return frozenset(effects)


@irdl_op_definition
class CallOp(IRDLOperation, ConditionallySpeculatableInterface):
    """Calls a `dy.graph` (a compiled kernel) or a `dy.func` by symbol.

    %y = dy.call @g0(%x) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
    """

    name = "dy.call"
    callee = prop_def(FlatSymbolRefAttrConstr)
    arguments = var_operand_def()
    res = var_result_def()
    traits = traits_def(CalleeEffects())
    assembly_format = "$callee `(` $arguments `)` attr-dict `:` functional-type($arguments, $res)"

    def __init__(
        self,
        callee: str | SymbolRefAttr,
        arguments: Sequence[SSAValue | Operation],
        result_types: Sequence[Attribute],
    ):
        if isinstance(callee, str):
            callee = SymbolRefAttr(callee)
        super().__init__(
            operands=[arguments], result_types=[result_types], properties={"callee": callee}
        )

    def is_speculatable(self) -> bool:
        """A graph call cannot fail when no op of the graph can."""
        graph = _called_graph(self)
        return graph is not None and all_speculatable(graph)

    def verify_(self) -> None:
        target = SymbolTable.lookup_symbol(self, self.callee)
        if target is None:
            raise VerifyException(f"'{self.callee}' does not name a symbol in this module")
        if not isinstance(target, _FunctionLike):
            raise VerifyException(
                f"'{self.callee}' names a '{target.name}', not a 'dy.graph' or 'dy.func'"
            )
        _check_types(
            f"operands do not match the inputs of {self.callee}",
            [a.type for a in self.arguments],
            target.arg_types,
        )
        _check_types(
            f"results do not match the results of {self.callee}",
            self.result_types,
            target.result_types_declared,
        )


# ------------------------------------------------------------------- structured control


def _parse_results_arrow(parser: Parser) -> list[Attribute]:
    if parser.parse_optional_punctuation("->") is None:
        return []
    return parser.parse_comma_separated_list(parser.Delimiter.PAREN, parser.parse_type)


def _print_results_arrow(printer: Printer, types: Sequence[Attribute]):
    if types:
        printer.print_string(" -> (")
        printer.print_list(types, printer.print_attribute)
        printer.print_string(")")


def _verify_region_exit(op: Operation, region: Region, what: str):
    if len(region.blocks) != 1:
        raise VerifyException(f"{what} region must have exactly one block")
    last = region.block.last_op
    if not isinstance(last, REGION_EXITS):
        found = "nothing" if last is None else f"'{op_name(last)}'"
        raise VerifyException(
            f"{what} region must end with dy.yield, dy.break, dy.continue, dy.trap "
            f"or dy.return, found {found}"
        )


class _IfCanonicalization(HasCanonicalizationPatternsTrait):
    @classmethod
    def get_canonicalization_patterns(cls):
        from ir.canonicalization import FoldConstantIf

        return (FoldConstantIf(),)


class _SwitchCanonicalization(HasCanonicalizationPatternsTrait):
    @classmethod
    def get_canonicalization_patterns(cls):
        from ir.canonicalization import FoldConstantSwitch

        return (FoldConstantSwitch(),)


class _Branch(IRDLOperation, ConditionallySpeculatableInterface):
    """What `dy.if` and `dy.switch` share: a branch cannot fail when nothing in its
    regions can (effects: `ExitAwareEffects`)."""

    def is_speculatable(self) -> bool:
        return all_speculatable(self)


@irdl_op_definition
class IfOp(_Branch):
    """Two-way branch on a host `i1`. Each region ends with `dy.yield` (the op's results)
    or leaves with `dy.break` / `dy.continue` / `dy.return`.

        %r = dy.if %c -> (!torch.vtensor<[1,10],f32>) {
          dy.yield %a : !torch.vtensor<[1,10],f32>
        } else {
          dy.return %b : !torch.vtensor<[1,10],f32>
        }
    """

    name = "dy.if"
    cond = operand_def(i1)
    res = var_result_def()
    then_region = region_def()
    else_region = region_def()
    traits = traits_def(ExitAwareEffects(), _IfCanonicalization())

    def __init__(
        self,
        cond: SSAValue | Operation,
        result_types: Sequence[Attribute],
        then_region: Region,
        else_region: Region,
    ):
        super().__init__(
            operands=[cond], result_types=[result_types], regions=[then_region, else_region]
        )

    def verify_(self) -> None:
        _verify_region_exit(self, self.then_region, "then")
        _verify_region_exit(self, self.else_region, "else")

    @classmethod
    def parse(cls, parser: Parser) -> IfOp:
        cond = parser.parse_operand(i1)
        result_types = _parse_results_arrow(parser)
        then_region = parser.parse_region()
        parser.parse_keyword("else")
        else_region = parser.parse_region()
        op = cls(cond, result_types, then_region, else_region)
        if (attrs := parser.parse_optional_attr_dict_with_keyword()) is not None:
            op.attributes |= attrs.data
        return op

    def print(self, printer: Printer):
        printer.print_string(" ")
        printer.print_operand(self.cond)
        _print_results_arrow(printer, self.res.types)
        printer.print_string(" ")
        printer.print_region(self.then_region, print_entry_block_args=False)
        printer.print_string(" else ")
        printer.print_region(self.else_region, print_entry_block_args=False)
        printer.print_op_attributes(self.attributes, print_keyword=True)


@irdl_op_definition
class SwitchOp(_Branch):
    """N-way branch on a host `i64`: the region of the matching case runs, else `default`.
    Routing between experts and rule decision lists lower to it.

        %r = dy.switch %k : i64 -> (i64) case 0 {
          dy.yield %a : i64
        } default {
          dy.yield %b : i64
        }
    """

    name = "dy.switch"
    selector = operand_def(i64)
    cases = prop_def(DenseArrayBase.constr(i64))
    res = var_result_def()
    default_region = region_def()
    case_regions = var_region_def()
    traits = traits_def(ExitAwareEffects(), _SwitchCanonicalization())

    def __init__(
        self,
        selector: SSAValue | Operation,
        cases: Sequence[int],
        result_types: Sequence[Attribute],
        default_region: Region,
        case_regions: Sequence[Region],
    ):
        super().__init__(
            operands=[selector],
            result_types=[result_types],
            properties={"cases": DenseArrayBase.from_list(i64, cases)},
            regions=[default_region, case_regions],
        )

    @property
    def case_values(self) -> tuple[int, ...]:
        return self.cases.get_values()

    def verify_(self) -> None:
        values = self.case_values
        if len(values) != len(self.case_regions):
            raise VerifyException(
                f"has {len(values)} case values but {len(self.case_regions)} case regions"
            )
        if len(set(values)) != len(values):
            raise VerifyException(f"has duplicate case values {list(values)}")
        for value, region in zip(values, self.case_regions):
            _verify_region_exit(self, region, f"case {value}")
        _verify_region_exit(self, self.default_region, "default")

    @classmethod
    def parse(cls, parser: Parser) -> SwitchOp:
        selector = parser.parse_unresolved_operand()
        parser.parse_punctuation(":")
        selector_pos = parser.pos
        if parser.parse_type() != i64:
            parser.raise_error("'dy.switch' selector must be i64", selector_pos, parser.pos)
        selector = parser.resolve_operand(selector, i64)
        result_types = _parse_results_arrow(parser)
        cases: list[int] = []
        regions: list[Region] = []
        while parser.parse_optional_keyword("case") is not None:
            cases.append(parser.parse_integer())
            regions.append(parser.parse_region())
        parser.parse_keyword("default")
        default_region = parser.parse_region()
        op = cls(selector, cases, result_types, default_region, regions)
        if (attrs := parser.parse_optional_attr_dict_with_keyword()) is not None:
            op.attributes |= attrs.data
        return op

    def print(self, printer: Printer):
        printer.print_string(" ")
        printer.print_operand(self.selector)
        printer.print_string(" : i64")
        _print_results_arrow(printer, self.res.types)
        for value, region in zip(self.case_values, self.case_regions):
            printer.print_string(f" case {value} ")
            printer.print_region(region, print_entry_block_args=False)
        printer.print_string(" default ")
        printer.print_region(self.default_region, print_entry_block_args=False)
        printer.print_op_attributes(self.attributes, print_keyword=True)


@irdl_op_definition
class WhileOp(IRDLOperation):
    """Loop with a data-dependent condition and loop-carried values.

    The `before` region receives the carried values and ends with `dy.condition`: when its
    flag is false the loop ends with the forwarded values as results; otherwise they enter
    the `do` region, which ends with `dy.yield` (next carried values), `dy.continue`,
    `dy.break` (leave with the loop's results) or `dy.return`.

        %n = dy.while (%i = %zero) : (i64) -> (i64) {
          %go = arith.cmpi slt, %i, %limit : i64
          dy.condition(%go) %i : i64
        } do {
        ^bb0(%j: i64):
          %next = arith.addi %j, %one : i64
          dy.yield %next : i64
        }
    """

    name = "dy.while"
    inits = var_operand_def()
    res = var_result_def()
    before_region = region_def("single_block")
    after_region = region_def("single_block")
    traits = traits_def(ExitAwareEffects())
    """Not speculatable: its trip count, and so whether it ends, depends on the data."""

    def __init__(
        self,
        inits: Sequence[SSAValue | Operation],
        result_types: Sequence[Attribute],
        before_region: Region,
        after_region: Region,
    ):
        super().__init__(
            operands=[inits], result_types=[result_types], regions=[before_region, after_region]
        )

    @property
    def carried_types(self) -> tuple[Attribute, ...]:
        return tuple(v.type for v in self.inits)

    def verify_(self) -> None:
        _check_types(
            "before-region arguments do not match its initial values",
            self.before_region.block.arg_types,
            self.carried_types,
        )
        _check_types(
            "do-region arguments do not match its results",
            self.after_region.block.arg_types,
            self.result_types,
        )
        if not isinstance(self.before_region.block.last_op, ConditionOp):
            raise VerifyException("before region must end with 'dy.condition'")
        _verify_region_exit(self, self.after_region, "do")

    @classmethod
    def parse(cls, parser: Parser) -> WhileOp:
        assignments = parser.parse_comma_separated_list(
            parser.Delimiter.PAREN, lambda: _parse_assignment(parser)
        )
        parser.parse_punctuation(":")
        type_pos = parser.pos
        function_type = parser.parse_function_type()
        inputs = function_type.inputs.data
        if len(inputs) != len(assignments):
            parser.raise_error(
                f"'dy.while' has {len(assignments)} carried values but {len(inputs)} types",
                type_pos,
                parser.pos,
            )
        block_args = [arg.resolve(t) for (arg, _), t in zip(assignments, inputs)]
        inits = [parser.resolve_operand(operand, t) for (_, operand), t in zip(assignments, inputs)]
        before_region = parser.parse_region(block_args)
        parser.parse_keyword("do")
        after_region = parser.parse_region()
        op = cls(inits, function_type.outputs.data, before_region, after_region)
        if (attrs := parser.parse_optional_attr_dict_with_keyword()) is not None:
            op.attributes |= attrs.data
        return op

    def print(self, printer: Printer):
        printer.print_string(" (")
        printer.print_list(
            zip(self.before_region.block.args, self.inits),
            lambda pair: _print_assignment(printer, *pair),
        )
        printer.print_string(") : ")
        printer.print_attribute(FunctionType.from_lists(self.carried_types, self.result_types))
        printer.print_string(" ")
        printer.print_region(self.before_region, print_entry_block_args=False)
        printer.print_string(" do ")
        printer.print_region(self.after_region)
        printer.print_op_attributes(self.attributes, print_keyword=True)


def _parse_assignment(parser: Parser):
    arg = parser.parse_argument(expect_type=False)
    parser.parse_punctuation("=")
    return arg, parser.parse_unresolved_operand()


def _print_assignment(printer: Printer, arg: BlockArgument, value: SSAValue):
    printer.print_ssa_value(arg)
    printer.print_string(" = ")
    printer.print_ssa_value(value)


@irdl_op_definition
class ForOp(IRDLOperation, ConditionallySpeculatableInterface):
    """Counted loop over `i64` from `lb` (inclusive) to `ub` (exclusive) by `step` > 0,
    with loop-carried values. Data-dependent trip counts and early exits use `dy.break`.

        %r = dy.for %t = %c0 to %c54 step %c1 iter_args(%h = %x) -> (!torch.vtensor<[1,16,32,32],f32>) {
          ...
          dy.yield %h2 : !torch.vtensor<[1,16,32,32],f32>
        }
    """

    name = "dy.for"
    lb = operand_def(i64)
    ub = operand_def(i64)
    step = operand_def(i64)
    inits = var_operand_def()
    res = var_result_def()
    body = region_def("single_block")
    traits = traits_def(ExitAwareEffects())

    def __init__(
        self,
        lb: SSAValue | Operation,
        ub: SSAValue | Operation,
        step: SSAValue | Operation,
        inits: Sequence[SSAValue | Operation],
        body: Region,
    ):
        super().__init__(
            operands=[lb, ub, step, inits],
            result_types=[[SSAValue.get(v).type for v in inits]],
            regions=[body],
        )

    @property
    def carried_types(self) -> tuple[Attribute, ...]:
        return tuple(v.type for v in self.inits)

    def is_speculatable(self) -> bool:
        """A counted loop cannot fail when its step is a positive constant (the
        interpreter rejects other steps) and nothing in its body can fail."""
        step = self.step.owner
        return (
            isinstance(step, arith.ConstantOp)
            and isinstance(step.value, IntegerAttr)
            and step.value.value.data > 0
            and all_speculatable(self)
        )

    def verify_(self) -> None:
        arg_types = self.body.block.arg_types
        if not arg_types or arg_types[0] != i64:
            raise VerifyException("body must take the i64 induction variable first")
        _check_types(
            "body arguments do not match its carried values",
            arg_types[1:],
            self.carried_types,
        )
        _check_types(
            "results do not match its carried values", self.result_types, self.carried_types
        )
        _verify_region_exit(self, self.body, "body")

    @classmethod
    def parse(cls, parser: Parser) -> ForOp:
        induction_variable = parser.parse_argument(expect_type=False).resolve(i64)
        parser.parse_punctuation("=")
        lb = parser.parse_operand(i64)
        parser.parse_keyword("to")
        ub = parser.parse_operand(i64)
        parser.parse_keyword("step")
        step = parser.parse_operand(i64)
        block_args = [induction_variable]
        inits: list[SSAValue] = []
        if parser.parse_optional_keyword("iter_args") is not None:
            assignments = parser.parse_comma_separated_list(
                parser.Delimiter.PAREN, lambda: _parse_assignment(parser)
            )
            types = _parse_results_arrow(parser)
            if len(types) != len(assignments):
                parser.raise_error(
                    f"'dy.for' has {len(assignments)} carried values but {len(types)} types"
                )
            block_args += [arg.resolve(t) for (arg, _), t in zip(assignments, types)]
            inits = [
                parser.resolve_operand(operand, t) for (_, operand), t in zip(assignments, types)
            ]
        body = parser.parse_region(block_args)
        op = cls(lb, ub, step, inits, body)
        if (attrs := parser.parse_optional_attr_dict_with_keyword()) is not None:
            op.attributes |= attrs.data
        return op

    def print(self, printer: Printer):
        induction_variable, *carried = self.body.block.args
        printer.print_string(" ")
        printer.print_ssa_value(induction_variable)
        printer.print_string(" = ")
        printer.print_operand(self.lb)
        printer.print_string(" to ")
        printer.print_operand(self.ub)
        printer.print_string(" step ")
        printer.print_operand(self.step)
        if carried:
            printer.print_string(" iter_args(")
            printer.print_list(
                zip(carried, self.inits), lambda pair: _print_assignment(printer, *pair)
            )
            printer.print_string(")")
            _print_results_arrow(printer, self.carried_types)
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False)
        printer.print_op_attributes(self.attributes, print_keyword=True)


LOOPS = (WhileOp, ForOp)


def _enclosing_loop(op: Operation) -> WhileOp | ForOp | None:
    """The loop that a `dy.break` / `dy.continue` placed at `op` leaves or restarts.

    Only branches may stand between the exit and the loop body; a function, a sub-graph or
    a while loop's condition region in between makes the exit invalid.
    """
    region = op.parent_region()
    while region is not None:
        parent = region.parent_op()
        if isinstance(parent, ForOp):
            return parent
        if isinstance(parent, WhileOp):
            return parent if region is parent.after_region else None
        if not isinstance(parent, IfOp | SwitchOp):
            return None
        region = parent.parent_region()
    return None


def _enclosing_function(op: Operation) -> FuncOp | None:
    parent = op.parent_op()
    while parent is not None and not isinstance(parent, FuncOp | GraphOp):
        parent = parent.parent_op()
    return parent if isinstance(parent, FuncOp) else None


class _LandsInEnclosingLoop(LeavesRegion):
    @classmethod
    def landing_op(cls, op: Operation) -> Operation | None:
        return _enclosing_loop(op)


class _LandsInEnclosingFunction(LeavesRegion):
    @classmethod
    def landing_op(cls, op: Operation) -> Operation | None:
        return _enclosing_function(op)


class _LandsNowhere(LeavesRegion):
    """A trap ends the whole run: it lands in no op."""

    @classmethod
    def landing_op(cls, op: Operation) -> Operation | None:
        return None


class _ExitOp(IRDLOperation):
    """Shared definition of the region terminators that carry values."""

    values = var_operand_def()
    assembly_format = "attr-dict ($values^ `:` type($values))?"

    def __init__(self, *values: SSAValue | Operation):
        super().__init__(operands=[values])

    @property
    def value_types(self) -> list[Attribute]:
        return [v.type for v in self.values]


@irdl_op_definition
class YieldOp(_ExitOp):
    """Ends a branch region (values become the branch's results) or a loop body (values
    become the next iteration's carried values)."""

    name = "dy.yield"
    traits = traits_def(IsTerminator(), Pure(), HasParent(IfOp, SwitchOp, WhileOp, ForOp))

    def verify_(self) -> None:
        parent = self.parent_op()
        if isinstance(parent, IfOp | SwitchOp):
            expected = parent.result_types
        elif isinstance(parent, ForOp):
            expected = parent.carried_types
        elif isinstance(parent, WhileOp):
            if self.parent_region() is not parent.after_region:
                raise VerifyException(
                    "cannot terminate the before region of 'dy.while' (use 'dy.condition')"
                )
            expected = parent.carried_types
        else:
            return  # detached; `HasParent` reports any other parent
        _check_types(
            f"values do not match what '{parent.name}' expects", self.value_types, expected
        )


@irdl_op_definition
class ConditionOp(IRDLOperation):
    """Ends a `dy.while` before-region: continue with the forwarded values if `cond`."""

    name = "dy.condition"
    cond = operand_def(i1)
    values = var_operand_def()
    traits = traits_def(IsTerminator(), Pure(), HasParent(WhileOp))
    assembly_format = "`(` $cond `)` attr-dict ($values^ `:` type($values))?"

    def __init__(self, cond: SSAValue | Operation, *values: SSAValue | Operation):
        super().__init__(operands=[cond, values])

    def verify_(self) -> None:
        parent = self.parent_op()
        if not isinstance(parent, WhileOp):
            return  # detached; `HasParent` reports any other parent
        if self.parent_region() is not parent.before_region:
            raise VerifyException("must terminate the before region of 'dy.while'")
        _check_types(
            "forwarded values do not match the 'dy.while' results",
            [v.type for v in self.values],
            parent.result_types,
        )


@irdl_op_definition
class BreakOp(_ExitOp):
    """Leaves the innermost enclosing loop; its values become the loop's results."""

    name = "dy.break"
    traits = traits_def(IsTerminator(), _LandsInEnclosingLoop(), AlwaysSpeculatable())

    def verify_(self) -> None:
        loop = _enclosing_loop(self)
        if loop is None:
            raise VerifyException("is not inside the body of a dy.while or dy.for")
        _check_types("values do not match the loop's results", self.value_types, loop.result_types)


@irdl_op_definition
class ContinueOp(_ExitOp):
    """Starts the next iteration of the innermost enclosing loop with new carried values."""

    name = "dy.continue"
    traits = traits_def(IsTerminator(), _LandsInEnclosingLoop(), AlwaysSpeculatable())

    def verify_(self) -> None:
        loop = _enclosing_loop(self)
        if loop is None:
            raise VerifyException("is not inside the body of a dy.while or dy.for")
        _check_types(
            "values do not match the loop's carried values",
            self.value_types,
            loop.carried_types,
        )


@irdl_op_definition
class ReturnOp(_ExitOp):
    """Returns from the enclosing `dy.func`, from any depth of branches and loops."""

    name = "dy.return"
    traits = traits_def(IsTerminator(), _LandsInEnclosingFunction(), AlwaysSpeculatable())

    def verify_(self) -> None:
        func = _enclosing_function(self)
        if func is None:
            raise VerifyException("is not inside a 'dy.func'")
        _check_types(
            f"values do not match the results of @{func.sym_name.data}",
            self.value_types,
            func.result_types_declared,
        )


@irdl_op_definition
class TrapOp(IRDLOperation):
    """Ends a path that Python would leave with an exception: raises a run-time error with
    `message` (e.g. a container indexed out of range in the `default` region of a
    `dy.switch`). Nothing after it runs.

        dy.trap "index out of range for a ModuleList of 3"
    """

    name = "dy.trap"
    message = prop_def(StringAttr)
    traits = traits_def(IsTerminator(), _LandsNowhere())  # not speculatable: it fails
    assembly_format = "$message attr-dict"

    def __init__(self, message: str):
        super().__init__(properties={"message": StringAttr(message)})


REGION_EXITS = (YieldOp, BreakOp, ContinueOp, ReturnOp, TrapOp)


# ------------------------------------------------------------------ params and scalars


def _verify_host_scalar(op: Operation, scalar_type: Attribute):
    if scalar_type not in HOST_SCALAR_TYPES:
        raise VerifyException(f"host scalar must be i1, i64 or f64, got {scalar_type}")


@irdl_op_definition
class ParamOp(IRDLOperation):
    """A weight, read from the module's side-car safetensors file under `key`.

    %w = dy.param "conv1.weight" : !torch.vtensor<[16,3,3,3],f32>
    """

    name = "dy.param"
    key = prop_def(StringAttr)
    result = result_def(ValueTensorType)
    traits = traits_def(Pure())
    assembly_format = "$key attr-dict `:` type($result)"

    def __init__(self, key: str, result_type: ValueTensorType):
        super().__init__(properties={"key": StringAttr(key)}, result_types=[result_type])

    def verify_(self) -> None:
        if not self.key.data:
            raise VerifyException("key must not be empty")
        result_type = self.result.type
        assert isinstance(result_type, ValueTensorType)
        if not result_type.has_static_shape or result_type.element_type is None:
            raise VerifyException(
                f"result must have a static shape and known dtype, got {result_type}"
            )


@irdl_op_definition
class ItemOp(IRDLOperation, ConditionallySpeculatableInterface):
    """Reads the single element of a tensor as a host scalar (Python's `.item()`):
    `f64` for floating dtypes, `i64` for integers, `i1` for bool.

        %p = dy.item %conf : !torch.vtensor<[],f32> -> f64
    """

    name = "dy.item"
    tensor = operand_def(ValueTensorType)
    result = result_def()
    traits = traits_def(NoMemoryEffect())
    assembly_format = "$tensor attr-dict `:` type($tensor) `->` type($result)"

    def __init__(self, tensor: SSAValue | Operation, result_type: Attribute):
        super().__init__(operands=[tensor], result_types=[result_type])

    def is_speculatable(self) -> bool:
        """Fails at run time unless the tensor has one element, which only a static
        shape guarantees."""
        tensor_type = self.tensor.type
        return isinstance(tensor_type, ValueTensorType) and tensor_type.numel == 1

    def verify_(self) -> None:
        tensor_type = self.tensor.type
        assert isinstance(tensor_type, ValueTensorType)
        numel = tensor_type.numel
        if numel is not None and numel != 1:
            raise VerifyException(
                f"needs a tensor with one element, got {tensor_type} ({numel} elements)"
            )
        _verify_host_scalar(self, self.result.type)
        expected = scalar_type_for_dtype(tensor_type.element_type)
        if expected is not None and self.result.type != expected:
            raise VerifyException(f"of {tensor_type} produces {expected}, not {self.result.type}")


@irdl_op_definition
class DimOp(IRDLOperation):
    """The size of one dimension of a tensor as a host `i64` (Python's `x.shape[d]` where
    the size is known only at run time: a `?` dimension).

        %n = dy.dim %x[0] : !torch.vtensor<[?,8],f32>
    """

    name = "dy.dim"
    tensor = operand_def(ValueTensorType)
    index = prop_def(IntegerAttr[I64])
    result = result_def(i64)
    traits = traits_def(Pure())
    assembly_format = "$tensor `[` $index `]` attr-dict `:` type($tensor)"

    def __init__(self, tensor: SSAValue | Operation, index: int):
        super().__init__(
            operands=[tensor],
            properties={"index": IntegerAttr(index, i64)},
            result_types=[i64],
        )

    def verify_(self) -> None:
        tensor_type = self.tensor.type
        assert isinstance(tensor_type, ValueTensorType)
        index = self.index.value.data
        shape = tensor_type.shape
        if shape is not None and not 0 <= index < len(shape):
            raise VerifyException(f"dimension {index} out of range for {tensor_type}")


@irdl_op_definition
class ScalarToTensorOp(IRDLOperation):
    """Wraps a host scalar as a 0-d tensor so tensor compute can use it.

    %t = dy.scalar_to_tensor %count : i64 -> !torch.vtensor<[],si64>
    """

    name = "dy.scalar_to_tensor"
    scalar = operand_def()
    result = result_def(ValueTensorType)
    traits = traits_def(Pure())
    assembly_format = "$scalar attr-dict `:` type($scalar) `->` type($result)"

    def __init__(self, scalar: SSAValue | Operation, result_type: ValueTensorType):
        super().__init__(operands=[scalar], result_types=[result_type])

    def verify_(self) -> None:
        _verify_host_scalar(self, self.scalar.type)
        result_type = self.result.type
        assert isinstance(result_type, ValueTensorType)
        if result_type.shape != ():
            raise VerifyException(f"result must be 0-d, got {result_type}")
        if scalar_type_for_dtype(result_type.element_type) != self.scalar.type:
            raise VerifyException(f"cannot hold a {self.scalar.type} in {result_type}")


# ----------------------------------------------------------------------------- lists


def _list_element(value: SSAValue) -> Attribute:
    list_type = value.type
    assert isinstance(list_type, ListType)
    return list_type.element_type


@irdl_op_definition
class ListEmptyOp(IRDLOperation):
    """A new, empty list.

    %l = dy.list_empty : !dy.list<!torch.vtensor<[1],si64>>
    """

    name = "dy.list_empty"
    result = result_def(ListType)
    traits = traits_def(Pure())
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, result_type: ListType):
        super().__init__(result_types=[result_type])


@irdl_op_definition
class ListAppendOp(IRDLOperation):
    """The list with one more item at the end (value semantics: `list` is unchanged).

    %l2 = dy.list_append %l, %tok : !dy.list<!torch.vtensor<[1],si64>>, !torch.vtensor<[1],si64>
    """

    name = "dy.list_append"
    LIST: ClassVar = VarConstraint("LIST", base(ListType))
    list = operand_def(LIST)
    item = operand_def()
    result = result_def(LIST)
    traits = traits_def(Pure())
    assembly_format = "$list `,` $item attr-dict `:` type($list) `,` type($item)"

    def __init__(self, list_value: SSAValue | Operation, item: SSAValue | Operation):
        list_type = SSAValue.get(list_value).type
        super().__init__(operands=[list_value, item], result_types=[list_type])

    def verify_(self) -> None:
        item_type = self.item.type
        if not item_conforms(item_type, _list_element(self.list)):
            raise VerifyException(
                f"item {item_type} does not conform to the list element "
                f"type {_list_element(self.list)}"
            )


@irdl_op_definition
class ListRemoveOp(IRDLOperation):  # not speculatable: the index may be out of range
    """The list without the item at `index` (negative counts from the end, as Python's
    `del l[i]` / `l.pop(i)`); fails at run time when `index` is out of range.

    %l2 = dy.list_remove %l[%i] : !dy.list<!torch.vtensor<[1],si64>>
    """

    name = "dy.list_remove"
    LIST: ClassVar = VarConstraint("LIST", base(ListType))
    list = operand_def(LIST)
    index = operand_def(i64)
    result = result_def(LIST)
    traits = traits_def(NoMemoryEffect())
    assembly_format = "$list `[` $index `]` attr-dict `:` type($list)"

    def __init__(self, list_value: SSAValue | Operation, index: SSAValue | Operation):
        list_type = SSAValue.get(list_value).type
        super().__init__(operands=[list_value, index], result_types=[list_type])


@irdl_op_definition
class ListLenOp(IRDLOperation):
    """The number of items in a list, as i64.

    %n = dy.list_len %l : !dy.list<!torch.vtensor<[1],si64>>
    """

    name = "dy.list_len"
    list = operand_def(ListType)
    result = result_def(i64)
    traits = traits_def(Pure())
    assembly_format = "$list attr-dict `:` type($list)"

    def __init__(self, list_value: SSAValue | Operation):
        super().__init__(operands=[list_value], result_types=[i64])


@irdl_op_definition
class ListGetOp(IRDLOperation):  # not speculatable: the index may be out of range
    """The item at `index` (negative counts from the end, as in Python).

    %t = dy.list_get %l[%i] : !dy.list<!torch.vtensor<[1],si64>> -> !torch.vtensor<[1],si64>
    """

    name = "dy.list_get"
    list = operand_def(ListType)
    index = operand_def(i64)
    result = result_def()
    traits = traits_def(NoMemoryEffect())
    assembly_format = "$list `[` $index `]` attr-dict `:` type($list) `->` type($result)"

    def __init__(self, list_value: SSAValue | Operation, index: SSAValue | Operation):
        super().__init__(
            operands=[list_value, index], result_types=[_list_element(SSAValue.get(list_value))]
        )

    def verify_(self) -> None:
        if self.result.type != _list_element(self.list):
            raise VerifyException("result type must be the list element type")


class _ListJoinOp(IRDLOperation, ConditionallySpeculatableInterface):
    """Shared definition of `dy.list_stack` and `dy.list_cat`."""

    list = operand_def(ListType)
    dim = prop_def(IntegerAttr[I64])
    result = result_def(ValueTensorType)
    traits = traits_def(NoMemoryEffect())
    assembly_format = "$list `dim` $dim attr-dict `:` type($list) `->` type($result)"
    RANK_INCREASE: ClassVar[int]

    def __init__(self, list_value: SSAValue | Operation, dim: int, result_type: ValueTensorType):
        super().__init__(
            operands=[list_value],
            result_types=[result_type],
            properties={"dim": IntegerAttr(dim, i64)},
        )

    def is_speculatable(self) -> bool:
        """Joining fails on an empty list and on items of different sizes: it cannot fail
        only for a list that just had an item appended and whose items have one static
        shape."""
        element = _list_element(self.list)
        return (
            isinstance(self.list.owner, ListAppendOp)
            and isinstance(element, ValueTensorType)
            and element.has_static_shape
            and element.element_type is not None
        )

    def verify_(self) -> None:
        element = _list_element(self.list)
        result_type = self.result.type
        assert isinstance(result_type, ValueTensorType)
        if not isinstance(element, ValueTensorType):
            raise VerifyException(f"can only join a list of tensors, got items of type {element}")
        if element.element_type is not None and result_type.element_type != element.element_type:
            raise VerifyException(
                f"result dtype {result_type.element_type} differs from the "
                f"items' {element.element_type}"
            )
        if element.shape is None or result_type.shape is None:
            return
        rank = len(element.shape) + self.RANK_INCREASE
        if len(result_type.shape) != rank:
            raise VerifyException(f"result must have rank {rank}, got {result_type}")
        if not -rank <= self.dim.value.data < rank:
            raise VerifyException(f"dim {self.dim.value.data} is out of range for rank {rank}")
        joined = self.dim.value.data % rank
        result_dims = list(result_type.shape)
        if self.RANK_INCREASE:
            del result_dims[joined]  # the list length: known at run time only
        else:
            item, total = element.shape[joined], result_dims[joined]
            if DYNAMIC_DIM not in (item, total) and (total % item if item else total):
                raise VerifyException(
                    f"result {result_type} cannot join items of type {element} at dim "
                    f"{self.dim.value.data}: {total} is not a multiple of {item}"
                )
            result_dims[joined] = item
        if not all(DYNAMIC_DIM in (i, r) or i == r for i, r in zip(element.shape, result_dims)):
            raise VerifyException(
                f"result {result_type} does not fit items of type {element} joined at dim "
                f"{self.dim.value.data}"
            )


@irdl_op_definition
class ListStackOp(_ListJoinOp):
    """`torch.stack` of all items along a new dimension `dim`: its size is the list length,
    known only at run time.

        %t = dy.list_stack %l dim 0 : !dy.list<!torch.vtensor<[1],si64>> -> !torch.vtensor<[?,1],si64>
    """

    name = "dy.list_stack"
    RANK_INCREASE: ClassVar[int] = 1


@irdl_op_definition
class ListCatOp(_ListJoinOp):
    """`torch.cat` of all items along the existing dimension `dim`.

    %t = dy.list_cat %l dim 0 : !dy.list<!torch.vtensor<[1],si64>> -> !torch.vtensor<[?],si64>
    """

    name = "dy.list_cat"
    RANK_INCREASE: ClassVar[int] = 0


@irdl_op_definition
class ListSetOp(IRDLOperation):  # not speculatable: the index may be out of range
    """The list with the item at `index` replaced by `item` (negative counts from the end,
    as Python's `l[i] = v`); fails at run time when `index` is out of range.

    %l2 = dy.list_set %l[%i], %v : !dy.list<f64>, f64
    """

    name = "dy.list_set"
    LIST: ClassVar = VarConstraint("LIST", base(ListType))
    list = operand_def(LIST)
    index = operand_def(i64)
    item = operand_def()
    result = result_def(LIST)
    traits = traits_def(NoMemoryEffect())
    assembly_format = "$list `[` $index `]` `,` $item attr-dict `:` type($list) `,` type($item)"

    def __init__(
        self,
        list_value: SSAValue | Operation,
        index: SSAValue | Operation,
        item: SSAValue | Operation,
    ):
        list_type = SSAValue.get(list_value).type
        super().__init__(operands=[list_value, index, item], result_types=[list_type])

    def verify_(self) -> None:
        if not item_conforms(self.item.type, _list_element(self.list)):
            raise VerifyException(
                f"item {self.item.type} does not conform to the list element "
                f"type {_list_element(self.list)}"
            )


@irdl_op_definition
class ListSliceOp(IRDLOperation):
    """`list[start:stop]` with Python's rules: negative bounds count from the end and
    bounds past either end are clamped, so it never fails.

    %l2 = dy.list_slice %l[%start : %stop] : !dy.list<f64>
    """

    name = "dy.list_slice"
    LIST: ClassVar = VarConstraint("LIST", base(ListType))
    list = operand_def(LIST)
    start = operand_def(i64)
    stop = operand_def(i64)
    result = result_def(LIST)
    traits = traits_def(Pure())
    assembly_format = "$list `[` $start `:` $stop `]` attr-dict `:` type($list)"

    def __init__(
        self,
        list_value: SSAValue | Operation,
        start: SSAValue | Operation,
        stop: SSAValue | Operation,
    ):
        list_type = SSAValue.get(list_value).type
        super().__init__(operands=[list_value, start, stop], result_types=[list_type])


@irdl_op_definition
class ListSortOp(IRDLOperation):  # not speculatable: the lists may differ in length
    """The items of `list` in the order of `keys` (item i has key i), ascending or
    `descending`, stable as Python's `sorted(..., key=..., reverse=...)` (equal keys keep
    their order, also when descending). Fails at run time when the lengths differ; NaN keys
    compare as Python compares them (never less than anything).

    %sorted = dy.list_sort %hyps by %scores descending : !dy.list<tuple<!dy.list<i64>, f64>>, !dy.list<f64>
    """

    name = "dy.list_sort"
    LIST: ClassVar = VarConstraint("LIST", base(ListType))
    list = operand_def(LIST)
    keys = operand_def(ListType)
    descending = opt_prop_def(UnitAttr)
    result = result_def(LIST)
    traits = traits_def(NoMemoryEffect())
    assembly_format = (
        "$list `by` $keys (`descending` $descending^)? attr-dict `:` type($list) `,` type($keys)"
    )

    def __init__(
        self, list_value: SSAValue | Operation, keys: SSAValue | Operation, descending: bool
    ):
        list_type = SSAValue.get(list_value).type
        super().__init__(
            operands=[list_value, keys],
            result_types=[list_type],
            properties={"descending": UnitAttr()} if descending else {},
        )

    def verify_(self) -> None:
        key_type = _list_element(self.keys)
        if key_type not in HOST_SCALAR_TYPES:
            raise VerifyException(f"keys must be host scalars (i1, i64, f64), got {key_type}")


@irdl_op_definition
class ListToTensorOp(IRDLOperation):
    """`torch.tensor(list)` of a list of host scalars: a 1-d tensor of the result's dtype
    whose size is the list length (0 for an empty list).

    %t = dy.list_to_tensor %tokens : !dy.list<i64> -> !torch.vtensor<[?],si64>
    """

    name = "dy.list_to_tensor"
    list = operand_def(ListType)
    result = result_def(ValueTensorType)
    traits = traits_def(Pure())
    assembly_format = "$list attr-dict `:` type($list) `->` type($result)"

    def __init__(self, list_value: SSAValue | Operation, result_type: ValueTensorType):
        super().__init__(operands=[list_value], result_types=[result_type])

    def verify_(self) -> None:
        element = _list_element(self.list)
        if element not in HOST_SCALAR_TYPES:
            raise VerifyException(f"items must be host scalars (i1, i64, f64), got {element}")
        result_type = self.result.type
        assert isinstance(result_type, ValueTensorType)
        if result_type.shape is None or len(result_type.shape) != 1:
            raise VerifyException(f"result must have rank 1, got {result_type}")
        if result_type.element_type is None:
            raise VerifyException(f"result must have a dtype, got {result_type}")


# ----------------------------------------------------------------------------- tuples


@irdl_op_definition
class TupleOp(IRDLOperation):
    """A host tuple of its operands (a list item with fields, such as a hypothesis).

    %h = dy.tuple %tokens, %score : !dy.list<i64>, f64 -> tuple<!dy.list<i64>, f64>
    """

    name = "dy.tuple"
    fields = var_operand_def()
    result = result_def(TupleType)
    traits = traits_def(Pure())
    assembly_format = "$fields attr-dict `:` type($fields) `->` type($result)"

    def __init__(self, fields: Sequence[SSAValue | Operation]):
        types = [SSAValue.get(field).type for field in fields]
        super().__init__(operands=[fields], result_types=[TupleType(ArrayAttr(types))])

    def verify_(self) -> None:
        result_type = self.result.type
        assert isinstance(result_type, TupleType)
        _check_types("fields", self.fields.types, result_type.types.data)


@irdl_op_definition
class TupleGetOp(IRDLOperation):
    """Field `index` of a host tuple.

    %score = dy.tuple_get %h[1] : tuple<!dy.list<i64>, f64> -> f64
    """

    name = "dy.tuple_get"
    tuple = operand_def(TupleType)
    index = prop_def(IntegerAttr[I64])
    result = result_def()
    traits = traits_def(Pure())
    assembly_format = "$tuple `[` $index `]` attr-dict `:` type($tuple) `->` type($result)"

    def __init__(self, tuple_value: SSAValue | Operation, index: int):
        tuple_type = SSAValue.get(tuple_value).type
        assert isinstance(tuple_type, TupleType)
        super().__init__(
            operands=[tuple_value],
            result_types=[tuple_type.types.data[index]],
            properties={"index": IntegerAttr(index, i64)},
        )

    def verify_(self) -> None:
        tuple_type = self.tuple.type
        assert isinstance(tuple_type, TupleType)
        fields = tuple_type.types.data
        index = self.index.value.data
        if not 0 <= index < len(fields):
            raise VerifyException(f"field {index} out of range for {tuple_type}")
        if self.result.type != fields[index]:
            raise VerifyException(
                f"result type {self.result.type} is not field {index}'s type {fields[index]}"
            )


# ----------------------------------------------------------------------------- helpers


def op_name(op: Operation) -> str:
    """The name an op is written with, also for unregistered (torch) ops."""
    return op.op_name.data if isinstance(op, UnregisteredOp) else op.name


Dy = Dialect(
    "dy",
    [
        FuncOp,
        GraphOp,
        OutputOp,
        CallOp,
        IfOp,
        SwitchOp,
        WhileOp,
        ForOp,
        YieldOp,
        ConditionOp,
        BreakOp,
        ContinueOp,
        ReturnOp,
        ParamOp,
        ItemOp,
        DimOp,
        TrapOp,
        ScalarToTensorOp,
        ListEmptyOp,
        ListAppendOp,
        ListLenOp,
        ListRemoveOp,
        ListGetOp,
        ListStackOp,
        ListCatOp,
        ListSetOp,
        ListSliceOp,
        ListSortOp,
        ListToTensorOp,
        TupleOp,
        TupleGetOp,
    ],
    [ListType],
)
