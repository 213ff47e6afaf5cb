"""The types of torch-mlir's `torch` dialect that the project reasons about.

torch-mlir's FX importer emits `torch` ops that our programs carry verbatim, so that an
outlined sub-graph can be handed back to torch-mlir unchanged. The *ops* stay unregistered
(generic form, `"torch.aten.relu"(%x) : (...) -> ...`): there are thousands of them and
torch-mlir verifies them itself. The *types* are registered here because our verifiers need
to read them: a branch condition comes from a 0-d tensor, a parameter has a static shape,
a list of tensors has an element type. Torch types not listed here (`!torch.Generator`, ...)
still parse, as opaque types, and print back unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

from xdsl.dialects.builtin import (
    ArrayAttr,
    IntAttr,
    IntegerType,
    NoneAttr,
    i1,
)
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, TypeAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.mlir_lexer import MLIRTokenKind

DYNAMIC_DIM = -1
MAX_TYPE_NESTING = 10_000
"""How deep types and attributes may nest when parsed (`ir.parser` enforces it)."""


@irdl_attr_definition
class ValueTensorType(ParametrizedAttribute, TypeAttribute):
    """`!torch.vtensor<[2,?],f32>`: an immutable tensor with value semantics.

    `sizes` is None for an unranked tensor (`*`), a dimension of -1 is dynamic (`?`);
    `dtype` is None when unknown (`unk`).
    """

    name = "torch.vtensor"

    sizes: ArrayAttr[IntAttr] | NoneAttr
    dtype: Attribute

    def __init__(self, sizes: Sequence[int] | None, dtype: Attribute | None):
        super().__init__(
            NoneAttr() if sizes is None else ArrayAttr(IntAttr(s) for s in sizes),
            NoneAttr() if dtype is None else dtype,
        )

    @property
    def shape(self) -> tuple[int, ...] | None:
        if isinstance(self.sizes, NoneAttr):
            return None
        return tuple(s.data for s in self.sizes.data)

    @property
    def element_type(self) -> Attribute | None:
        return None if isinstance(self.dtype, NoneAttr) else self.dtype

    @property
    def has_static_shape(self) -> bool:
        shape = self.shape
        return shape is not None and DYNAMIC_DIM not in shape

    @property
    def numel(self) -> int | None:
        """The element count when the shape is static."""
        if not self.has_static_shape:
            return None
        count = 1
        for size in self.shape:
            count *= size
        return count

    def print_parameters(self, printer: Printer) -> None:
        shape = self.shape
        if shape is None and self.element_type is None:
            return  # torch-mlir spells the fully unknown tensor `!torch.vtensor`
        if shape is None:
            dims = "*"
        else:
            dims = "[" + ",".join("?" if d == DYNAMIC_DIM else str(d) for d in shape) + "]"
        printer.print_string(f"<{dims},")
        if self.element_type is None:
            printer.print_string("unk")
        else:
            printer.print_attribute(self.element_type)
        printer.print_string(">")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        if parser.parse_optional_punctuation("<") is None:
            return (NoneAttr(), NoneAttr())
        if parser.parse_optional_punctuation("*") is not None:
            sizes: Attribute = NoneAttr()
        else:
            dims = parser.parse_comma_separated_list(
                parser.Delimiter.SQUARE, lambda: _parse_dim(parser)
            )
            sizes = ArrayAttr(IntAttr(d) for d in dims)
        parser.parse_punctuation(",")
        if parser.parse_optional_keyword("unk") is not None:
            dtype: Attribute = NoneAttr()
        else:
            dtype = parser.parse_type()
        parser.parse_punctuation(">")
        return (sizes, dtype)


def _parse_dim(parser: AttrParser) -> int:
    if parser.parse_optional_punctuation("?") is not None:
        return DYNAMIC_DIM
    return parser.parse_integer(allow_boolean=False, allow_negative=False)


@irdl_attr_definition
class IntType(ParametrizedAttribute, TypeAttribute):
    """`!torch.int`: a Python int inside torch compute (sizes, dims, flags)."""

    name = "torch.int"


@irdl_attr_definition
class FloatType(ParametrizedAttribute, TypeAttribute):
    """`!torch.float`: a Python float inside torch compute."""

    name = "torch.float"


@irdl_attr_definition
class BoolType(ParametrizedAttribute, TypeAttribute):
    """`!torch.bool`: a Python bool inside torch compute."""

    name = "torch.bool"


@irdl_attr_definition
class NoneType(ParametrizedAttribute, TypeAttribute):
    """`!torch.none`: Python's None passed to an optional argument."""

    name = "torch.none"


