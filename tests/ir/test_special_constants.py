"""Special constants (+-inf, NaN, -0.0, the extreme finite values of every dtype) survive
every step a constant takes: torch-mlir's import, our parser, our printer, real MLIR's
parser, and both backends.

MLIR spells a float that has no exact decimal form (inf, NaN) as the hexadecimal bit
pattern `dense<0xFF800000> : tensor<f32>`; a parser reading that as the integer 4286578688
silently turns every `-inf` mask into a large positive number. The round trip is checked
against real MLIR (torch-mlir's bindings) bit for bit, and the compiled programs against
eager PyTorch, NaNs, infinities and signs of zeros included.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import frontends.torch as dynn
from ir.program import parse_and_verify, print_module

FLOAT_DTYPES = {
    "f16": torch.float16,
    "bf16": torch.bfloat16,
    "f32": torch.float32,
    "f64": torch.float64,
}
INT_DTYPES = {
    "si64": torch.int64,
    "si32": torch.int32,
    "si8": torch.int8,
    "ui8": torch.uint8,
    "i1": torch.bool,
}
BITS = {16: torch.int16, 32: torch.int32, 64: torch.int64}


def float_specials(dtype: torch.dtype) -> list[float]:
    info = torch.finfo(dtype)
    smallest_subnormal = info.smallest_normal * info.eps
    return [math.inf, -math.inf, math.nan, -0.0, 0.0, info.max, -info.max, info.tiny,
            smallest_subnormal, -smallest_subnormal, info.eps]


def int_specials(dtype: torch.dtype) -> list[int]:
    if dtype == torch.bool:
        return [True, False]
    info = torch.iinfo(dtype)
    return sorted({info.min, info.max, 0, 1, info.min + 1, info.max - 1})


def _bit_patterns(values: torch.Tensor) -> list[int]:
    """The bit pattern of every element, as the unsigned integer MLIR's hex form spells."""
    width = values.element_size() * 8
    signed = values.view(BITS[width]).tolist()
    return [v & ((1 << width) - 1) for v in signed]


def _literal(spelling: str, count: int, body: str) -> str:
    return (
        "builtin.module {\n"
        f'  %0 = "torch.vtensor.literal"() <{{value = dense<{body}> : tensor<{count}x{spelling}>}}>'
        f" : () -> !torch.vtensor<[{count}],{spelling}>\n"
        "}\n"
    )


def _literal_cases():
    for spelling, dtype in FLOAT_DTYPES.items():
        values = torch.tensor(float_specials(dtype), dtype=dtype)
        yield spelling, values, "[" + ", ".join(f"0x{b:X}" for b in _bit_patterns(values)) + "]"
    for spelling, dtype in INT_DTYPES.items():
        values = torch.tensor(int_specials(dtype), dtype=dtype)
        yield spelling, values, "[" + ", ".join(str(v).lower() for v in values.tolist()) + "]"


LITERALS = list(_literal_cases())


@pytest.fixture(scope="module")
def mlir():
    ir = pytest.importorskip("torch_mlir.ir")
    from torch_mlir.dialects import torch as torch_dialect

    with ir.Context() as context:
        torch_dialect.register_dialect(context)
        yield ir


def _mlir_values(mlir, text: str) -> str:
    """What real MLIR reads `text` as, in its own canonical spelling."""
    module = mlir.Module.parse(text)
    return str(module.body.operations[0].attributes["value"])


def _our_values(text: str) -> list:
    op = next(iter(parse_and_verify(text).ops))
    return list(op.properties["value"].get_values())


@pytest.mark.parametrize(("spelling", "values", "body"), LITERALS, ids=[c[0] for c in LITERALS])
def test_literal_reads_as_mlir_reads_it(mlir, spelling, values, body):
    text = _literal(spelling, len(values), body)
    canonical = _mlir_values(mlir, text)
    ours = _our_values(text)
    if values.dtype.is_floating_point:
        as_read = torch.tensor(ours, dtype=torch.float64).to(values.dtype)
        assert _bit_patterns(as_read) == _bit_patterns(values)
    elif values.dtype == torch.bool:
        assert [bool(v) for v in ours] == values.tolist()  # xDSL reads a set i1 as -1
    else:
        assert [int(v) for v in ours] == values.tolist()
    # MLIR's own spelling (hex for inf and NaN) reads back the same, and what we print
    # of it means the same to MLIR.
    ours_of_canonical = _our_values(_literal(spelling, len(values), canonical[6:].split(">")[0]))
    assert [repr(v) for v in ours_of_canonical] == [repr(v) for v in ours]
    printed = print_module(parse_and_verify(text), generic=True)
    assert _mlir_values(mlir, printed) == canonical
    assert print_module(parse_and_verify(print_module(parse_and_verify(text)))) == print_module(
        parse_and_verify(text)
    )


@pytest.mark.parametrize("spelling", sorted(FLOAT_DTYPES))
def test_splat_of_every_float_special(mlir, spelling):
    dtype = FLOAT_DTYPES[spelling]
    for value in float_specials(dtype):
        (bits,) = _bit_patterns(torch.tensor([value], dtype=dtype))
        text = _literal(spelling, 3, f"0x{bits:X}")
        as_read = torch.tensor(_our_values(text), dtype=torch.float64).to(dtype)
        assert _bit_patterns(as_read) == [bits] * 3, value
        assert _mlir_values(mlir, print_module(parse_and_verify(text), generic=True)) == (
            _mlir_values(mlir, text)
        )


