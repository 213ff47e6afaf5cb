"""Kernels whose outer loop (images, row blocks, matrices) is parallel: results agree with
eager at every batch size, run-time or static, odd or not, with one or several threads,
from several Python threads at once, and with the OpenMP runtime absent."""

import ctypes
import os
import subprocess
import sys
import threading

import pytest
import torch
import torch.nn.functional as F

from runtime.llvm import threads
from tests.llvm.test_dynamic_shapes import batch, check_sizes, compile_function

TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
ODD_BATCHES = [1, 3, 17]


@pytest.fixture
def thread_count():
    """Restores the default (follow torch) after a test that fixes the team size."""
    yield threads.set_num_threads
    threads.set_num_threads(None)


def _convs(x, w1, b1, w2, w3):
    """A conv along the row (32x32 map), a strided one to odd filters, a short-row one."""
    y = F.relu(F.conv2d(x, w1, b1, padding=1))
    z = F.conv2d(y, w2, stride=2, padding=1)
    return z, F.conv2d(F.max_pool2d(y, 8), w3, padding=1)


def _conv_parameters():
    torch.manual_seed(0)
    return [
        torch.randn(32, 16, 3, 3) / 12,
        torch.randn(32) * 0.1,
        torch.randn(17, 32, 3, 3) / 17,
        torch.randn(32, 32, 3, 3) / 17,
    ]


@pytest.mark.parametrize("team", [1, 2])
def test_dynamic_batch_convolutions_agree_at_odd_batches(team, thread_count):
    parameters = _conv_parameters()
    compiled = compile_function(_convs, [torch.randn(2, 16, 32, 32)], parameters, [batch()])
    thread_count(team)
    check_sizes(compiled, _convs, parameters, lambda b: [torch.randn(b, 16, 32, 32)], ODD_BATCHES)


def test_static_batch_convolutions_agree():
    parameters = _conv_parameters()
    for size in (3, 8):
        inputs = [torch.randn(size, 16, 32, 32)]
        compiled = compile_function(_convs, inputs, parameters)
        for got, want in zip(compiled(*inputs), _convs(*inputs, *parameters)):
            torch.testing.assert_close(got, want, **TOLERANCE)


def _one_image_convs(x, w1, b1, w2, w3, w4):
    """Convolutions of one image that share their blocks of filters among threads: along
    the row (32 filters in 2 blocks; 17 filters in 17 blocks of 1, strided) and along the
    filters (64 filters on an 8x8 map), and a small one that does not (0.3 MFLOP)."""
    y = F.relu(F.conv2d(x, w1, b1, padding=1))
    z = F.conv2d(y, w2, stride=2, padding=1)
    return z, F.conv2d(F.max_pool2d(y, 8), w3, padding=1), F.conv2d(F.max_pool2d(y, 4), w4,
                                                                     padding=1)


@pytest.mark.parametrize("team", [1, 2])
def test_one_image_convolutions_sharing_filter_blocks_agree(team, thread_count):
    if threads.openmp_library() is None:
        pytest.skip("no libgomp or C compiler: kernels compile sequential")
    from runtime.llvm import kernels

    along_row = kernels.ConvShape(16, 34, 34, 32, 32, 32, 3, 3, 1, 1)
    along_filters = kernels.ConvShape(32, 10, 10, 64, 8, 8, 3, 3, 1, 1)
    for shape in (along_row, along_filters):
        block = kernels.conv_filter_block(shape)
        assert kernels.splits_filter_blocks(shape, block)
        assert "scf.forall" in kernels.conv_kernel("k", shape)
    parameters = [*_conv_parameters(), torch.randn(64, 32, 3, 3) / 17]
    x = torch.randn(1, 16, 32, 32)
    compiled = compile_function(_one_image_convs, [x], parameters)
    thread_count(team)
    special = x.clone()
    special[0, 3, 5, 7], special[0, 9, 0, 0], special[0, 15, 31, 2] = (
        float("nan"), float("inf"), float("-inf"))
    for inputs in ([x], [torch.randn(1, 16, 32, 32)], [special]):
        for got, want in zip(compiled(*inputs), _one_image_convs(*inputs, *parameters),
                             strict=True):
            torch.testing.assert_close(got, want, equal_nan=True, **TOLERANCE)


def _padded_convs(x, w, depthwise):
    """Paddings the conv kernels add per image (asymmetric ones from ``F.pad``, a
    depthwise one) and two they must leave to torch-mlir (a non-zero value, ``-0.0``)."""
    asymmetric = F.conv2d(F.pad(x, (0, 2, 1, 0)), w)
    strided = F.conv2d(F.pad(x, (1, 1, 2, 0)), w, stride=2)
    ones = F.conv2d(F.pad(x, (1, 1, 1, 1), value=1.0), w)
    negative_zero = F.conv2d(F.pad(x, (1, 1, 1, 1), value=-0.0), w)
    return asymmetric, strided, ones, negative_zero, F.conv2d(x, depthwise, padding=2, groups=16)


