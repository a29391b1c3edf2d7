"""Image classifiers that need no download: study 000's plain FNN and a small CNN.

Inputs are (B, 1, S, S) images scaled to zero mean and unit variance
(:func:`xray_atlas.training.sources.standardise_image`). The torchvision zoo joins here with
the image-classification issue.
"""

from __future__ import annotations

from .registry import register

__all__ = ["image_fnn", "image_cnn"]


# Study 000 Table 1: FNN with SGD, ReLU, lr 0.01, weight decay 0.001.
@register("image-fnn", task="images", training={"optimizer": "sgd", "lr": 0.01, "weight_decay": 1e-3},
          image_size=64, n_outputs=2, hidden=(256, 64))
def image_fnn(*, image_size: int, n_outputs: int, hidden: tuple[int, ...]):
    """Fully connected network on the flattened image (study 000's FNN)."""
    import torch.nn as nn

    layers: list = [nn.Flatten()]
    width = image_size * image_size
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


@register("image-cnn", task="images", training={"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4},
          image_size=64, n_outputs=2, width=16)
def image_cnn(*, image_size: int, n_outputs: int, width: int):
    """Four conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool), global average pool,
    linear: a small CNN whose last conv block gives class-activation maps."""
    import torch
    import torch.nn as nn

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            blocks, c = [], 1
            for k in range(4):
                w = width * 2**k
                blocks += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
                c = w
            self.features = nn.Sequential(*blocks)
            self.head = nn.Linear(c, n_outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # x: (B, 1, S, S) -> features (B, 8w, S/16, S/16) -> pooled (B, 8w) -> logits (B, k)
            return self.head(self.features(x).mean(dim=(2, 3)))

    return SmallCNN()
