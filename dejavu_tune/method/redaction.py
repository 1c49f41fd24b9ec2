"""Image redaction R(I): remove structure, keep context (METHOD.md, Redaction).

All kinds run batched on the images' device, drawing randomness only from the
``torch.Generator`` passed in, so a seeded generator reproduces a redaction.

Edges: when a side is not a multiple of the block size b, spatial kinds treat
the last row/column of blocks as partial blocks (clipped to the image), and
spectral kinds replicate-pad the image to a multiple of b, filter, and crop
the padding away again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from dejavu_tune.config import SPECTRAL_KINDS, RedactionConfig
from dejavu_tune.method.dct import block_dct, block_idct, frequency_radius

__all__ = [
    "Redaction",
    "REDACTIONS",
    "build_redaction",
    "random_blocks",
    "checkerboard",
    "spectral",
    "spectral_keep_mask",
]

# (images, generator) -> redacted images of the same shape
Redaction = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


def _block_grid(images: torch.Tensor, b: int) -> tuple[int, int]:
    h, w = images.shape[-2:]
    return -(-h // b), -(-w // b)


def _apply_block_mask(images: torch.Tensor, redacted: torch.Tensor, b: int,
                      fill: float) -> torch.Tensor:
    """``redacted`` is (B, 1, nh, nw) bool on the block grid; expands it to pixels."""
    h, w = images.shape[-2:]
    pixels = redacted.repeat_interleave(b, dim=2).repeat_interleave(b, dim=3)[..., :h, :w]
    return torch.where(pixels, torch.full_like(images, fill), images)


def random_blocks(images: torch.Tensor, generator: torch.Generator | None = None, *,
                  block_size: int, threshold: float, fill: float = 0.0) -> torch.Tensor:
    """Each b x b block is redacted independently with probability ``threshold``."""
    nh, nw = _block_grid(images, block_size)
    draw = torch.rand((images.shape[0], 1, nh, nw), generator=generator, device=images.device)
    return _apply_block_mask(images, draw < threshold, block_size, fill)


def checkerboard(images: torch.Tensor, generator: torch.Generator | None = None, *,
                 block_size: int, fill: float = 0.0,
                 phase: torch.Tensor | None = None) -> torch.Tensor:
    """Block (i, j) is redacted when ``(i + j) % 2 == phase``; phase in {0, 1} per image."""
    nh, nw = _block_grid(images, block_size)
    if phase is None:
        phase = torch.randint(0, 2, (images.shape[0],), generator=generator, device=images.device)
    parity = (torch.arange(nh, device=images.device).view(nh, 1)
              + torch.arange(nw, device=images.device).view(1, nw)) % 2
    redacted = parity.view(1, 1, nh, nw) == phase.view(-1, 1, 1, 1)
    return _apply_block_mask(images, redacted, block_size, fill)


def spectral_keep_mask(kind: str, block_size: int, *, cutoff: float = 0.25,
                       band_low: float = 0.1, band_high: float = 0.5,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """(b, b) float mask of the DCT coefficients a spectral kind keeps (1) or zeroes (0)."""
    radius = frequency_radius(block_size, device)
    if kind == "lowpass":
        removed = radius >= cutoff
    elif kind == "highpass":
        removed = radius < cutoff
    elif kind == "bandstop":
        removed = (radius >= band_low) & (radius < band_high)
    else:
        raise ValueError(f"spectral kind {kind!r} is not known: expected one of "
                         + ", ".join(SPECTRAL_KINDS))
    return (~removed).float()


def spectral(images: torch.Tensor, generator: torch.Generator | None = None, *, kind: str,
             block_size: int, cutoff: float = 0.25, band_low: float = 0.1,
             band_high: float = 0.5) -> torch.Tensor:
    """Zero a band of each block's orthonormal DCT coefficients, then invert the DCT."""
    del generator  # deterministic: spectral redaction draws no randomness
    b = block_size
    h, w = images.shape[-2:]
    pad_h, pad_w = (-h) % b, (-w) % b
    # At least fp32: half-precision DCTs lose the out-of-band coefficients we promise to keep.
    x = images.to(torch.promote_types(images.dtype, torch.float32))
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    keep = spectral_keep_mask(kind, b, cutoff=cutoff, band_low=band_low, band_high=band_high,
                              device=images.device)
    out = block_idct(block_dct(x, b) * keep)
    return out[..., :h, :w].to(images.dtype)


REDACTIONS: dict[str, Callable[[RedactionConfig], Redaction]] = {
    "random_blocks": lambda c: partial(random_blocks, block_size=c.block_size,
                                       threshold=c.threshold, fill=c.fill),
    "checkerboard": lambda c: partial(checkerboard, block_size=c.block_size, fill=c.fill),
    **{
        kind: (lambda c, kind=kind: partial(spectral, kind=kind, block_size=c.block_size,
                                            cutoff=c.cutoff, band_low=c.band_low,
                                            band_high=c.band_high))
        for kind in SPECTRAL_KINDS
    },
}


def build_redaction(cfg: RedactionConfig) -> Redaction:
    try:
        factory = REDACTIONS[cfg.kind]
    except KeyError:
        raise ValueError(f"redaction kind {cfg.kind!r} is not known: expected one of "
                         + ", ".join(REDACTIONS)) from None
    return factory(cfg)