@pytest.mark.parametrize("value", float_specials(torch.float64), ids=repr)
def test_scalar_float_constant_round_trips(mlir, value):
    (bits,) = _bit_patterns(torch.tensor([value], dtype=torch.float64))
    text = (
        "builtin.module {\n"
        f'  %0 = "torch.constant.float"() <{{value = 0x{bits:X} : f64}}> : () -> !torch.float\n'
        "}\n"
    )
    op = next(iter(parse_and_verify(text).ops))
    (read,) = _bit_patterns(torch.tensor([op.properties["value"].value.data], dtype=torch.float64))
    assert read == bits
    printed = print_module(parse_and_verify(text), generic=True)
    module = mlir.Module.parse(printed)
    assert str(module.body.operations[0].attributes["value"]) == str(
        mlir.Module.parse(text).body.operations[0].attributes["value"]
    )


def test_hex_float_element_out_of_range_is_an_error():
    from ir.program import IRError

    with pytest.raises(IRError, match="out of range"):
        parse_and_verify(_literal("f16", 1, "0x1FC00"))
    with pytest.raises(IRError, match="leading minus"):
        parse_and_verify(_literal("f32", 1, "-0x7F800000"))


# End to end: constants a model writes in Python, through the frontend and both backends.


class FillWithEach(nn.Module):
    """One output per constant: `full_like` and `masked_fill` with it."""

    def __init__(self, constants):
        super().__init__()
        self.constants = constants

    def forward(self, x):
        outputs = []
        for constant in self.constants:
            outputs.append(torch.full_like(x, constant))
            outputs.append(x.masked_fill(x > 0, constant))
        return tuple(outputs)


class MaskedSoftmax(nn.Module):
    def forward(self, y):
        return y.masked_fill(y < 0, float("-inf")).softmax(-1)


class FullNegativeInfinity(nn.Module):
    def forward(self, y):
        return torch.maximum(torch.full_like(y, -math.inf), y) + torch.full_like(y, -math.inf)


class CausalAttentionScores(nn.Module):
    def forward(self, x):
        size = x.shape[-2]
        mask = torch.triu(torch.ones(size, size, dtype=torch.bool), diagonal=1)
        return (x @ x.transpose(-1, -2)).masked_fill(mask, float("-inf")).softmax(-1)


class MaskedAttention(nn.Module):
    def forward(self, q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _floats(dtype):
    return lambda: (torch.randn(2, 3).to(dtype),)


def _ints(dtype):
    if dtype == torch.bool:
        return lambda: (torch.rand(2, 3) > 0.5,)
    low = 0 if dtype == torch.uint8 else -3
    return lambda: (torch.randint(low, 4, (2, 3)).to(dtype),)


def _attention_inputs():
    q, k, v = (torch.randn(1, 2, 4, 8) for _ in range(3))
    mask = torch.rand(4, 4) > 0.3
    mask[:, 0] = True
    return q, k, v, mask


MODELS = {
    "masked_softmax": (MaskedSoftmax, lambda: (torch.randn(3, 5),)),
    "full_like_neg_inf": (FullNegativeInfinity, lambda: (torch.randn(3, 5),)),
    "causal_triu": (CausalAttentionScores, lambda: (torch.randn(2, 4, 6),)),
    "sdpa_bool_mask": (MaskedAttention, _attention_inputs),
    **{
        f"fill_{name}": (lambda d=dtype: FillWithEach(float_specials(d)), _floats(dtype))
        for name, dtype in FLOAT_DTYPES.items()
    },
    **{
        f"fill_{name}": (lambda d=dtype: FillWithEach(int_specials(d)), _ints(dtype))
        for name, dtype in INT_DTYPES.items()
    },
}
LLVM_UNSUPPORTED = {
    "fill_ui8": "the LLVM backend's boundary reads ui8 tensors as i8 (runtime/llvm/lowering.py)",
}


def _identical(actual, expected) -> bool:
    if isinstance(expected, tuple):
        return len(actual) == len(expected) and all(map(_identical, actual, expected))
    if actual.dtype != expected.dtype or actual.shape != expected.shape:
        return False
    if not expected.dtype.is_floating_point:
        return bool(torch.equal(actual, expected))
    if not torch.equal(torch.signbit(actual), torch.signbit(expected)):
        return False
    return bool(torch.allclose(actual, expected, rtol=1e-5, atol=1e-6, equal_nan=True))


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_compiled_model_with_special_constants_matches_eager(name, backend, tmp_path):
    if backend == "llvm" and name in LLVM_UNSUPPORTED:
        pytest.xfail(LLVM_UNSUPPORTED[name])
    make_model, make_inputs = MODELS[name]
    torch.manual_seed(0)
    model = make_model()
    program = dynn.compile(model, make_inputs(), backend=backend, cache_dir=tmp_path)
    assert program.stats.fallback == 0, program.stats.fallback_reasons
    for _ in range(3):
        inputs = make_inputs()
        with torch.no_grad():
            expected = model(*inputs)
        assert _identical(program(*inputs), expected), f"{name} on {inputs}"
