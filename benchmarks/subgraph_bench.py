"""Micro-benchmark of the LLVM back end on single sub-graphs, at batch 1 or on a batch axis.

Each workload is a straight-line PyTorch function whose parameters are
explicit arguments; it is exported with ``torch_mlir.fx.export_and_import``,
compiled with ``runtime.llvm.compile_subgraph`` (parameters bound), and timed
against eager PyTorch (default thread count and 1 thread) in the same process,
round-robin. Speedups are given for medians and for best times; the latter are
steadier when other jobs share the cores.

    python benchmarks/subgraph_bench.py [--repeats N] [--only NAME ...] [--batch 1 8 32]

With ``--batch``, each workload is compiled once with a run-time batch dimension
(``torch.export.Dim`` on dimension 0 of every input) and timed at each batch size, per
image, interleaved with eager at the same size; ours follows torch's thread count
(``runtime.llvm.threads``), so both are also timed with one thread.
"""

import argparse
import dataclasses
import functools
import os
import pathlib
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from runtime.llvm import compile_subgraph


@dataclasses.dataclass
class Workload:
    """A function of (inputs..., parameters...), with example tensors for each."""

    name: str
    function: Callable[..., object]
    inputs: list[torch.Tensor]
    parameters: list[torch.Tensor]

    def eager(self, *inputs: torch.Tensor):
        return self.function(*inputs, *self.parameters)

    def bound_args(self) -> dict[int, torch.Tensor]:
        return {len(self.inputs) + i: p for i, p in enumerate(self.parameters)}


class _AsModule(torch.nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, *args):
        return self.function(*args)