@irdl_attr_definition
class StrType(ParametrizedAttribute, TypeAttribute):
    """`!torch.str`: a string argument (e.g. an approximation mode)."""

    name = "torch.str"


@irdl_attr_definition
class DeviceType(ParametrizedAttribute, TypeAttribute):
    """`!torch.Device`: a device argument."""

    name = "torch.Device"


@irdl_attr_definition
class NumberType(ParametrizedAttribute, TypeAttribute):
    """`!torch.number`: an int or a float, decided at run time."""

    name = "torch.number"


class _ShortSpelledElement:
    """Syntax of the torch types wrapping one element type (`list<int>`, `optional<int>`):
    torch-mlir writes the element without its `!torch.` prefix."""

    element: Attribute

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string("<" + _short_torch_spelling(self.element) + ">")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        # Nested element types are parsed here, not by `parse_type`: count their depth
        # where the parser counts it (`ir.parser.MLIRParser.nesting`).
        nesting = getattr(parser, "nesting", None)
        with nesting("types and attributes", MAX_TYPE_NESTING) if nesting else nullcontext():
            with parser.in_angle_brackets():
                return (_parse_short_torch_type(parser),)


@irdl_attr_definition
class ListType(_ShortSpelledElement, ParametrizedAttribute, TypeAttribute):
    """`!torch.list<int>`: a list argument built by `torch.prim.ListConstruct`.

    torch-mlir prints its element types without the `!torch.` prefix (`list<int>`,
    `list<vtensor<[2],f32>>`), so parsing and printing follow that spelling.
    """

    name = "torch.list"

    element: Attribute


@irdl_attr_definition
class OptionalType(_ShortSpelledElement, ParametrizedAttribute, TypeAttribute):
    """`!torch.optional<int>`: an argument that may be None."""

    name = "torch.optional"

    element: Attribute


_SHORT_NAMED_TYPES: dict[str, type[ParametrizedAttribute]] = {
    "int": IntType,
    "float": FloatType,
    "bool": BoolType,
    "none": NoneType,
    "str": StrType,
    "Device": DeviceType,
    "number": NumberType,
}
_SHORT_PARAMETRIC_TYPES: dict[str, type[ParametrizedAttribute]] = {
    "vtensor": ValueTensorType,
    "list": ListType,
    "optional": OptionalType,
}


def _parse_short_torch_type(parser: AttrParser) -> Attribute:
    """Parse a torch type spelled without its `!torch.` prefix, as in `list<int>`."""
    if parser._current_token.kind == MLIRTokenKind.EXCLAMATION_IDENT:
        parser.raise_error("expected a torch type without the '!torch.' prefix")
    keyword = parser.parse_identifier("torch type name")
    if keyword in _SHORT_NAMED_TYPES:
        return _SHORT_NAMED_TYPES[keyword]()
    if keyword in _SHORT_PARAMETRIC_TYPES:
        attr_type = _SHORT_PARAMETRIC_TYPES[keyword]
        return attr_type.new(attr_type.parse_parameters(parser))
    parser.raise_error(f"unknown torch type '{keyword}' in a list or optional type")


def _short_torch_spelling(type_attr: Attribute) -> str:
    text = str(type_attr)
    return text.removeprefix("!torch.")


def is_bool_dtype(dtype: Attribute | None) -> bool:
    return dtype == i1


def is_integer_dtype(dtype: Attribute | None) -> bool:
    return isinstance(dtype, IntegerType) and dtype != i1


Torch = Dialect(
    "torch",
    [],
    [
        ValueTensorType,
        IntType,
        FloatType,
        BoolType,
        NoneType,
        StrType,
        DeviceType,
        NumberType,
        ListType,
        OptionalType,
    ],
)
