"""Printing and parsing are inverse: for every dy op, in the custom and the generic form,
print(parse(text)) is a fixpoint, both forms describe the same module, and the generic
form is accepted and verified by real MLIR (torch-mlir's bindings), which is what lets
outlined sub-graphs be handed to torch-mlir unchanged. Repeated types and signatures are
parsed once, and the checksum the caches store programs with catches any change. Errors in
IR text are `IRError`s pointing at the right line and column."""

from __future__ import annotations

import pytest
from xdsl.parser import Parser

from ir.dy import Dy
from ir.program import (
    IRError,
    ProgramContext,
    checked_text,
    parse_and_verify,
    parse_module,
    print_module,
    with_checksum,
)
from tests.support.snippets import SNIPPETS

OPS = sorted(SNIPPETS)


def _custom(text: str) -> str:
    return print_module(parse_and_verify(text))


def _generic(text: str) -> str:
    return print_module(parse_and_verify(text), generic=True)


def test_every_dy_op_has_a_snippet():
    assert {op.name for op in Dy.operations} <= set(SNIPPETS)


@pytest.mark.parametrize("op", OPS)
def test_snippet_uses_its_op(op: str):
    module = parse_and_verify(SNIPPETS[op])
    assert op in {nested.name for nested in module.walk()}


@pytest.mark.parametrize("op", OPS)
def test_custom_form_is_a_fixpoint(op: str):
    printed = _custom(SNIPPETS[op])
    assert _custom(printed) == printed


@pytest.mark.parametrize("op", OPS)
def test_generic_form_is_a_fixpoint_and_means_the_same(op: str):
    generic = _generic(SNIPPETS[op])
    assert generic.startswith('"builtin.module"()')
    assert _generic(generic) == generic
    assert _custom(generic) == _custom(SNIPPETS[op])


@pytest.fixture(scope="module")
def mlir_context():
    ir = pytest.importorskip("torch_mlir.ir")
    from torch_mlir.dialects import torch as torch_d

    with ir.Context() as ctx:
        torch_d.register_dialect(ctx)
        ctx.allow_unregistered_dialects = True
        yield ir


@pytest.mark.parametrize("op", OPS)
def test_generic_form_parses_and_verifies_in_mlir(mlir_context, op: str):
    module = mlir_context.Module.parse(_generic(SNIPPETS[op]))
    assert module.operation.verify()
    assert op in str(module)


def test_module_attributes_survive_both_forms():
    text = 'builtin.module attributes {dy.params = "w.safetensors"} {\n' + SNIPPETS["dy.func"] + "}"
    for printed in (_custom(text), _generic(text)):
        assert parse_module(printed).attributes["dy.params"].data == "w.safetensors"


REPEATS = """
dy.func @forward(%x: !torch.vtensor<[1,4],f32>) -> (!torch.vtensor<[1,4],f32>) {
  %a = "torch.aten.relu"(%x) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
  %b = "torch.aten.relu"(%a) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[1,4],f32>
  %c = "torch.aten.t"(%b) : (!torch.vtensor<[1,4],f32>) -> !torch.vtensor<[4,1],f32>
  %d = "torch.aten.t"(%c) : (!torch.vtensor<[4,1],f32>) -> !torch.vtensor<[1,4],f32>
  %g = "torch.prim.Opaque"(%d) : (!torch.vtensor<[1,4],f32>) -> !torch.Generator<"x>y">
  %h = "torch.prim.Opaque"(%d) : (!torch.vtensor<[1,4],f32>) -> !torch.Generator<"x>y">
  dy.return %d : !torch.vtensor<[1,4],f32>
}
"""


def test_repeated_types_and_signatures_are_parsed_once():
    """A dialect type or a line-ending signature seen before is looked up, not parsed again:
    the module is the one xDSL's own parser reads, and the repeats share one attribute."""
    module = parse_and_verify(REPEATS)
    reference = Parser(ProgramContext(), REPEATS).parse_module()
    assert print_module(module) == print_module(reference)
    assert print_module(module, generic=True) == print_module(reference, generic=True)
    a, b, c, d, g, h, _ = module.body.block.first_op.body.block.ops
    assert a.result_types[0] is b.result_types[0] is d.result_types[0]
    assert c.result_types[0] != a.result_types[0]
    assert g.result_types[0] is h.result_types[0]
    assert g.result_types[0].value.data == '"x>y"'  # a `>` in a string does not close the body


