"""The 1-D vision transformer of study 003 for multi-label element presence."""

from __future__ import annotations

from .registry import register

__all__ = ["vit1d"]


@register("vit1d", task="elements", training={"lr": 1e-4, "batch_size": 128},
          n_channels=4096, n_outputs=26, patch=16, embed=16, heads=8, depth=6, mlp_ratio=4, dropout=0.1)
def vit1d(*, n_channels: int, n_outputs: int, patch: int, embed: int, heads: int, depth: int, mlp_ratio: int,
          dropout: float):
    """Spectral ViT of study 003: Conv1d patch embedding, learned positions, pre-norm blocks
    (GELU MLP), no class token, flatten -> linear; outputs logits (sigmoid = presence
    probability). Spectra are scaled to a maximum of 1 inside, so any count level works."""
    import torch
    import torch.nn as nn

    from ..errors import XrayAtlasError

    if n_channels % patch:
        raise XrayAtlasError(f"n_channels={n_channels} must be a multiple of patch={patch}")
    if embed % heads:
        raise XrayAtlasError(f"embed={embed} must be a multiple of heads={heads}")
    tokens = n_channels // patch

    class ViT1D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patch = nn.Conv1d(1, embed, patch, stride=patch)
            self.position = nn.Parameter(torch.zeros(1, tokens, embed))
            nn.init.trunc_normal_(self.position, std=0.02)
            layer = nn.TransformerEncoderLayer(embed, heads, dim_feedforward=mlp_ratio * embed, dropout=dropout,
                                               activation="gelu", batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(embed)
            self.head = nn.Linear(tokens * embed, n_outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # x: (B, C) counts -> scaled (B, 1, C) -> tokens (B, T, E) -> (B, T*E) -> logits (B, k)
            x = x / x.amax(dim=1, keepdim=True).clamp_min(1.0)
            z = self.patch(x.unsqueeze(1)).transpose(1, 2) + self.position
            z = self.norm(self.blocks(z))
            return self.head(z.flatten(1))

    return ViT1D()
