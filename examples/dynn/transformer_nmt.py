"""Transformer translation model with greedy decoding (Vaswani et al., NeurIPS 2017).

An encoder-decoder Transformer (3 + 3 pre-norm layers, d_model 128, 4 heads, 1000-word
vocabularies) written as annotated-Transformer research code writes it: attention from
``nn.Linear`` layers and ``matmul``, masks built from the padding and ``triu``, sinusoidal
positional encodings in a buffer.  ``forward`` translates a padded source sentence greedily,
re-decoding the whole prefix at each step; it stops at the end-of-sentence word, when the
decoder predicts the word it has just emitted (``torch.equal`` of the two one-word tensors:
greedy decoding that repeats itself is stuck), or after ``max_len`` words.

Control flow: an unrolled ``for`` whose tensors grow by one word per iteration
(``torch.cat``); ``if torch.equal(next_word, ys[:, -1:]): break``; ``if next_word.item() ==
self.eos: break``; static ``if mask is not None``.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ._common import CALIBRATION_SEED

VOCAB_SIZE = 1000
SOURCE_LENGTH = 16
PAD, BOS, EOS = 0, 1, 2


def clones(module: nn.Module, n: int) -> nn.ModuleList:
    return nn.ModuleList(copy.deepcopy(module) for _ in range(n))


def subsequent_mask(size: int) -> torch.Tensor:
    """Mask out subsequent positions: ``[1, size, size]``, True where attention is allowed."""
    return torch.triu(torch.ones((1, size, size)), diagonal=1).type(torch.uint8) == 0


class MultiHeadedAttention(nn.Module):
    def __init__(self, h: int, d_model: int):
        super().__init__()
        self.d_k = d_model // h
        self.h = h
        self.linears = clones(nn.Linear(d_model, d_model), 4)

    def forward(self, query, key, value, mask=None):
        if mask is not None:  # static
            mask = mask.unsqueeze(1)  # the same mask for every head
        nbatches = query.size(0)
        query, key, value = [
            lin(x).view(nbatches, -1, self.h, self.d_k).transpose(1, 2)
            for lin, x in zip(self.linears, (query, key, value))
        ]
        scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:  # static
            scores = scores.masked_fill(mask == 0, -1e9)
        p_attn = scores.softmax(dim=-1)
        x = torch.matmul(p_attn, value)
        x = x.transpose(1, 2).contiguous().view(nbatches, -1, self.h * self.d_k)
        return self.linears[-1](x)


class PositionwiseFeedForward(nn.Module):
    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)

    def forward(self, x):
        return self.w_2(self.w_1(x).relu())


class SublayerConnection(nn.Module):
    """Pre-norm residual connection around a sub-layer."""

    def __init__(self, size: int):
        super().__init__()
        self.norm = nn.LayerNorm(size)

    def forward(self, x, sublayer):
        return x + sublayer(self.norm(x))


class EncoderLayer(nn.Module):
    def __init__(self, size: int, self_attn: nn.Module, feed_forward: nn.Module):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.sublayer = clones(SublayerConnection(size), 2)

    def forward(self, x, mask):
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, mask))
        return self.sublayer[1](x, self.feed_forward)


class DecoderLayer(nn.Module):
    def __init__(self, size: int, self_attn: nn.Module, src_attn: nn.Module,
                 feed_forward: nn.Module):
        super().__init__()
        self.self_attn = self_attn
        self.src_attn = src_attn
        self.feed_forward = feed_forward
        self.sublayer = clones(SublayerConnection(size), 3)

    def forward(self, x, memory, src_mask, tgt_mask):
        m = memory
        x = self.sublayer[0](x, lambda x: self.self_attn(x, x, x, tgt_mask))
        x = self.sublayer[1](x, lambda x: self.src_attn(x, m, m, src_mask))
        return self.sublayer[2](x, self.feed_forward)


class Encoder(nn.Module):
    def __init__(self, layer: nn.Module, n: int):
        super().__init__()
        self.layers = clones(layer, n)
        self.norm = nn.LayerNorm(layer.self_attn.h * layer.self_attn.d_k)

    def forward(self, x, mask):
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(self, layer: nn.Module, n: int):
        super().__init__()
        self.layers = clones(layer, n)
        self.norm = nn.LayerNorm(layer.self_attn.h * layer.self_attn.d_k)

    def forward(self, x, memory, src_mask, tgt_mask):
        for layer in self.layers:
            x = layer(x, memory, src_mask, tgt_mask)
        return self.norm(x)


class Embeddings(nn.Module):
    def __init__(self, d_model: int, vocab: int):
        super().__init__()
        self.lut = nn.Embedding(vocab, d_model)
        self.d_model = d_model

    def forward(self, x):
        return self.lut(x) * math.sqrt(self.d_model)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, max_len: int = 64):
        super().__init__()
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * -(math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x):
        return x + self.pe[:, : x.size(1)]


class Generator(nn.Module):
    def __init__(self, d_model: int, vocab: int):
        super().__init__()
        self.proj = nn.Linear(d_model, vocab)

    def forward(self, x):
        return self.proj(x).log_softmax(dim=-1)


class TransformerNMT(nn.Module):
    def __init__(self, n: int = 3, d_model: int = 128, d_ff: int = 256, h: int = 4,
                 max_len: int = 16):
        super().__init__()
        self.max_len = max_len
        self.pad, self.bos, self.eos = PAD, BOS, EOS
        attn = MultiHeadedAttention(h, d_model)
        ff = PositionwiseFeedForward(d_model, d_ff)
        self.encoder = Encoder(EncoderLayer(d_model, copy.deepcopy(attn), copy.deepcopy(ff)), n)
        self.decoder = Decoder(DecoderLayer(d_model, copy.deepcopy(attn), copy.deepcopy(attn),
                                            copy.deepcopy(ff)), n)
        self.src_embed = nn.Sequential(Embeddings(d_model, VOCAB_SIZE),
                                       PositionalEncoding(d_model))
        self.tgt_embed = nn.Sequential(Embeddings(d_model, VOCAB_SIZE),
                                       PositionalEncoding(d_model))
        self.generator = Generator(d_model, VOCAB_SIZE)

    def encode(self, src, src_mask):
        return self.encoder(self.src_embed(src), src_mask)

    def decode(self, memory, src_mask, tgt, tgt_mask):
        return self.decoder(self.tgt_embed(tgt), memory, src_mask, tgt_mask)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        """Greedy translation of one padded source sentence."""
        src_mask = (src != self.pad).unsqueeze(-2)
        memory = self.encode(src, src_mask)
        ys = torch.zeros(1, 1).fill_(self.bos).type_as(src)
        for _ in range(self.max_len - 1):
            out = self.decode(memory, src_mask, ys, subsequent_mask(ys.size(1)).type_as(src))
            prob = self.generator(out[:, -1])
            _, next_word = torch.max(prob, dim=1)
            next_word = next_word.unsqueeze(1)
            if torch.equal(next_word, ys[:, -1:]):  # the decoder repeats itself: stuck
                break
            ys = torch.cat([ys, next_word], dim=1)
            if next_word.item() == self.eos:
                break
        return ys


def random_sentences(n: int, seed: int) -> list[tuple[torch.Tensor]]:
    """``n`` 1x16 source sentences of 4..15 words, then ``<eos>`` and padding."""
    g = torch.Generator().manual_seed(seed)
    sentences = []
    for _ in range(n):
        length = int(torch.randint(4, SOURCE_LENGTH, (1,), generator=g))
        src = torch.full((1, SOURCE_LENGTH), PAD)
        src[0, :length] = torch.randint(3, VOCAB_SIZE, (length,), generator=g)
        src[0, length] = EOS
        sentences.append((src,))
    return sentences


@torch.no_grad()
def greedy_rollout(model: TransformerNMT, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched greedy decoding of ``max_len - 1`` words with ``<eos>`` never chosen.

    Returns, per sentence, the first step whose word repeats the previous one (``max_len``
    when none does) and, per step, the score ``<eos>`` lacks to be chosen there.
    """
    src_mask = (src != model.pad).unsqueeze(-2)
    memory = model.encode(src, src_mask)
    ys = torch.full((src.shape[0], 1), model.bos)
    gaps = []
    first_repeat = torch.full((src.shape[0],), model.max_len)
    for step in range(model.max_len - 1):
        out = model.decode(memory, src_mask, ys, subsequent_mask(ys.size(1)).type_as(src))
        prob = model.generator(out[:, -1])
        eos = prob[:, model.eos].clone()
        prob[:, model.eos] = -math.inf
        best, next_word = prob.max(dim=1)
        gaps.append(best - eos)
        repeats = (next_word == ys[:, -1]) & (first_repeat == model.max_len)
        first_repeat[repeats] = step
        ys = torch.cat([ys, next_word[:, None]], dim=1)
    return first_repeat, torch.stack(gaps, dim=1)