def export_torch_dialect(
    function: Callable, example_args: list[torch.Tensor], generic: bool = False,
    batched_inputs: int = 0,
) -> str:
    """The torch-dialect text of `function`, as the host's outlining pass would hand it over;
    dimension 0 of the first `batched_inputs` arguments is one run-time batch size."""
    from torch_mlir import fx

    dynamic_shapes = None
    if batched_inputs:
        batch = torch.export.Dim("batch")
        dynamic_shapes = (tuple({0: batch} if i < batched_inputs else None
                                for i in range(len(example_args))),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = fx.export_and_import(
            _AsModule(function), *example_args, output_type="torch", func_name="main",
            dynamic_shapes=dynamic_shapes,
        )
    text = module.operation.get_asm(print_generic_op_form=generic)
    return re.sub(r"\{-#.*#-\}", "", text, flags=re.DOTALL)


def batch_norm_parameters(channels: int) -> list[torch.Tensor]:
    return [
        torch.rand(channels) + 0.5,
        torch.randn(channels) * 0.1,
        torch.randn(channels) * 0.1,
        torch.rand(channels) + 0.5,
    ]


def conv_weight(out_channels: int, in_channels: int, kernel: int = 3) -> torch.Tensor:
    return torch.randn(out_channels, in_channels, kernel, kernel) / (in_channels * kernel**2) ** 0.5


def _bn(x, gamma, beta, mean, var):
    return F.batch_norm(x, mean, var, gamma, beta, training=False)


def mlp(x, w1, b1, w2, b2, w3, b3):
    return F.linear(F.relu(F.linear(F.relu(F.linear(x, w1, b1)), w2, b2)), w3, b3)


def _conv_bias(x, w, b):
    return F.conv2d(x, w, b, padding=1)


def conv_bn_relu(x, w, *bn):
    return F.relu(_bn(F.conv2d(x, w, padding=1), *bn))


def residual_block(x, w1, g1, b1, m1, v1, w2, g2, b2, m2, v2):
    y = F.relu(_bn(F.conv2d(x, w1, padding=1), g1, b1, m1, v1))
    return F.relu(_bn(F.conv2d(y, w2, padding=1), g2, b2, m2, v2) + x)


def mobilenet_block(x, w_dw, g1, b1, m1, v1, w_pw, g2, b2, m2, v2):
    y = F.relu(_bn(F.conv2d(x, w_dw, padding=1, groups=x.shape[1]), g1, b1, m1, v1))
    return F.relu(_bn(F.conv2d(y, w_pw), g2, b2, m2, v2))


def vgg_stage(x, w, *bn):
    return F.max_pool2d(F.relu(_bn(F.conv2d(x, w, padding=1), *bn)), 2)


def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, dim=1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def exit_head(features, w, b):
    """Early-exit classifier: pooled features -> logits -> confidence test and prediction."""
    logits = F.linear(features.mean(dim=(2, 3)), w, b)
    probabilities = torch.softmax(logits, dim=1)
    entropy = -(probabilities * torch.log(probabilities)).sum()
    confidence = probabilities.max()
    return confidence >= 0.5, probabilities.argmax(dim=1), entropy


def transformer_layer(x, w_qkv, b_qkv, w_out, b_out, g1, beta1, w_ff1, b_ff1, w_ff2, b_ff2, g2,
                      beta2, heads: int = 4):
    """Post-LayerNorm BERT encoder layer (examples/dynn/_common.py's TransformerLayer):
    mm on 2-D views of 3-D activations, two bmm with computed operands, softmax,
    GELU and LayerNorm decomposed by torch-mlir."""
    batch, length, hidden = x.shape
    q, k, v = F.linear(x, w_qkv, b_qkv).view(batch, length, 3, heads, -1).permute(2, 0, 3, 1, 4)
    scores = torch.matmul(q, k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    context = torch.matmul(F.softmax(scores, dim=-1), v)
    context = context.transpose(1, 2).reshape(batch, length, hidden)
    x = F.layer_norm(x + F.linear(context, w_out, b_out), (hidden,), g1, beta1)
    ffn = F.linear(F.gelu(F.linear(x, w_ff1, b_ff1)), w_ff2, b_ff2)
    return F.layer_norm(x + ffn, (hidden,), g2, beta2)


def transformer_parameters(hidden: int, ffn: int) -> list[torch.Tensor]:
    linear = lambda o, i: [torch.randn(o, i) / i**0.5, torch.randn(o) * 0.1]
    norm = lambda: [torch.rand(hidden) + 0.5, torch.randn(hidden) * 0.1]
    return [*linear(3 * hidden, hidden), *linear(hidden, hidden), *norm(),
            *linear(ffn, hidden), *linear(hidden, ffn), *norm()]


def workloads() -> list[Workload]:
    torch.manual_seed(0)
    linear = lambda o, i: [torch.randn(o, i) / i**0.5, torch.randn(o) * 0.1]
    return [
        Workload(
            "mlp_256",
            mlp,
            [torch.randn(1, 256)],
            [*linear(256, 256), *linear(256, 256), *linear(10, 256)],
        ),
        Workload(
            "stem_3x32",
            conv_bn_relu,
            [torch.randn(1, 3, 32, 32)],
            [conv_weight(16, 3), *batch_norm_parameters(16)],
        ),
        Workload(
            "conv_bn_relu_16x32",
            conv_bn_relu,
            [torch.randn(1, 16, 32, 32)],
            [conv_weight(16, 16), *batch_norm_parameters(16)],
        ),
        Workload(
            "resblock_16x32",
            residual_block,
            [torch.randn(1, 16, 32, 32)],
            [
                conv_weight(16, 16),
                *batch_norm_parameters(16),
                conv_weight(16, 16),
                *batch_norm_parameters(16),
            ],
        ),
        Workload(
            "resblock_32x16",
            residual_block,
            [torch.randn(1, 32, 16, 16)],
            [
                conv_weight(32, 32),
                *batch_norm_parameters(32),
                conv_weight(32, 32),
                *batch_norm_parameters(32),
            ],
        ),
        Workload(
            "resblock_64x8",
            residual_block,
            [torch.randn(1, 64, 8, 8)],
            [
                conv_weight(64, 64),
                *batch_norm_parameters(64),
                conv_weight(64, 64),
                *batch_norm_parameters(64),
            ],
        ),
        Workload(
            "mobilenet_32x16",
            mobilenet_block,
            [torch.randn(1, 32, 16, 16)],
            [
                conv_weight(32, 1),
                *batch_norm_parameters(32),
                conv_weight(64, 32, 1),
                *batch_norm_parameters(64),
            ],
        ),
        Workload(
            "vgg_64x32",
            vgg_stage,
            [torch.randn(1, 64, 32, 32)],
            [conv_weight(64, 64), *batch_norm_parameters(64)],
        ),
        Workload(
            "vgg_256x8",
            vgg_stage,
            [torch.randn(1, 256, 8, 8)],
            [conv_weight(256, 256), *batch_norm_parameters(256)],
        ),
        Workload(
            "vgg_512x2",
            vgg_stage,
            [torch.randn(1, 512, 2, 2)],
            [conv_weight(512, 512), *batch_norm_parameters(512)],
        ),
        Workload(
            "lstm_cell_128",
            lstm_cell,
            [torch.randn(1, 64), torch.randn(1, 128), torch.randn(1, 128)],
            [
                *linear(512, 64)[:1],
                torch.randn(512, 128) / 128**0.5,
                torch.randn(512) * 0.1,
                torch.randn(512) * 0.1,
            ],
        ),
        Workload("exit_head_64", exit_head, [torch.randn(1, 64, 8, 8)], linear(10, 64)),
        Workload(
            "transformer_32x128",
            transformer_layer,
            [torch.randn(1, 32, 128)],
            transformer_parameters(128, 512),
        ),
        Workload("conv_32x32", _conv_bias, [torch.randn(1, 32, 32, 32)],
                 [conv_weight(32, 32), torch.randn(32) * 0.1]),
        Workload("linear_512", F.linear, [torch.randn(1, 512)], linear(512, 512)),
    ]


def compile_workload(workload: Workload, cache_dir: pathlib.Path | None = None):
    text = export_torch_dialect(workload.function, workload.inputs + workload.parameters)
    return compile_subgraph(text, "main", workload.bound_args(), cache_dir)


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def max_abs_error(expected, actual) -> float:
    return max(
        (e.double() - a.double()).abs().max().item() for e, a in zip(_as_tuple(expected), actual)
    )


def interleaved_samples(
    runs: list[tuple[Callable, int]], repeats: int, calls_per_sample: int
) -> list[list[float]]:
    """Seconds per call of each (function, torch thread count), sampled round-robin
    so that all of them share the machine's noise."""
    samples: list[list[float]] = [[] for _ in runs]
    default_threads = torch.get_num_threads()
    for _ in range(repeats):
        for (run, threads), run_samples in zip(runs, samples):
            torch.set_num_threads(threads)
            start = time.perf_counter()
            for _ in range(calls_per_sample):
                run()
            run_samples.append((time.perf_counter() - start) / calls_per_sample)
    torch.set_num_threads(default_threads)
    return samples


def _calls_per_sample(call: Callable) -> int:
    probe = time.perf_counter()
    call()
    return max(1, min(200, int(2e-3 / max(time.perf_counter() - probe, 1e-7))))


def batch_axis(selected: list[Workload], batches: list[int], repeats: int) -> None:
    """Per-image times at each batch size: one compile with a run-time batch dimension,
    timed with the default thread count (eager and ours) and with one thread."""
    threads = torch.get_num_threads()
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} on "
          f"{os.cpu_count()} cores; us per image, best of {repeats}")
    print(f"{'workload':<20} {'batch':>5} {f'eager {threads}T':>9} {'eager 1T':>9} "
          f"{f'ours {threads}T':>9} {'ours 1T':>9} {f'vs {threads}T':>7} {'vs 1T':>7} "
          f"{'max abs err':>12}")
    for workload in selected:
        batched = len(workload.inputs)
        text = export_torch_dialect(
            workload.function, [torch.cat([x, x]) for x in workload.inputs] + workload.parameters,
            batched_inputs=batched)
        compiled = compile_subgraph(text, "main", workload.bound_args())
        for size in batches:
            torch.manual_seed(size)
            inputs = [torch.randn(size, *x.shape[1:]) for x in workload.inputs]
            error = max_abs_error(workload.eager(*inputs), compiled(*inputs))
            eager_call = functools.partial(workload.eager, *inputs)
            ours_call = functools.partial(compiled, *inputs)
            samples = interleaved_samples(
                [(eager_call, threads), (eager_call, 1), (ours_call, threads), (ours_call, 1)],
                repeats, _calls_per_sample(ours_call))
            eager, eager_single, ours, ours_single = (min(s) / size for s in samples)
            print(f"{workload.name:<20} {size:>5} {eager * 1e6:>9.1f} {eager_single * 1e6:>9.1f} "
                  f"{ours * 1e6:>9.1f} {ours_single * 1e6:>9.1f} {eager / ours:>6.2f}x "
                  f"{eager_single / ours:>6.2f}x {error:>12.2e}")
            sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--batch", type=int, nargs="*", default=None,
                        help="batch sizes: time per image with a run-time batch dimension")
    options = parser.parse_args(argv)
    selected = [w for w in workloads() if options.only is None or w.name in options.only]
    if options.batch:
        batch_axis(selected, options.batch, options.repeats)
        return
    threads = torch.get_num_threads()
    header = (
        f"{'workload':<20} {'compile s':>9} {f'eager {threads}T us':>12} "
        f"{'eager 1T us':>12} {'ours us':>10} {f'vs {threads}T':>8} {'vs 1T':>8} "
        f"{f'best {threads}T':>8} {'best 1T':>8} {'max abs err':>12}"
    )
    print(header)
    print("-" * len(header))
    ratios: dict[str, list[float]] = {"median": [], "median 1T": [], "best": [], "best 1T": []}
    with tempfile.TemporaryDirectory() as cache_dir:
        for workload in selected:
            start = time.perf_counter()
            compiled = compile_workload(workload, pathlib.Path(cache_dir))
            compile_seconds = time.perf_counter() - start
            error = max_abs_error(workload.eager(*workload.inputs), compiled(*workload.inputs))
            eager_call = functools.partial(workload.eager, *workload.inputs)
            ours_call = functools.partial(compiled, *workload.inputs)
            for _ in range(10):
                eager_call(), ours_call()
            probe = time.perf_counter()
            ours_call()
            calls = max(1, min(200, int(2e-3 / max(time.perf_counter() - probe, 1e-7))))
            samples = interleaved_samples(
                [(eager_call, threads), (eager_call, 1), (ours_call, threads)],
                options.repeats,
                calls,
            )
            eager, eager_single, ours = (statistics.median(s) for s in samples)
            best_eager, best_eager_single, best_ours = (min(s) for s in samples)
            row = {
                "median": eager / ours,
                "median 1T": eager_single / ours,
                "best": best_eager / best_ours,
                "best 1T": best_eager_single / best_ours,
            }
            for key, value in row.items():
                ratios[key].append(value)
            print(
                f"{workload.name:<20} {compile_seconds:>9.2f} {eager * 1e6:>12.1f} "
                f"{eager_single * 1e6:>12.1f} {ours * 1e6:>10.1f} "
                + " ".join(f"{value:>7.2f}x" for value in row.values())
                + f" {error:>12.2e}"
            )
            sys.stdout.flush()
    geomeans = {key: statistics.geometric_mean(values) for key, values in ratios.items()}
    print(
        f"geomean speedup of medians: {geomeans['median']:.2f}x over eager with {threads} "
        f"threads, {geomeans['median 1T']:.2f}x over eager with 1 thread; of best times: "
        f"{geomeans['best']:.2f}x and {geomeans['best 1T']:.2f}x"
    )


if __name__ == "__main__":
    main()
