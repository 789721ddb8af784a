"""Segmentation networks in plain PyTorch and a registry to build them by name."""

from __future__ import annotations

from typing import Any

from torch import nn

from glaciermap.core.errors import ConfigError
from glaciermap.ml.models.deeplab import DeepLabV3Plus
from glaciermap.ml.models.segnet import SegNet
from glaciermap.ml.models.unet import UNet

CNN_ARCHS: dict[str, type[nn.Module]] = {
    "unet": UNet,
    "segnet": SegNet,
    "deeplabv3plus": DeepLabV3Plus,
}
ARCHS = ("rf", *CNN_ARCHS)


def build_cnn(arch: str, in_channels: int, **kwargs: Any) -> nn.Module:
    """A network that maps (N, in_channels, H, W) to (N, 1, H, W) logits."""
    if arch not in CNN_ARCHS:
        raise ConfigError(f"architecture {arch!r} unknown; choose one of {sorted(CNN_ARCHS)}")
    return CNN_ARCHS[arch](in_channels, **kwargs)
