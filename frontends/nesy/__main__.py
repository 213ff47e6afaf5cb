"""Command line: ``python -m frontends.nesy {run,table,rules,lower} ...``.

``run`` also works under ``torchrun --nproc_per_node N``: training is data
parallel (DistributedDataParallel, gloo) and rank 0 does the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from frontends import rules
from frontends.nesy.data import load_dataset
from frontends.nesy.errors import NesyError
from frontends.nesy.foldsem import DEFAULT_EXCEPTION_RATIO, DEFAULT_TAIL
from frontends.nesy.model import BINARIZATIONS
from frontends.nesy.names import read_filter_names
from frontends.nesy.pipeline import RuleConfig, default_epochs, default_sparse_epochs, run
from frontends.nesy.sparsity import (
    DEFAULT_FILTERS_PER_CLASS,
    DEFAULT_MARGIN_WEIGHT,
    DEFAULT_OFF_RATIO,
    DEFAULT_ON_RATIO,
    DEFAULT_TARGET_LEVEL,
    DEFAULT_WEIGHT,
)
from frontends.nesy.table import run_table
from frontends.nesy.train import DEFAULT_STRATEGY, STRATEGIES, TrainConfig, train_cnn


def _comma_list(text: str) -> list[str]:
    return [item for item in text.split(",") if item]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m frontends.nesy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run_command = commands.add_parser("run", help="train, extract rules, evaluate, write DIR")
    run_command.add_argument("--dataset", required=True, help="digits, mnist5k or folder:PATH")
    run_command.add_argument("--strategy", choices=STRATEGIES, default=DEFAULT_STRATEGY)
    run_command.add_argument("--out", type=Path, required=True)
    run_command.add_argument("--seed", type=int, default=0)
    run_command.add_argument("--epochs", type=int, help="default: 20 (digits, folders), 16 (mnist5k)")
    run_command.add_argument(
        "--sparse-epochs",
        type=int,
        help="epochs of scratch and warmup; default: --epochs if given, else 24 (mnist5k), 20",
    )
    run_command.add_argument("--batch-size", type=int, default=64)
    run_command.add_argument("--learning-rate", type=float, default=2e-3)
    run_command.add_argument("--sparsity-weight", type=float, default=DEFAULT_WEIGHT)
    run_command.add_argument("--filters-per-class", type=int, default=DEFAULT_FILTERS_PER_CLASS)
    run_command.add_argument("--target-level", type=float, default=DEFAULT_TARGET_LEVEL)
    run_command.add_argument(
        "--margin-weight",
        type=float,
        help=f"weight of the threshold margin term; default: {DEFAULT_MARGIN_WEIGHT:g}, 0 for scratch",
    )
    run_command.add_argument(
        "--on-ratio", type=float, default=DEFAULT_ON_RATIO, help="owned filter >= ratio * threshold"
    )
    run_command.add_argument(
        "--off-ratio",
        type=float,
        default=DEFAULT_OFF_RATIO,
        help="other classes' filters <= ratio * threshold",
    )
    run_command.add_argument("--n-filters", type=int, default=64)
    run_command.add_argument("--image-size", type=int, default=32, help="folder datasets only")
    run_command.add_argument("--exception-ratio", type=float, default=DEFAULT_EXCEPTION_RATIO)
    run_command.add_argument("--tail", type=float, default=DEFAULT_TAIL)
    run_command.add_argument("--compare-foldrm", action="store_true")
    run_command.add_argument(
        "--binarization",
        choices=BINARIZATIONS,
        default="rms",
        help="rms: RMS norm, '>' (ours); nesyfold: spectral norm, '>=' (NeSyFOLD's code)",
    )
    run_command.add_argument(
        "--filter-names", type=Path, help="file of 'fK NAME' lines: predicate names of filters"
    )
    run_command.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    run_command.add_argument(
        "--workers", type=int, default=0, help="DataLoader processes reading image files"
    )
    run_command.add_argument("--no-progress", action="store_true")

    table_command = commands.add_parser("table", help="regenerate the docs/nesy.md results table")
    table_command.add_argument("--datasets", type=_comma_list, default=["digits", "mnist5k"])
    table_command.add_argument(
        "--seeds", type=lambda text: [int(s) for s in _comma_list(text)], default=[0, 1, 2]
    )
    table_command.add_argument("--out", type=Path, required=True)
    table_command.add_argument("--threads", type=int, default=1)
    table_command.add_argument("--no-progress", action="store_true")

    rules_command = commands.add_parser("rules", help="check a rule file and print it back")
    rules_command.add_argument("file", type=Path)
    rules_command.add_argument(
        "--filter-names", type=Path, help="the names the rules give filters ('fK NAME' lines)"
    )
    rules_command.add_argument("--n-filters", type=int, default=64)

    lower_command = commands.add_parser(
        "lower", help="lower a run's CNN and rule-set into one dy program (+ OUT.safetensors)"
    )
    lower_command.add_argument("--run", type=Path, required=True, help="a folder written by 'run'")
    lower_command.add_argument(
        "-o", "--output", type=Path, required=True, help="the .mlir file to write"
    )
    lower_command.add_argument("--batch", type=int, default=1, help="images per call")
    lower_command.add_argument(
        "--if-convert", action="store_true", help="write the batched (branch-free) program"
    )
    return parser


def _run(arguments: argparse.Namespace) -> None:
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("gloo")
    worker = distributed and dist.get_rank() != 0
    try:
        dataset = load_dataset(arguments.dataset, arguments.seed, arguments.image_size)
        config = TrainConfig(
            strategy=arguments.strategy,
            epochs=arguments.epochs or default_epochs(arguments.dataset),
            sparse_epochs=arguments.sparse_epochs
            or arguments.epochs
            or default_sparse_epochs(arguments.dataset),
            batch_size=arguments.batch_size,
            learning_rate=arguments.learning_rate,
            sparsity_weight=arguments.sparsity_weight,
            filters_per_class=arguments.filters_per_class,
            target_level=arguments.target_level,
            margin_weight=arguments.margin_weight,
            on_ratio=arguments.on_ratio,
            off_ratio=arguments.off_ratio,
            n_filters=arguments.n_filters,
            seed=arguments.seed,
            progress=not arguments.no_progress,
            workers=arguments.workers,
        )
        filter_names = (
            None
            if arguments.filter_names is None
            else read_filter_names(arguments.filter_names, arguments.n_filters)
        )
        rule_config = RuleConfig(
            arguments.exception_ratio,
            arguments.tail,
            arguments.compare_foldrm,
            arguments.binarization,
            filter_names,
        )
        if worker:
            train_cnn(dataset, config)
        else:
            result = run(dataset, config, rule_config, arguments.out)
            summary_keys = ("cnn_accuracy", "nesy_accuracy", "fidelity", "n_rules", "n_preds", "size")
            summary = {key: result.metrics[key] for key in summary_keys}
            print(json.dumps(summary))
        if distributed:
            # Every rank tears gloo down at the same point: a rank that leaves while another
            # still holds its connections can abort at exit.
            dist.barrier()
    finally:
        if distributed:
            dist.destroy_process_group()
    if worker:
        _leave_without_teardown()


def _leave_without_teardown() -> None:
    """Ends a worker rank at once: its part (training) is done, and rank 0 writes every
    result. The interpreter's teardown aborted a worker now and then ("terminate called
    without an active exception", a C++ thread still joinable at exit; about 1 run in 15
    under load, also after a barrier), and torchrun then failed the whole launch."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _rules(arguments: argparse.Namespace) -> None:
    names = None
    if arguments.filter_names is not None:
        names = read_filter_names(arguments.filter_names, arguments.n_filters)
    rule_set = rules.parse(rules.read_rule_file(arguments.file), str(arguments.file), names)
    print(rule_set, end="")
    size = rule_set.size()
    print(f"% {size.n_rules} rules, {size.n_preds} predicates, size {size.size}")


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    torch.set_num_threads(getattr(arguments, "threads", 1))
    try:
        if arguments.command == "run":
            _run(arguments)
        elif arguments.command == "lower":
            # Imported here: the compiler (xDSL, torch-mlir) is only needed by this command.
            from frontends.nesy.lower import lower_run

            lower_run(arguments.run, arguments.output, arguments.batch, arguments.if_convert)
        elif arguments.command == "table":
            print(run_table(arguments.datasets, arguments.seeds, arguments.out, not arguments.no_progress))
        else:
            _rules(arguments)
    except (NesyError, rules.RuleError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
