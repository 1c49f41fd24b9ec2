"""Base networks h: image -> {task head: dense output at the input resolution}.

One explicit name -> builder table (``MODELS``); an unknown name lists the valid
ones; ``package.module:function`` plugs in a network of your own (docs/byo.md).
Backbones come from timm (random init: the seed's vanilla strategy; ``pretrained``
loads local weights: the enhanced strategy); HRNet at widths timm has no name for
(19, 20: the seed's DejaVu-SA baselines) is in ``hrnet.py``; heads are in ``heads.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dejavu_tune.config import ATTENTION_DIMS, ModelConfig
from dejavu_tune.models.attention import SharedAttention
from dejavu_tune.models.heads import HEADS
from dejavu_tune.models.hrnet import hrnet_features
from dejavu_tune.models.small import SegNet, SmallNet
from dejavu_tune.models.weights import WeightsError, read_weights
from dejavu_tune.plugins import call_plugin, check_call, is_plugin, wrong_return

__all__ = ["MODELS", "ATTENTION_DIMS", "DenseNetwork", "build_model", "check_network",
           "count_parameters"]

_HRNET_FEATURES = {"feature_location": "", "out_indices": (1, 2, 3, 4)}

# name -> (timm model, extra timm arguments, head); strides 4, 8, 16, 32 for every trunk
_TIMM: dict[str, tuple[str, dict[str, Any], str]] = {
    "hrnet_w18": ("hrnet_w18", _HRNET_FEATURES, "hrnetv2"),
    "hrnet_w48": ("hrnet_w48", _HRNET_FEATURES, "hrnetv2"),
    "hrnet_w18_ocr": ("hrnet_w18", _HRNET_FEATURES, "ocr"),
    "poolformer_m48_fpn": ("poolformer_m48", {}, "fpn"),
    # ViT-B/16 has one stride; blocks 4, 6, 8, 12 are resampled to 4..32 (ViTDet's pyramid)
    "vit_b_upernet": ("vit_base_patch16_224", {"dynamic_img_size": True,
                                               "out_indices": (3, 5, 7, 11)}, "upernet"),
    "swin_t_upernet": ("swin_tiny_patch4_window7_224", {"strict_img_size": False}, "upernet"),
    "resnet50_fpn": ("resnet50", {"out_indices": (1, 2, 3, 4)}, "fpn"),
}

# what a plug-in network's function is (docs/byo.md)
_PLUGIN_CONTRACT = "function(heads, width, pretrained, **options) returning a torch.nn.Module"

# name -> HRNet width timm has no named model for (seed C.1, Figure 8: HRNet19, HRNet20)
_HRNET_WIDTHS = {"hrnet_w19": 19, "hrnet_w20": 20}


class _TimmTrunk(nn.Module):
    """A timm feature backbone and a head: features at 1/4 resolution."""

    def __init__(self, backbone: nn.Module, head: str, regions: int) -> None:
        super().__init__()
        self.backbone = backbone
        channels = list(self.backbone.feature_info.channels())
        self.vit = len(set(self.backbone.feature_info.reduction())) == 1
        extra = {"regions": regions} if head == "ocr" else {}
        self.head = HEADS[head](channels, **extra)
        self.out_channels = self.head.out_channels
        self.deepest_channels = channels[-1]

    def forward(self, x: torch.Tensor, attend: nn.Module | None = None) -> torch.Tensor:
        feats = list(self.backbone(x))
        channels = self.backbone.feature_info.channels()
        feats = [f.permute(0, 3, 1, 2) if f.shape[1] != c and f.shape[-1] == c else f
                 for f, c in zip(feats, channels, strict=True)]  # Swin gives NHWC
        if self.vit:
            feats = [F.interpolate(f, scale_factor=s, mode="bilinear", align_corners=False)
                     for f, s in zip(feats, (4.0, 2.0, 1.0, 0.5), strict=True)]
        if attend is not None:
            feats[-1] = attend(feats[-1])
        return self.head(feats)

class DenseNetwork(nn.Module):
    """A trunk (features), the optional DejaVu-SA block and one 1x1 head per task."""

    def __init__(self, trunk: nn.Module, heads: dict[str, int], attention: int = 0) -> None:
        super().__init__()
        self.trunk = trunk
        self.attention = (SharedAttention(trunk.deepest_channels, attention) if attention
                          else None)
        self.heads = nn.ModuleDict({k: nn.Conv2d(trunk.out_channels, c, 1)
                                    for k, c in heads.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x, self.attention)
        out = {}
        for key, head in self.heads.items():
            y = head(features)
            if y.shape[-2:] != x.shape[-2:]:
                y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
            out[key] = y
        return out

class _SingleHead(nn.Module):
    """Adapts a user network that returns a plain tensor to the ``{head: tensor}`` contract."""

    def __init__(self, net: nn.Module, key: str) -> None:
        super().__init__()
        self.net, self.key = net, key

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(x)
        return out if isinstance(out, dict) else {self.key: out}

def _state_dict(path: str, name: str) -> dict[str, Any]:
    """The backbone weights for network ``name`` in the file ``path``."""
    state = read_weights(path, "model.pretrained")
    # One file may hold several backbones keyed by model.name: a grid over model.name (the
    # DejaVu-SA preset's HRNet18/19/20) has one model.pretrained for all of its rows.
    for key in (name, "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"model.pretrained={path!r} is not a PyTorch state dict of "
                           f"tensors (it holds a {type(state).__name__}): expected torch.save("
                           "backbone.state_dict(), path), or a dict of such state dicts "
                           "keyed by model.name")
    return state


def _load_pretrained(module: nn.Module, path: str, name: str) -> None:
    state = _state_dict(path, name)
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    # a value that is no tensor (a number, another network's dict) fits no parameter
    reshaped = [k for k in own if k in state and tuple(getattr(state[k], "shape", ()))
                != tuple(own[k].shape)]
    if missing or unexpected or reshaped:
        raise WeightsError(f"model.pretrained={path!r} does not fit the backbone: "
                           f"{len(missing)} keys missing (e.g. {missing[:3]}), "
                           f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
                           f"{len(reshaped)} of another shape (e.g. {reshaped[:3]}); a file "
                           f"for several networks maps each model.name ({name!r} here) to "
                           "its state dict")
    module.load_state_dict(state)

def check_network(cfg: ModelConfig, fit: bool = True) -> None:
    """What fails before anything is trained: a plug-in that does not take the network
    arguments; a built-in network's weights file that holds more than tensors or (with
    ``fit``) does not fit its backbone, which is built for it (seconds, where a CRM's
    pre-training may come first and take minutes). A plug-in reads ``model.pretrained``
    itself, in any format."""
    if is_plugin(cfg.name):
        check_call(cfg.name, "model.name", _PLUGIN_CONTRACT, heads={}, width=cfg.width,
                   pretrained=cfg.pretrained, **cfg.options)
    elif cfg.pretrained and not fit:
        _state_dict(cfg.pretrained, cfg.name)
    elif cfg.pretrained:
        with torch.random.fork_rng(devices=[]):  # the init draws: leave the caller's stream
            trunk = MODELS[cfg.name]({"seg": 2}, cfg.width)  # heads: not in any backbone
        _load_pretrained(getattr(trunk, "backbone", trunk), cfg.pretrained, cfg.name)


def build_model(name: str, heads: dict[str, int], *, width: int = 16,
                pretrained: str | None = None, attention: int = 0,
                options: dict[str, Any] | None = None) -> nn.Module:
    if attention not in ATTENTION_DIMS:
        raise ValueError(f"attention={attention!r} is not allowed: expected one of "
                         + ", ".join(map(str, ATTENTION_DIMS)))
    if is_plugin(name):
        net = call_plugin(name, "model.name", _PLUGIN_CONTRACT, heads=heads, width=width,
                          pretrained=pretrained, **(options or {}))
        if not isinstance(net, nn.Module):
            raise wrong_return(name, "model.name", net, _PLUGIN_CONTRACT)
        return _SingleHead(net, next(iter(heads))) if len(heads) == 1 else net
    if name not in MODELS:
        raise ValueError(f"model {name!r} is not known: expected one of " + ", ".join(MODELS)
                         + " or 'package.module:function'")
    trunk = MODELS[name](heads, width)
    if pretrained:
        _load_pretrained(getattr(trunk, "backbone", trunk), pretrained, name)
    return DenseNetwork(trunk, heads, attention)

def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _timm(name: str) -> Callable[[dict[str, int], int], nn.Module]:
    timm_name, kwargs, head = _TIMM[name]

    def build(heads: dict[str, int], width: int) -> nn.Module:
        import timm  # deferred: importing timm costs ~1 s and the small network needs none

        backbone = timm.create_model(timm_name, pretrained=False, features_only=True, **kwargs)
        return _TimmTrunk(backbone, head, regions=max(heads.values()))

    return build


def _hrnet(name: str) -> Callable[[dict[str, int], int], nn.Module]:
    # model.width is the small network's; an HRNet's width is its name, as in timm
    return lambda heads, width: _TimmTrunk(hrnet_features(_HRNET_WIDTHS[name]), "hrnetv2",
                                           regions=max(heads.values()))


# name -> trunk builder (heads, width); the names are config.MODEL_NAMES (a test checks)
MODELS: dict[str, Callable[[dict[str, int], int], nn.Module]] = {
    "small": lambda heads, width: SmallNet(width),  # a U-Net for CPUs
    "segnet": lambda heads, width: SegNet(width),  # SegNet (MTPSL NYUD-v2)
    **{name: _timm(name) for name in _TIMM},
    **{name: _hrnet(name) for name in _HRNET_WIDTHS},
}
