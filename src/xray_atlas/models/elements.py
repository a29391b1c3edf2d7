"""xray-atlas's element-presence model: the spectral CNN (registry name ``spectral-cnn``),
the shipped ``elements-default`` model's architecture.

Imports torch: the registry imports this module only when a model is built or listed.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import XrayAtlasError
from .registry import register

__all__ = ["spectral_cnn", "SpectralCNN"]


class SpectralCNN(nn.Module):
    """The spectral CNN of :func:`spectral_cnn`.

    Parameters
    ----------
    window : tuple of int
        (first, stop) channels of the spectrum it reads; stop - first a multiple of 16.
    n_outputs : int
        Outputs k (logits).
    widths : tuple of int
        Channels (c1, c2, c3) of the three strided convolutions; c3 a multiple of ``heads``.
    depth : int
        Transformer blocks over the tokens (0: none).
    heads : int
        Attention heads of those blocks.
    dropout : float
        Dropout in the blocks and before the head.
    """

    def __init__(
        self, window: tuple[int, int], *, n_outputs: int, widths: tuple, depth: int, heads: int, dropout: float
    ) -> None:
        super().__init__()
        c1, c2, c3 = widths
        tokens = (window[1] - window[0]) // 16
        self.window = (window[0], window[1])
        self.stem = nn.Sequential(
            nn.Conv1d(2, c1, 8, stride=4, padding=2),
            nn.ReLU(),
            nn.Conv1d(c1, c2, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv1d(c2, c3, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.position = nn.Parameter(torch.zeros(1, tokens, c3))
        nn.init.trunc_normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            c3, heads, dim_feedforward=2 * c3, dropout=dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False) if depth else nn.Identity()
        self.norm = nn.LayerNorm(c3)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(tokens * c3, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C) counts -> window (B, S) -> sqrt, scaled, + level channel (B, 2, S)
        # -> tokens (B, S/16, c3) -> blocks -> (B, S/16 * c3) -> logits (B, k)
        a = x[:, self.window[0] : self.window[1]].clamp_min(0).sqrt()
        top = a.amax(dim=1, keepdim=True).clamp_min(1.0)
        level = (top.log10() / 3).expand_as(a)
        z = self.stem(torch.stack([a / top, level], dim=1)).transpose(1, 2) + self.position
        z = self.norm(self.blocks(z))
        return self.head(self.drop(z.flatten(1)))


@register(
    "spectral-cnn",
    task="elements",
    training={"lr": 1e-3, "batch_size": 256, "weight_decay": 1e-4},
    n_channels=4096,
    n_outputs=29,
    offset_kev=0.0,
    gain_kev=0.01,
    lo_kev=0.9,
    hi_kev=29.0,
    widths=(32, 48, 64),
    depth=0,
    heads=4,
    dropout=0.1,
)
def spectral_cnn(
    *,
    n_channels: int,
    n_outputs: int,
    offset_kev: float,
    gain_kev: float,
    lo_kev: float,
    hi_kev: float,
    widths: tuple,
    depth: int,
    heads: int,
    dropout: float,
):
    """xray-atlas's element-presence model, 40x faster than the study's ViT: the
    ``lo_kev``-``hi_kev`` window (every line of the classes; no noise peak), square-rooted so
    that Poisson noise has one width at every count level, then three strided Conv1d (x4, x2,
    x2: one token per 160 eV, about a peak width), optionally ``depth`` pre-norm transformer
    blocks over the tokens (the ViT's; 0 by default: 6x slower to train on a CPU for no gain in
    our runs), and the ViT's flatten -> linear head, which keeps where each peak is (the
    study: pooling loses it). A second input channel holds the count level, which sets how big
    a peak must be to be real."""
    first = max(int(round((lo_kev - offset_kev) / gain_kev)), 0)
    last = min(int(round((hi_kev - offset_kev) / gain_kev)), n_channels)
    size = (last - first) // 16 * 16
    if size < 64:
        raise XrayAtlasError(
            f"lo_kev={lo_kev}-hi_kev={hi_kev} holds {last - first} of the {n_channels} channels "
            f"at {offset_kev:g} keV + {gain_kev:g} keV each; it needs at least 64"
        )
    if widths[-1] % heads:
        raise XrayAtlasError(f"widths[-1]={widths[-1]} must be a multiple of heads={heads}")
    return SpectralCNN(
        (first, first + size), n_outputs=n_outputs, widths=widths, depth=depth, heads=heads, dropout=dropout
    )
