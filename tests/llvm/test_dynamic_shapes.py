"""Sub-graphs with dimensions known only at run time (`?`), ops whose result size depends
on data, run-time assertions and NaN semantics, at the level of `compile_subgraph`.

The sub-graphs are what torch-mlir's FX importer emits with torch.export dynamic shapes
(`dynamic_shapes=({0: Dim("b")},)`), or hand-written torch-dialect text."""

import re
import time
import warnings

import pytest
import torch
import torch.nn.functional as F

from benchmarks.subgraph_bench import (
    batch_norm_parameters,
    conv_weight,
    mobilenet_block,
    residual_block,
    transformer_layer,
    transformer_parameters,
)
from runtime.llvm import LoweringError, SubgraphAssertionError, compile_subgraph

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


class _AsModule(torch.nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, *args):
        return self.function(*args)


def export(function, inputs, parameters=(), dynamic=None) -> str:
    """torch-dialect text of `function`; `dynamic` holds one dim spec per input."""
    from torch_mlir import fx

    specs = None
    if dynamic is not None:
        specs = ((*dynamic, *([None] * len(parameters))),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = fx.export_and_import(
            _AsModule(function),
            *inputs,
            *parameters,
            dynamic_shapes=specs,
            output_type="torch",
            func_name="main",
        )
    return re.sub(r"\{-#.*#-\}", "", module.operation.get_asm(), flags=re.DOTALL)


def compile_function(function, inputs, parameters=(), dynamic=None):
    text = export(function, inputs, parameters, dynamic)
    bound = {len(inputs) + i: p for i, p in enumerate(parameters)}
    return compile_subgraph(text, "main", bound)


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def check_sizes(compiled, function, parameters, make_inputs, sizes):
    for size in sizes:
        inputs = make_inputs(size)
        expected = _as_tuple(function(*inputs, *parameters))
        actual = compiled(*inputs)
        assert len(actual) == len(expected)
        for got, want in zip(actual, expected):
            assert got.shape == want.shape, f"size {size}"
            torch.testing.assert_close(got, want, **TOLERANCE)


def batch(name="b"):
    return {0: torch.export.Dim(name)}


def test_dynamic_batch_linear_and_reductions():
    torch.manual_seed(0)

    def mlp(x, w1, b1, w2, b2):
        h = F.relu(F.linear(x, w1, b1))
        return F.linear(h, w2, b2), h.sum(), x.reshape(-1)

    parameters = [torch.randn(64, 24), torch.randn(64), torch.randn(10, 64), torch.randn(10)]
    compiled = compile_function(mlp, [torch.randn(3, 24)], parameters, [batch()])
    assert compiled.signature.outputs[0].shape == (None, 10)
    assert not compiled.signature.prelude.reads_data
    check_sizes(compiled, mlp, parameters, lambda b: [torch.randn(b, 24)], [0, 1, 2, 3, 5, 33])


def test_a_view_merging_two_run_time_sizes_keeps_both():
    """``nn.Linear`` on a ``[batch, tokens, d]`` tensor views it as ``[batch * tokens, d]``.
    torch-mlir took the tokens of such a view's input to be 1: the input's other use, the
    result, came back ``[batch, 1, d]`` and the kernels wrote past its end."""
    torch.manual_seed(0)

    def embed_and_project(tokens, table, positions, weight):
        x = F.embedding(tokens, table) + positions[:, : tokens.size(1)]
        return x, F.linear(x, weight).reshape(-1)

    parameters = [torch.randn(7, 16), torch.randn(1, 32, 16), torch.randn(16, 16)]
    dims = {0: torch.export.Dim("b"), 1: torch.export.Dim("s", max=32)}
    compiled = compile_function(
        embed_and_project, [torch.randint(0, 7, (2, 3))], parameters, [dims]
    )

    def tokens(size):
        return [torch.randint(0, 7, size)]

    check_sizes(
        compiled, embed_and_project, parameters, tokens, [(2, 3), (2, 5), (3, 4), (1, 7), (4, 2)]
    )


def test_sizes_after_sort_topk_scan_and_scatter_follow_from_input_sizes():
    """``tm_tensor`` ops (``sort``, ``topk``, ``cumsum``'s scan, ``scatter_add``) do not
    reify their result sizes; the prelude reads them off their ``outs``, so a top-2 router
    on a run-time number of tokens needs no data to size its results (the prelude had
    kept the whole linear layer and ran it twice per call)."""
    torch.manual_seed(5)

    def router(x, w):
        scores = F.softmax(F.linear(x, w), dim=-1)
        weights, chosen = torch.topk(scores, 2, dim=-1)
        order = torch.sort(scores, dim=-1, descending=True).indices
        running = torch.cumsum(scores, dim=0)
        counts = torch.zeros_like(scores).scatter_add(1, chosen, weights)
        return weights / weights.sum(-1, keepdim=True), chosen, order, running, counts

    parameters = [torch.randn(4, 16)]
    compiled = compile_function(router, [torch.randn(5, 16)], parameters, [batch()])
    assert not compiled.signature.prelude.reads_data
    check_sizes(compiled, router, parameters, lambda b: [torch.randn(b, 16)], [0, 1, 3, 17, 64])


def test_dynamic_inputs_with_static_results_need_no_prelude():
    """A loop condition over a dynamic batch (`(residual > tol).any()`): every result size is
    static and nothing is asserted, so the sub-graph has no prelude."""

    def condition(residual, step):
        return (step < 8) & (residual > 0.5).any()

    compiled = compile_function(
        condition, [torch.rand(3), torch.tensor(0)], dynamic=[batch(), None]
    )
    assert compiled.signature.prelude is None
    check_sizes(
        compiled, condition, [], lambda b: [torch.rand(b), torch.tensor(b % 9)], [1, 3, 8, 32]
    )


@pytest.mark.parametrize("dynamic", [None, [{0: torch.export.Dim("b")}]])
def test_a_value_returned_at_two_positions_gets_one_buffer_each(dynamic):
    """CSE makes `zeros(b, 4)` twice one value returned twice (an ACT loop's state); this
    crashed the process inside MLIR's buffer-results-to-out-params."""

    def state(x):
        return torch.zeros_like(x) + 1, torch.zeros_like(x) + 1, x * 2

    compiled = compile_function(state, [torch.randn(3, 4)], dynamic=dynamic)
    sizes = [1, 3, 8] if dynamic else [3]
    check_sizes(compiled, state, [], lambda b: [torch.randn(b, 4)], sizes)
    first, second, _ = compiled(torch.randn(3, 4))
    assert first.data_ptr() != second.data_ptr()


def test_dynamic_batch_convolutions():
    """The conv kernels loop over a run-time number of images (full, depthwise)."""
    torch.manual_seed(1)
    resblock = [
        conv_weight(16, 16),
        *batch_norm_parameters(16),
        conv_weight(16, 16),
        *batch_norm_parameters(16),
    ]
    compiled = compile_function(residual_block, [torch.randn(2, 16, 16, 16)], resblock, [batch()])
    check_sizes(
        compiled, residual_block, resblock, lambda b: [torch.randn(b, 16, 16, 16)], [1, 2, 3]
    )
    mobile = [
        conv_weight(32, 1),
        *batch_norm_parameters(32),
        conv_weight(64, 32, 1),
        *batch_norm_parameters(64),
    ]
    compiled = compile_function(mobilenet_block, [torch.randn(2, 32, 8, 8)], mobile, [batch()])
    check_sizes(compiled, mobilenet_block, mobile, lambda b: [torch.randn(b, 32, 8, 8)], [1, 4])


def test_static_batch_above_one_uses_the_batched_kernels():
    torch.manual_seed(2)
    parameters = [conv_weight(32, 32), *batch_norm_parameters(32)]

    def block(x, w, *bn):
        return F.relu(F.batch_norm(F.conv2d(x, w, padding=1), bn[2], bn[3], bn[0], bn[1]))

    inputs = [torch.randn(3, 32, 8, 8)]
    compiled = compile_function(block, inputs, parameters)
    assert compiled.signature.prelude is None
    torch.testing.assert_close(compiled(*inputs)[0], block(*inputs, *parameters), **TOLERANCE)


def test_dynamic_batch_grouped_and_short_row_convolutions():
    """Grouped convolutions (a loop over groups inside the one over images) and 4x4 maps
    (the kernel that vectorises along the filters)."""
    torch.manual_seed(5)
    grouped = conv_weight(32, 8)
    short = conv_weight(32, 32)

    def convs(x, g, s):
        y = F.relu(F.conv2d(x, g, padding=1, groups=4))
        return F.conv2d(F.max_pool2d(y, 2), s, padding=1)

    compiled = compile_function(convs, [torch.randn(2, 32, 8, 8)], [grouped, short], [batch()])
    check_sizes(compiled, convs, [grouped, short], lambda b: [torch.randn(b, 32, 8, 8)], [1, 3])


def test_token_count_from_1_to_197_is_one_kernel():
    """One compiled transformer layer runs every token count; no size compiles anew."""
    torch.manual_seed(3)
    parameters = transformer_parameters(64, 128)
    layer = lambda x, *p: transformer_layer(x, *p, heads=2)
    tokens = {1: torch.export.Dim("tokens", min=2, max=512)}
    compiled = compile_function(layer, [torch.randn(1, 16, 64)], parameters, [tokens])
    library = compiled.library_path
    check_sizes(
        compiled, layer, parameters, lambda t: [torch.randn(1, t, 64)], [1, 2, 5, 16, 17, 64, 197]
    )
    assert compiled.library_path == library
    assert len(compiled._result_sizes) == 7


def test_wrong_static_dims_are_rejected():
    compiled = compile_function(lambda x: x * 2, [torch.randn(2, 3)], (), [batch()])
    with pytest.raises(TypeError, match=r"float32\[\?,3\]"):
        compiled(torch.randn(2, 4))
    with pytest.raises(TypeError):
        compiled(torch.randn(2, 3, 1))


DATA_DEPENDENT = {
    "nonzero": (lambda x: torch.nonzero(x > 0), lambda: [torch.randn(4, 5)]),
    "index_select_argsort": (
        lambda x: torch.index_select(x, 0, torch.argsort(x[:, 0])),
        lambda: [torch.randn(6, 5)],
    ),
    "gather_argsort": (
        lambda x: torch.gather(x, 1, torch.argsort(x, 1)),
        lambda: [torch.randn(4, 5)],
    ),
    "topk": (lambda x: torch.topk(x, 2, 1), lambda: [torch.randn(4, 5)]),
    "sort": (lambda x: torch.sort(x, 1), lambda: [torch.randn(4, 5)]),
    "index_add": (
        lambda x, i: torch.zeros(3, 5).index_add_(0, i, x),
        lambda: [torch.randn(4, 5), torch.randint(0, 3, (4,))],
    ),
    "scatter": (
        lambda x, i: torch.zeros(4, 5).scatter(1, i, x),
        lambda: [torch.randn(4, 5), torch.stack([torch.randperm(5) for _ in range(4)])],
    ),
    "scatter_add": (
        lambda x, i: torch.zeros(4, 5).scatter_add(1, i, x),
        lambda: [torch.randn(4, 5), torch.randint(0, 5, (4, 5))],
    ),
}


@pytest.mark.parametrize("name", sorted(DATA_DEPENDENT))
def test_data_dependent_ops_compile_and_match_eager(name):
    function, make_inputs = DATA_DEPENDENT[name]
    torch.manual_seed(4)
    compiled = compile_function(function, make_inputs())
    sizes = set()
    for _ in range(4):
        inputs = make_inputs()
        expected = _as_tuple(function(*inputs))
        actual = compiled(*inputs)
        for got, want in zip(actual, expected, strict=True):
            torch.testing.assert_close(got, want, **TOLERANCE)
        sizes.add(tuple(actual[0].shape))
    if name == "nonzero":
        assert compiled.signature.prelude.reads_data and len(sizes) > 1


OUT_OF_RANGE_INDEXING = {
    "index": (lambda x, i: x[i], 0),
    "index_second_dim": (lambda x, i: x[:, i], 1),
    "index_select": (lambda x, i: torch.index_select(x, 0, i), 0),
    "gather": (lambda x, i: torch.gather(x, 1, i.unsqueeze(0).expand(3, -1)), 1),
    "embedding": (lambda x, i: F.embedding(i, x), 0),
    "index_put": (lambda x, i: x.index_put((i,), torch.ones(i.shape[0], x.shape[1])), 0),
    "index_add": (lambda x, i: x.index_add(0, i, torch.ones(i.shape[0], x.shape[1])), 0),
    "scatter_add": (
        lambda x, i: x.scatter_add(1, i.unsqueeze(0).expand(3, -1), torch.ones(3, i.shape[0])),
        1,
    ),
}


@pytest.mark.parametrize("name", sorted(OUT_OF_RANGE_INDEXING))
def test_out_of_range_indices_raise_instead_of_reading_or_writing_memory(name):
    """Every index eager accepts gives eager's result, negative ones included where eager
    counts from the end (``index_put`` reports them, as ``index_add``'s refusal looks the
    same: the program reruns them eagerly); every one eager refuses raises, never a value
    from outside the tensor."""
    function, axis = OUT_OF_RANGE_INDEXING[name]
    x = torch.randn(3, 6)
    n = x.shape[axis]
    compiled = compile_function(
        function, [x, torch.tensor([0, 1])], (), [None, {0: torch.export.Dim("k", max=64)}]
    )
    assert compiled.signature.checks_indices
    for index in ([0, 1], [n - 1, 0], [-1, -n], [n], [0, n + 40], [-n - 1], [10**9]):
        i = torch.tensor(index)
        try:
            expected = _as_tuple(function(x, i))
        except (IndexError, RuntimeError):
            with pytest.raises(SubgraphAssertionError, match="index is out of range"):
                compiled(x, i)
            continue
        if name.startswith("index_put") and min(index) < 0:
            with pytest.raises(SubgraphAssertionError, match="index is out of range"):
                compiled(x, i)
            continue
        for got, want in zip(compiled(x, i), expected, strict=True):
            torch.testing.assert_close(got, want, **TOLERANCE)


def test_boolean_mask_indexing_is_a_located_error_not_a_hang():
    """torch-mlir's conversion of `x[x > 0]` never ends; the back end refuses it at once."""
    text = export(lambda x: x[x > 0].sum(), [torch.randn(4, 5)])
    started = time.perf_counter()
    with pytest.raises(LoweringError, match=r"^torch\.aten\.index\.Tensor_hacked_twin: .*loc\("):
        compile_subgraph(text, "main", {})
    assert time.perf_counter() - started < 30


ASSERTING = """
func.func @main(%x: !torch.vtensor<[?],f32>, %y: !torch.vtensor<[?],f32>) -> !torch.vtensor<[?],f32> {
  %int0 = torch.constant.int 0
  %int1 = torch.constant.int 1
  %int5 = torch.constant.int 5
  %n = torch.aten.size.int %x, %int0 : !torch.vtensor<[?],f32>, !torch.int -> !torch.int
  %small = torch.aten.le.int %n, %int5 : !torch.int, !torch.int -> !torch.bool
  torch.runtime.assert %small, "Runtime assertion failed for expression u0 <= 5"
  %sum = torch.aten.add.Tensor %x, %y, %int1 : !torch.vtensor<[?],f32>, !torch.vtensor<[?],f32>, !torch.int -> !torch.vtensor<[?],f32>
  return %sum : !torch.vtensor<[?],f32>
}
"""


def test_run_time_assertions_raise_instead_of_running():
    compiled = compile_subgraph(ASSERTING, "main", {})
    x = torch.randn(4)
    torch.testing.assert_close(compiled(x, x)[0], x + x)
    with pytest.raises(SubgraphAssertionError, match="u0 <= 5"):
        compiled(torch.randn(6), torch.randn(6))
    with pytest.raises(SubgraphAssertionError, match="mismatched size for broadcast"):
        compiled(torch.randn(3), torch.randn(4))


SPECIAL = torch.tensor(
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        -0.0,
        0.0,
        -2.0,
        0.5,
        3.0,
        -1.0,
        1.0,
        6.0,
        7.0,
        -0.5,
        1e-45,
        -1e-45,
        2.5,
    ]
)
OTHER = torch.tensor(
    [
        0.0,
        float("nan"),
        1.0,
        0.0,
        -0.0,
        float("inf"),
        float("nan"),
        -3.0,
        -1.0,
        1.0,
        6.0,
        -7.0,
        -0.0,
        0.0,
        1.0,
        -2.5,
    ]
)
SPECIAL_OPS = {
    "clamp": lambda x, y: torch.clamp(x, -1, 1),
    "clamp_min": lambda x, y: torch.clamp(x, min=0.0),
    "clamp_max": lambda x, y: torch.clamp(x, max=0.5),
    "maximum": lambda x, y: torch.maximum(x, y),
    "minimum": lambda x, y: torch.minimum(x, y),
    "relu": lambda x, y: F.relu(x),
    "relu6": lambda x, y: F.relu6(x),
    "hardtanh": lambda x, y: F.hardtanh(x),
    "hardsigmoid": lambda x, y: F.hardsigmoid(x),
    "hardswish": lambda x, y: F.hardswish(x),
    "sigmoid_softplus": lambda x, y: torch.sigmoid(x) + F.softplus(x),
    "where": lambda x, y: torch.where(x > 0, x, y),
    "max_min_all": lambda x, y: torch.stack([x.max(), x.min(), x.sum(), x.mean()]),
    "amax_argmax": lambda x, y: (x.reshape(4, 4).amax(1), x.reshape(4, 4).argmax(1)),
    "arg_extrema": lambda x, y: tuple(
        f(t)
        for t in (x.reshape(4, 4), y.reshape(4, 4))
        for f in (
            lambda t: t.argmax(1),
            lambda t: t.argmin(0),
            lambda t: t.argmax(),
            lambda t: t.max(1).indices,
            lambda t: t.min(0).indices,
        )
    ),
    "max_pool": lambda x, y: F.max_pool2d(x.reshape(1, 1, 4, 4), 2),
    "softmax_logsumexp": lambda x, y: (
        torch.softmax(x.reshape(4, 4), 1),
        torch.logsumexp(x.reshape(4, 4), 1),
    ),
    "arithmetic": lambda x, y: torch.stack([x / y, x + y, x * 0.0, -x, x.abs()]),
    "math": lambda x, y: torch.stack(
        [torch.sqrt(x), torch.log(x), torch.exp(x), torch.rsqrt(x), torch.floor(x), torch.round(x)]
    ),
    "comparisons": lambda x, y: torch.stack([x == y, x != y, x < y, x >= y, torch.isnan(x)]),
    "sort_topk": lambda x, y: (
        torch.sort(x)[0],
        torch.sort(x, descending=True)[0],
        torch.topk(x, 3)[0],
    ),
}


