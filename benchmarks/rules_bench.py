"""`python -m benchmarks.rules_bench`: rule-set evaluation and the compiled NeSy model.

Part 1 evaluates one FOLD-SE-M rule-set (learned on a synthetic 64-feature table, with
exceptions) on 100k samples with: the plain Python evaluator (`predict_rows`, one row at a
time), the numpy column-wise evaluator (`predict`), the branchy program (per-sample
decision list, interpreter and LLVM) and the if-converted program (interpreter; LLVM with
the chain, GEMM and reduce conjunction strategies). Slow systems run on a prefix of the
samples; every time is reported per sample, as the median of interleaved rounds, and every
system's predictions are checked against the numpy evaluator.

Part 2 compares, on the test split of a digits run, the compiled NeSy model (LLVM,
if-converted, the whole split as one batch, and one image at a time) with eager PyTorch
(the CNN's `infer` + binarization) followed by the Python rule evaluators.

    python -m benchmarks.rules_bench [--samples 100000] [--rounds 5] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from frontends import rules
from frontends.nesy.binarize import binarize
from frontends.nesy.data import load_dataset
from frontends.nesy.foldsem import learn_rule_set
from frontends.nesy.program import compile_run
from frontends.nesy.rulesets import predict_labels
from frontends.nesy.train import infer
from frontends.rules.program import RuleProgram

SLOW_PREFIX = 2000
"""Samples the per-row systems (Python evaluator, branchy programs) are timed on."""


def synthetic_rule_set(seed: int = 0) -> rules.RuleSet:
    """A learned rule-set of NeSyFOLD's shape: 10 classes over 64 binary filters."""
    rng = np.random.default_rng(seed)
    table = rng.random((6000, 64)) < 0.3
    owners = rng.permutation(64)[:20].reshape(10, 2)
    scores = table[:, owners[:, 0]] * 2 + table[:, owners[:, 1]] + rng.random((6000, 10)) * 1.5
    labels = scores.argmax(axis=1)
    return learn_rule_set(table, labels, [f"class{i}" for i in range(10)])


