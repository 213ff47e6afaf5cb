"""The frontend's entry points: model -> (IR module, parameters) -> callable program."""

from __future__ import annotations

import inspect
import json
import os
import pathlib
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from xdsl.dialects.builtin import ModuleOp, StringAttr

from frontends.torch import cache
from frontends.torch.attribute_logs import append_to_attributes
from frontends.torch.converter import Converter
from frontends.torch.errors import UnsupportedError
from frontends.torch.items import rebuild_record, record_class
from ir import dy
from ir.program import parse_module, print_module, verify_module
from runtime.program import BACKENDS, DEFAULT_CACHE_DIR, ProgramStats, compile_program

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
        return print_module(self.module)

    def save_params(self, path: str | os.PathLike) -> None:
        """Write the side-car file and point the module's `dy.params` at it."""
        save_file(dict(self.params), str(path))
        self.module.attributes[dy.PARAMS_FILE_ATTR] = StringAttr(os.path.basename(path))


Dynamic = bool | Mapping[int | str, Iterable[int] | Mapping[int, Any]] | None
"""Which input dimensions may take any size, following torch.compile / torch.export: True
makes the leading dimension of every tensor input dynamic; a mapping from an input's
position or `forward` parameter name to its dynamic dimensions (a list of dimension
indices, or a dict whose keys are dimension indices, as torch.export's `dynamic_shapes`)."""