def assert_same_special_values(got: torch.Tensor, want: torch.Tensor) -> None:
    """NaN where eager has NaN, the same infinities, the same sign of every zero."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if not want.is_floating_point():
        assert torch.equal(got, want)
        return
    assert torch.equal(torch.isnan(got), torch.isnan(want))
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    assert torch.equal(got[torch.isinf(got)], want[torch.isinf(want)])
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite], want[finite], **TOLERANCE)
    zeros = (got == 0) & (want == 0)
    assert torch.equal(torch.signbit(got[zeros]), torch.signbit(want[zeros]))


def test_special_values_match_eager():
    """Every op above in one sub-graph (one compile): NaN, infinities and signed zeros as
    eager gives them."""
    names = sorted(SPECIAL_OPS)

    def all_ops(x, y):
        return tuple(r for name in names for r in _as_tuple(SPECIAL_OPS[name](x, y)))

    compiled = compile_function(all_ops, [SPECIAL, OTHER])
    labels = [name for name in names for _ in _as_tuple(SPECIAL_OPS[name](SPECIAL, OTHER))]
    for label, got, want in zip(
        labels, compiled(SPECIAL, OTHER), all_ops(SPECIAL, OTHER), strict=True
    ):
        try:
            assert_same_special_values(got, want)
        except AssertionError as error:
            raise AssertionError(f"{label}: got {got.tolist()}, eager {want.tolist()}") from error


def test_symbolic_shape_annotations_are_accepted():
    """`torch.symbolic_int` / `torch.bind_symbolic_shape` (the importer's
    import_symbolic_shape_expressions) are erased, not a lowering failure."""
    from torch_mlir import fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = fx.export_and_import(
            _AsModule(lambda x: torch.relu(x) * 2),
            torch.randn(3, 4),
            dynamic_shapes=(({0: torch.export.Dim("b")},),),
            output_type="torch",
            func_name="main",
            import_symbolic_shape_expressions=True,
        )
    text = re.sub(r"\{-#.*#-\}", "", module.operation.get_asm(), flags=re.DOTALL)
    assert "torch.bind_symbolic_shape" in text
    compiled = compile_subgraph(text, "main", {})
    x = torch.randn(5, 4)
    torch.testing.assert_close(compiled(x)[0], torch.relu(x) * 2)


INDEX_PUT = """
func.func @main(%out: !torch.vtensor<[6,2],f32>, %rows: !torch.vtensor<[?],si64>,
                %cols: !torch.vtensor<[?],si64>, %values: !torch.vtensor<[?,2],f32>,
                %flat: !torch.vtensor<[?],f32>)
    -> (!torch.vtensor<[6,2],f32>, !torch.vtensor<[6,2],f32>, !torch.vtensor<[6,2],f32>,
        !torch.vtensor<[?],f32>) {
  %false = torch.constant.bool false
  %true = torch.constant.bool true
  %none = torch.constant.none
  %int0 = torch.constant.int 0
  %int1 = torch.constant.int 1
  %rows_only = torch.prim.ListConstruct %rows : (!torch.vtensor<[?],si64>) -> !torch.list<vtensor>
  %both = torch.prim.ListConstruct %rows, %cols : (!torch.vtensor<[?],si64>, !torch.vtensor<[?],si64>) -> !torch.list<vtensor>
  %put = torch.aten.index_put.hacked_twin %out, %rows_only, %values, %false : !torch.vtensor<[6,2],f32>, !torch.list<vtensor>, !torch.vtensor<[?,2],f32>, !torch.bool -> !torch.vtensor<[6,2],f32>
  %added = torch.aten.index_put.hacked_twin %out, %rows_only, %values, %true : !torch.vtensor<[6,2],f32>, !torch.list<vtensor>, !torch.vtensor<[?,2],f32>, !torch.bool -> !torch.vtensor<[6,2],f32>
  %pairs = torch.aten.index_put.hacked_twin %out, %both, %flat, %false : !torch.vtensor<[6,2],f32>, !torch.list<vtensor>, !torch.vtensor<[?],f32>, !torch.bool -> !torch.vtensor<[6,2],f32>
  %n = torch.aten.size.int %rows, %int0 : !torch.vtensor<[?],si64>, !torch.int -> !torch.int
  %at_least_one = torch.prim.max.int %n, %int1 : !torch.int, !torch.int -> !torch.int
  %size = torch.prim.ListConstruct %at_least_one : (!torch.int) -> !torch.list<int>
  %ones = torch.aten.ones %size, %none, %none, %none, %none : !torch.list<int>, !torch.none, !torch.none, !torch.none, !torch.none -> !torch.vtensor<[?],f32>
  return %put, %added, %pairs, %ones : !torch.vtensor<[6,2],f32>, !torch.vtensor<[6,2],f32>, !torch.vtensor<[6,2],f32>, !torch.vtensor<[?],f32>
}
"""


def test_index_put_with_a_run_time_index_count_down_to_zero():
    """`out[idx] = v` (and `+=`, and `out[i, j] = v`) where the number of selected rows is
    data-dependent and may be 0: torch-mlir broadcast an empty run-time index to one row
    and scattered through a garbage index (a segmentation fault). The program's own
    `prim.max.int` keeps its meaning."""
    compiled = compile_subgraph(INDEX_PUT, "main", {})
    out = torch.randn(6, 2)
    for count in (0, 1, 4, 0, 6):
        rows, cols = torch.randperm(6)[:count], torch.randint(0, 2, (count,))
        values, flat = torch.randn(count, 2), torch.randn(count)
        expected = [
            out.clone().index_put_((rows,), values),
            out.clone().index_put_((rows,), values, accumulate=True),
            out.clone().index_put_((rows, cols), flat),
            torch.ones(max(count, 1)),
        ]
        for got, want in zip(compiled(out, rows, cols, values, flat), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_two_nonzeros_of_one_sub_graph_do_not_share_buffers():
    """Each `nonzero` scatters into a zero-filled buffer; one-shot bufferisation used to
    let the second one's `arange * mask` overwrite that buffer (tm-tensor-bufferize's
    casts hid the later read), so the second result started from the first's values."""

    def both(x):
        return torch.nonzero(x > 0), torch.nonzero(x <= 0)

    compiled = compile_function(both, [torch.randn(8)], dynamic=[{0: torch.export.Dim("n")}])
    generator = torch.Generator().manual_seed(3)
    for size in (8, 5, 16, 1):
        x = torch.randn(size, generator=generator)
        for got, want in zip(compiled(x), both(x), strict=True):
            assert torch.equal(got, want)
