"""The small CPU network (default) and SegNet (the NYUD-v2 baseline of seed C.5).

Both are written here rather than taken from a library: the small network is this
project's own, and SegNet's max-pool-index unpooling decoder is not in timm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SmallNet", "SegNet", "conv_bn_relu"]


def conv_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SmallNet(nn.Module):
    """A three-level U-Net small enough to train in a minute on two CPU cores; returns
    ``width`` full-resolution feature channels for the task heads."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.out_channels = w
        self.enc1 = nn.Sequential(conv_bn_relu(3, w), conv_bn_relu(w, w))
        self.enc2 = nn.Sequential(conv_bn_relu(w, 2 * w), conv_bn_relu(2 * w, 2 * w))
        self.enc3 = nn.Sequential(conv_bn_relu(2 * w, 4 * w), conv_bn_relu(4 * w, 4 * w))
        self.dec2 = conv_bn_relu(6 * w, 2 * w)
        self.dec1 = conv_bn_relu(3 * w, w)
        self.deepest_channels = 4 * w

    def forward(self, x: torch.Tensor, attend: nn.Module | None = None) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        if attend is not None:
            e3 = attend(e3)
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:]), e2], 1))
        return self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:]), e1], 1))


class SegNet(nn.Module):
    """SegNet (Badrinarayanan et al.) as MTPSL's NYUD-v2 baseline uses it: a VGG16-BN
    encoder of 5 blocks whose max-pool indices drive the decoder's unpooling. ``width``
    is the first block's channels (64 in VGG16); blocks double it up to 8x."""

    _CONVS = (2, 2, 3, 3, 3)  # VGG16's convolutions per block

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        chans = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        self.out_channels = width
        self.deepest_channels = chans[-1]
        self.encoder = nn.ModuleList()
        cin = 3
        for cout, n in zip(chans, self._CONVS, strict=True):
            self.encoder.append(nn.Sequential(*[conv_bn_relu(cin if i == 0 else cout, cout)
                                                for i in range(n)]))
            cin = cout
        self.decoder = nn.ModuleList()
        outs = [chans[3], chans[2], chans[1], chans[0], chans[0]]
        for cin, cout, n in zip(chans[::-1], outs, self._CONVS[::-1], strict=True):
            self.decoder.append(nn.Sequential(*[conv_bn_relu(cin, cin if i < n - 1 else cout)
                                                for i in range(n)]))

    def forward(self, x: torch.Tensor, attend: nn.Module | None = None) -> torch.Tensor:
        indices, sizes = [], []
        for block in self.encoder:
            x = block(x)
            sizes.append(x.shape[-2:])
            x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
            indices.append(idx)
        if attend is not None:
            x = attend(x)
        for block, idx, size in zip(self.decoder, indices[::-1], sizes[::-1], strict=True):
            x = block(F.max_unpool2d(x, idx, 2, 2, output_size=size))
        return x
