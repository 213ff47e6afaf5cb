"""Cache entries are verified before they are used: a damaged, truncated, swapped or foreign
entry of any of the three caches (compiled kernels, outlined programs, conversions) is
rebuilt, never loaded, and the caches are private to the user.

Kernels are loaded by a fresh process, as a later run would: a process that loaded an
entry once keeps the library it mapped, whatever happens to the file afterwards."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from benchmarks.subgraph_bench import export_torch_dialect
from frontends.torch import cache as conversion_cache
from frontends.torch import convert, converter
from ir.program import parse_and_verify, print_module
from runtime import program as runtime_program
from runtime.llvm import compile_subgraph
from runtime.llvm.compiler import cache_key


def _affine(x, w, b):
    return x @ w + b


def _scaled(x, w, b):
    return (x * w.sum()) - b


def _subgraph(function, seed: int):
    generator = torch.Generator().manual_seed(seed)
    x, w, b = torch.randn(3, 4, generator=generator), torch.randn(4, 4), torch.randn(4)
    return export_torch_dialect(function, [x, w, b]), {1: w, 2: b}, x


def _flip_middle(path: pathlib.Path) -> None:
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 3, len(data) // 3 + 64):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _shrink_shapes(path: pathlib.Path) -> None:
    metadata = json.loads(path.read_text())
    for spec in metadata["inputs"] + metadata["outputs"]:
        spec["shape"] = [1 for _ in spec["shape"]]
    path.write_text(json.dumps(metadata))


DAMAGES = {
    "other_library": lambda a, b: shutil.copyfile(b.with_suffix(".so"), a.with_suffix(".so")),
    "other_entry": lambda a, b: (
        shutil.copyfile(b.with_suffix(".so"), a.with_suffix(".so")),
        shutil.copyfile(b.with_suffix(".json"), a.with_suffix(".json")),
    ),
    "shrunk_shape": lambda a, b: _shrink_shapes(a.with_suffix(".json")),
    "flipped_bytes": lambda a, b: _flip_middle(a.with_suffix(".so")),
    "truncated": lambda a, b: a.with_suffix(".so").write_bytes(
        a.with_suffix(".so").read_bytes()[:4096]
    ),
    "empty": lambda a, b: a.with_suffix(".so").write_bytes(b""),
    "garbage_metadata": lambda a, b: a.with_suffix(".json").write_bytes(b"\x00{]"),
    "group_writable": lambda a, b: os.chmod(a.with_suffix(".so"), 0o666),
    "symlinked": lambda a, b: (
        a.with_suffix(".so").unlink(),
        a.with_suffix(".so").symlink_to(b.with_suffix(".so")),
    ),
}

_LOAD_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import pathlib, sys, torch
    from runtime.llvm import compile_subgraph, lowering
    text, x, w, b = torch.load(sys.argv[1])
    built = []
    lower = lowering.lower_to_llvm
    lowering.lower_to_llvm = lambda *a: built.append(1) or lower(*a)
    for directory in sys.argv[2:]:
        built.clear()
        kernel = compile_subgraph(text, "main", {1: w, 2: b}, pathlib.Path(directory))
        (got,) = kernel(x)
        agrees = torch.allclose(got, x @ w + b, rtol=1e-5, atol=1e-5)
        print(pathlib.Path(directory).name, "agrees" if agrees else "DIFFERS",
              "rebuilt" if built else "loaded", flush=True)
    """
)


def test_a_damaged_kernel_entry_is_rebuilt_never_loaded(tmp_path):
    text_a, bound_a, x = _subgraph(_affine, 0)
    text_b, bound_b, _ = _subgraph(_scaled, 1)
    pristine = tmp_path / "pristine"
    compile_subgraph(text_a, "main", bound_a, pristine)
    compile_subgraph(text_b, "main", bound_b, pristine)
    key_a = cache_key(text_a, "main", bound_a)
    key_b = cache_key(text_b, "main", bound_b)
    directories = []
    for name, damage in {"intact": lambda a, b: None, **DAMAGES}.items():
        directory = tmp_path / name
        shutil.copytree(pristine, directory)
        damage(directory / key_a, directory / key_b)
        directories.append(str(directory))
    arguments = tmp_path / "arguments.pt"
    torch.save((text_a, x, bound_a[1], bound_a[2]), arguments)
    completed = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_FRESH_PROCESS, str(arguments), *directories],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=pathlib.Path(__file__).resolve().parents[2],
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    outcomes = dict(line.split(" ", 1) for line in completed.stdout.splitlines())
    assert outcomes.pop("intact") == "agrees loaded"
    assert outcomes == {name: "agrees rebuilt" for name in DAMAGES}
    for name in DAMAGES:  # the rebuilt entry is the user's own again
        library = tmp_path / name / f"{key_a}.so"
        assert not library.is_symlink()
        assert stat.S_IMODE(library.stat().st_mode) & 0o077 == 0


