"""Lowering a neuro-symbolic model into one `dy` program over a batch of images.

A NeSy model is the CNN up to its last convolutional layer, the per-filter norms
(:func:`~frontends.nesy.model.filter_norms`), the binarization thresholds and a rule-set
over the binarized filters. It becomes one `dy.func @forward(images)` returning the
predicted class indices ([N] si64, index into the rule-set's classes, -1 when no class
holds) and the binary filter table it decided them from ([N, K] bool):

* the neural half, :class:`FilterActivations`, is straight-line PyTorch over the batch, so
  the torch frontend turns it into one stretch of torch-dialect ops whose weights (and
  thresholds) are `dy.param`s; it ends with the [N, K] table;
* the symbolic half is the rule-set frontend's program (`frontends.rules.append_classifier`):
  a per-image decision list mapped over the rows of the table, located at the rule text.
  `if-convert` turns it into batched tensor code, after which the CNN and the rules are
  one run of tensor ops: one compiled sub-graph for the whole batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from xdsl.dialects.builtin import FunctionType, StringAttr

from frontends import rules
from frontends.nesy.errors import NesyError
from frontends.nesy.model import CnnConfig, VggCnn, binarization_norms
from frontends.torch import Conversion, UnsupportedError, convert
from ir import dy
from ir.program import ProgramContext, print_module, verify_module
from passes.if_convert import IfConvert

CNN_PREFIX = "cnn."
THRESHOLDS_KEY = "binarization.thresholds"


class FilterActivations(nn.Module):
    """The neural half of a NeSy model: which filters are active on each image.

    ``forward(images)`` runs the CNN up to its last conv layer, takes the per-filter norms
    exactly as the pipeline does (:func:`binarization_norms`) and compares them with the
    thresholds in float64, which is what numpy does in
    :func:`~frontends.nesy.binarize.binarize` for float32 norms against float64 thresholds,
    so the program's table equals the pipeline's. It returns the [N, K] bool table.
    """

    def __init__(self, cnn: VggCnn, thresholds: np.ndarray, binarization: str = "rms"):
        super().__init__()
        n_filters = cnn.config.n_filters
        thresholds = np.asarray(thresholds)
        if thresholds.shape != (n_filters,):
            raise NesyError(
                f"expected {n_filters} thresholds (one per filter), got shape {thresholds.shape}"
            )
        self.features = cnn.features
        self.last_conv = cnn.last_conv
        self.binarization = binarization
        self.register_buffer("thresholds", torch.from_numpy(thresholds.astype(np.float64)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        norms = binarization_norms(self.last_conv(self.features(images)), self.binarization)
        if self.binarization == "nesyfold":
            return norms.double() >= self.thresholds
        return norms.double() > self.thresholds


def lower(
    cnn: VggCnn,
    thresholds: np.ndarray,
    rule_set: rules.RuleSet,
    image_shape: Sequence[int],
    *,
    batch: int = 1,
    binarization: str = "rms",
) -> Conversion:
    """Lowers a NeSy model into one verified `dy` program for ``batch`` images.

    ``image_shape`` is (C, H, W); ``rule_set`` reads one feature per filter, in filter
    order (`f0`, `f1`, ... or the names of a filter-names file). The program returns the
    class indices (into ``rule_set.classes``) and the binary filter table.
    """
    channels = cnn.config.in_channels
    if len(image_shape) != 3 or image_shape[0] != channels:
        raise NesyError(
            f"image shape must be ({channels}, H, W) for this CNN, got {tuple(image_shape)}"
        )
    n_filters = cnn.config.n_filters
    if len(rule_set.features) != n_filters or rule_set.numeric:
        raise NesyError(
            f"{rule_set.source}: error: the rules must read {n_filters} binary filter "
            f"features, one per filter of the CNN (got {len(rule_set.features)})"
        )
    if batch < 1:
        raise NesyError(f"batch must be at least 1, got {batch}")
    activations = FilterActivations(cnn, thresholds, binarization)
    was_training = cnn.training
    try:
        conversion = convert(activations.eval(), (torch.zeros(batch, *image_shape),))
    except UnsupportedError as error:
        raise NesyError(f"cannot convert the CNN: {error}") from None
    finally:
        cnn.train(was_training)
    function = _entry_function(conversion)
    block = function.body.block
    returned = block.last_op
    assert isinstance(returned, dy.ReturnOp) and len(returned.values) == 1
    table = returned.values[0]
    block.erase_op(returned)
    predictions = rules.append_classifier(conversion.module, block, table, rule_set)
    block.add_op(dy.ReturnOp(predictions, table))
    function.function_type = FunctionType.from_lists(
        function.arg_types, [predictions.type, table.type]
    )
    function.attributes[dy.RESULT_TREE_ATTR] = StringAttr(
        json.dumps({"tuple": [{"tensor": 0}, {"tensor": 1}]}, separators=(",", ":"))
    )
    function.attributes[rules.CLASSES_ATTR] = StringAttr(json.dumps(list(rule_set.classes)))
    verify_module(conversion.module)
    return conversion


def _entry_function(conversion: Conversion) -> dy.FuncOp:
    for op in conversion.module.ops:
        if isinstance(op, dy.FuncOp) and op.sym_name.data == dy.ENTRY_FUNCTION:
            return op
    raise AssertionError("the torch frontend produced no entry function")


@dataclass(frozen=True)
class SavedRun:
    """What ``python -m frontends.nesy run`` wrote, read back and checked."""

    cnn: VggCnn
    thresholds: np.ndarray
    rule_set: rules.RuleSet
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    binarization: str
    filter_names: tuple[str, ...]


def load_run(run_dir: Path) -> SavedRun:
    """Reads ``model.safetensors`` (CNN weights, thresholds, class names, image shape,
    binarization, filter names) and ``rules.txt`` of a run folder."""
    weights_path = run_dir / "model.safetensors"
    try:
        with safe_open(str(weights_path), "pt") as weights:
            metadata = weights.metadata() or {}
        tensors = load_file(str(weights_path))
    except (OSError, ValueError, RuntimeError) as failure:
        raise NesyError(
            f"{weights_path}: error: cannot read weights ({_first_line(failure)})"
        ) from None
    missing = [key for key in ("cnn_config", "class_names", "image_shape") if key not in metadata]
    if THRESHOLDS_KEY not in tensors or missing:
        what = f"metadata '{missing[0]}'" if missing else f"tensor '{THRESHOLDS_KEY}'"
        raise NesyError(
            f"{weights_path}: error: no {what} (not written by 'run', or by an older version)"
        )
    config = json.loads(metadata["cnn_config"])
    cnn = VggCnn(CnnConfig(**{**config, "widths": tuple(config["widths"])}))
    state = {
        key[len(CNN_PREFIX) :]: value
        for key, value in tensors.items()
        if key.startswith(CNN_PREFIX)
    }
    try:
        cnn.load_state_dict(state)
    except RuntimeError as failure:
        raise NesyError(
            f"{weights_path}: error: weights do not fit the CNN ({_first_line(failure)})"
        ) from None
    n_filters = cnn.config.n_filters
    filter_names = tuple(json.loads(metadata.get("filter_names", "null")) or default_filter_names(n_filters))
    rules_path = run_dir / "rules.txt"
    rule_set = rules.parse(rules.read_rule_file(rules_path), str(rules_path), filter_names)
    return SavedRun(
        cnn.eval(),
        tensors[THRESHOLDS_KEY].double().numpy(),
        rule_set,
        tuple(json.loads(metadata["class_names"])),
        tuple(json.loads(metadata["image_shape"])),
        metadata.get("binarization", "rms"),
        filter_names,
    )


def default_filter_names(n_filters: int) -> list[str]:
    return [f"f{k}" for k in range(n_filters)]


def lower_saved(saved: SavedRun, batch: int = 1) -> Conversion:
    return lower(
        saved.cnn,
        saved.thresholds,
        saved.rule_set,
        saved.image_shape,
        batch=batch,
        binarization=saved.binarization,
    )


def lower_run(run_dir: Path, output: Path, batch: int = 1, if_convert: bool = False) -> None:
    """Lowers a run folder into ``output`` and its parameters next to it (``output`` with
    the suffix ``.safetensors``, which the module's `dy.params` names)."""
    conversion = lower_saved(load_run(run_dir), batch)
    module = conversion.module
    if if_convert:
        IfConvert().apply(ProgramContext(), module)
        verify_module(module)
    try:
        conversion.save_params(output.with_suffix(".safetensors"))
        output.write_text(print_module(module))
    except OSError as failure:
        raise NesyError(f"{output}: error: cannot write the program ({failure.strerror})") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
