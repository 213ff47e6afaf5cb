"""Generated PyTorch models, differential against eager (`passkit.differential`): each
runs eagerly and through `frontends.torch.compile` on inputs that take different paths.

Each model is compiled for inputs of batch 2, then once with `dynamic=True` for inputs of
batch sizes 0 to 5 (`passkit.differential.DYNAMIC_BATCHES`). The default run compiles a
fixed sample (derandomized, about a minute); `-m slow` runs the long one
(`PASSKIT_FUZZ_MODELS` distinct models, default 2000; the LLVM backend on every fourth
model) and writes every failing model to `PASSKIT_FUZZ_OUT` (default: a pytest temporary
directory), with `models.txt` there listing a hash of every model compared. Runs with
different `PASSKIT_FUZZ_SEED`s draw different models, so two runs can share the cores.
A model that fails with a known frontend bug (`KNOWN_FRONTEND_ERRORS`) is counted, not
failed; an `UnsupportedError` is counted too (a person decides whether docs/frontend.md
promised the construct); any other crash or wrong result fails the test.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from passkit.differential import Verdict, differential
from passkit.torch_programs import GeneratedModel, torch_models
from tests.frontend.test_generated_regressions import KNOWN_FRONTEND_ERRORS

DEFAULT_RUN_MODELS = 12
LLVM_EVERY = 4


def classify(verdict: Verdict) -> str:
    if verdict.kind == "crash" and verdict.detail in KNOWN_FRONTEND_ERRORS:
        return "known bug"
    return verdict.kind


def run_models(
    count: int,
    workdir: pathlib.Path,
    out: pathlib.Path,
    derandomize: bool,
    progress: int = 0,
    seed: int | None = None,
):
    """Differential of `count` distinct generated models; (counts by class, unexpected
    failures). With `progress`, the counts are printed every `progress` models."""
    counts: Counter = Counter()
    failures: list[str] = []
    cache = workdir / "cache"
    seen: set[str] = set()
    compared = (out / "models.txt").open("a")

    @settings(
        max_examples=count if derandomize else 3 * count,
        derandomize=derandomize,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=torch_models())
    def one(case: GeneratedModel):
        if case.source in seen or len(seen) >= count:  # hypothesis may draw a model twice
            return
        seen.add(case.source)
        compared.write(hashlib.sha256(case.source.encode()).hexdigest()[:16] + "\n")
        compared.flush()
        counts["models"] += 1
        backends = ("interpreter", "llvm") if len(seen) % LLVM_EVERY == 1 else ("interpreter",)
        verdicts = differential(case, workdir, backends, cache, dynamic_backends=backends)
        for verdict in verdicts:
            counts[(verdict.backend, classify(verdict))] += 1
            if verdict.unstable:
                counts[(verdict.backend, "inputs left out as unstable")] += verdict.unstable
        last = verdicts[-1]
        if progress and counts["models"] % progress == 0:
            print(_report(counts), flush=True)
        if classify(last) == "unsupported":
            (out / f"unsupported{counts[(last.backend, 'unsupported')]}.py").write_text(
                f"# {last}\n{case.source}"
            )
        if classify(last) in ("crash", "mismatch"):
            path = out / f"failure{len(failures)}.py"
            path.write_text(f"# {last}\n# weight seed {case.weight_seed}\n{case.source}")
            failures.append(f"{last}\n{case.source}")

    if seed is not None:
        one = hypothesis_seed(seed)(one)
    with compared:
        one()
    return counts, failures


def _report(counts: Counter) -> str:
    per_backend = sorted((key, n) for key, n in counts.items() if key != "models")
    details = ", ".join(f"{backend} {kind}: {n}" for (backend, kind), n in per_backend)
    return f"{counts['models']} distinct models; {details}"


@pytest.mark.property
def test_generated_models_agree_with_eager(tmp_path: pathlib.Path):
    counts, failures = run_models(DEFAULT_RUN_MODELS, tmp_path, tmp_path, derandomize=True)
    print(_report(counts))
    assert not failures, "\n\n".join(failures)
    assert counts[("interpreter", "agree")] >= counts["models"] // 3, _report(counts)


@pytest.mark.slow
def test_many_generated_models_agree_with_eager(tmp_path: pathlib.Path):
    count = int(os.environ.get("PASSKIT_FUZZ_MODELS", "2000"))
    out = pathlib.Path(os.environ.get("PASSKIT_FUZZ_OUT", tmp_path / "failures"))
    out.mkdir(parents=True, exist_ok=True)
    seed = os.environ.get("PASSKIT_FUZZ_SEED")
    counts, failures = run_models(
        count,
        tmp_path,
        out,
        derandomize=False,
        progress=100,
        seed=None if seed is None else int(seed),
    )
    print(f"{_report(counts)}; failing and unsupported models in {out}")
    assert not failures, f"{len(failures)} failures in {out}; first:\n{failures[0]}"


def test_the_comparison_takes_nan_host_floats_as_equal():
    """`.mean().item()` of an empty batch is nan both ways (the long run reported three
    false mismatches, "nan instead of nan", before)."""
    from passkit.differential import difference

    assert difference((torch.zeros(0), float("nan")), (torch.zeros(0), float("nan"))) is None
    assert difference(1.0, float("nan")) is not None
    assert difference(float("nan"), 1.0) is not None


def test_an_input_decided_by_rounding_is_unstable_and_a_clear_one_is_not():
    """The long run's two false mismatches: a branch on the sum of a centred tensor, whose
    sign is float noise (`x - x.mean()`, then `x.sum() > 0`)."""
    from passkit.differential import is_unstable

    class Centred(torch.nn.Module):
        def forward(self, x):
            x = x - x.mean()
            return x.abs() if x.sum() > 0 else x.flip(0)

    model = Centred()
    noisy = (torch.randn(2, 4, generator=torch.Generator().manual_seed(5)),)
    clear = (torch.tensor([[3.0, -1.0, 0.5, 2.0], [1.0, 0.0, -2.0, 4.0]]) + 10.0,)
    assert is_unstable(model, noisy, model(*noisy))
    clear = (clear[0] - clear[0].mean() + 0.5,)  # the sum is 4, far from 0
    assert not is_unstable(model, clear, model(*clear))
