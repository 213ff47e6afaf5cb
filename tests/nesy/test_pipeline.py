"""End-to-end runs through the CLI, kept to one or two epochs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from frontends import rules
from frontends.nesy.__main__ import main
from frontends.nesy.rulesets import used_filters

REPOSITORY = Path(__file__).resolve().parents[2]
REQUIRED_METRICS = (
    "cnn_accuracy",
    "nesy_accuracy",
    "fidelity",
    "n_rules",
    "n_preds",
    "size",
    "validation_cnn_accuracy",
    "validation_nesy_accuracy",
)


def _check_run_directory(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    assert all(key in metrics for key in REQUIRED_METRICS)
    rule_set = rules.parse((out / "rules.txt").read_text(), str(out / "rules.txt"), [f"f{k}" for k in range(64)])
    size = rule_set.size()
    assert (size.n_rules, size.n_preds, size.size) == (
        metrics["n_rules"],
        metrics["n_preds"],
        metrics["size"],
    )
    pictures = sorted(path.name for path in (out / "filters").iterdir())
    assert pictures == sorted(f"f{index}.png" for index in used_filters(rule_set))
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert "binarization.thresholds" in weights.keys()  # noqa: SIM118 - safe_open has no `in`
        assert weights.get_tensor("binarization.thresholds").dtype == torch.float64
        use = weights.get_tensor("rules.filter_use")
        assert use.shape == (len(json.loads(weights.metadata()["class_names"])), 64)
        assert sorted(set(use.nonzero()[:, 1].tolist())) == used_filters(rule_set)
        assert "class_names" in weights.metadata()
    return metrics


def test_run_digits_with_default_strategy(tmp_path, capsys):
    assert (
        main(
            [
                "run",
                "--dataset",
                "digits",
                "--epochs",
                "2",
                "--sparse-epochs",
                "3",
                "--out",
                str(tmp_path),
                "--no-progress",
                "--compare-foldrm",
            ]
        )
        == 0
    )
    metrics = _check_run_directory(tmp_path)
    assert metrics["strategy"] == "warmup"
    assert (metrics["train_config"]["epochs"], metrics["train_config"]["sparse_epochs"]) == (2, 3)
    assert metrics["train_config"]["margin_weight"] > 0
    assert metrics["cnn_accuracy"] > 0.5
    assert {"nesy_accuracy", "n_rules", "size"} <= set(metrics["foldrm"])
    assert json.loads(capsys.readouterr().out)["size"] == metrics["size"]


@pytest.mark.parametrize("strategy", ["nesyfold", "scratch", "finetune"])
def test_run_folder_dataset_with_each_strategy(image_folder, tmp_path, strategy):
    out = tmp_path / strategy
    arguments = ["run", "--dataset", f"folder:{image_folder}", "--image-size", "16", "--epochs", "2"]
    assert (
        main(arguments + ["--strategy", strategy, "--batch-size", "8", "--out", str(out), "--no-progress"])
        == 0
    )
    metrics = _check_run_directory(out)
    assert (metrics["strategy"], metrics["n_test"]) == (strategy, 9)
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert ("sparsity.ownership" in weights.keys()) == (  # noqa: SIM118 - safe_open has no `in`
            strategy != "nesyfold"
        )


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    rules = tmp_path / "rules.txt"
    rules.write_text("target(X,'a') :- f1(X).\ntarget(X,'b') :- f2(X), not ab7(X).\n")
    assert main(["rules", str(rules)]) == 1
    assert capsys.readouterr().err == (
        f"{rules}:2:29: error: ab7 has no rule (exception predicates must be defined)\n"
    )
    assert main(["rules", str(tmp_path / "absent.txt")]) == 1
    assert "absent.txt:0:0: error: no such rule file" in capsys.readouterr().err
    assert main(["run", "--dataset", f"folder:{tmp_path / 'nope'}", "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err == f"{tmp_path / 'nope'}: error: dataset folder does not exist\n"


def test_rules_command_prints_the_rule_set_back(tmp_path, capsys):
    rules = tmp_path / "rules.txt"
    rules.write_text("target(X,'a') :- f1(X), not ab1(X).\nab1(X) :- f2(X).\n")
    assert main(["rules", str(rules)]) == 0
    assert capsys.readouterr().out == (
        "target(X,'a') :- f1(X), not ab1(X).\nab1(X) :- f2(X).\n% 2 rules, 2 predicates, size 3\n"
    )


def test_filter_names_print_semantic_predicates_and_read_back(tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("% filter names\nf1 bathtub1\n2 towel_rail\n")
    rule_file = tmp_path / "rules.txt"
    rule_file.write_text("target(X,'a') :- bathtub1(X), not ab1(X).\nab1(X) :- towel_rail(X).\n")
    assert main(["rules", str(rule_file), "--filter-names", str(names)]) == 0
    assert "bathtub1(X)" in capsys.readouterr().out
    rule_file.write_text("target(X,'a') :- f1(X).\n")
    assert main(["rules", str(rule_file), "--filter-names", str(names)]) == 1
    assert "unknown predicate 'f1'" in capsys.readouterr().err
    names.write_text("f1 target\n")
    assert main(["rules", str(rule_file), "--filter-names", str(names)]) == 1
    assert capsys.readouterr().err.startswith(f"{names}:1:1: error: 'target' cannot name a filter")


def test_run_with_filter_names_writes_them_into_the_rules(tmp_path, capsys):
    names = tmp_path / "names.txt"
    names.write_text("".join(f"f{k} concept{k}\n" for k in range(64)))
    out = tmp_path / "run"
    arguments = ["run", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--no-progress"]
    assert main([*arguments, "--filter-names", str(names)]) == 0
    text = (out / "rules.txt").read_text()
    assert "concept" in text and "f1(" not in text
    program_names = rules.parse(text, "rules.txt", [f"concept{k}" for k in range(64)])
    assert program_names.used_features()


def test_torchrun_with_two_processes(tmp_path):
    """DistributedDataParallel (gloo) with two local processes via torchrun."""
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "frontends.nesy",
            "run",
            "--dataset",
            "digits",
            "--strategy",
            "finetune",
            "--epochs",
            "2",
            "--out",
            str(tmp_path),
            "--no-progress",
        ],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    metrics = _check_run_directory(tmp_path)
    assert metrics["world_size"] == 2
    assert metrics["cnn_accuracy"] > 0.5


def test_sparse_epochs_apply_to_scratch_and_warmup_only():
    from frontends.nesy.train import TrainConfig, _phases

    def epochs(strategy):
        config = TrainConfig(strategy=strategy, epochs=16, sparse_epochs=24)
        return [phase.epochs for phase in _phases(config)]

    assert epochs("nesyfold") == [16]
    assert epochs("finetune") == [16, 8]
    assert epochs("scratch") == [24]
    assert epochs("warmup") == [8, 16]


def test_validation_metrics_are_null_without_a_validation_split(image_folder, tmp_path):
    for name in ("stop", "yield", "speed limit"):
        for image in sorted((image_folder / name).iterdir())[2:]:
            image.unlink()
    out = tmp_path / "tiny"
    arguments = ["run", "--dataset", f"folder:{image_folder}", "--image-size", "16", "--epochs", "1"]
    assert main(arguments + ["--strategy", "nesyfold", "--out", str(out), "--no-progress"]) == 0
    metrics = _check_run_directory(out)
    assert metrics["validation_cnn_accuracy"] is None
    assert metrics["validation_nesy_accuracy"] is None