@torch.no_grad()
def calibrate_generator(model: TransformerNMT, src: torch.Tensor, repeat_rate: float,
                        eos_rate: float) -> None:
    """Give the output layer a trained model's word-frequency prior and an ``<eos>`` bias.

    The prior is Zipfian, ``-alpha * log(rank)`` over a random ranking of the words
    (``<pad>`` and ``<bos>`` last): the strength ``alpha`` is the smallest on a grid under
    which about ``repeat_rate`` of the greedy translations repeat a word.  Then ``<eos>``
    gets the bias under which about ``eos_rate`` of them end before repeating or reaching
    ``max_len``.
    """
    bias = model.generator.proj.bias
    rank = torch.randperm(VOCAB_SIZE).float() + 1
    rank[[model.pad, model.bos]] = VOCAB_SIZE + 1
    original = bias.clone()
    for alpha in torch.linspace(0.0, 3.0, 13):
        bias.copy_(original - alpha * rank.log())
        first_repeat, gaps = greedy_rollout(model, src)
        if (first_repeat < model.max_len).float().mean() >= repeat_rate:
            break
    steps = torch.arange(gaps.shape[1])
    before_repeat = torch.where(steps[None] <= first_repeat[:, None], gaps, math.inf)
    bias[model.eos] += torch.quantile(before_repeat.amin(dim=1), eos_rate)


def make_model() -> nn.Module:
    """Random translator: ~35% of greedy translations end at ``<eos>``, others repeat a
    word or reach ``max_len``."""
    torch.manual_seed(0)
    model = TransformerNMT().eval()
    sources = torch.cat([src for (src,) in random_sentences(32, CALIBRATION_SEED)])
    calibrate_generator(model, sources, repeat_rate=0.4, eos_rate=0.35)
    return model


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_sentences(n, seed)