def _median_seconds(function: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def rule_evaluation(samples: int, rounds: int, cache_dir: pathlib.Path) -> dict:
    rule_set = synthetic_rule_set()
    rng = np.random.default_rng(1)
    table = torch.from_numpy(rng.random((samples, len(rule_set.features))) < 0.3)
    prefix = table[:SLOW_PREFIX]
    expected = rules.class_names(rule_set, rules.predict(rule_set, table.numpy()))
    systems: dict[str, tuple[Callable[[], object], int]] = {
        "python evaluator (per row)": (lambda: rules.predict_rows(rule_set, prefix.tolist()), len(prefix)),
        "numpy evaluator (columns)": (lambda: rules.predict(rule_set, table.numpy()), samples),
    }
    programs = {
        "branchy, interpreter": (RuleProgram(rule_set, backend="interpreter", if_convert=False), prefix),
        "branchy, llvm": (RuleProgram(rule_set, backend="llvm", if_convert=False, cache_dir=cache_dir), prefix),
        "if-converted, interpreter": (RuleProgram(rule_set, backend="interpreter"), table),
    }
    for strategy in ("chain", "gemm", "reduce"):
        program = RuleProgram(
            rule_set, pipeline=f"if-convert{{conjunctions={strategy}}}", cache_dir=cache_dir
        )
        programs[f"if-converted, llvm, {strategy}"] = (program, table)
    compile_seconds = {}
    for name, (program, inputs) in programs.items():
        started = time.perf_counter()
        predicted = program(inputs)
        compile_seconds[name] = time.perf_counter() - started
        if predicted != expected[: len(inputs)]:
            raise AssertionError(f"{name} disagrees with the numpy evaluator")
        systems[name] = ((lambda p=program, x=inputs: p(x)), len(inputs))
    if rules.predict_rows(rule_set, prefix.tolist()) != expected[:SLOW_PREFIX]:
        raise AssertionError("the Python evaluator disagrees with the numpy evaluator")
    measured: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(rounds):
        for name, (function, _) in systems.items():
            measured[name] += _median_seconds(function, 1)
    per_sample = {
        name: statistics.median(times) / systems[name][1] * 1e6 for name, times in measured.items()
    }
    size = rule_set.size()
    return {
        "rule_set": {"rules": size.n_rules, "predicates": size.n_preds, "size": size.size},
        "samples": samples,
        "per_sample_us": per_sample,
        "first_call_s": compile_seconds,
    }


def nesy_model(rounds: int, cache_dir: pathlib.Path) -> dict:
    from frontends.nesy.__main__ import main

    with tempfile.TemporaryDirectory() as scratch:
        run_dir = pathlib.Path(scratch) / "run"
        main(["run", "--dataset", "digits", "--epochs", "4", "--out", str(run_dir), "--no-progress"])
        metrics = json.loads((run_dir / "metrics.json").read_text())
        program = compile_run(run_dir, backend="llvm", cache_dir=cache_dir)
        saved = program.saved
    test = load_dataset("digits", seed=0).test
    images = test.images
    compiled_labels = program.labels(images)
    accuracy = float((compiled_labels == test.labels).mean())
    program.labels(images[:1])

    def eager(evaluator: str) -> np.ndarray:
        _, norms = infer(saved.cnn, images)
        table = binarize(norms, saved.thresholds)
        if evaluator == "numpy":
            return predict_labels(saved.rule_set, table, saved.class_names)
        names = rules.predict_rows(saved.rule_set, table.tolist())
        return np.array([saved.class_names.index(n) if n else -1 for n in names])

    systems = {
        "eager CNN + python evaluator": lambda: eager("python"),
        "eager CNN + numpy evaluator": lambda: eager("numpy"),
        "compiled NeSy, one batch": lambda: program.labels(images),
        "compiled NeSy, batch 1": lambda: [program.labels(images[i : i + 1]) for i in range(len(images))],
    }
    for name, function in systems.items():
        result = function()
        result = np.concatenate(result) if isinstance(result, list) else result
        if not (result == compiled_labels).all():
            raise AssertionError(f"{name} disagrees with the compiled model")
    measured: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(rounds):
        for name, function in systems.items():
            measured[name] += _median_seconds(function, 1)
    return {
        "test_images": len(images),
        "metrics_nesy_accuracy": metrics["nesy_accuracy"],
        "compiled_nesy_accuracy": accuracy,
        "per_image_us": {name: statistics.median(t) / len(images) * 1e6 for name, t in measured.items()},
    }


def markdown(results: dict) -> str:
    part1, part2 = results["rules"], results["nesy"]
    python = part1["per_sample_us"]["python evaluator (per row)"]
    shape = part1["rule_set"]
    lines = [
        f"Rule evaluation, {part1['samples']:,} samples, a FOLD-SE-M rule-set of {shape['rules']} "
        f"rules, {shape['predicates']} predicates, size {shape['size']} ({results['machine']}):",
        "",
        "| system | us / sample | speedup over the Python evaluator | first call (s) |",
        "|---|---|---|---|",
    ]
    for name, value in part1["per_sample_us"].items():
        first = part1["first_call_s"].get(name)
        lines.append(
            f"| {name} | {value:.3f} | {python / value:.1f}x | {'' if first is None else f'{first:.2f}'} |"
        )
    eager = part2["per_image_us"]["eager CNN + python evaluator"]
    lines += [
        "",
        f"NeSy model on the digits test split ({part2['test_images']} images); metrics.json "
        f"nesy_accuracy {part2['metrics_nesy_accuracy']:.4f}, compiled {part2['compiled_nesy_accuracy']:.4f}:",
        "",
        "| system | us / image | speedup over eager + Python rules |",
        "|---|---|---|",
    ]
    for name, value in part2["per_image_us"].items():
        lines.append(f"| {name} | {value:.1f} | {eager / value:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rules_bench", description=__doc__)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/results"))
    arguments = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as cache:
        results = {
            "machine": f"{platform.processor() or platform.machine()}, 1 thread",
            "rules": rule_evaluation(arguments.samples, arguments.rounds, pathlib.Path(cache)),
            "nesy": nesy_model(arguments.rounds, pathlib.Path(cache)),
        }
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "rules.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (arguments.out / "rules.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