def dynamic_dims(model: nn.Module, example_inputs: Sequence[Any], dynamic: Dynamic) -> tuple:
    """For each example input, the dimensions `dynamic` makes dynamic (a sorted tuple)."""
    if not dynamic:
        return tuple(() for _ in example_inputs)
    if dynamic is True:
        return tuple(
            (0,) if isinstance(x, torch.Tensor) and x.dim() > 0 else () for x in example_inputs
        )
    try:
        names = list(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        names = []
    chosen = []
    for position, example in enumerate(example_inputs):
        name = names[position] if position < len(names) else None
        dims = dynamic.get(position, dynamic.get(name, ())) if name else dynamic.get(position, ())
        dims = tuple(sorted(set(dims)))
        rank = example.dim() if isinstance(example, torch.Tensor) else 0
        if any(not 0 <= d < rank for d in dims):
            raise ValueError(f"dynamic: input {position} has no dimension among {list(dims)}")
        chosen.append(dims)
    unknown = {k for k in dynamic if k not in range(len(example_inputs)) and k not in names}
    if unknown:
        raise ValueError(f"dynamic: {sorted(map(str, unknown))} name no input of forward")
    return tuple(chosen)


def convert(
    model: nn.Module,
    example_inputs: Sequence[Any],
    *,
    dynamic: Dynamic = None,
    params_file: str = DEFAULT_PARAMS_FILE,
    source_names: dict[str, str] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Conversion:
    """Convert `model` (its `forward` source, specialised to the shapes of `example_inputs`
    except the dimensions `dynamic` names, which take any size).

    Inputs that are not tensors (a list of thresholds) are compile-time constants of the
    program. `source_names` maps absolute source paths to the names diagnostics and
    locations use. With a `cache_dir`, a conversion of the same model (see
    `frontends.torch.cache`) is read back from `cache_dir / "frontend"` instead of being
    redone, and a new one is stored there. Raises `UnsupportedError` for what cannot be
    converted into an equivalent program.
    """
    names = source_names or {}
    dims = dynamic_dims(model, example_inputs, dynamic)
    cache_root = pathlib.Path(cache_dir) if cache_dir is not None else None
    key = None
    if cache_root is not None:
        options = {
            "params_file": params_file,
            "source_names": sorted(names.items()),
            "dynamic": [list(d) for d in dims],
        }
        key = cache.cache_key(model, example_inputs, options)
        cached = cache.load(cache_root, key) if key is not None else None
        if cached is not None:
            return Conversion(cached.text, cached.params, cached.filename)

    def filename_of(path: str) -> str:
        return names.get(path, path)

    converter = Converter(model, filename_of)
    module = _run_with_deep_stack(
        lambda: converter.convert(tuple(example_inputs), params_file, dims)
    )
    verify_module(module)
    if cache_root is not None and key is not None:
        cache.store(cache_root, key, module, converter.params, converter.source_files())
    return Conversion(module, converter.params)


def _run_with_deep_stack(convert_model: Callable[[], ModuleOp]) -> ModuleOp:
    """Run a conversion on a thread with a large stack: the evaluator recurses once per
    statement of the unrolled, inlined program."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with torch.no_grad():
                outcome["module"] = convert_model()
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
    return outcome["module"]


def result_tree(module: ModuleOp) -> Any:
    """The Python structure `forward` returns, as recorded by the frontend (None if absent)."""
    for op in module.ops:
        if isinstance(op, dy.FuncOp) and op.sym_name.data == dy.ENTRY_FUNCTION:
            attribute = op.attributes.get(dy.RESULT_TREE_ATTR)
            if isinstance(attribute, StringAttr):
                return json.loads(attribute.data)
    return None


def updated_inputs(module: ModuleOp) -> list[tuple[int, int]]:
    """(input position, result index) of the inputs the program updates in place."""
    return [tuple(pair) for pair in _entry_attribute(module, dy.UPDATED_INPUTS_ATTR)]


def appended_attributes(module: ModuleOp) -> list[tuple[str, int]]:
    """(attribute path, result index) of the tensors the program appends to module lists."""
    return [tuple(pair) for pair in _entry_attribute(module, dy.APPENDED_ATTRIBUTES_ATTR)]


def _entry_attribute(module: ModuleOp, name: str) -> list:
    for op in module.ops:
        if isinstance(op, dy.FuncOp) and op.sym_name.data == dy.ENTRY_FUNCTION:
            attribute = op.attributes.get(name)
            if isinstance(attribute, StringAttr):
                return json.loads(attribute.data)
    return []


def _entry_flag(module: ModuleOp, name: str) -> bool:
    return any(
        isinstance(op, dy.FuncOp)
        and op.sym_name.data == dy.ENTRY_FUNCTION
        and name in op.attributes
        for op in module.ops
    )


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
    if "record" in tree:
        name, fields, parts = tree["record"]
        kind = record_class(name, tuple(fields))
        return rebuild_record(kind, [rebuild_results(item, results) for item in parts])
    if "optional" in tree:
        present, value = tree["optional"]
        return rebuild_results(value, results) if rebuild_results(present, results) else None
    if "union" in tree:
        tag, alternatives = tree["union"]
        return rebuild_results(alternatives[rebuild_results(tag, results)], results)
    ((kind, index),) = tree.items()
    value = results[index]
    if kind in ("int", "float", "bool"):
        return {"int": int, "float": float, "bool": bool}[kind](value)
    if kind == "tensor_list":
        return list(value)
    return value


class _Variant:
    """One compiled specialisation of a model: for one signature of its inputs."""

    def __init__(
        self,
        conversion: Conversion,
        backend: str,
        cache_dir: pathlib.Path | None,
        model: nn.Module | None = None,
    ):
        self.conversion = conversion
        self.model = model
        self.compiled = compile_program(
            conversion.program,
            conversion.params,
            backend=backend,
            cache_dir=cache_dir,
            filename=conversion.filename,
        )
        self.tree = result_tree(self.compiled.module)
        self.checks_size_one = _entry_flag(self.compiled.module, dy.SIZE_ONE_CHECKS_ATTR)
        self.updated_inputs = updated_inputs(self.compiled.module)
        self.appended = appended_attributes(self.compiled.module)
        if self.appended and model is None:
            raise ValueError(
                "this program appends to list attributes of its model's modules "
                f"({', '.join(path for path, _ in self.appended)}); run it through "
                "frontends.torch.compile(model, ...)"
            )

    def __call__(self, tensors: Sequence[torch.Tensor]) -> Any:
        results = self.compiled(*tensors)
        for position, index in self.updated_inputs:
            with torch.no_grad():
                tensors[position].copy_(results[index])
        if self.appended:
            append_to_attributes(self.model, self.appended, results)
        return rebuild_results(self.tree, results)


class Program:
    """A compiled model: `program(*inputs)` returns what `model(*inputs)` returns.

    As torch.compile does, a call whose inputs differ from those compiled for (a new
    shape in a dimension that is not dynamic, a new dtype, another value of a non-tensor
    input) compiles a new specialisation for them, kept for later calls with the same
    signature; `dynamic` dimensions take any size in one specialisation. A program made
    without example inputs compiles at its first call.
    """

    def __init__(
        self,
        model: nn.Module | None,
        backend: str = "llvm",
        cache_dir: str | os.PathLike | None = None,
        dynamic: Dynamic = None,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.model = model
        self.backend = backend
        self.cache_dir = pathlib.Path(cache_dir) if cache_dir is not None else None
        self.dynamic = dynamic
        self._variants: dict[Hashable, _Variant] = {}
        self._latest: _Variant | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_conversion(
        cls, conversion: Conversion, backend: str = "llvm", cache_dir: Any = None
    ) -> Program:
        """A program of one fixed conversion (it cannot compile new specialisations)."""
        program = cls(None, backend, cache_dir)
        program._latest = _Variant(conversion, backend, program.cache_dir)
        return program

    def compile_for(self, inputs: Sequence[Any]) -> _Variant:
        """The specialisation for inputs like `inputs`, compiled now if there is none.

        A specialisation whose sub-graphs assert that a dynamic size is not 1
        (`dy.SIZE_ONE_CHECKS_ATTR`) leaves inputs with a dynamic size of 1 to one where
        that size is static, as torch.compile specialises sizes 0 and 1."""
        if self.model is None:
            if self._latest is None:
                raise ValueError("this program has no model to compile")
            return self._latest
        dims = dynamic_dims(self.model, inputs, self.dynamic)
        variant = self._compiled(inputs, dims)
        if variant.checks_size_one:
            static_ones = tuple(
                tuple(d for d in dims_of if inputs[position].shape[d] != 1)
                for position, dims_of in enumerate(dims)
            )
            if static_ones != dims:
                variant = self._compiled(inputs, static_ones)
        return variant

    def _compiled(self, inputs: Sequence[Any], dims: tuple) -> _Variant:
        key = self._signature(inputs, dims)
        variant = self._variants.get(key)
        if variant is not None:
            self._latest = variant
            return variant
        with self._lock:
            variant = self._variants.get(key)
            if variant is None:
                conversion = convert(
                    self.model,
                    inputs,
                    dynamic=dict(enumerate(dims)),
                    source_names=_relative_source_names(self.model),
                    cache_dir=self.cache_dir,
                )
                variant = _Variant(conversion, self.backend, self.cache_dir, self.model)
                self._variants[key] = variant
            self._latest = variant
        return variant

    @staticmethod
    def _signature(inputs: Sequence[Any], dims: tuple) -> Hashable:
        signature = []
        for position, value in enumerate(inputs):
            if isinstance(value, torch.Tensor):
                dynamic = dims[position] if position < len(dims) else ()
                shape = tuple(-1 if d in dynamic else n for d, n in enumerate(value.shape))
                signature.append(("tensor", value.dtype, shape))
            else:
                signature.append(("static", cache.static_fingerprint(value)))
        return tuple(signature)

    @property
    def _variant(self) -> _Variant:
        if self._latest is None:
            raise ValueError("the program has not been compiled yet: call it with inputs first")
        return self._latest

    @property
    def conversion(self) -> Conversion:
        return self._variant.conversion

    @property
    def stats(self) -> ProgramStats:
        """How many sub-graphs run compiled and how many fell back to eager (of the
        specialisation compiled last)."""
        return self._variant.compiled.stats

    @property
    def specializations(self) -> int:
        """How many input signatures have been compiled."""
        return len(self._variants) or int(self._latest is not None)

    @property
    def ir(self) -> str:
        return self._variant.compiled.ir

    @property
    def module(self) -> ModuleOp:
        """The module that runs (with the LLVM backend: outlined)."""
        return self._variant.compiled.module

    @property
    def params(self) -> dict[str, torch.Tensor]:
        return self._variant.conversion.params

    def __call__(self, *inputs: Any) -> Any:
        variant = self.compile_for(inputs)
        return variant([x for x in inputs if isinstance(x, torch.Tensor)])


_DEFAULT = object()


def default_cache_dir() -> pathlib.Path:
    """`$DYNN_CACHE_DIR` when set, else `~/.cache/dynn-compiler`."""
    configured = os.environ.get("DYNN_CACHE_DIR")
    return pathlib.Path(configured) if configured else DEFAULT_CACHE_DIR


def compile(
    model: nn.Module,
    example_inputs: Sequence[Any] | None = None,
    backend: str = "llvm",
    cache_dir: str | os.PathLike | None | object = _DEFAULT,
    *,
    dynamic: Dynamic = None,
) -> Program:
    """Convert `model` and load it with `backend` ("llvm" or "interpreter").

    With `example_inputs` it compiles now, for inputs like them; without, at the first
    call. `dynamic` names dimensions that take any size (see `Dynamic`); a call with other
    shapes compiles another specialisation. The conversion and the compiled sub-graphs are
    cached in `cache_dir` by content (default `default_cache_dir()`; None: no cache)."""
    directory = default_cache_dir() if cache_dir is _DEFAULT else cache_dir
    if not isinstance(model, nn.Module):
        raise TypeError(f"compile() takes an nn.Module, not a {type(model).__name__}")
    program = Program(model, backend, directory, dynamic)
    if example_inputs is not None:
        program.compile_for(tuple(example_inputs))
    return program


def _relative_source_names(model: nn.Module) -> dict[str, str]:
    """Source paths relative to the working directory when below it, for shorter locations."""
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


__all__ = [
    "Conversion",
    "Dynamic",
    "Program",
    "UnsupportedError",
    "compile",
    "convert",
    "default_cache_dir",
]
