"""The 1-D vision transformer of study 003 for multi-label element presence.

Imports torch: the registry imports this module only when a model is built or listed.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import XrayAtlasError
from .registry import register

__all__ = ["vit1d", "ViT1D"]


class ViT1D(nn.Module):
    """Spectral ViT of study 003 (:func:`vit1d`).

    Parameters
    ----------
    n_channels : int
        Channels C of the spectra, a multiple of ``patch``.
    n_outputs : int
        Outputs k (logits).
    patch : int
        Channels per token.
    embed : int
        Token width E, a multiple of ``heads``.
    heads : int
        Attention heads.
    depth : int
        Transformer blocks.
    mlp_ratio : int
        Width of each block's MLP, in multiples of ``embed``.
    dropout : float
        Dropout on the tokens and in each MLP (not on the attention).
    """

    def __init__(
        self,
        *,
        n_channels: int,
        n_outputs: int,
        patch: int,
        embed: int,
        heads: int,
        depth: int,
        mlp_ratio: int,
        dropout: float,
    ) -> None:
        super().__init__()
        tokens = n_channels // patch
        self.patch = nn.Conv1d(1, embed, patch, stride=patch)
        self.position = nn.Parameter(torch.zeros(1, tokens, embed))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            embed,
            heads,
            dim_feedforward=mlp_ratio * embed,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        # No dropout on the attention weights (which also keeps torch's fused attention
        # kernel in training: 12x faster on a CPU) nor after the attention, as in the study.
        layer.self_attn.dropout = 0.0
        layer.dropout1 = nn.Identity()
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed)
        self.head = nn.Linear(tokens * embed, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C) counts -> scaled (B, 1, C) -> tokens (B, T, E) -> (B, T*E) -> logits (B, k)
        x = x / x.amax(dim=1, keepdim=True).clamp_min(1.0)
        z = self.drop(self.patch(x.unsqueeze(1)).transpose(1, 2) + self.position)
        z = self.norm(self.blocks(z))
        return self.head(z.flatten(1))


@register(
    "vit1d",
    task="elements",
    training={"lr": 1e-4, "batch_size": 128},
    n_channels=4096,
    n_outputs=29,
    patch=16,
    embed=16,
    heads=8,
    depth=6,
    mlp_ratio=4,
    dropout=0.1,
)
def vit1d(
    *, n_channels: int, n_outputs: int, patch: int, embed: int, heads: int, depth: int, mlp_ratio: int, dropout: float
):
    """Spectral ViT of study 003: Conv1d patch embedding, learned positions, pre-norm blocks
    (GELU MLP), no class token, flatten -> linear; outputs logits (sigmoid = presence
    probability). Spectra are scaled to a maximum of 1 inside, so any count level works.

    ``dropout`` acts where the study's listings put it: on the tokens after the position
    embedding and twice in each MLP; not on the attention weights nor on the attention's
    output (the study's ``nn.MultiheadAttention`` has none)."""
    if n_channels % patch:
        raise XrayAtlasError(f"n_channels={n_channels} must be a multiple of patch={patch}")
    if embed % heads:
        raise XrayAtlasError(f"embed={embed} must be a multiple of heads={heads}")
    return ViT1D(
        n_channels=n_channels,
        n_outputs=n_outputs,
        patch=patch,
        embed=embed,
        heads=heads,
        depth=depth,
        mlp_ratio=mlp_ratio,
        dropout=dropout,
    )