def test_cache_directories_are_user_only(tmp_path):
    text, bound, _ = _subgraph(_affine, 0)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o777)
    compile_subgraph(text, "main", bound, shared / "new" / "kernels")
    for directory in (shared / "new", shared / "new" / "kernels"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    compile_subgraph(text, "main", bound, shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700  # the user's own: made private
    for entry in (shared / "new" / "kernels").iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == 0o600


OUTLINE_SOURCE = """
builtin.module {
  dy.func @forward(%x: !torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32> {
    %y = "torch.aten.OP"(%x) : (!torch.vtensor<[2],f32>) -> !torch.vtensor<[2],f32>
    dy.return %y : !torch.vtensor<[2],f32>
  }
}
"""


def test_an_outlined_entry_is_only_used_for_its_own_key(tmp_path):
    relu, neg = (OUTLINE_SOURCE.replace("OP", op) for op in ("relu", "neg"))
    runtime_program.outlined_program(relu, tmp_path)
    runtime_program.outlined_program(neg, tmp_path)
    entries = sorted((tmp_path / runtime_program.OUTLINED_SUBDIR).glob("*.mlir"))
    assert len(entries) == 2
    for entry in entries:  # every entry now holds the negation
        if "aten.neg" not in entry.read_text():
            source = next(e for e in entries if e != entry)
            shutil.copyfile(source, entry)
    program = runtime_program.compile_program(relu, {}, backend="llvm", cache_dir=tmp_path)
    x = torch.tensor([-1.0, 2.0])
    (result,) = program(x)
    assert torch.equal(result, torch.relu(x))
    assert "aten.relu" in print_module(program.module)


def test_an_outlined_entry_of_another_user_or_writable_by_others_is_ignored(tmp_path):
    relu = OUTLINE_SOURCE.replace("OP", "relu")
    runtime_program.outlined_program(relu, tmp_path)
    (entry,) = (tmp_path / runtime_program.OUTLINED_SUBDIR).glob("*.mlir")
    planted = entry.read_text().replace("aten.relu", "aten.neg")
    os.chmod(entry, 0o666)
    entry.write_text(planted)  # a consistent file, but anyone could have written it
    module = runtime_program.outlined_program(relu, tmp_path)
    assert "aten.relu" in print_module(module)
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.linear(x)
        return -x


@pytest.mark.parametrize("damage", ["swapped_params", "other_key", "writable_by_others"])
def test_a_conversion_entry_is_only_used_when_it_is_this_keys(tmp_path, monkeypatch, damage):
    torch.manual_seed(0)
    model = Scale()
    example = (torch.ones(2, 4),)
    convert(model, example, cache_dir=tmp_path)
    (entry,) = (tmp_path / conversion_cache.CACHE_SUBDIR).iterdir()
    if damage == "swapped_params":
        other = {name: value + 1 for name, value in model.state_dict().items()}
        from safetensors.torch import save_file

        save_file(other, str(entry / conversion_cache.PARAMS_FILE))
    elif damage == "other_key":  # the first model's entry, copied under the second's key
        model = Scale()
        convert(model, example, cache_dir=tmp_path)
        (second,) = (p for p in entry.parent.iterdir() if p != entry)
        shutil.rmtree(second)
        shutil.copytree(entry, second)
    else:
        os.chmod(entry / conversion_cache.PROGRAM_FILE, 0o666)
    converted = []
    original = converter.Converter.convert
    monkeypatch.setattr(
        converter.Converter,
        "convert",
        lambda self, *a: converted.append(1) or original(self, *a),
    )
    conversion = convert(model, example, cache_dir=tmp_path)
    assert converted, "the entry was used"
    for name, value in model.state_dict().items():
        assert torch.equal(conversion.params[name], value)
    parse_and_verify(conversion.ir)
