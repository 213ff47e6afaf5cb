"""Automatic dynamic sizes in unrolled loops (docs/frontend.md, "Sizes known only at run
time"): a tensor whose size changes from one iteration to the next gets `?` there, so the
iterations after it share sub-graphs instead of compiling one per size."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from xdsl.context import Context

import frontends.torch as ft
from ir import dy
from passes.outline_regions import OutlineRegions
from tests.frontend.conftest import BACKENDS, check_backend

backends = pytest.mark.parametrize("backend", BACKENDS)


class GreedyDecoder(nn.Module):
    """Annotated-Transformer-style greedy decoding: the whole prefix is re-read each step
    with a causal mask built from its length and positions sliced from a buffer by it; the
    sequence grows by `torch.cat` and the loop stops at the end token."""

    def __init__(self, max_len: int = 8, vocab: int = 7, width: int = 16):
        super().__init__()
        self.max_len = max_len
        self.embed = nn.Embedding(vocab, width)
        self.register_buffer("positions", torch.randn(1, 32, width) * 0.1)
        self.query = nn.Linear(width, width)
        self.out = nn.Linear(width, vocab)

    def next_token(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.positions[:, : tokens.size(1)]
        size = tokens.size(1)
        mask = torch.triu(torch.ones(1, size, size), diagonal=1) == 0
        scores = self.query(x) @ x.transpose(1, 2) / math.sqrt(x.size(-1))
        attended = scores.masked_fill(~mask, -1e9).softmax(-1) @ x
        return self.out(attended[:, -1]).argmax(-1, keepdim=True)

    def forward(self, start: torch.Tensor) -> torch.Tensor:
        tokens = start
        for _ in range(self.max_len):
            next_token = self.next_token(tokens)
            tokens = torch.cat([tokens, next_token], dim=1)
            if next_token.item() == 0:
                break
        return tokens


def _graphs(model: nn.Module, example: tuple) -> int:
    conversion = ft.convert(model, example)
    OutlineRegions().apply(Context(), conversion.module)
    return sum(isinstance(op, dy.GraphOp) for op in conversion.module.ops)


def _decoder(max_len: int) -> GreedyDecoder:
    torch.manual_seed(3)
    return GreedyDecoder(max_len).eval()


@backends
def test_a_growing_sequence_agrees_at_every_stopping_step(backend):
    model = _decoder(8)
    samples = [(torch.tensor([[t]]),) for t in range(7)]
    lengths = {model(*s).shape[1] for s in samples}
    assert len(lengths) > 2, lengths
    check_backend(model, samples[0], samples, backend)


def test_longer_decoding_compiles_no_more_sub_graphs():
    example = (torch.tensor([[3]]),)
    short, long = _graphs(_decoder(4), example), _graphs(_decoder(12), example)
    assert short == long, (short, long)


class ChunkedSum(nn.Module):
    """`torch.split` into pieces of 3 along a size that grows: how many pieces there are
    depends on the size, and torch.export's size-oblivious trace of one size takes the
    second piece to run to the end without a guard, which holds up to 6 only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(())
        for _ in range(8):
            second = torch.split(x, 3, dim=1)[1]
            total = total + second.sum()
            x = torch.cat([x, x[:, :1] * 0.5], dim=1)
            if total > 1e6:
                break
        return total + x.sum()


@backends
def test_an_import_is_shared_across_sizes_only_where_its_trace_is_the_same(backend):
    samples = [(torch.randn(2, 4) + k,) for k in range(3)]
    check_backend(ChunkedSum(), samples[0], samples, backend, require_coverage=False)


class DecayingHistory(nn.Module):
    """Two names for the growing tensor, updated in place through one and read through the
    other: the widened tensor is still one tensor."""

    def __init__(self):
        super().__init__()
        self.step = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        history = x
        alias = history
        for _ in range(6):
            alias.mul_(0.9)
            new = torch.tanh(self.step(history[:, -1:]))
            history = torch.cat([history, new], dim=1)
            alias = history
            if new.sum() > 3.5:
                break
        return history


@backends
def test_a_widened_tensor_keeps_its_aliases(backend):
    torch.manual_seed(1)
    samples = [(torch.randn(1, 2, 4) * s,) for s in (0.5, 1.0, 2.0)]
    check_backend(DecayingHistory().eval(), samples[0], samples, backend, require_coverage=False)


class BatchGreedyDecoder(GreedyDecoder):
    """`GreedyDecoder` on a batch that stops when every row has emitted the end token."""

    def forward(self, start: torch.Tensor) -> torch.Tensor:
        tokens = start
        for _ in range(self.max_len):
            next_token = self.next_token(tokens)
            tokens = torch.cat([tokens, next_token], dim=1)
            if (next_token == 0).all():
                break
        return tokens


@backends
def test_a_growing_sequence_of_a_dynamic_batch_agrees_at_every_batch_size(backend):
    torch.manual_seed(3)
    model = BatchGreedyDecoder(7).eval()
    generator = torch.Generator().manual_seed(0)
    samples = [(torch.randint(0, 7, (b, 1), generator=generator),) for b in (2, 1, 3, 5, 8)]
    samples.append((torch.zeros(4, 1, dtype=torch.long),))
    lengths = {model(*s).shape[1] for s in samples}
    assert len(lengths) > 1, lengths
    check_backend(model, samples[0], samples, backend, dynamic=True, require_coverage=False)
