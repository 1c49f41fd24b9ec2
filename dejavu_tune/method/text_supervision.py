"""DejaVu-TS (seed C.1, weight 0.3 for its Table 7): the regenerated image is compared
with a text description of the scene in a joint image/text embedding.

[design] The encoder is pluggable, as METHOD.md asks: ``dejavu.loss.ts_encoder`` names
``package.module:function`` returning an object with ``encode_images(images) -> (B, D)``
(images in [-1, 1]) and ``encode_texts(list[str]) -> (B, D)``, e.g. a CLIP model from
open_clip with weights on local disk. The description of an image lists the classes
present in its ground-truth segmentation: "a photo of road, car and sky".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from dejavu_tune.config import IGNORE_INDEX
from dejavu_tune.plugins import PluginError, call_plugin, check_call

__all__ = ["describe_scene", "check_text_encoder", "load_text_encoder", "text_supervision_loss"]

# what the encoder's function is (the module docstring says what the encoder does)
_CONTRACT = "function() returning an image/text encoder"


def describe_scene(labels: torch.Tensor, class_names: Sequence[str]) -> list[str]:
    """One sentence per (H, W) label map of the batch, classes in id order."""
    texts = []
    for label in labels:
        ids = [int(i) for i in torch.unique(label) if int(i) != IGNORE_INDEX]
        names = [class_names[i] for i in ids if i < len(class_names)]
        if not names:
            texts.append("a photo")
        elif len(names) == 1:
            texts.append(f"a photo of {names[0]}")
        else:
            texts.append(f"a photo of {', '.join(names[:-1])} and {names[-1]}")
    return texts


def check_text_encoder(spec: str) -> None:
    """What fails at once: a name that does not import, or takes arguments."""
    check_call(spec, "dejavu.loss.ts_encoder", _CONTRACT)


def load_text_encoder(spec: str, device: torch.device) -> Any:
    encoder = call_plugin(spec, "dejavu.loss.ts_encoder", _CONTRACT)
    for method in ("encode_images", "encode_texts"):
        if not callable(getattr(encoder, method, None)):
            raise PluginError(f"dejavu.loss.ts_encoder={spec!r} returned "
                              f"{type(encoder).__name__} without {method}(): expected "
                              "encode_images and encode_texts")
    if isinstance(encoder, torch.nn.Module):
        encoder = encoder.to(device).eval().requires_grad_(False)  # a fixed judge, not trained
    return encoder


def text_supervision_loss(encoder: Any, regenerated: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Mean (1 - cosine) between each regenerated image and its description."""
    images = F.normalize(encoder.encode_images(regenerated).float(), dim=-1)
    with torch.no_grad():
        words = F.normalize(encoder.encode_texts(texts).float().to(images.device), dim=-1)
    return (1 - (images * words).sum(-1)).mean()
