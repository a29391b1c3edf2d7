"""Diffraction image -> correlation (CFS) encoding: study 004's small and large CNNs, and
xray-atlas's Fourier CNN.

Inputs are (B, 1, S, S) images divided by their mean (:func:`xray_atlas.diffraction.model_input`);
outputs are the D = span^2 - 1 coefficients. One model per span, as in the study.

Imports torch: the registry imports this module only when a model is built or listed.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register

__all__ = ["cfs_small", "cfs_large", "cfs_fourier", "SmallCNN", "ResidualBlock", "LargeCNN", "FourierCNN"]

# Study 004: Adam with Keras defaults (lr 1e-3), batch 32, 100 epochs, MSE, 20 % validation.
_STUDY = {"optimizer": "adam", "lr": 1e-3, "batch_size": 32}


class SmallCNN(nn.Module):
    """Study 004's small CNN (:func:`cfs_small`).

    Parameters
    ----------
    image_size : int
        Side S of the input images, a multiple of 8.
    n_outputs : int
        Coefficients D.
    width : int
        Channels of the first conv block (the others have twice as many).
    """

    def __init__(self, *, image_size: int, n_outputs: int, width: int) -> None:
        super().__init__()
        c, layers = 1, []
        for k in range(3):
            w = width * 2 ** min(k, 1)
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        side = image_size // 8
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * side * side, 128), nn.ReLU(), nn.Linear(128, n_outputs))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 1, S, S) -> (B, 2w, S/8, S/8) -> (B, D)
        return self.head(self.features(torch.log1p(x)))


@register("cfs-small", task="diffraction", training=_STUDY, image_size=64, n_outputs=3, width=16)
def cfs_small(*, image_size: int, n_outputs: int, width: int):
    """Study 004's small CNN: three 3x3 conv + ReLU + 2x2 max-pool blocks, dense 128, linear
    output; Keras-default (Glorot) initialisation."""
    return SmallCNN(image_size=image_size, n_outputs=n_outputs, width=width)


class ResidualBlock(nn.Module):
    """Two 3x3 conv + batch norm with a skip connection (a 1x1 conv where the shape changes).

    Parameters
    ----------
    cin, cout : int
        Input and output channels.
    stride : int
        Stride of the first conv and of the skip.
    """

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, cin, H, W) -> (B, cout, H / stride, W / stride)
        return torch.relu(self.body(x) + self.skip(x))


class LargeCNN(nn.Module):
    """Study 004's large CNN (:func:`cfs_large`).

    Parameters
    ----------
    n_outputs : int
        Coefficients D.
    width : int
        Channels of the stem and first stage (doubled at each stage).
    blocks : tuple of int
        Residual blocks per stage.
    """

    def __init__(self, *, n_outputs: int, width: int, blocks: tuple[int, ...]) -> None:
        super().__init__()
        layers: list = [nn.Conv2d(1, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        c = width
        for k, n in enumerate(blocks):
            for j in range(n):
                w = width * 2**k
                layers.append(ResidualBlock(c, w, 2 if (j == 0 and k > 0) else 1))
                c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(c, 128), nn.ReLU(), nn.Linear(128, n_outputs))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # He-normal
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 1, S, S) -> (B, c, S/8, S/8) -> pooled (B, c) -> (B, D)
        return self.head(self.features(torch.log1p(x)).mean(dim=(2, 3)))


@register("cfs-large", task="diffraction", training=_STUDY, image_size=64, n_outputs=3, width=16, blocks=(2, 2, 2))
def cfs_large(*, image_size: int, n_outputs: int, width: int, blocks: tuple[int, ...]):
    """Study 004's large CNN: a stride-2 stem, residual stages (two 3x3 conv + batch norm per
    block, skip connections, stride 2 between stages), He-normal initialisation, global
    average pool and a dense head."""
    return LargeCNN(n_outputs=n_outputs, width=width, blocks=blocks)


class FourierCNN(nn.Module):
    """xray-atlas's Fourier CNN (:func:`cfs_fourier`).

    Parameters
    ----------
    image_size : int
        Side S of the input images, a multiple of 16.
    n_outputs : int
        Coefficients D = span^2 - 1.
    width : int
        Channels of the first conv block (doubled at each of the four).
    window : int
        Side of the window of correlations around r = 0 that the skip and the MLP read.
    """

    def __init__(self, *, image_size: int, n_outputs: int, width: int, window: int) -> None:
        super().__init__()
        self.image_size = image_size
        self.half = half = window // 2
        span = int(round((n_outputs + 1) ** 0.5))
        layers, c = [], 1
        for k in range(4):
            w = width * 2**k
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.GELU(), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        side = image_size // 16
        self.mlp = nn.Sequential(
            nn.Linear(window * window + c * side * side, 256),
            nn.GELU(),
            nn.Linear(256, 128),
            nn.GELU(),
            nn.Linear(128, n_outputs),
        )
        self.skip = nn.Linear(window * window, n_outputs)
        with torch.no_grad():
            self.skip.weight.zero_()
            self.skip.bias.zero_()
            if span * span == n_outputs + 1:  # the analytic inverse: a(dx, dy) at window [half+dy, half+dx]
                offs = [(dx, dy) for dy in range(span) for dx in range(span) if (dx, dy) != (0, 0)]
                for k, (dx, dy) in enumerate(offs):
                    if dx <= half and dy <= half:
                        self.skip.weight[k, (half + dy) * window + half + dx] = 1.0
            self.mlp[-1].weight.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 1, S, S), zero frequency at (S//2, S//2)
        half = self.half
        corr = torch.fft.ifft2(torch.fft.ifftshift(x[:, 0], dim=(-2, -1))).real  # (B, S, S) correlations
        corr = torch.fft.fftshift(corr, dim=(-2, -1))
        o = self.image_size // 2
        win = corr[:, o - half : o + half + 1, o - half : o + half + 1]  # (B, w, w) around r = 0
        win = win / win[:, half : half + 1, half : half + 1].clamp_min(1e-6)
        feats = self.features(torch.log1p(x)).flatten(1)  # (B, c * (S/16)^2)
        w = win.flatten(1)
        return self.skip(w) + self.mlp(torch.cat([w, feats], dim=1))  # (B, D)


@register(
    "cfs-fourier",
    task="diffraction",
    training={"optimizer": "adamw", "lr": 2e-3, "batch_size": 64, "weight_decay": 1e-4, "schedule": "cosine"},
    image_size=64,
    n_outputs=3,
    width=16,
    window=9,
)
def cfs_fourier(*, image_size: int, n_outputs: int, width: int, window: int):
    """xray-atlas's Fourier CNN: a fixed physics layer, the inverse FFT of the image (its
    pair-correlation function, Wiener-Khinchin), gives the window x window correlations near
    r = 0 normalised by r = 0; a linear skip from them to the outputs starts as the analytic
    inverse (each output reads its own offset); a small CNN on the log image sees what the
    inverse misses (noise, a log scale, masked pixels) and an MLP adds a correction."""
    return FourierCNN(image_size=image_size, n_outputs=n_outputs, width=width, window=window)
