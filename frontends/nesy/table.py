"""Regenerates the results table of ``docs/nesy.md``.

For each dataset and seed every strategy is run (``nesyfold`` first; its CNN
is the cross-entropy phase that ``finetune`` continues, so it is not trained
twice), FOLD-RM is run on the same binary tables as FOLD-SE-M, and the means
over seeds are written as Markdown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from frontends.nesy.data import load_dataset
from frontends.nesy.pipeline import RuleConfig, default_epochs, default_sparse_epochs, run
from frontends.nesy.train import DEFAULT_STRATEGY, STRATEGIES, TrainConfig

COLUMNS = ("cnn_accuracy", "nesy_accuracy", "fidelity", "n_rules", "n_preds", "size")


def run_table(datasets: Sequence[str], seeds: Sequence[int], out_dir: Path, progress: bool = True) -> str:
    results = []
    for dataset_spec in datasets:
        for seed in seeds:
            dataset = load_dataset(dataset_spec, seed)
            cross_entropy_model = None
            for strategy in STRATEGIES:
                config = TrainConfig(
                    strategy=strategy,
                    epochs=default_epochs(dataset_spec),
                    sparse_epochs=default_sparse_epochs(dataset_spec),
                    seed=seed,
                    progress=progress,
                )
                outcome = run(
                    dataset,
                    config,
                    RuleConfig(compare_foldrm=True),
                    out_dir / dataset_spec / f"seed{seed}" / strategy,
                    pretrained=cross_entropy_model if strategy == "finetune" else None,
                )
                if strategy == "nesyfold":
                    cross_entropy_model = outcome.trained.model
                results.append(outcome.metrics)
                print(_summary(outcome.metrics), flush=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = format_table(results, datasets, seeds)
    (out_dir / "table.md").write_text(markdown)
    return markdown


def _summary(metrics: dict) -> str:
    return (
        f"{metrics['dataset']} seed {metrics['seed']} {metrics['strategy']}: "
        + ", ".join(f"{column} {metrics[column]:.4g}" for column in COLUMNS)
        + f" ({metrics['train_seconds']:.0f} s training)"
    )


def _mean(rows: list[dict], column: str) -> float:
    return float(np.mean([row[column] for row in rows]))


def format_table(results: list[dict], datasets: Sequence[str], seeds: Sequence[int]) -> str:
    seed_text = ", ".join(str(seed) for seed in seeds)
    lines = [
        f"Means over seeds {seed_text} (test split; accuracies in %).",
        "",
        "| dataset | strategy | CNN acc | NeSy acc | fidelity | rules | predicates | size |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for strategy in STRATEGIES:
            rows = [r for r in results if r["dataset"] == dataset and r["strategy"] == strategy]
            if not rows:
                continue
            name = f"{strategy} (default)" if strategy == DEFAULT_STRATEGY else strategy
            lines.append(
                f"| {dataset} | {name} | {100 * _mean(rows, 'cnn_accuracy'):.1f} | "
                f"{100 * _mean(rows, 'nesy_accuracy'):.1f} | {100 * _mean(rows, 'fidelity'):.1f} | "
                f"{_mean(rows, 'n_rules'):.1f} | {_mean(rows, 'n_preds'):.1f} | {_mean(rows, 'size'):.1f} |"
            )
    lines += [
        "",
        "FOLD-SE-M (ours) against FOLD-RM (PyPI foldrm, ratio 0.5) on the same binary tables:",
        "",
        "| dataset | table from | learner | NeSy acc | fidelity | rules | predicates | size | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for strategy in STRATEGIES:
            rows = [
                r for r in results if r["dataset"] == dataset and r["strategy"] == strategy and "foldrm" in r
            ]
            if not rows:
                continue
            foldrm_rows = [r["foldrm"] for r in rows]
            for learner, group, seconds in (
                ("FOLD-SE-M", rows, "fold_seconds"),
                ("FOLD-RM", foldrm_rows, "seconds"),
            ):
                lines.append(
                    f"| {dataset} | {strategy} | {learner} | {100 * _mean(group, 'nesy_accuracy'):.1f} | "
                    f"{100 * _mean(group, 'fidelity'):.1f} | {_mean(group, 'n_rules'):.1f} | "
                    f"{_mean(group, 'n_preds'):.1f} | {_mean(group, 'size'):.1f} | "
                    f"{_mean(group, seconds):.2f} |"
                )
    return "\n".join(lines) + "\n"
