"""Token pruning by threshold on a ViT-Tiny, DynamicViT-style (Rao et al., NeurIPS 2021).

A ViT-Tiny (embedding 192, 12 layers, 3 heads) on 32x32 images cut into 4x4 patches (64
patch tokens and a class token).  Before layers 4, 7 and 10 a prediction module (DynamicViT's
``PredictorLG``: per-token local features next to the mean of all tokens, an MLP, a
log-softmax over keep / drop) scores the patch tokens; the tokens whose keep probability
passes the threshold survive ``x[:, keep]``, so the token count, hence the cost of every
later layer, depends on the image.  If no patch token passes, the best-scoring one is kept
(the class token alone carries too little for the later layers).

Control flow: ``for i, blk in enumerate(self.blocks)`` with a static ``if i in
self.pruning_loc``; boolean-mask indexing of the token dimension by a data-dependent mask;
``if not keep.any()`` replacing the mask.
"""
from __future__ import annotations

import torch
from torch import nn

from ._common import CALIBRATION_SEED, random_images

PATCH_SIZE = 4
PRUNING_LOC = (3, 6, 9)


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
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PredictorLG(nn.Module):
    """Keep / drop log-probabilities per token from its local feature and the global mean."""

    def __init__(self, embed_dim: int):
        super().__init__()
        self.in_conv = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, embed_dim),
                                     nn.GELU())
        self.out_conv = nn.Sequential(
            nn.Linear(embed_dim, embed_dim // 2), nn.GELU(),
            nn.Linear(embed_dim // 2, embed_dim // 4), nn.GELU(),
            nn.Linear(embed_dim // 4, 2), nn.LogSoftmax(dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_conv(x)
        B, N, C = x.size()
        local_x = x[:, :, : C // 2]
        global_x = x[:, :, C // 2:].mean(dim=1, keepdim=True)
        x = torch.cat([local_x, global_x.expand(B, N, C // 2)], dim=-1)
        return self.out_conv(x)


class DynamicViT(nn.Module):
    def __init__(self, img_size: int = 32, num_classes: int = 10, embed_dim: int = 192,
                 depth: int = 12, num_heads: int = 3, keep_threshold: float = 0.5):
        super().__init__()
        self.pruning_loc = PRUNING_LOC
        self.keep_threshold = keep_threshold
        self.patch_embed = nn.Conv2d(3, embed_dim, PATCH_SIZE, PATCH_SIZE)
        num_patches = (img_size // PATCH_SIZE) ** 2
        self.cls_token = nn.Parameter(torch.randn(1, 1, embed_dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, embed_dim) * 0.02)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads) for _ in range(depth))
        self.score_predictor = nn.ModuleList(PredictorLG(embed_dim) for _ in PRUNING_LOC)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls_tokens = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat((cls_tokens, x), dim=1) + self.pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        p_count = 0
        for i, blk in enumerate(self.blocks):
            if i in self.pruning_loc:  # static
                spatial_x = x[:, 1:]
                pred_score = self.score_predictor[p_count](spatial_x)
                keep = pred_score[0, :, 0].exp() > self.keep_threshold
                if not keep.any():
                    keep = pred_score[0, :, 0] == pred_score[0, :, 0].max()
                x = torch.cat([x[:, :1], spatial_x[:, keep]], dim=1)
                p_count += 1
            x = blk(x)
        x = self.norm(x)
        return self.head(x[:, 0])


@torch.no_grad()
def calibrate_predictors(model: DynamicViT, images: list[tuple[torch.Tensor, ...]],
                         keep_rate: float, rounds: int = 3) -> None:
    """Shift each predictor's keep logit so ~``keep_rate`` of the tokens reaching it survive.

    Hooks record the keep-minus-drop margin of every token while the model's own
    ``forward`` runs on each image; the keep bias moves by the margin's ``1 - keep_rate``
    quantile.  Earlier predictors decide which tokens later ones see, hence a few rounds.
    Tokens of one image score alike, so some images lose every patch token at some stage.
    """
    layers = [predictor.out_conv[-2] for predictor in model.score_predictor]
    margins: dict[nn.Module, list[torch.Tensor]] = {layer: [] for layer in layers}

    def record(layer: nn.Module, args: object, output: torch.Tensor) -> None:
        margins[layer].append((output[..., 0] - output[..., 1]).flatten())

    hooks = [layer.register_forward_hook(record) for layer in layers]
    for _ in range(rounds):
        for recorded in margins.values():
            recorded.clear()
        for example in images:
            model(*example)
        for layer, recorded in margins.items():
            layer.bias[0] -= torch.quantile(torch.cat(recorded), 1 - keep_rate)
    for hook in hooks:
        hook.remove()


def make_model() -> nn.Module:
    """Random DynamicViT whose predictors each keep about 70% of the tokens they see."""
    torch.manual_seed(0)
    model = DynamicViT().eval()
    calibrate_predictors(model, random_images(32, CALIBRATION_SEED), 0.7)
    return model


def make_inputs() -> tuple[torch.Tensor, ...]:
    return sample_inputs(1)[0]


def sample_inputs(n: int, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    return random_images(n, seed)
