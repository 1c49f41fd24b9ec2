"""Orthonormal 2-D DCT on non-overlapping b x b blocks, batched as matrix products."""

from __future__ import annotations

import math

import torch

__all__ = ["dct_matrix", "blockify", "unblockify", "block_dct", "block_idct", "frequency_radius"]


def dct_matrix(n: int, dtype: torch.dtype = torch.float32,
               device: torch.device | str | None = None) -> torch.Tensor:
    """DCT-II basis with orthonormal scaling: row k is the k-th cosine, ``D @ D.T == I``."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    basis = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis.to(dtype=dtype, device=device)


def blockify(x: torch.Tensor, b: int) -> torch.Tensor:
    """(B, C, H, W) with H, W multiples of b -> (B, C, H/b, W/b, b, b)."""
    bs, c, h, w = x.shape
    if h % b or w % b:
        raise ValueError(f"image size {h}x{w} is not a multiple of block size {b}")
    return x.reshape(bs, c, h // b, b, w // b, b).permute(0, 1, 2, 4, 3, 5)


def unblockify(blocks: torch.Tensor) -> torch.Tensor:
    bs, c, nh, nw, b, _ = blocks.shape
    return blocks.permute(0, 1, 2, 4, 3, 5).reshape(bs, c, nh * b, nw * b)


def block_dct(x: torch.Tensor, b: int) -> torch.Tensor:
    """Coefficients (B, C, H/b, W/b, b, b); coefficient [u, v] is vertical u, horizontal v."""
    d = dct_matrix(b, x.dtype, x.device)
    return d @ blockify(x, b) @ d.T


def block_idct(coef: torch.Tensor) -> torch.Tensor:
    d = dct_matrix(coef.shape[-1], coef.dtype, coef.device)
    return unblockify(d.T @ coef @ d)


def frequency_radius(b: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Normalised frequency of each coefficient, ``(u + v) / (2 (b - 1))`` in [0, 1].

    0 is the DC term, 1 the highest diagonal frequency; the sum ``u + v`` orders
    coefficients the way a JPEG zig-zag scan does. A 1 x 1 block has only DC.
    """
    u = torch.arange(b, device=device, dtype=torch.float32)
    radius = (u.unsqueeze(1) + u.unsqueeze(0)) / max(2 * (b - 1), 1)
    return radius
