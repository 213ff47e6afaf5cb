"""The conversion cache (a second conversion of the same model is read back, anything that
could change the program misses, a damaged entry is converted again) and the memo of stretch
imports by structure (repeated blocks share one torch-mlir import and give the same program
as importing each)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

import frontends.torch as ft
from frontends.torch import convert, converter, staging
from frontends.torch.cache import CACHE_SUBDIR, PROGRAM_FILE, cache_key
from ir.program import parse_and_verify
from tests.frontend.conftest import assert_same, run_converted


class Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x):
        return x + torch.relu(self.norm(self.linear(x)))


class Gated(nn.Module):
    """Repeated blocks between data-dependent gates: one stretch per block, all alike."""

    def __init__(self, width: int = 8, depth: int = 4, threshold: float = 0.0):
        super().__init__()
        self.blocks = nn.ModuleList(Block(width) for _ in range(depth))
        self.threshold = threshold

    def forward(self, x):
        for block in self.blocks:
            if x.mean() > self.threshold:
                x = block(x)
            else:
                x = x * 0.5
        return x


class HoldsCallable(Gated):
    def __init__(self):
        super().__init__()
        self.activation = lambda t: t  # what it does cannot be fingerprinted


def make(**config) -> Gated:
    """A model with the same weights on every call."""
    torch.manual_seed(0)
    return Gated(**config)


def example() -> tuple[torch.Tensor]:
    return (torch.randn(2, 8),)


def samples() -> list[tuple[torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(2, 8, generator=generator) + shift,) for shift in (-2.0, 0.0, 2.0)]


def entries(cache_dir) -> list:
    root = cache_dir / CACHE_SUBDIR
    return sorted(path.name for path in root.iterdir()) if root.exists() else []


def test_a_hit_gives_the_same_program_and_results(tmp_path, monkeypatch):
    model = Gated()
    first = convert(model, example(), cache_dir=tmp_path)
    assert len(entries(tmp_path)) == 1

    def no_conversion(*args, **kwargs):
        raise AssertionError("a cache hit must not convert")

    monkeypatch.setattr(converter.Converter, "convert", no_conversion)
    second = convert(model, example(), cache_dir=tmp_path)
    assert second.ir == first.ir
    assert second.params.keys() == first.params.keys()
    for inputs in samples():
        expected = run_converted(first, inputs, Counter())
        assert_same(run_converted(second, inputs, Counter()), expected)


@pytest.mark.parametrize(
    "damage",
    [lambda text: text[: len(text) // 2], lambda text: text.replace("[2,8]", "[2,9]", 1)],
    ids=["truncated", "edited"],
)
def test_a_damaged_entry_is_converted_again(tmp_path, monkeypatch, damage):
    model = Gated()
    first = convert(model, example(), cache_dir=tmp_path)
    (program,) = (tmp_path / CACHE_SUBDIR).glob(f"*/{PROGRAM_FILE}")
    program.write_text(damage(program.read_text()))
    conversions = Counter()
    original = converter.Converter.convert

    def counted(self, *args, **kwargs):
        conversions["convert"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(converter.Converter, "convert", counted)
    second = convert(model, example(), cache_dir=tmp_path)
    third = convert(model, example(), cache_dir=tmp_path)
    assert conversions["convert"] == 1  # the damaged entry was replaced, then hit
    assert second.ir == third.ir == first.ir


def test_what_changes_the_program_misses():
    key = cache_key(make(), example(), {})
    assert key is not None
    assert cache_key(make(), example(), {}) == key
    assert cache_key(make(), (torch.zeros(2, 8),), {}) == key  # only shapes and dtypes count

    model = make()
    with torch.no_grad():
        model.blocks[2].linear.bias[0] += 1.0
    assert cache_key(model, example(), {}) != key
    assert cache_key(make(threshold=0.1), example(), {}) != key
    assert cache_key(make(), (torch.randn(3, 8),), {}) != key
    assert cache_key(make(), (torch.randn(2, 8, dtype=torch.float64),), {}) != key
    assert cache_key(make().eval(), example(), {}) != key
    assert cache_key(make(), example(), {"params_file": "other.safetensors"}) != key


def test_a_changed_configuration_is_converted_again(tmp_path):
    convert(make(), example(), cache_dir=tmp_path)
    changed = convert(make(threshold=100.0), example(), cache_dir=tmp_path)
    assert len(entries(tmp_path)) == 2
    (inputs,) = samples()[2]  # large enough to pass a threshold of 0, not one of 100
    assert torch.equal(run_converted(changed, (inputs,), Counter()), inputs * 0.5**4)


def test_an_unfingerprintable_attribute_disables_caching(tmp_path):
    model = HoldsCallable()
    assert cache_key(model, example(), {}) is None
    convert(model, example(), cache_dir=tmp_path)
    assert entries(tmp_path) == []


def test_no_cache_dir_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    convert(Gated(), example())
    assert list(tmp_path.iterdir()) == []


def test_the_stretch_memo_gives_the_unmemoised_program(monkeypatch):
    model = make()
    imports = []
    original = staging.import_stretch

    def counting(stretch, outputs):
        imports.append(len(stretch.calls))
        return original(stretch, outputs)

    monkeypatch.setattr(staging, "import_stretch", counting)
    memoised = convert(model, example())
    memoised_imports = len(imports)
    monkeypatch.setattr(staging, "structure_key", lambda stretch, outputs: None)
    imports.clear()
    plain = convert(model, example())
    assert memoised_imports < len(imports)
    parse_and_verify(memoised.ir)
    assert memoised.ir == plain.ir
    for inputs in samples():
        with torch.no_grad():
            expected = model(*inputs)
        assert_same(run_converted(memoised, inputs, Counter()), expected)
        assert_same(run_converted(plain, inputs, Counter()), expected)


_SAME_NAME_SOURCE = """
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        return {body}
"""


def _load_unimportable(path, body: str) -> nn.Module:
    """A model class from a file loaded as `spec_from_file_location` loads it, without an
    entry in `sys.modules` (`inspect` cannot find its source file)."""
    import importlib.util

    path.write_text(_SAME_NAME_SOURCE.format(body=body))
    spec = importlib.util.spec_from_file_location("unlisted_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    return module.Model().eval()


def test_same_named_classes_of_different_files_get_different_keys(tmp_path):
    """Two models whose class, attributes and weights match but whose forward differs: the
    key reads the files of their methods when `inspect` cannot find the class's."""
    first = _load_unimportable(tmp_path / "first.py", "self.linear(x)")
    second = _load_unimportable(tmp_path / "second.py", "self.linear(x).relu()")
    assert cache_key(first, example_4(), {}) != cache_key(second, example_4(), {})
    cache_dir = tmp_path / "cache"
    x = torch.randn(2, 4)
    for model in (first, second):
        program = ft.compile(model, (x,), backend="interpreter", cache_dir=cache_dir)
        torch.testing.assert_close(program(x), model(x))


def example_4() -> tuple[torch.Tensor]:
    return (torch.randn(2, 4),)
