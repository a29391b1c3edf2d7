"""Per-pixel spectral models of study 001: FCN 4096-512-64-64-k and the 1-D CNN.

``normalise="total"`` (the default) wraps either network so that it sees the spectrum
divided by its total counts (times the channel count, so a channel averages 1) and predicts
each line's share of the counts in percent, which is multiplied back by the total: net counts
then scale exactly with dwell time and tube current, and one model serves pixels of 500 and of
50,000 counts. ``normalise="none"`` is the study's raw-count network.
"""

from __future__ import annotations

from .registry import register

__all__ = ["fcn", "cnn1d", "NORMALISATIONS"]

NORMALISATIONS = ("total", "none")


def _wrap(net, normalise: str, n_channels: int):
    import torch
    import torch.nn as nn

    from ..errors import XrayAtlasError

    if normalise not in NORMALISATIONS:
        raise XrayAtlasError(f"normalise={normalise!r}; choose one of {', '.join(NORMALISATIONS)}")
    if normalise == "none":
        return net

    class TotalScaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # x: (B, C) counts -> shares (B, C) with mean 1 -> percent per line (B, k) -> counts (B, k)
            total = x.sum(dim=1, keepdim=True).clamp_min(1.0)
            return self.net(x * (n_channels / total)) * (total / 100.0)

    return TotalScaled()


@register("fcn", task="maps", n_channels=4096, n_outputs=12, hidden=(512, 64, 64), normalise="total")
def fcn(*, n_channels: int, n_outputs: int, hidden: tuple[int, ...], normalise: str):
    """Fully connected network of study 001 (4096-512-64-64-k, ReLU)."""
    import torch.nn as nn

    layers, width = [], n_channels
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_outputs))
    return _wrap(nn.Sequential(*layers), normalise, n_channels)


@register("cnn1d", task="maps", n_channels=4096, n_outputs=12, dropout=0.05, normalise="total")
def cnn1d(*, n_channels: int, n_outputs: int, dropout: float, normalise: str):
    """1-D CNN of study 001: Conv1d(1->64, k5, s2), 3 x Conv1d(64->64, k3, s2),
    Conv1d(64->128, k3, s2), ReLU, max-pool(2, 2), dropout, flatten, linear."""
    import torch
    import torch.nn as nn

    class CNN1D(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            convs = [nn.Conv1d(1, 64, 5, stride=2), nn.ReLU()]
            for _ in range(3):
                convs += [nn.Conv1d(64, 64, 3, stride=2), nn.ReLU()]
            convs += [nn.Conv1d(64, 128, 3, stride=2), nn.ReLU(), nn.MaxPool1d(2, 2), nn.Dropout(dropout)]
            self.features = nn.Sequential(*convs)
            with torch.no_grad():
                n_flat = self.features(torch.zeros(1, 1, n_channels)).numel()
            self.head = nn.Linear(n_flat, n_outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # x: (B, C) spectra -> (B, 1, C) -> features (B, 128, L) -> (B, k)
            z = self.features(x.unsqueeze(1))
            return self.head(z.flatten(1))

    return _wrap(CNN1D(), normalise, n_channels)