def test_a_checksum_recognises_any_change():
    text = print_module(parse_and_verify(REPEATS))
    stored = with_checksum(text)
    assert checked_text(stored) == text
    assert print_module(parse_module(stored)) == text  # the stored form still parses
    assert checked_text(stored[:-10]) is None  # truncated
    assert checked_text(stored.replace("[4,1]", "[4,2]")) is None  # edited
    assert checked_text(text) is None  # never had one
    keyed = with_checksum(text, "key-a")
    assert checked_text(keyed, "key-a") == text
    assert checked_text(keyed, "key-b") is None  # an intact entry stored under another key
    assert checked_text(keyed) is None


FUNC = "dy.func @forward(%x: i64) -> (i64) {\n"


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        (FUNC + "  %y = arith.addi %x, : i64\n}", 2, 23, "operand expected"),
        (FUNC + "  %y = dy.foo %x : i64\n}", 2, 8, "unknown operation 'dy.foo'"),
        ('"dy.bar"() : () -> ()', 1, 2, "unknown operation 'dy.bar'"),
        (FUNC + "  dy.return %x : i64\n", 3, 1, "in block definition"),
        (FUNC + "  dy.return %x : !torch.vtensor<[2,f32>\n}", 2, 36, "Expected integer literal"),
        (
            FUNC + "  %r = arith.addi %q, %x : i64\n  dy.return %r : i64\n}",
            2,
            3,
            "use of undefined value '%q'",
        ),
        ('"torch.aten.relu(%x) : (i64) -> i64\n' * 3, 1, 1, "End of file reached"),
    ],
    ids=[
        "missing-operand",
        "unknown-custom-op",
        "unknown-generic-op",
        "unterminated-region",
        "bad-type",
        "undefined-value",
        "unterminated-string",
    ],
)
def test_parse_errors_are_located(text: str, line: int, column: int, message: str):
    with pytest.raises(IRError) as caught:
        parse_and_verify(text, "prog.mlir")
    assert str(caught.value).startswith(f"prog.mlir:{line}:{column}: error: {message}")


@pytest.mark.parametrize(
    ("body", "line", "column", "message"),
    [
        (
            "  %f = arith.constant 1.0 : f64\n  dy.return %f : f64",
            3,
            3,
            "'dy.return' op values do not match the results of @forward",
        ),
        ("  dy.break %x : i64", 2, 3, "'dy.break' op is not inside the body"),
        (
            (
                "  %c = arith.constant true\n  %r = dy.if %c -> (i64) {\n    dy.yield %c : i1\n"
                "  } else {\n    dy.yield %x : i64\n  }\n  dy.return %r : i64"
            ),
            4,
            5,
            "'dy.yield' op values do not match what 'dy.if' expects",
        ),
        (
            (
                "  %r = dy.switch %x : i64 -> (i64) case 2 {\n    dy.yield %x : i64\n  } case 2 {\n"
                "    dy.yield %x : i64\n  } default {\n    dy.yield %x : i64\n  }\n"
                "  dy.return %r : i64"
            ),
            2,
            3,
            "'dy.switch' op has duplicate case values [2, 2]",
        ),
        (
            '  %w = dy.param "w" : !torch.vtensor<[?],f32>\n  dy.return %x : i64',
            2,
            3,
            "'dy.param' op result must have a static shape",
        ),
    ],
    ids=["return-type", "break-outside-loop", "yield-types", "duplicate-cases", "param-shape"],
)
def test_verifier_errors_are_located(body: str, line: int, column: int, message: str):
    with pytest.raises(IRError) as caught:
        parse_and_verify(f"{FUNC}{body}\n}}", "prog.mlir")
    assert str(caught.value).startswith(f"prog.mlir:{line}:{column}: error: {message}")
