"""The conversion cache: a converted model is stored on disk and found again by content.

Converting a large model replays and imports every stretch through torch.export and
torch-mlir (tens of seconds), while the backend already caches what it compiles; without this
cache a warm `compile` would still pay the whole conversion. An entry lives in
`cache_dir / "frontend" / <key>` and holds the printed IR with its locations (`program.mlir`: errors
raised later name the model's lines, not this file's), the parameters
(`params.safetensors`), the source files the conversion read (`sources.json`) and a
manifest of their SHA-256 digests sealed with the key (`manifest.json`): an entry is used
only when every file is the one written for this key, as the user's private file (see
`runtime.files`). A hit is not parsed here: `compile` hands the text to the runtime, whose
own cache maps it to the outlined program.

The key is conservative: it is the hash of everything a conversion depends on that can be
seen before converting — the source files of the frontend and of `ir/`, the torch /
torch-mlir / xDSL versions, every submodule's type, class source files, training flag and
Python attributes, every parameter and buffer (names, sharing, dtypes, shapes, bytes), the
example inputs' shapes and dtypes, and the options of `convert`. When any submodule holds an
attribute whose value cannot be fingerprinted reliably (a function, an arbitrary object),
there is no key and the model is converted every time: a stale program is never an option.
The user functions the evaluator inlined are only known after converting, so the entry
records their files' hashes and a lookup whose files changed since is a miss.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import nn
from xdsl.dialects.builtin import ModuleOp

from ir.program import print_module
from runtime.files import entry_digest, private_directory, read_private_file, write_private_file

CACHE_SUBDIR = "frontend"
PROGRAM_FILE = "program.mlir"
PARAMS_FILE = "params.safetensors"
SOURCES_FILE = "sources.json"
MANIFEST_FILE = "manifest.json"
ENTRY_FILES = (PROGRAM_FILE, PARAMS_FILE, SOURCES_FILE)
MAX_ENTRY_FILE_BYTES = 1 << 34
MAX_MANIFEST_BYTES = 1 << 16

_FRONTEND_DIRS = (
    pathlib.Path(__file__).resolve().parent,
    pathlib.Path(__file__).resolve().parents[2] / "ir",
)
"""The frontend and the dialect it builds: editing either may change what it emits."""
_VERSIONED_PACKAGES = ("torch", "torch-mlir", "xdsl")


class Unfingerprintable(Exception):
    """A value the key cannot describe exactly; the model is not cached."""


def _update_tensor(digest: Any, tensor: torch.Tensor) -> None:
    if tensor.layout is not torch.strided or tensor.is_quantized:
        raise Unfingerprintable(f"a {tensor.layout} tensor")
    data = tensor.detach().cpu().contiguous()
    digest.update(f"{data.dtype}{tuple(data.shape)}".encode())
    if data.numel():
        digest.update(memoryview(data.reshape(-1).view(torch.uint8).numpy()))


def describe_value(value: Any, module_names: dict[int, str]) -> Any:
    """A JSON-able description of an attribute value that equals another's only if the two
    values are equal (types included, so `1` and `True` differ); raises `Unfingerprintable`
    for values it cannot describe exactly."""
    if value is None or type(value) in (bool, int, str):
        return [type(value).__name__, value]
    if type(value) is float:
        return ["float", repr(value)]
    if isinstance(value, torch.dtype | torch.device):
        return [type(value).__name__, str(value)]
    if isinstance(value, torch.Size):
        return ["Size", list(value)]
    if isinstance(value, nn.Module):
        # A reference to another submodule (described on its own), by its name in the model.
        name = module_names.get(id(value))
        if name is None:
            raise Unfingerprintable(f"a module outside the model ({type(value).__name__})")
        return ["module", name]
    if isinstance(value, torch.Tensor):
        digest = hashlib.sha256()
        _update_tensor(digest, value)
        return ["tensor", digest.hexdigest()]
    if type(value) in (tuple, list):
        return [type(value).__name__, [describe_value(item, module_names) for item in value]]
    if type(value) in (set, frozenset):
        items = [describe_value(item, module_names) for item in value]
        if any(item[0] not in ("NoneType", "bool", "int", "float", "str") for item in items):
            raise Unfingerprintable("a set of non-primitive values")
        return [type(value).__name__, sorted(items, key=json.dumps)]
    if isinstance(value, dict) and type(value).__module__ in ("builtins", "collections"):
        items = []
        for key, item in value.items():
            if key is not None and type(key) not in (bool, int, float, str):
                raise Unfingerprintable(f"a dict key of type {type(key).__name__}")
            items.append([describe_value(key, module_names), describe_value(item, module_names)])
        return [type(value).__name__, items]
    raise Unfingerprintable(f"a {type(value).__module__}.{type(value).__qualname__}")


def _file_hash(path: str) -> str | None:
    try:
        return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _class_files(cls: type) -> list[str]:
    """Source files of the model-defined classes in the MRO of `cls` (library classes are
    covered by the package versions). A class whose module is not importable (a file run
    with `exec` or loaded by `spec_from_file_location`) is found through its methods' code;
    a class with no file at all cannot be fingerprinted."""
    files = []
    for base in cls.__mro__:
        if base.__module__.split(".")[0] in ("torch", "builtins"):
            continue
        try:
            files.append(inspect.getsourcefile(base) or "")
        except TypeError:
            files.extend(_method_files(base))
    return files


def _method_files(cls: type) -> list[str]:
    codes = []
    for member in vars(cls).values():
        function = getattr(member, "__func__", member)
        if isinstance(member, property):
            function = member.fget
        code = getattr(function, "__code__", None)
        if code is not None:
            codes.append(code.co_filename)
    files = sorted(set(codes))
    if codes and not all(_file_hash(path) for path in files):
        raise Unfingerprintable(f"class {cls.__qualname__}, whose source file cannot be read")
    return files


def _frontend_fingerprint() -> list[Any]:
    own = sorted(path for directory in _FRONTEND_DIRS for path in directory.glob("*.py"))
    sources = [[str(path), _file_hash(str(path))] for path in own]
    versions = [[name, importlib.metadata.version(name)] for name in _VERSIONED_PACKAGES]
    return [sources, versions, str(torch.get_default_dtype())]


@dataclass(frozen=True)
class Identity:
    """A value with no description by content: equal only to itself."""

    value_id: int


def static_fingerprint(value: Any) -> Any:
    """A hashable description of a non-tensor program input (a Python list of thresholds):
    equal for inputs that give the same program."""
    if value is None or type(value) in (bool, int, float, str):
        return (type(value).__name__, repr(value))
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(static_fingerprint(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((repr(k), static_fingerprint(v)) for k, v in value.items()))
    return Identity(id(value))


def cache_key(
    model: nn.Module, example_inputs: Sequence[Any], options: dict[str, Any]
) -> str | None:
    """The key of converting `model` on inputs like `example_inputs`; None when some
    attribute cannot be fingerprinted (then the conversion is not cached)."""
    module_names = {id(module): name for name, module in model.named_modules()}
    class_files: dict[type, list[list[Any]]] = {}
    digest = hashlib.sha256()
    try:
        modules = []
        for name, module in model.named_modules():
            attributes = []
            for attribute, value in sorted(vars(module).items()):
                if attribute in ("_parameters", "_buffers", "_modules"):
                    continue  # described below, by name, shape and content
                attributes.append([attribute, describe_value(value, module_names)])
            children = [[child, module_names[id(sub)]] for child, sub in module.named_children()]
            cls = type(module)
            if cls not in class_files:
                class_files[cls] = [[path, _file_hash(path)] for path in _class_files(cls)]
            kind = f"{type(module).__module__}.{type(module).__qualname__}"
            modules.append([name, kind, class_files[cls], attributes, children])
        inputs = []
        for example in example_inputs:
            if isinstance(example, torch.Tensor):
                inputs.append([str(example.dtype), list(example.shape)])
            else:
                fingerprint = static_fingerprint(example)
                if isinstance(fingerprint, Identity):
                    raise Unfingerprintable(f"a {type(example).__name__} input")
                inputs.append(["static", repr(fingerprint)])
        header = [_frontend_fingerprint(), modules, inputs, options]
        digest.update(json.dumps(header, sort_keys=True).encode())
        # Tensors last and streamed: they are most of the bytes, and need no JSON.
        tensors = [
            *model.named_parameters(remove_duplicate=False),
            *model.named_buffers(remove_duplicate=False),
        ]
        owners: dict[int, str] = {}
        for name, tensor in tensors:
            owner = owners.setdefault(id(tensor), name)
            digest.update(f"\0{name}\0{owner}\0".encode())
            if owner == name:
                _update_tensor(digest, tensor)
    except Unfingerprintable:
        return None
    return digest.hexdigest()


@dataclass(frozen=True)
class Entry:
    """A cached conversion: the program text (verified before it was stored, intact by its
    manifest, not parsed yet), the file it was read from, and the parameters."""

    text: str
    filename: str
    params: dict[str, torch.Tensor]


def load(cache_dir: pathlib.Path, key: str) -> Entry | None:
    """The cached conversion under `key`, or None when there is none, it is not this key's
    or is damaged (a file fails the digest its manifest records, see `_manifest`), or the
    source files it read have changed since."""
    entry = cache_dir / CACHE_SUBDIR / key
    contents = _verified_files(entry, key)
    if contents is None:
        return None
    try:
        sources = json.loads(contents[SOURCES_FILE])
        if any(_file_hash(path) != digest for path, digest in sources.items()):
            return None
        text = contents[PROGRAM_FILE].decode()
        params = safetensors_load(contents[PARAMS_FILE])
    except (ValueError, AttributeError, SafetensorError):
        return None
    return Entry(text, str(entry / PROGRAM_FILE), params)


def _manifest(key: str, contents: dict[str, bytes]) -> bytes:
    """What binds an entry's files to its key: the SHA-256 of each file, sealed with a
    digest of the key and those hashes."""
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(contents.items())}
    body = json.dumps(hashes, sort_keys=True)
    return json.dumps({"files": hashes, "digest": entry_digest(key, [body.encode()])}).encode()


def _verified_files(entry: pathlib.Path, key: str) -> dict[str, bytes] | None:
    """The files of an entry, read only as the user's private files and only when every
    one is the file the manifest records for `key`."""
    stored = read_private_file(entry / MANIFEST_FILE, MAX_MANIFEST_BYTES)
    if stored is None:
        return None
    contents = {}
    for name in ENTRY_FILES:
        data = read_private_file(entry / name, MAX_ENTRY_FILE_BYTES)
        if data is None:
            return None
        contents[name] = data
    return contents if _manifest(key, contents) == stored else None


def store(
    cache_dir: pathlib.Path,
    key: str,
    module: ModuleOp,
    params: dict[str, torch.Tensor],
    source_files: Iterable[str],
) -> None:
    """Write an entry (atomically: readers see a whole entry or none; user-only files in
    a user-only directory, see `runtime.files`)."""
    root = private_directory(cache_dir / CACHE_SUBDIR)
    if root is None:
        return
    sources = {path: _file_hash(path) for path in sorted(set(source_files))}
    contents = {
        PROGRAM_FILE: print_module(module, debuginfo=True).encode(),
        PARAMS_FILE: safetensors_save(
            {name: tensor.contiguous() for name, tensor in params.items()}
        ),
        SOURCES_FILE: json.dumps(sources, indent=1).encode(),
    }
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        for name, data in contents.items():
            if not write_private_file(staging / name, data):
                raise OSError(f"cannot write {name}")
        if not write_private_file(staging / MANIFEST_FILE, _manifest(key, contents)):
            raise OSError(f"cannot write {MANIFEST_FILE}")
        entry = root / key
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
        os.replace(staging, entry)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
