"""The frontend's entry points: model -> (IR module, parameters) -> callable program."""

from __future__ import annotations

import json
import os
import pathlib
import threading
from collections.abc import Sequence
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from xdsl.dialects.builtin import ModuleOp, StringAttr

from frontends.torch import cache
from frontends.torch.errors import UnsupportedError
from frontends.torch.converter import Converter
from ir import dy
from ir.program import parse_module, print_module, verify_module
from runtime.program import DEFAULT_CACHE_DIR, ProgramStats, compile_program

DEFAULT_PARAMS_FILE = "params.safetensors"
CONVERSION_STACK_BYTES = 512 * 1024 * 1024
"""The evaluator recurses once per statement of the unrolled, inlined program."""


class Conversion:
    """A converted model: the verified module and the tensors its `dy.param`s name.

    A conversion read back from the cache holds the module's text until `module` is asked
    for: `compile` hands the text to the runtime, whose cache maps it to the outlined
    program, so a warm compile parses one module once and this one never.
    """

    def __init__(
        self, module: ModuleOp | str, params: dict[str, torch.Tensor], filename: str = "<stdin>"
    ):
        self._module = module if isinstance(module, ModuleOp) else None
        self._text = module if isinstance(module, str) else None
        self.filename = filename
        self.params = params

    @property
    def module(self) -> ModuleOp:
        if self._module is None:
            # Verified before it was cached, and intact by its checksum (`cache.load`).
            self._module = parse_module(self._text, self.filename)
            self._text = None
        return self._module

    @property
    def program(self) -> ModuleOp | str:
        """The module, or its verified text while it has not been parsed: what
        `compile_program` takes."""
        return self._module if self._module is not None else self._text

    @property
    def ir(self) -> str:
        return self._text if self._module is None else print_module(self._module)

    def save_params(self, path: str | os.PathLike) -> None:
        """Write the side-car file and point the module's `dy.params` at it."""
        save_file(dict(self.params), str(path))
        self.module.attributes[dy.PARAMS_FILE_ATTR] = StringAttr(os.path.basename(path))


def convert(
    model: nn.Module,
    example_inputs: Sequence[Any],
    *,
    params_file: str = DEFAULT_PARAMS_FILE,
    source_names: dict[str, str] | None = None,
    cache_dir: pathlib.Path | None = None,
) -> Conversion:
    """Convert `model` (its `forward` source, specialised to the shapes of `example_inputs`).

    `source_names` maps absolute source paths to the names diagnostics and locations use.
    With a `cache_dir`, a conversion of the same model (see `frontends.torch.cache`) is read
    back from `cache_dir / "frontend"` instead of being redone, and a new one is stored there.
    Raises `UnsupportedError` for what cannot be converted into an equivalent program.
    """
    names = source_names or {}
    key = None
    if cache_dir is not None:
        options = {"params_file": params_file, "source_names": sorted(names.items())}
        key = cache.cache_key(model, example_inputs, options)
        cached = cache.load(cache_dir, key) if key is not None else None
        if cached is not None:
            return Conversion(cached.text, cached.params, cached.filename)

    def filename_of(path: str) -> str:
        return names.get(path, path)

    converter = Converter(model, filename_of)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with torch.no_grad():
                outcome["module"] = converter.convert(tuple(example_inputs), params_file)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = error

    previous = threading.stack_size(CONVERSION_STACK_BYTES)
    try:
        worker = threading.Thread(target=run, name="frontends.torch.convert")
        worker.start()
        worker.join()
    finally:
        threading.stack_size(previous)
    if "error" in outcome:
        raise outcome["error"]
    module = outcome["module"]
    verify_module(module)
    if cache_dir is not None and key is not None:
        cache.store(cache_dir, key, module, converter.params, converter.source_files())
    return Conversion(module, converter.params)


def result_tree(module: ModuleOp) -> Any:
    """The Python structure `forward` returns, as recorded by the frontend (None if absent)."""
    for op in module.ops:
        if isinstance(op, dy.FuncOp) and op.sym_name.data == dy.ENTRY_FUNCTION:
            attribute = op.attributes.get(dy.RESULT_TREE_ATTR)
            if isinstance(attribute, StringAttr):
                return json.loads(attribute.data)
    return None


def rebuild_results(tree: Any, results: Sequence[Any]) -> Any:
    """Nest a program's flat results as `forward` returned them."""
    if tree is None:
        return results[0] if len(results) == 1 else tuple(results)
    if "const" in tree:
        return tree["const"]
    if "tuple" in tree:
        return tuple(rebuild_results(item, results) for item in tree["tuple"])
    if "list" in tree:
        return [rebuild_results(item, results) for item in tree["list"]]
    if "dict" in tree:
        return {key: rebuild_results(item, results) for key, item in tree["dict"].items()}
    ((kind, index),) = tree.items()
    value = results[index]
    if kind in ("int", "float", "bool"):
        return {"int": int, "float": float, "bool": bool}[kind](value)
    if kind == "tensor_list":
        return list(value)
    return value


class Program:
    """A compiled model: `program(*inputs)` returns what `model(*inputs)` returns."""

    def __init__(
        self,
        conversion: Conversion,
        backend: str,
        cache_dir: pathlib.Path | None = DEFAULT_CACHE_DIR,
    ):
        self.conversion = conversion
        self.backend = backend
        self._compiled = compile_program(
            conversion.program,
            conversion.params,
            backend=backend,
            cache_dir=cache_dir,
            filename=conversion.filename,
        )
        self._tree = result_tree(self._compiled.module)

    @property
    def stats(self) -> ProgramStats:
        """How many sub-graphs run compiled and how many fell back to eager."""
        return self._compiled.stats

    @property
    def ir(self) -> str:
        return self._compiled.ir

    @property
    def module(self) -> ModuleOp:
        """The module that runs (with the LLVM backend: outlined)."""
        return self._compiled.module

    @property
    def params(self) -> dict[str, torch.Tensor]:
        return self.conversion.params

    def __call__(self, *inputs: Any) -> Any:
        return rebuild_results(self._tree, self._compiled(*inputs))


def compile(
    model: nn.Module,
    example_inputs: Sequence[Any],
    backend: str = "llvm",
    cache_dir: pathlib.Path | None = DEFAULT_CACHE_DIR,
) -> Program:
    """Convert `model` and load it with `backend` ("llvm" or "interpreter"); the conversion
    and the compiled sub-graphs are cached in `cache_dir` by content (None: no cache)."""
    conversion = convert(
        model, example_inputs, source_names=_relative_source_names(model), cache_dir=cache_dir
    )
    return Program(conversion, backend, cache_dir)


def _relative_source_names(model: nn.Module) -> dict[str, str]:
    """Source paths relative to the working directory when below it, for shorter locations."""
    import inspect

    names = {}
    cwd = pathlib.Path.cwd()
    for module in model.modules():
        try:
            path = pathlib.Path(inspect.getsourcefile(type(module)) or "")
        except TypeError:
            continue
        if path.is_absolute() and path.is_relative_to(cwd):
            names[str(path)] = str(path.relative_to(cwd))
    return names


__all__ = ["Conversion", "Program", "UnsupportedError", "compile", "convert"]
