"""Lists of run-time length that hold host numbers, lists and tuples (beam-search style):
appended under data-dependent branches, grown as `tokens + [word]`, indexed at -1, sorted
and reduced by host keys, sliced, updated at run-time positions and turned into tensors.

Each model is checked against eager on inputs that take every path (every region runs
under the interpreter) and produce lists of several lengths, on both backends (the LLVM
runs of the two larger models are `-m slow`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest
import torch
from torch import nn

from frontends.torch import UnsupportedError, convert
from frontends.torch import compile as compile_model
from runtime.interpreter import ExecutionError
from tests.frontend.conftest import BACKENDS, check_backend


class Candidate(NamedTuple):
    score: float
    position: int
    row: torch.Tensor


class RankedRows(nn.Module):
    """Rows kept under data-dependent tests become records (named tuples) in a list whose
    length depends on the data; sorted by a host float, sliced, and the best by a key."""

    def forward(self, x: torch.Tensor):
        kept = []
        for i in range(x.shape[0]):
            row = x[i]
            if row.sum() > 0:
                kept.append(Candidate(row.max().item(), i, row))
            elif row.mean() < -0.3:
                kept.append(Candidate(row.min().item(), -i, row * 2))
        kept.append(Candidate(0.0, 99, x[0] * 0))
        best = sorted(kept, key=lambda c: c.score, reverse=True)[:2]
        top = max(kept, key=lambda c: c.score - c.position / 10)
        low = min(kept, key=lambda c: c.score)
        rows = torch.stack([c.row for c in best])
        return rows, top.position, low.score, len(kept), sum(c.position for c in kept)


class GrownTokens(nn.Module):
    """A list of host ints grown by `tokens + [word]` and `append` on some paths, read at
    -1 to decide the next step, turned into a tensor and reduced."""

    def forward(self, x: torch.Tensor):
        tokens = [0]
        for step in range(x.shape[0]):
            if x[step].sum() > 0:
                tokens = tokens + [int(x[step].argmax())]
            elif tokens[-1] > 1:
                tokens.append(tokens[-1] - 1)
        ended = all(t < 2 for t in tokens)
        grown = torch.tensor(tokens[1:], dtype=torch.long)
        return torch.tensor(tokens), len(tokens), max(tokens), ended, grown


class TupleBeams(nn.Module):
    """A small beam search written with plain tuples, a `while` loop that breaks, updates
    at run-time positions (`beams[i] = ...`) and a list of finished hypotheses."""

    def __init__(self):
        super().__init__()
        self.step = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor):
        beams = [([1], 0.0, x)]
        finished = [([1, 0], -9.0)]
        length = 0
        while length < 4:
            length += 1
            candidates = []
            for tokens, score, state in beams:
                logits = torch.log_softmax(self.step(state), dim=-1)
                values, words = logits.topk(2)
                for value, word in zip(values[0].tolist(), words[0].tolist()):
                    if word == 0:
                        finished.append((tokens + [word], score + value))
                    else:
                        grown = (tokens + [word], score + value, torch.tanh(state + word))
                        candidates.append(grown)
            beams = sorted(candidates, key=lambda b: b[1], reverse=True)[:2]
            beams = [b for b in beams if b[1] > -3.5]
            for i in range(len(beams)):
                if beams[i][1] < -3.0:
                    beams[i] = (beams[i][0], -3.0, beams[i][2])
            if not beams:
                break
        for b in beams:
            finished.append((b[0], b[1]))
        best = max(finished, key=lambda f: f[1] / len(f[0]))
        return torch.tensor(best[0]), best[1]


class TensorScoredBeams(nn.Module):
    """Beam search in another common style: scores kept as 0-d tensors (sorted by them, as
    Python compares one-element tensors), `enumerate` over the beams, `pool.extend`,
    `pool.sort(key=..., reverse=True)`, and a Python list of token ids returned."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 6)

    def forward(self, x: torch.Tensor):
        hyps = [(torch.zeros(()), [2], x)]
        for _ in range(3):
            pool = []
            for i, (score, seq, state) in enumerate(hyps):
                top = torch.log_softmax(self.proj(state)[0], -1).topk(2)
                for j in range(2):
                    word = top.indices[j].item()
                    if word == 0 and i == 0:
                        continue
                    state_after = torch.tanh(state * (word + 1))
                    pool.extend([(score + top.values[j], seq + [word], state_after)])
            pool.sort(key=lambda h: h[0], reverse=True)
            hyps = pool[:2]
        lengths = [len(h[1]) for h in hyps]
        return hyps[0][1], hyps[0][0], torch.stack([h[2] for h in hyps]), lengths


