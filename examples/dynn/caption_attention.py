"""Image captioning with soft attention (Show, Attend and Tell; Xu et al., ICML 2015).

A CIFAR ResNet-20 encodes the image into a 4x4 grid of 64-dimensional annotation vectors;
an LSTM decoder attends over them at every step (additive attention, gated by ``f_beta``).
The decoder's greedy entry point is written as captioning research code writes it for
inference: the sequence starts as a ``LongTensor`` holding the ``<start>`` id of the word
map and grows by ``torch.cat`` each step; the method returns from inside the loop as soon
as the word is ``<end>``, and stops after ``max_len`` words otherwise.  ``CaptionModel``
wraps encoder and decoder so that the greedy method is reached from a ``forward``.

Control flow: ``while True`` in a method of a submodule called from ``forward``; ``return``
of the grown sequence from inside the loop (``if next_word_inds[0] == word_map['<end>']``);
``break`` at the length cap; a Python-int step counter.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    CALIBRATION_SEED,
    cifar_resnet_blocks,
    conv_bn,
    random_images,
    recalibrate_batchnorm,
    stack_inputs,
)

SPECIAL_WORDS = ("<pad>", "<start>", "<end>", "<unk>")


def make_word_map(vocab_size: int) -> dict[str, int]:
    """Word -> id, special tokens first (the layout of a captioning dataset's word map)."""
    words = [*SPECIAL_WORDS, *(f"word{i}" for i in range(vocab_size - len(SPECIAL_WORDS)))]
    return {word: index for index, word in enumerate(words)}


class Encoder(nn.Module):
    """ResNet-20 features pooled to ``encoded_image_size`` squared annotation vectors."""

    def __init__(self, encoded_image_size: int = 4):
        super().__init__()
        self.resnet = nn.Sequential(conv_bn(3, 16), *cifar_resnet_blocks(3))
        self.adaptive_pool = nn.AdaptiveAvgPool2d((encoded_image_size, encoded_image_size))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.adaptive_pool(self.resnet(images))
        return out.permute(0, 2, 3, 1)  # (batch, size, size, encoder_dim)


class Attention(nn.Module):
    """Additive attention of the decoder state over the annotation vectors."""

    def __init__(self, encoder_dim: int, decoder_dim: int, attention_dim: int):
        super().__init__()
        self.encoder_att = nn.Linear(encoder_dim, attention_dim)
        self.decoder_att = nn.Linear(decoder_dim, attention_dim)
        self.full_att = nn.Linear(attention_dim, 1)

    def forward(self, encoder_out: torch.Tensor, decoder_hidden: torch.Tensor):
        att1 = self.encoder_att(encoder_out)
        att2 = self.decoder_att(decoder_hidden)
        att = self.full_att(F.relu(att1 + att2.unsqueeze(1))).squeeze(2)
        alpha = F.softmax(att, dim=1)
        attention_weighted_encoding = (encoder_out * alpha.unsqueeze(2)).sum(dim=1)
        return attention_weighted_encoding, alpha


class DecoderWithAttention(nn.Module):
    def __init__(self, word_map: dict[str, int], attention_dim: int = 256,
                 embed_dim: int = 256, decoder_dim: int = 512, encoder_dim: int = 64,
                 max_len: int = 16):
        super().__init__()
        self.word_map = word_map
        self.max_len = max_len
        vocab_size = len(word_map)
        self.attention = Attention(encoder_dim, decoder_dim, attention_dim)
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.decode_step = nn.LSTMCell(embed_dim + encoder_dim, decoder_dim)
        self.init_h = nn.Linear(encoder_dim, decoder_dim)
        self.init_c = nn.Linear(encoder_dim, decoder_dim)
        self.f_beta = nn.Linear(decoder_dim, encoder_dim)
        self.fc = nn.Linear(decoder_dim, vocab_size)

    def init_hidden_state(self, encoder_out: torch.Tensor):
        mean_encoder_out = encoder_out.mean(dim=1)
        return self.init_h(mean_encoder_out), self.init_c(mean_encoder_out)

    def step(self, encoder_out: torch.Tensor, prev_words: torch.Tensor, h: torch.Tensor,
             c: torch.Tensor):
        """One decoding step: vocabulary scores and the new LSTM state."""
        embeddings = self.embedding(prev_words).squeeze(1)
        awe, _ = self.attention(encoder_out, h)
        gate = torch.sigmoid(self.f_beta(h))
        h, c = self.decode_step(torch.cat([embeddings, gate * awe], dim=1), (h, c))
        return self.fc(h), h, c

    def greedy_decode(self, encoder_out: torch.Tensor) -> torch.Tensor:
        """Caption one image: ``<start>`` followed by the greedily chosen words."""
        encoder_dim = encoder_out.size(-1)
        encoder_out = encoder_out.view(1, -1, encoder_dim)
        k_prev_words = torch.LongTensor([[self.word_map['<start>']]])
        seqs = k_prev_words
        h, c = self.init_hidden_state(encoder_out)
        step = 1
        while True:
            scores, h, c = self.step(encoder_out, k_prev_words, h, c)
            scores = F.log_softmax(scores, dim=1)
            next_word_inds = scores.argmax(dim=1)
            seqs = torch.cat([seqs, next_word_inds.unsqueeze(1)], dim=1)
            if next_word_inds[0] == self.word_map['<end>']:
                return seqs
            if step >= self.max_len:
                break
            k_prev_words = next_word_inds.unsqueeze(1)
            step += 1
        return seqs


class CaptionModel(nn.Module):
    def __init__(self, encoder: Encoder, decoder: DecoderWithAttention):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.decoder.greedy_decode(self.encoder(image))


@torch.no_grad()
def calibrate_end_word(decoder: DecoderWithAttention, encoder_out: torch.Tensor,
                       stop_rate: float) -> None:
    """Raise the ``<end>`` bias until about ``stop_rate`` of the captions end early.

    Until ``<end>`` is chosen the words do not depend on its score, so a batched rollout with
    ``<end>`` masked out gives each image the smallest bias at which it would be chosen
    within ``max_len`` words; the bias is set to their ``stop_rate`` quantile.
    """
    end = decoder.word_map["<end>"]
    encoder_out = encoder_out.flatten(1, 2)
    h, c = decoder.init_hidden_state(encoder_out)
    words = torch.full((encoder_out.shape[0], 1), decoder.word_map["<start>"])
    gaps = []
    for _ in range(decoder.max_len):
        scores, h, c = decoder.step(encoder_out, words, h, c)
        end_score = scores[:, end].clone()
        scores[:, end] = -math.inf
        best, next_words = scores.max(dim=1)
        gaps.append(best - end_score)
        words = next_words.unsqueeze(1)
    needed = torch.stack(gaps, dim=1).amin(dim=1)
    decoder.fc.bias[end] += torch.quantile(needed, stop_rate)


def make_model() -> nn.Module:
    """Random captioner whose captions end before ``max_len`` words for ~60% of images."""
    torch.manual_seed(0)
    encoder = Encoder()
    decoder = DecoderWithAttention(make_word_map(1000))
    batch = stack_inputs(random_images(32, CALIBRATION_SEED))
    recalibrate_batchnorm(encoder, lambda: encoder(batch))
    calibrate_end_word(decoder, encoder(batch), 0.6)
    return CaptionModel(encoder, decoder).eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
