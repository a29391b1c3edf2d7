"""Image classifiers: study 000's plain FNN, a small CNN, and torchvision's ResNet18/34/50,
VGG16 and EfficientNetB0 with a one-channel input, trained from scratch (nothing is
downloaded); ``weights`` loads user-supplied pretrained weights (a torchvision state dict in a
``.pth`` or ``.safetensors`` file; RGB first-layer filters are summed to one channel, the
classifier head is left to training when its class count differs).

Inputs are (B, 1, S, S) images prepared by :func:`xray_atlas.classify.prepare_image`
(per-image standardisation, or -ln of the open-beam ratio for radiographs).

Imports torch (torchvision only when one of its models is built): the registry imports this
module only when a model is built or listed.
"""

from __future__ import annotations

import sys

import torch
import torch.nn as nn

from ..errors import XrayAtlasError
from .registry import register

__all__ = ["image_fnn", "image_cnn", "import_torchvision", "ImageCNN"]


# Study 000 Table 1: FNN with SGD, ReLU, lr 0.01, weight decay 0.001.
@register(
    "image-fnn",
    task="images",
    training={"optimizer": "sgd", "lr": 0.01, "weight_decay": 1e-3},
    image_size=64,
    n_outputs=2,
    hidden=(256, 64),
)
def image_fnn(*, image_size: int, n_outputs: int, hidden: tuple[int, ...]):
    """Fully connected network on the flattened image (study 000's FNN)."""
    layers: list = [nn.Flatten()]
    width = image_size * image_size
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class ImageCNN(nn.Module):
    """The small image CNN of :func:`image_cnn`.

    Parameters
    ----------
    n_outputs : int
        Classes k (logits).
    width : int
        Channels of the first conv block (doubled at each of the four).
    """

    def __init__(self, *, n_outputs: int, width: int) -> None:
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


