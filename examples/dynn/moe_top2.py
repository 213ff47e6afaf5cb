"""Top-2 sparse mixture of experts over tokens, as Mixtral's reference code writes it
(Jiang et al. 2024; the Hugging Face ``MixtralSparseMoeBlock``), in a small ViT.

A 32x32 image is cut into 16 patches of 8x8 pixels (plus a class token); the
encoder block has self-attention followed by a sparse MoE block instead of the MLP.  The
router scores every token against 4 experts; each token goes to its 2 best experts, whose
outputs are summed with the router's renormalised top-2 weights.  Every expert runs only
on the tokens routed to it, found with ``torch.where`` on a one-hot expert mask, gathered
with a data-dependent index and scattered back with ``index_add_``; an expert no token
chose is skipped.

Control flow: ``for expert_idx in range(self.num_experts)`` (unrolled) with ``if
top_x.shape[0] == 0: continue`` on a data-dependent size; ``torch.topk``, ``F.one_hot``,
``torch.where(mask)``, advanced indexing by computed indices, ``index_add_``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._common import random_images

PATCH_SIZE = 8


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, C))


class Expert(nn.Module):
    """The SwiGLU feed-forward network of one expert."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(hidden_states)) * self.w3(hidden_states))


class SparseMoeBlock(nn.Module):
    def __init__(self, dim: int, hidden: int, num_experts: int = 4, top_k: int = 2):
        super().__init__()
        self.num_experts = num_experts
        self.top_k = top_k
        self.gate = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList(Expert(dim, hidden) for _ in range(num_experts))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch_size, sequence_length, hidden_dim = hidden_states.shape
        hidden_states = hidden_states.view(-1, hidden_dim)
        router_logits = self.gate(hidden_states)
        routing_weights = F.softmax(router_logits, dim=1, dtype=torch.float)
        routing_weights, selected_experts = torch.topk(routing_weights, self.top_k, dim=-1)
        routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
        routing_weights = routing_weights.to(hidden_states.dtype)

        final_hidden_states = torch.zeros(
            (batch_size * sequence_length, hidden_dim), dtype=hidden_states.dtype,
            device=hidden_states.device)
        expert_mask = F.one_hot(selected_experts, num_classes=self.num_experts).permute(2, 1, 0)
        for expert_idx in range(self.num_experts):
            expert_layer = self.experts[expert_idx]
            idx, top_x = torch.where(expert_mask[expert_idx])
            if top_x.shape[0] == 0:
                continue
            current_state = hidden_states[None, top_x].reshape(-1, hidden_dim)
            current_hidden_states = expert_layer(current_state) * routing_weights[top_x, idx, None]
            final_hidden_states.index_add_(0, top_x, current_hidden_states.to(hidden_states.dtype))
        return final_hidden_states.reshape(batch_size, sequence_length, hidden_dim)


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.moe = SparseMoeBlock(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.moe(self.norm2(x))


class MoEViT(nn.Module):
    def __init__(self, img_size: int = 32, num_classes: int = 10, embed_dim: int = 64,
                 depth: int = 1, num_heads: int = 4, hidden: int = 128):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, embed_dim, PATCH_SIZE, PATCH_SIZE)
        num_patches = (img_size // PATCH_SIZE) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, embed_dim) * 0.02)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


@torch.no_grad()
def sharpen_routers(model: MoEViT, scale: float) -> None:
    """Scale the router weights: tokens of one image then prefer the same experts, as in a
    trained MoE, so some experts get no token of an image (and their ``continue`` runs)."""
    for block in model.blocks:
        block.moe.gate.weight.mul_(scale)


def make_model() -> nn.Module:
    """Random MoE ViT whose routers leave some experts without tokens for some images."""
    torch.manual_seed(0)
    model = MoEViT()
    sharpen_routers(model, 6.0)
    return model.eval()


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
