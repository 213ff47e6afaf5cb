"""Fuzz targets that load native code run in a worker process, so that a crash (a signal
from a compiled kernel or a damaged shared object) is a finding the test reports, not the
end of the test run.

    python -m tests.fuzz.worker TARGET SEED SECONDS DIRECTORY

runs TARGET (a function of this module's `TARGETS`) for SECONDS, writing each input to
DIRECTORY/current before trying it and one JSON line per outcome to stdout.
`run_in_workers` is the side that starts workers, restarts them after a crash, and turns
their lines into a campaign's counts.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn

WORKER_GRACE_SECONDS = 300
INPUT_SECONDS = float(os.environ.get("DYNN_FUZZ_INPUT_SECONDS", "60"))


def _emit(outcome: str, detail: str | None = None) -> None:
    print(json.dumps({"outcome": outcome, "detail": detail}), flush=True)


HANG_EXIT_CODE = 3
LOOPING_PROGRAM_SECONDS = 10.0
"""How long a program with loops may run: a mutated bound makes a loop legitimately long."""


class _Watchdog:
    """Ends the worker when an input runs too long (a hang in native code cannot be
    interrupted from Python): with `HANG_EXIT_CODE`, or, for a program whose loops may
    just run long, after reporting it as such."""

    def __init__(self):
        self._timer: threading.Timer | None = None

    def arm(self, seconds: float, looping: bool = False) -> None:
        self.disarm()
        self._timer = threading.Timer(seconds, self._expire, (looping,))
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    @staticmethod
    def _expire(looping: bool) -> None:
        if looping:
            _emit("long-running program")
            os._exit(0)
        os._exit(HANG_EXIT_CODE)


WATCHDOG = _Watchdog()


def _deadline_inputs(seconds: float) -> Iterator[int]:
    """Input numbers until `seconds` have passed, each watched by `WATCHDOG`."""
    end, number = time.monotonic() + seconds, 0
    while number == 0 or time.monotonic() < end:
        WATCHDOG.arm(INPUT_SECONDS)
        try:
            yield number
        finally:
            WATCHDOG.disarm()
        number += 1


def both_backends(rng: random.Random, seconds: float, directory: pathlib.Path) -> None:
    """Mutated programs that verify run on the interpreter and the LLVM backend, which must
    agree (or both give located errors)."""
    from ir.program import IRError, parse_and_verify
    from runtime.program import compile_program
    from tests.fuzz.mutate import mutate_lightly
    from tests.fuzz.programs import SEEDS, agree, has_loops, inputs_and_params

    for number in _deadline_inputs(seconds):
        text = mutate_lightly(rng, SEEDS[number % len(SEEDS)])
        (directory / "current").write_text(text)
        try:
            module = parse_and_verify(text)
        except IRError:
            _emit("rejected by the verifier")
            continue
        arguments = inputs_and_params(module, rng)
        if arguments is None:
            _emit("no random inputs")
            continue
        inputs, params = arguments
        if has_loops(module):
            WATCHDOG.arm(LOOPING_PROGRAM_SECONDS, looping=True)
        outcome = {}
        for backend in ("interpreter", "llvm"):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    program = compile_program(text, params, backend=backend,
                                              cache_dir=directory / "cache")
                    copies = [v.clone() if isinstance(v, torch.Tensor) else v for v in inputs]
                    outcome[backend] = program(*copies)
            except IRError:
                outcome[backend] = IRError
        if IRError in (outcome["interpreter"], outcome["llvm"]):
            _emit("located error")
        elif agree(outcome["llvm"], outcome["interpreter"]):
            _emit("both backends agree")
        else:
            _emit("silent difference",
                  f"interpreter {outcome['interpreter']}\nllvm {outcome['llvm']}\n{text}")


def damaged_caches(rng: random.Random, seconds: float, directory: pathlib.Path) -> None:
    """A small model is compiled once into a cache (conversion, outlined program, kernels);
    then, over and over, a copy of that cache has one of its files damaged (bytes flipped,
    cut, emptied, or swapped for another entry's file) and the model is compiled from it:
    the result must be what the intact cache gave."""
    import frontends.torch as dynn
    from tests.fuzz.mutate import mutate_bytes
    from tests.fuzz.programs import agree

    torch.manual_seed(0)
    model = GatedModel().eval()
    examples = [(torch.randn(2, 4) + shift,) for shift in (-3.0, 3.0)]
    pristine = directory / "pristine"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = dynn.compile(model, examples[0], cache_dir=pristine)
        expected = [reference(*inputs) for inputs in examples]
    files = sorted(path for path in pristine.rglob("*") if path.is_file())
    for number in _deadline_inputs(seconds):
        copy = directory / f"damaged{number}"
        shutil.copytree(pristine, copy)
        victim = copy / rng.choice(files).relative_to(pristine)
        other = copy / rng.choice(files).relative_to(pristine)
        if rng.random() < 0.2 and other != victim:
            shutil.copyfile(other, victim)
            damage = f"{victim.name} replaced by {other.name}"
        else:
            victim.write_bytes(mutate_bytes(rng, victim.read_bytes()))
            damage = f"{victim.name} mutated"
        (directory / "current").write_text(damage)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = dynn.compile(model, examples[0], cache_dir=copy)
            results = [program(*inputs) for inputs in examples]
        if all(agree(got, want) for got, want in zip(results, expected)):
            _emit("recovered")
        else:
            _emit("silent difference", f"{damage}: {results} != {expected}")
        shutil.rmtree(copy, ignore_errors=True)


class GatedModel(nn.Module):
    """The model `damaged_caches` compiles: two sub-graphs around a data-dependent branch."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 3)

    def forward(self, x):
        y = self.first(x).relu()
        if y.sum() > 1.0:
            return self.second(y).softmax(-1)
        return self.second(-y)


TARGETS: dict[str, Callable[[random.Random, float, pathlib.Path], None]] = {
    "both_backends": both_backends,
    "damaged_caches": damaged_caches,
}


def run_in_workers(campaign, target: str, directory: pathlib.Path) -> None:
    """Run `target` in worker processes for the campaign's budget, restarting a worker that
    dies; a death is recorded as a crash, with the input it was trying."""
    directory.mkdir(parents=True, exist_ok=True)
    round_number = 0
    while round_number == 0 or campaign.time_left() > 0:
        seconds = max(campaign.time_left(), 1.0)
        command = [sys.executable, "-m", "tests.fuzz.worker", target,
                   f"{campaign.seed}:{round_number}", str(seconds), str(directory)]
        try:
            completed = subprocess.run(command, capture_output=True, text=True,
                                       timeout=seconds + WORKER_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            campaign.record("hang", _current_input(directory))
            break
        for line in completed.stdout.splitlines():
            record = json.loads(line)
            failing = record["outcome"] in ("silent difference", "traceback")
            campaign.record(record["outcome"], record["detail"] if failing else None)
        if completed.returncode != 0:
            kind = {1: "traceback", HANG_EXIT_CODE: "hang"}.get(
                completed.returncode, f"crash (exit {completed.returncode})"
            )
            campaign.record(kind, f"{completed.stderr[-3000:]}\n{_current_input(directory)}")
        round_number += 1


def _current_input(directory: pathlib.Path) -> str:
    try:
        return (directory / "current").read_text()
    except OSError:
        return "(no input recorded)"


if __name__ == "__main__":
    target, seed, seconds, directory = sys.argv[1:]
    TARGETS[target](random.Random(seed), float(seconds), pathlib.Path(directory))