@register(
    "image-cnn",
    task="images",
    training={"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4},
    image_size=64,
    n_outputs=2,
    width=16,
)
def image_cnn(*, image_size: int, n_outputs: int, width: int):
    """Four conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool), global average pool,
    linear: a small CNN whose last conv block gives class-activation maps."""
    return ImageCNN(n_outputs=n_outputs, width=width)


def import_torchvision():
    """torchvision, also where its compiled operators cannot load.

    A torchvision wheel built for a CUDA torch fails to import beside a CPU-only build of the
    same torch release: its ``_C`` extension does not load, and two fake-tensor registrations
    (``nms``, ``qnms``) then fail on operators that were never defined. The classification
    models are pure Python and need none of those operators, so the two schemas are declared
    (without kernels: detection ops stay unavailable) and the import is retried.
    """
    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        global _TV_LIB
        _TV_LIB = torch.library.Library("torchvision", "FRAGMENT")  # kept alive: the schemas live with it
        for op in ("nms", "qnms"):
            _TV_LIB.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision
    return torchvision


_TV_LIB = None


def _load_pretrained(model, path: str) -> None:
    """User-supplied pretrained weights into ``model``; tensors whose shape differs (the head
    for another class count) keep their fresh initialisation."""
    from .._files import check_input

    try:
        check_input(path)
    except XrayAtlasError as err:
        raise XrayAtlasError(f"weights: {err}") from None
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:  # weights_only: plain tensors; a pickle of anything else is refused, never run
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle, zip and safetensors errors of many kinds
        raise XrayAtlasError(
            f"weights: {path} is not a torch state dict or safetensors file ({type(err).__name__})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise XrayAtlasError(f"weights: {path} is not a state dict (names -> tensors)")
    own = model.state_dict()
    taken = {}
    for k, v in state.items():
        if k not in own:
            continue
        if (
            v.ndim == 4
            and own[k].ndim == 4
            and v.shape[1] == 3
            and own[k].shape[1] == 1
            and v.shape[0] == own[k].shape[0]
        ):
            v = v.sum(dim=1, keepdim=True)  # RGB filters of an ImageNet model -> gray
        if v.shape == own[k].shape:
            taken[k] = v
    if not taken:
        raise XrayAtlasError(f"weights: no tensor in {path} fits this model")
    model.load_state_dict(taken, strict=False)


def _gray_first_conv(model, attr_path: str) -> None:
    """Replace the first convolution (``attr_path``, e.g. ``features.0.0``) by a one-channel
    one of the same geometry."""
    parent_path, _, name = attr_path.rpartition(".")
    parent = model.get_submodule(parent_path)
    conv = getattr(parent, name)  # nn.Sequential children are attributes named "0", "1", ...
    setattr(
        parent,
        name,
        nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None),
    )


def _swap_activation(model, make) -> None:
    """Every ReLU and SiLU of ``model`` replaced by ``make()`` (study 000 Table 1 varies the
    activation)."""
    for name, child in model.named_children():
        if isinstance(child, (nn.ReLU, nn.SiLU)):
            setattr(model, name, make())
        else:
            _swap_activation(child, make)


def _torchvision_model(arch: str, n_outputs: int, activation: str, weights: str):
    tv = import_torchvision()
    model = getattr(tv.models, arch)(weights=None, num_classes=n_outputs)
    if arch.startswith("resnet"):
        _gray_first_conv(model, "conv1")
    elif arch.startswith("vgg"):
        _gray_first_conv(model, "features.0")
        # 64-pixel inputs leave a 2 x 2 map: pool it and use a head sized for 512 features
        # instead of the 25,088 x 4,096 layer made for 224-pixel ImageNet images
        model.avgpool = nn.AdaptiveAvgPool2d(1)
        model.classifier = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, n_outputs))
    else:  # efficientnet
        _gray_first_conv(model, "features.0.0")
    acts = {"relu": nn.ReLU, "leaky-relu": lambda: nn.LeakyReLU(0.01), "gelu": nn.GELU, "silu": nn.SiLU}
    if activation not in acts:
        raise XrayAtlasError(f"activation={activation!r}; choose one of {', '.join(acts)}")
    _swap_activation(model, acts[activation])
    if weights:
        _load_pretrained(model, weights)
    return model


def _zoo_builder(arch: str, what: str):
    def builder(*, image_size: int, n_outputs: int, activation: str, weights: str):
        return _torchvision_model(arch, n_outputs, activation, weights)

    builder.__name__ = arch
    builder.__doc__ = (
        f"{what} from torchvision, one-channel input; trained from scratch unless ``weights`` "
        "names a file of pretrained weights."
    )
    return builder


# Study 000 Table 1: optimiser, activation, learning rate and weight decay of each network
# (EfficientNet's own activation, SiLU, is the study's too).
_ZOO = (
    ("resnet18", "resnet18", "ResNet18", "relu", {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4}),
    (
        "resnet34",
        "resnet34",
        "ResNet34 with LeakyReLU (study 000)",
        "leaky-relu",
        {"optimizer": "sgd", "lr": 0.01, "weight_decay": 1e-4},
    ),
    (
        "resnet50",
        "resnet50",
        "ResNet50 with GELU (study 000)",
        "gelu",
        {"optimizer": "rmsprop", "lr": 5e-4, "weight_decay": 5e-4},
    ),
    (
        "vgg16",
        "vgg16",
        "VGG16 (convolutional part; a 512-256-k head for small images)",
        "relu",
        {"optimizer": "sgd", "lr": 0.01, "weight_decay": 1e-4},
    ),
    (
        "efficientnet-b0",
        "efficientnet_b0",
        "EfficientNetB0 (SiLU)",
        "silu",
        {"optimizer": "rmsprop", "lr": 2e-3, "weight_decay": 1e-4},
    ),
)
for _name, _arch, _what, _act, _training in _ZOO:
    register(_name, task="images", training=_training, image_size=64, n_outputs=2, activation=_act, weights="")(
        _zoo_builder(_arch, _what)
    )
