"""DejaVu-SA (seed C.1): a shared multi-head attention block inside the base network.

[design] It attends over the positions of the backbone's deepest feature map (the
lowest resolution, so the cost stays small at 1024x2048): features are projected to
the embedding dim (32, 64 or 128 in the seed's Figure 8), go through multi-head
self-attention (scaled dot product, 1/sqrt(head dim)) with a pre-norm, and are
projected back and added. It is part of h, so it also runs at inference.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SharedAttention", "ATTENTION_HEADS"]

ATTENTION_HEADS = 4  # 8, 16 or 32 channels per head for dims 32, 64, 128


class SharedAttention(nn.Module):
    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.proj_in = nn.Conv2d(channels, dim, 1)
        self.norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, ATTENTION_HEADS, batch_first=True)
        self.proj_out = nn.Conv2d(dim, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = self.norm(self.proj_in(x).flatten(2).transpose(1, 2))  # (B, HW, dim)
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + self.proj_out(attended.transpose(1, 2).reshape(b, -1, h, w))
