"""One end-to-end run: train, binarize, learn rules, evaluate, write outputs.

Outputs in the run directory:

``metrics.json``       accuracies, fidelity and rule-set size (see :func:`run`)
``rules.txt``          the FOLD-SE-M rule-set in NeSyFOLD text form
``model.safetensors``  CNN weights, the binarization thresholds and (for the
                       sparse strategies) the filter ownership; the CNN
                       configuration, class names and image shape (C, H, W)
                       are in the metadata
``filters/fK.png``     for each filter the rules use, the training images on
                       which it fires most strongly (to name the filter)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file

from frontends.nesy.binarize import binarize, thresholds
from frontends.nesy.data import Dataset, ImageSet
from frontends.nesy.errors import NesyError
from frontends.nesy.foldrm_baseline import learn_foldrm
from frontends.nesy.foldsem import DEFAULT_EXCEPTION_RATIO, DEFAULT_TAIL, learn_rule_set
from frontends.nesy.model import VggCnn
from frontends.nesy.rulesets import filter_use, predict_labels, used_filters
from frontends.nesy.train import TrainConfig, TrainedCnn, infer, train_cnn
from frontends.rules import RuleSet

DEFAULT_EPOCHS = {"digits": 20, "mnist5k": 16}
DEFAULT_SPARSE_EPOCHS = {"mnist5k": 24}
"""Epochs of the ``scratch`` and ``warmup`` strategies where they differ from :data:`DEFAULT_EPOCHS`."""
FOLDER_DEFAULT_EPOCHS = 20
TOP_IMAGES_PER_FILTER = 16


def default_epochs(dataset_spec: str) -> int:
    return DEFAULT_EPOCHS.get(dataset_spec, FOLDER_DEFAULT_EPOCHS)


def default_sparse_epochs(dataset_spec: str) -> int:
    return DEFAULT_SPARSE_EPOCHS.get(dataset_spec, default_epochs(dataset_spec))


@dataclass(frozen=True)
class RuleConfig:
    exception_ratio: float = DEFAULT_EXCEPTION_RATIO
    tail: float = DEFAULT_TAIL
    compare_foldrm: bool = False
    binarization: str = "rms"
    """``rms`` (ours) or ``nesyfold`` (spectral norm and ``>=``, as NeSyFOLD's code)."""
    filter_names: tuple[str, ...] | None = None
    """Predicate names of the filters, in filter order (None: ``fK``)."""


@dataclass
class RunResult:
    metrics: dict
    trained: TrainedCnn
    rule_set: RuleSet


def _accuracy(predicted: np.ndarray, expected: np.ndarray) -> float:
    return float((predicted == expected).mean())


def _validation_accuracies(
    trained: TrainedCnn,
    rule_set: RuleSet,
    dataset: Dataset,
    filter_thresholds: np.ndarray,
    binarization: str,
) -> tuple[float | None, float | None]:
    """CNN and NeSy accuracy on the validation split, which hyperparameters are chosen on;
    None for both when the split is empty (classes of one or two images)."""
    validation = dataset.validation
    if not len(validation):
        return None, None
    cnn_predictions, norms = infer(trained.model, validation, binarization=binarization)
    table = binarize(norms, filter_thresholds, binarization)
    nesy_predictions = predict_labels(rule_set, table, dataset.class_names)
    return (
        _accuracy(cnn_predictions, validation.labels),
        _accuracy(nesy_predictions, validation.labels),
    )


def _ownership_metrics(trained: TrainedCnn, rule_set: RuleSet, dataset: Dataset, table) -> dict:
    """How far the rules keep to the sparsity loss's filter ownership (sparse strategies):
    the share of test-table entries that are owned filters firing on their own class, and
    the share of the (class, filter) pairs the rules read that the class owns."""
    if trained.ownership is None:
        return {}
    owned = trained.ownership.numpy()
    use = filter_use(rule_set, dataset.class_names).astype(bool)
    own_class = owned[dataset.test.labels]
    return {
        "owned_active_fraction": float((table & own_class).mean()),
        "owned_filter_fraction": float(owned.any(axis=0).mean()),
        "rule_filter_uses": int(use.sum()),
        "rule_filter_uses_owned": int((use & owned).sum()),
    }


def run(
    dataset: Dataset,
    train_config: TrainConfig,
    rule_config: RuleConfig,
    out_dir: Path,
    pretrained: VggCnn | None = None,
) -> RunResult:
    """Runs the pipeline on ``dataset`` and writes the outputs to ``out_dir``.

    Accuracies are on the test split; ``fidelity`` is the share of test images
    on which the NeSy model (CNN up to the last conv layer + rules over the
    binarized table) agrees with the CNN's own prediction, images no rule
    covers counting as disagreement.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise NesyError(f"{out_dir}: error: cannot create output folder ({failure.strerror})") from None
    started = time.perf_counter()
    trained = train_cnn(dataset, train_config, pretrained)
    train_seconds = time.perf_counter() - started
    binarization = rule_config.binarization
    workers = train_config.workers
    _, train_norms = infer(trained.model, dataset.train, binarization=binarization, workers=workers)
    cnn_test, test_norms = infer(trained.model, dataset.test, binarization=binarization, workers=workers)
    filter_thresholds = thresholds(train_norms)
    train_table = binarize(train_norms, filter_thresholds, binarization)
    test_table = binarize(test_norms, filter_thresholds, binarization)
    started = time.perf_counter()
    rule_set = learn_rule_set(
        train_table,
        dataset.train.labels,
        dataset.class_names,
        rule_config.exception_ratio,
        rule_config.tail,
        rule_config.filter_names,
    )
    fold_seconds = time.perf_counter() - started
    nesy_test = predict_labels(rule_set, test_table, dataset.class_names)
    validation_cnn, validation_nesy = _validation_accuracies(
        trained, rule_set, dataset, filter_thresholds, binarization
    )
    size = rule_set.size()
    metrics = {
        "dataset": dataset.name,
        "strategy": train_config.strategy,
        "seed": train_config.seed,
        "cnn_accuracy": _accuracy(cnn_test, dataset.test.labels),
        "nesy_accuracy": _accuracy(nesy_test, dataset.test.labels),
        "fidelity": _accuracy(nesy_test, cnn_test),
        "n_rules": size.n_rules,
        "n_preds": size.n_preds,
        "size": size.size,
        "nesy_train_accuracy": _accuracy(
            predict_labels(rule_set, train_table, dataset.class_names), dataset.train.labels
        ),
        "validation_cnn_accuracy": validation_cnn,
        "validation_nesy_accuracy": validation_nesy,
        "active_filter_fraction": float(test_table.mean()),
        **_ownership_metrics(trained, rule_set, dataset, test_table),
        "train_seconds": train_seconds,
        "fold_seconds": fold_seconds,
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "n_train": len(dataset.train),
        "n_test": len(dataset.test),
        "train_config": asdict(train_config),
        "rule_config": asdict(rule_config),
    }
    if rule_config.compare_foldrm:
        started = time.perf_counter()
        foldrm_model = learn_foldrm(train_table, dataset.train.labels, dataset.class_names)
        foldrm_predictions = foldrm_model.predict(test_table)
        foldrm_size = foldrm_model.size()
        metrics["foldrm"] = {
            "nesy_accuracy": _accuracy(foldrm_predictions, dataset.test.labels),
            "fidelity": _accuracy(foldrm_predictions, cnn_test),
            "n_rules": foldrm_size.n_rules,
            "n_preds": foldrm_size.n_preds,
            "size": foldrm_size.size,
            "seconds": time.perf_counter() - started,
        }
    (out_dir / "rules.txt").write_text(str(rule_set))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _save_weights(out_dir / "model.safetensors", trained, filter_thresholds, dataset, rule_set, rule_config)
    _plot_top_images(out_dir / "filters", used_filters(rule_set), train_norms, dataset.train)
    return RunResult(metrics, trained, rule_set)


def _save_weights(
    path: Path,
    trained: TrainedCnn,
    filter_thresholds: np.ndarray,
    dataset: Dataset,
    rule_set: RuleSet,
    rule_config: RuleConfig,
) -> None:
    """Thresholds are stored in float64, the precision the test table was binarized with,
    so a lowered program reproduces ``nesy_accuracy`` exactly."""
    tensors = {f"cnn.{name}": value.contiguous() for name, value in trained.model.state_dict().items()}
    tensors["binarization.thresholds"] = torch.from_numpy(filter_thresholds.astype(np.float64))
    if trained.ownership is not None:
        tensors["sparsity.ownership"] = trained.ownership.to(torch.uint8)
    tensors["rules.filter_use"] = torch.from_numpy(filter_use(rule_set, dataset.class_names))
    metadata = {
        "cnn_config": json.dumps(trained.model.config.to_json_dict()),
        "class_names": json.dumps(list(dataset.class_names)),
        "image_shape": json.dumps(list(dataset.image_shape)),
        "binarization": rule_config.binarization,
        "filter_names": json.dumps(list(rule_set.feature_names)),
    }
    save_file(tensors, str(path), metadata=metadata)


def _plot_top_images(folder: Path, filters: list[int], norms: np.ndarray, images: ImageSet) -> None:
    """One PNG per filter: a mosaic of its top images, each labelled with its norm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(exist_ok=True)
    count = min(TOP_IMAGES_PER_FILTER, len(images))
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    channels, height, width = images.image_shape
    for filter_index in filters:
        top = np.argsort(-norms[:, filter_index], kind="stable")[:count]
        pictures = images.take(top)
        mosaic = np.ones((rows * (height + 1) + 1, columns * (width + 1) + 1, channels), dtype=np.float32)
        for position, index in enumerate(top):
            row, column = divmod(position, columns)
            top_edge, left_edge = 1 + row * (height + 1), 1 + column * (width + 1)
            mosaic[top_edge : top_edge + height, left_edge : left_edge + width] = pictures[
                position
            ].transpose(1, 2, 0)
        figure, axis = plt.subplots(figsize=(1.2 * columns, 1.2 * rows + 0.4))
        axis.imshow(mosaic.squeeze(2) if channels == 1 else mosaic.clip(0, 1), cmap="gray", vmin=0, vmax=1)
        for position, index in enumerate(top):
            row, column = divmod(position, columns)
            axis.text(
                1 + column * (width + 1),
                1 + row * (height + 1),
                f"{norms[index, filter_index]:.2f}",
                color="red",
                fontsize=6,
                va="top",
            )
        axis.axis("off")
        axis.set_title(f"f{filter_index}: top-{count} training images by filter norm", fontsize=8)
        figure.savefig(folder / f"f{filter_index}.png", dpi=80, bbox_inches="tight")
        plt.close(figure)
