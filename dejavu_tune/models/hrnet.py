"""HRNet at any width C: branches of C, 2C, 4C and 8C channels (Sun et al.'s width multiplier).

timm builds HRNet by name, at the widths it ships weights for (18, 30, 32, 40, 44, 48, 64);
the seed's DejaVu-SA comparison (C.1, Figure 8) also needs HRNet19 and HRNet20. Every named
timm HRNet is HRNet-W18's configuration with only its branch widths scaled (a test checks
this for all of them), so the other widths are built the same way, with timm's own modules:
a width of 18 or 48 gives exactly timm's ``hrnet_w18``/``hrnet_w48`` feature network.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

__all__ = ["hrnet_config", "hrnet_features"]

_BRANCHED = ("stage2", "stage3", "stage4")  # stage1 is one 64-channel bottleneck branch at every width


def hrnet_config(width: int) -> dict[str, Any]:
    """timm's architecture dict for HRNet-W``width``."""
    from timm.models.hrnet import cfg_cls  # deferred: importing timm costs ~1 s

    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"HRNet width={width!r} is not allowed: expected an integer of 1 or more")
    cfg = copy.deepcopy(cfg_cls["hrnet_w18"])
    for stage in _BRANCHED:
        branches = cfg[stage]["num_branches"]
        cfg[stage]["num_channels"] = tuple(width * 2 ** i for i in range(branches))
    return cfg


def hrnet_features(width: int) -> nn.Module:
    """The feature network timm's ``create_model('hrnet_wN', features_only=True,
    feature_location='', out_indices=(1, 2, 3, 4))`` builds: strides 4, 8, 16, 32, randomly
    initialised; its state-dict keys are those of timm's HRNet, so local weights load alike."""
    from timm.models.hrnet import HighResolutionNetFeatures

    return HighResolutionNetFeatures(hrnet_config(width), feature_location="",
                                     out_indices=(1, 2, 3, 4))