class Rescored(nn.Module):
    """`_replace` on records read out of a run-time list, and `sum` of their float scores."""

    def forward(self, x: torch.Tensor):
        kept = [Candidate(0.5, -1, x[0])]
        for i in range(x.shape[0]):
            if x[i].sum() > 0:
                kept.append(Candidate(x[i].max().item(), i, x[i]))
        kept = [c._replace(score=c.score / 2) for c in kept]
        return sum(c.score for c in kept), sum(c.position for c in kept)


def _row_samples() -> list[tuple[torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    samples = [(torch.randn(4, 3, generator=generator),) for _ in range(10)]
    samples.append((-torch.ones(4, 3),))  # no row kept but the default
    samples.append((torch.ones(4, 3),))  # every row kept, ties broken in order
    climb = torch.tensor([[0.0, 0, 5], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1]])
    samples.append((climb,))  # a token 2 counts down: 2, 1, then stays
    samples.append((climb.flip(0),))
    return samples


def _beam_samples() -> list[tuple[torch.Tensor]]:
    generator = torch.Generator().manual_seed(5)
    return [(torch.randn(1, 4, generator=generator) * 3,) for _ in range(16)]


@pytest.mark.parametrize(
    "backend", ["interpreter", pytest.param("llvm", marks=pytest.mark.slow)]
)
def test_records_sorted_sliced_and_reduced_by_host_keys(backend):
    samples = _row_samples()
    check_backend(RankedRows(), samples[0], samples, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_host_ints_grown_indexed_and_made_a_tensor(backend):
    samples = _row_samples()
    check_backend(GrownTokens(), samples[0], samples, backend)


def test_named_tuple_replace_and_float_sums_over_a_run_time_list():
    samples = _row_samples()
    check_backend(Rescored(), samples[0], samples, "interpreter")


@pytest.mark.parametrize(
    "backend", ["interpreter", pytest.param("llvm", marks=pytest.mark.slow)]
)
def test_tuple_beams_in_a_while_loop_with_item_assignment(backend):
    torch.manual_seed(0)
    samples = _beam_samples()
    check_backend(TupleBeams().eval(), samples[0], samples, backend)


@pytest.mark.parametrize(
    "backend", ["interpreter", pytest.param("llvm", marks=pytest.mark.slow)]
)
def test_tensor_scored_beams_enumerated_extended_sorted_in_place(backend):
    torch.manual_seed(1)
    generator = torch.Generator().manual_seed(7)
    samples = [(torch.randn(1, 3, generator=generator) * 2,) for _ in range(12)]
    check_backend(TensorScoredBeams().eval(), samples[0], samples, backend)


class EmptyToTensor(nn.Module):
    def forward(self, x: torch.Tensor):
        picked = []
        for i in range(2):
            if x[i].sum() > 0:
                picked.append(int(x[i].argmax()))
        return torch.tensor(picked)


def test_tensor_of_an_empty_int_list_is_a_located_run_time_error():
    """Eager gives float32 for `torch.tensor([])` and int64 otherwise: a dtype that depends
    on the data has no type, so the empty case stops with the model's line."""
    x = torch.ones(2, 3)
    program = compile_model(EmptyToTensor(), (x,), backend="interpreter", cache_dir=None)
    assert torch.equal(program(x), EmptyToTensor()(x))
    with pytest.raises(ExecutionError, match=r"test_host_lists.py:\d+:\d+: .*pass dtype="):
        program(-x)


class MeanOfCollectedLosses(nn.Module):
    """`sum(losses) / len(losses)` over tensors collected by a data-dependent loop, and
    `sum` of a comprehension over them: a number start and tensor items."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor):
        losses, h = [], x
        while h.abs().sum() > 1.0 and len(losses) < 6:
            h = torch.tanh(self.layer(h)) * 0.7
            losses.append(h.pow(2).mean())
        if not losses:
            return x.sum(), 0, x[0]
        squares = [loss * loss for loss in losses]
        active = sum((row for row in x if row.sum() > 0), torch.zeros(4))
        return sum(losses) / len(losses), sum(squares, 1.0), active


@pytest.mark.parametrize("backend", BACKENDS)
def test_sum_of_a_run_time_list_of_tensors_from_a_number(backend):
    samples = [(torch.randn(2, 4, generator=torch.Generator().manual_seed(seed)) * scale,)
               for seed, scale in enumerate((0.05, 0.3, 1.0, 3.0, 10.0))]
    check_backend(MeanOfCollectedLosses().eval(), samples[2], samples, backend)


class SumOfPossiblyEmpty(nn.Module):
    def forward(self, x: torch.Tensor):
        kept = [row for row in x if row.sum() > 0]
        return sum(kept)


def test_sum_of_an_empty_run_time_list_of_tensors_is_a_located_error():
    """Python's `sum([])` is the int 0, which a tensor result cannot stand for."""
    x = torch.ones(2, 3)
    program = compile_model(SumOfPossiblyEmpty(), (x,), backend="interpreter", cache_dir=None)
    assert torch.equal(program(x), SumOfPossiblyEmpty()(x))
    with pytest.raises(ExecutionError, match=r"test_host_lists.py:\d+:\d+: "):
        program(-x)


class MixedKinds(nn.Module):
    def forward(self, x: torch.Tensor):
        values = []
        for i in range(2):
            if x[i].sum() > 0:
                values.append(i)
        if x.sum() > 1:
            values.append(x[0])
        return len(values)


class NestedToTensor(nn.Module):
    def forward(self, x: torch.Tensor):
        rows = []
        for i in range(2):
            if x[i].sum() > 0:
                rows.append([int(x[i].argmax())])
        return torch.tensor(rows)


class TensorKeys(nn.Module):
    def forward(self, x: torch.Tensor):
        rows = []
        for i in range(2):
            if x[i].sum() > 0:
                rows.append(x[i])
        return torch.stack(sorted(rows, key=lambda r: r * 2))  # eager: ambiguous truth


class UpdatesABorrowedList(nn.Module):
    def forward(self, x: torch.Tensor):
        hyps = []
        for i in range(2):
            if x[i].sum() > 0:
                hyps.append(([i], x[i]))
        for tokens, _ in hyps:
            tokens.append(5)  # Python would update the hypothesis inside `hyps`
        return len(hyps)


class ListRecords(nn.Module):
    def forward(self, x: torch.Tensor):
        candidates = []
        for i in range(2):
            if x[i].sum() > 0:
                candidates.append([[i], x[i].sum().item()])
        return len(candidates)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (MixedKinds(), "does not match"),
        (UpdatesABorrowedList(), "read out of a list of run-time length"),
        (ListRecords(), "must be a tuple"),
        (NestedToTensor(), "torch.tensor()"),
        (TensorKeys(), "sorted()"),
    ],
)
def test_unsupported_list_uses_are_located_errors(model, message):
    with pytest.raises(UnsupportedError) as raised:
        convert(model, (torch.randn(2, 3),))
    text = str(raised.value)
    assert "test_host_lists.py:" in text and message in text and "\n" not in text