@pytest.mark.parametrize("dynamic", [False, True])
def test_convolutions_pad_each_image_as_eager_pads_the_batch(dynamic):
    torch.manual_seed(3)
    parameters = [torch.randn(16, 16, 3, 3) / 12, torch.randn(16, 1, 5, 5) / 5]
    if dynamic:
        compiled = compile_function(
            _padded_convs, [torch.randn(2, 16, 16, 16)], parameters, [batch()]
        )
        check_sizes(
            compiled, _padded_convs, parameters, lambda b: [torch.randn(b, 16, 16, 16)], ODD_BATCHES
        )
        return
    for size in (1, 3):
        inputs = [torch.randn(size, 16, 16, 16)]
        compiled = compile_function(_padded_convs, inputs, parameters)
        for got, want in zip(compiled(*inputs), _padded_convs(*inputs, *parameters)):
            torch.testing.assert_close(got, want, **TOLERANCE)


def _large_elementwise_and_reductions(x, scale):
    """Ops big enough to be split among threads (:mod:`runtime.llvm.parallel_generics`):
    elementwise with broadcasts, sums over the inner and the outer dimensions, a softmax,
    and positions (``linalg.index``) offset by the split."""
    y = torch.relu(x * scale + 1.0)
    positions = torch.arange(x.shape[-1], dtype=torch.float32)
    return (
        y,
        y.mean((2, 3)),
        y.sum(0),
        torch.softmax(x.flatten(1), dim=1),
        x * positions,
        (x > 0).sum(1),
    )


def test_large_generics_split_among_threads_agree_with_eager(thread_count):
    torch.manual_seed(4)
    scale = torch.randn(1, 32, 1, 1)
    compiled = compile_function(
        _large_elementwise_and_reductions, [torch.randn(2, 32, 32, 32)], [scale], [batch()]
    )
    for team in (1, 2):
        thread_count(team)
        check_sizes(
            compiled,
            _large_elementwise_and_reductions,
            [scale],
            lambda b: [torch.randn(b, 32, 32, 32)],
            ODD_BATCHES,
        )


def _linears(x, w1, b1, w2, b2):
    """512 -> 128 (row tiles of 4 in parallel, a 1-row tail), then 128 -> 10."""
    return F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)


def _linear_parameters():
    torch.manual_seed(1)
    return [
        torch.randn(128, 512) / 23,
        torch.randn(128) * 0.1,
        torch.randn(10, 128) / 11,
        torch.randn(10) * 0.1,
    ]


def test_dynamic_row_count_linears_agree_at_odd_counts():
    parameters = _linear_parameters()
    compiled = compile_function(_linears, [torch.randn(4, 512)], parameters, [batch()])
    check_sizes(
        compiled, _linears, parameters, lambda b: [torch.randn(b, 512)], [*ODD_BATCHES, 32, 197]
    )


@pytest.mark.parametrize("rows", [3, 8, 17, 32, 197])
def test_static_row_count_linears_agree(rows):
    parameters = _linear_parameters()
    inputs = [torch.randn(rows, 512)]
    compiled = compile_function(_linears, inputs, parameters)
    torch.testing.assert_close(compiled(*inputs)[0], _linears(*inputs, *parameters), **TOLERANCE)


def _attention(q, k, v):
    return torch.softmax(q @ k.transpose(1, 2) / 4.0, dim=-1) @ v


def test_dynamic_batch_matmuls_agree_at_odd_batches():
    torch.manual_seed(2)
    compiled = compile_function(
        _attention, [torch.randn(2, 9, 16) for _ in range(3)], (), [batch("b")] * 3
    )
    check_sizes(
        compiled, _attention, [], lambda b: [torch.randn(b, 9, 16) for _ in range(3)], ODD_BATCHES
    )


