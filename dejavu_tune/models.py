"""Base networks h: image -> dense logits at the input resolution.

One explicit name -> builder table (``MODELS``); an unknown name lists the valid ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODELS", "build_model", "SmallSegNet", "HRNetSeg", "count_parameters"]


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallSegNet(nn.Module):
    """A three-level U-Net small enough to train in a minute on two CPU cores."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(_conv_bn_relu(3, w), _conv_bn_relu(w, w))
        self.enc2 = nn.Sequential(_conv_bn_relu(w, 2 * w), _conv_bn_relu(2 * w, 2 * w))
        self.enc3 = nn.Sequential(_conv_bn_relu(2 * w, 4 * w), _conv_bn_relu(4 * w, 4 * w))
        self.dec2 = _conv_bn_relu(6 * w, 2 * w)
        self.dec1 = _conv_bn_relu(3 * w, w)
        self.head = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:]), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:]), e1], 1))
        return self.head(d1)


class HRNetSeg(nn.Module):
    """HRNet-V2 segmentation: every branch upsampled to 1/4, concatenated, 1x1 head.

    The trunk is timm's HRNet (random init: the seed's vanilla strategy); this is
    the paper-sized network the overhead benchmark uses.
    """

    def __init__(self, num_classes: int, variant: str = "hrnet_w18") -> None:
        super().__init__()
        import timm  # deferred: timm import costs ~1 s and only this model needs it

        self.trunk = timm.create_model(variant, pretrained=False, features_only=True,
                                       feature_location="", out_indices=(1, 2, 3, 4))
        channels = sum(self.trunk.feature_info.channels())
        self.head = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.trunk(x)
        size = feats[0].shape[-2:]
        fused = torch.cat([feats[0]] + [F.interpolate(f, size=size, mode="bilinear",
                                                      align_corners=False) for f in feats[1:]], 1)
        return F.interpolate(self.head(fused), size=x.shape[-2:], mode="bilinear",
                             align_corners=False)


MODELS: dict[str, Callable[[int, int], nn.Module]] = {
    "small": lambda num_classes, width: SmallSegNet(num_classes, width),
    "hrnet_w18": lambda num_classes, width: HRNetSeg(num_classes, "hrnet_w18"),
}


def build_model(name: str, num_classes: int, width: int = 16) -> nn.Module:
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(f"model {name!r} is not known: expected one of "
                         + ", ".join(MODELS)) from None
    return builder(num_classes, width)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
