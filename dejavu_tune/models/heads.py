"""Decoders that turn a backbone's feature pyramid into one 1/4-resolution feature map.

- ``HRNetV2Head``: every branch upsampled to the highest resolution and concatenated.
- ``OCRHead``: HRNetV2 features refined by object-contextual representations (OCRNet):
  soft object regions from an auxiliary classifier, one feature vector per region,
  and pixel-region attention whose context is concatenated back. The auxiliary
  classifier is not supervised separately here (OCRNet adds a 0.4-weighted loss).
- ``FPNHead``: Semantic FPN (Kirillov et al.), lateral 1x1, top-down sum, each level
  upsampled to 1/4 and summed.
- ``UperHead``: UperNet, a pyramid-pooling module on the deepest level, FPN fusion,
  all levels concatenated at 1/4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dejavu_tune.models.small import conv_bn_relu

__all__ = ["HRNetV2Head", "OCRHead", "FPNHead", "UperHead", "HEADS"]


def _up(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class HRNetV2Head(nn.Module):
    def __init__(self, channels: list[int], width: int = 0) -> None:
        super().__init__()
        total = sum(channels)
        self.out_channels = width or total
        self.fuse = conv_bn_relu(total, self.out_channels, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        return self.fuse(torch.cat([feats[0]] + [_up(f, size) for f in feats[1:]], 1))


class OCRHead(nn.Module):
    def __init__(self, channels: list[int], regions: int = 19, mid: int = 256,
                 key: int = 128) -> None:
        super().__init__()
        self.base = HRNetV2Head(channels, mid)
        self.aux = nn.Conv2d(mid, regions, 1)  # soft object regions
        self.query = nn.Sequential(conv_bn_relu(mid, key, 1), conv_bn_relu(key, key, 1))
        self.key = nn.Sequential(conv_bn_relu(mid, key, 1), conv_bn_relu(key, key, 1))
        self.value = conv_bn_relu(mid, key, 1)
        self.up = conv_bn_relu(key, mid, 1)
        self.out = conv_bn_relu(2 * mid, mid, 1)
        self.out_channels = mid
        self.scale = key ** -0.5

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = self.base(feats)
        b, c, h, w = x.shape
        regions = torch.softmax(self.aux(x).flatten(2), dim=2)  # (B, K, HW) per region
        objects = torch.bmm(regions, x.flatten(2).transpose(1, 2))  # (B, K, C)
        objects = objects.transpose(1, 2).unsqueeze(-1)  # (B, C, K, 1): a 1x1 conv input
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, HW, D)
        k = self.key(objects).flatten(2)  # (B, D, K)
        v = self.value(objects).flatten(2).transpose(1, 2)  # (B, K, D)
        attention = torch.softmax(torch.bmm(q, k) * self.scale, dim=-1)  # (B, HW, K)
        context = torch.bmm(attention, v).transpose(1, 2).reshape(b, -1, h, w)
        return self.out(torch.cat([self.up(context), x], 1))


class FPNHead(nn.Module):
    def __init__(self, channels: list[int], width: int = 128) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.smooth = nn.ModuleList(conv_bn_relu(width, width) for _ in channels)
        self.out_channels = width

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        laterals = [lat(f) for lat, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(laterals) - 1, 0, -1):  # top-down pathway
            laterals[i - 1] = laterals[i - 1] + _up(laterals[i], laterals[i - 1].shape[-2:])
        size = laterals[0].shape[-2:]
        return sum(_up(s(x), size) for s, x in zip(self.smooth, laterals, strict=True))


class UperHead(nn.Module):
    def __init__(self, channels: list[int], width: int = 128,
                 bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = bins
        self.ppm = nn.ModuleList(conv_bn_relu(channels[-1], width, 1) for _ in bins)
        self.ppm_fuse = conv_bn_relu(channels[-1] + len(bins) * width, width)
        self.lateral = nn.ModuleList(conv_bn_relu(c, width, 1) for c in channels[:-1])
        self.smooth = nn.ModuleList(conv_bn_relu(width, width) for _ in channels[:-1])
        self.fuse = conv_bn_relu(len(channels) * width, width)
        self.out_channels = width

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        top = feats[-1]
        pooled = [_up(conv(F.adaptive_avg_pool2d(top, b)), top.shape[-2:])
                  for conv, b in zip(self.ppm, self.bins, strict=True)]
        levels = [lat(f) for lat, f in zip(self.lateral, feats[:-1], strict=True)]
        levels.append(self.ppm_fuse(torch.cat([top, *pooled], 1)))
        for i in range(len(levels) - 1, 0, -1):
            levels[i - 1] = levels[i - 1] + _up(levels[i], levels[i - 1].shape[-2:])
        outs = [s(x) for s, x in zip(self.smooth, levels[:-1], strict=True)] + [levels[-1]]
        size = outs[0].shape[-2:]
        return self.fuse(torch.cat([_up(o, size) for o in outs], 1))


HEADS = {"hrnetv2": HRNetV2Head, "ocr": OCRHead, "fpn": FPNHead, "upernet": UperHead}