def test_concurrent_callers_of_a_parallel_kernel_agree_with_eager():
    """Four Python threads, each an OpenMP root with a team of its own, at different
    batch sizes through one compiled sub-graph."""
    parameters = _conv_parameters()
    compiled = compile_function(_convs, [torch.randn(2, 16, 32, 32)], parameters, [batch()])
    failures = []

    def worker(seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for call in range(12):
            x = torch.randn(1 + (seed + call) % 5, 16, 32, 32, generator=generator)
            for got, want in zip(compiled(x), _convs(x, *parameters)):
                if not torch.allclose(got, want, **TOLERANCE):
                    failures.append((seed, call))

    workers = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert not failures, f"{len(failures)} of 48 calls differ from eager: {failures[:5]}"


def test_parallel_loops_call_the_openmp_runtime_when_installed():
    if threads.openmp_library() is None:
        pytest.skip("no libgomp or C compiler: kernels compile sequential")
    parameters = _linear_parameters()
    compiled = compile_function(_linears, [torch.randn(4, 512)], parameters, [batch()])
    assert b"__kmpc_fork_call" in compiled.library_path.read_bytes()


def test_thread_count_follows_torch_unless_set(thread_count):
    assert threads.num_threads() == torch.get_num_threads()
    thread_count(3)
    assert threads.num_threads() == 3
    with pytest.raises(ValueError, match="positive int"):
        threads.set_num_threads(0)


def test_without_the_openmp_runtime_parallel_loops_run_sequentially(tmp_path):
    """``DYNN_OPENMP=0`` stands for a machine without libgomp or a C compiler."""
    script = (
        "import torch, tests.llvm.test_parallel_kernels as t\n"
        "from runtime.llvm import threads\n"
        "assert threads.openmp_library() is None\n"
        "p = t._linear_parameters()\n"
        "c = t.compile_function(t._linears, [torch.randn(4, 512)], p, [t.batch()])\n"
        "assert b'__kmpc' not in c.library_path.read_bytes()\n"
        "t.check_sizes(c, t._linears, p, lambda b: [torch.randn(b, 512)], [1, 17])\n"
    )
    environment = {**os.environ, "DYNN_OPENMP": "0", "HOME": str(tmp_path)}
    _run_script(script, environment)


def test_kernels_fork_from_eager_pytorchs_own_thread_pool(tmp_path):
    """Kernels and eager ops share libgomp's workers: no second OpenMP runtime is loaded,
    and a parallel kernel's region starts no thread of its own (after the compile, whose
    MLIR thread pool is counted in `before`). Run in a fresh process with a fresh cache (``HOME``), so that the JIT runs."""
    if threads.openmp_library() is None:
        pytest.skip("no libgomp or C compiler: kernels compile sequential")
    script = (
        "import torch, tests.llvm.test_parallel_kernels as t\n"
        "torch.set_num_threads(2)\n"
        "torch.randn(1 << 20).sin()\n"
        "count = lambda: len(__import__('os').listdir('/proc/self/task'))\n"
        "p = t._linear_parameters()\n"
        "c = t.compile_function(t._linears, [torch.randn(4, 512)], p, [t.batch()])\n"
        "before = count()\n"
        "t.check_sizes(c, t._linears, p, lambda b: [torch.randn(b, 512)], [1, 17, 64])\n"
        "maps = open('/proc/self/maps').read()\n"
        "assert 'libiomp' not in maps and 'libomp.so' not in maps, 'a second OpenMP runtime'\n"
        "assert count() == before, (before, count())\n"
    )
    _run_script(script, {**os.environ, "HOME": str(tmp_path)})


def test_kernels_leave_eager_pytorchs_thread_count_alone(thread_count):
    """The kernels' team size is the shim's own setting: fixing it, and running kernels
    with it, does not change ``torch.get_num_threads()`` in the calling thread."""
    if threads.openmp_library() is None:
        pytest.skip("no libgomp or C compiler: kernels compile sequential")
    parameters = _linear_parameters()
    compiled = compile_function(_linears, [torch.randn(4, 512)], parameters, [batch()])
    before = torch.get_num_threads()
    thread_count(1)
    check_sizes(compiled, _linears, parameters, lambda b: [torch.randn(b, 512)], [64])
    assert torch.get_num_threads() == before


def _run_script(script: str, environment: dict) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert completed.returncode == 0, completed.stderr[-2000:]


def test_team_sizes_are_fixed_unless_dynamic_teams_are_asked_for(monkeypatch):
    """``DYNN_OMP_DYNAMIC=1`` asks for libgomp's dynamic teams (``omp_set_dynamic``, around
    kernel regions only); unset or 0, teams are fixed. A fresh Python thread is a fresh
    OpenMP root, so each applies the setting anew."""
    if threads.openmp_library() is None:
        pytest.skip("no libgomp or C compiler: kernels compile sequential")
    shim = ctypes.CDLL(str(threads.openmp_library()))
    shim.dynn_omp_dynamic_teams.restype = ctypes.c_int
    seen = {}

    def probe(name: str) -> None:
        threads.prepare_calling_thread()
        seen[name] = shim.dynn_omp_dynamic_teams()

    for setting in ("unset", "1", "0"):
        if setting == "unset":
            monkeypatch.delenv(threads.DYNAMIC_VARIABLE, raising=False)
        else:
            monkeypatch.setenv(threads.DYNAMIC_VARIABLE, setting)
        worker = threading.Thread(target=probe, args=(setting,))
        worker.start()
        worker.join()
    assert seen == {"unset": 0, "1": 1, "0": 0}