class CellOnOneToken(nn.Module):
    """A decoder step on one token against a state whose batch is dynamic: eager raises
    at batch > 1 (ATen checks the cell's batch sizes), the decomposed cell would broadcast."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.cell = nn.LSTMCell(3, 4)

    def forward(self, x: torch.Tensor):
        h, c = self.cell(self.embed(torch.tensor([1])), (torch.tanh(x), x * 0))
        return h + c


def test_rnn_cell_batch_mismatch_at_run_time_is_a_located_error():
    model = CellOnOneToken().eval()
    program = compile_model(
        model, (torch.randn(1, 4),), backend="interpreter", cache_dir=None, dynamic=True
    )
    x = torch.randn(1, 4)
    torch.testing.assert_close(program(x), model(x))
    with pytest.raises(RuntimeError, match="doesn't match hidden0 batch size"):
        model(torch.randn(3, 4))
    located = r"test_host_lists.py:\d+:\d+: .*LSTMCell: input batch"
    with pytest.raises(ExecutionError, match=located):
        program(torch.randn(3, 4))


class LogScore(nn.Module):
    def forward(self, x: torch.Tensor):
        p = x.sum().item()
        return math.log(p) + math.exp(-p) + math.sqrt(abs(p)) + math.tanh(p)


def test_math_of_run_time_numbers_and_its_domain_error():
    model = LogScore()
    x = torch.rand(2, 3) + 0.1
    program = compile_model(model, (x,), backend="interpreter", cache_dir=None)
    for scale in (0.5, 1.0, 3.0):
        assert program(x * scale) == pytest.approx(model(x * scale), rel=1e-12)
    with pytest.raises(ValueError, match="math domain error"):
        model(-x)
    located = r"test_host_lists.py:\d+:\d+: .*math.log: math domain"
    with pytest.raises(ExecutionError, match=located):
        program(-x)
