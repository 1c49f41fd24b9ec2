"""The Conditional Regeneration Module: (redacted image, dense prediction) -> image.

Both kinds work at ``1/downsample`` of the image resolution (pixel-unshuffle in,
pixel-shuffle out), which divides their cost by ``downsample**2`` while the
output keeps full resolution, and both predict a residual added to the
redacted image, so an untrained CRM starts from the identity.

- CRM-F (one-shot): an encoder-decoder whose ``stages`` are resolution levels.
- CRM-R (recursive): one weight-shared step applied ``steps`` times; step k sees
  the current estimate, the encoded conditioning and an embedding of k, and
  adds its predicted update to the estimate. With ``checkpointing`` each step
  is recomputed in backward, so stored activations no longer grow with K.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from dejavu_tune.config import ConfigError, CRMConfig, TrainConfig
from dejavu_tune.errors import DejavuError
from dejavu_tune.models.weights import WeightsError, read_weights

__all__ = ["CRMF", "CRMR", "CRMS", "build_crm", "save_crm", "load_crm_weights", "CRMWeightsError",
           "crm_architecture", "read_crm_checkpoint",
           "intended_use"]

_FORMAT = "dejavu-crm/1"


class CRMWeightsError(DejavuError, RuntimeError):
    """A stored CRM checkpoint is missing, unreadable or does not fit the configured CRM."""


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _unshuffle(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Pixel-unshuffle after replicate-padding H and W up to multiples of ``factor``."""
    pad_h, pad_w = (-x.shape[-2]) % factor, (-x.shape[-1]) % factor
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return F.pixel_unshuffle(x, factor)


def _shuffle(x: torch.Tensor, factor: int, size: torch.Size) -> torch.Tensor:
    return F.pixel_shuffle(x, factor)[..., :size[0], :size[1]]


class CRMF(nn.Module):
    """One-shot encoder-decoder; level s works at 1/2**s of the CRM resolution."""

    def __init__(self, in_channels: int, stages: int = 2, width: int = 32,
                 downsample: int = 2, out_channels: int = 3) -> None:
        super().__init__()
        self.downsample = downsample
        widths = [width * 2 ** s for s in range(stages)]
        # 1x1 on the unshuffled input = a patch embedding; a 3x3 here would cost 9x more.
        self.stem = nn.Sequential(_conv(in_channels * downsample ** 2, width, k=1),
                                  nn.ReLU(inplace=True))
        self.down = nn.ModuleList(
            nn.Sequential(_conv(widths[s - 1] if s else width, widths[s], stride=2 if s else 1),
                          nn.ReLU(inplace=True), _conv(widths[s], widths[s]), nn.ReLU(inplace=True))
            for s in range(stages))
        self.up = nn.ModuleList(
            nn.Sequential(_conv(widths[s] + widths[s - 1], widths[s - 1]), nn.ReLU(inplace=True))
            for s in range(stages - 1, 0, -1))
        self.head = _conv(width, out_channels * downsample ** 2, k=1)

    def forward(self, redacted: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = self.stem(_unshuffle(torch.cat([redacted, cond], 1), self.downsample))
        skips = []
        for level in self.down:
            x = level(x)
            skips.append(x)
        for up, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = up(torch.cat([F.interpolate(x, size=skip.shape[-2:]), skip], 1))
        return redacted + _shuffle(self.head(x), self.downsample, redacted.shape[-2:])


class CRMR(nn.Module):
    """Recursive, difference-based regeneration with one weight-shared step."""

    def __init__(self, in_channels: int, steps: int = 20, width: int = 32, downsample: int = 2,
                 checkpointing: bool = False, out_channels: int = 3) -> None:
        super().__init__()
        self.steps = steps
        self.downsample = downsample
        self.checkpointing = checkpointing
        est_channels = out_channels * downsample ** 2
        self.encode = nn.Sequential(_conv(in_channels * downsample ** 2, width, k=1),
                                    nn.ReLU(inplace=True), _conv(width, width))
        # step_in(cat(est, feats)) == est_in(est) + feats_in(feats); the feats term is the
        # same at every step, so it is computed once per forward instead of K times.
        self.est_in = _conv(est_channels, width, k=1)
        self.feats_in = _conv(width, width, k=1)
        self.step_embed = nn.Embedding(steps, 2 * width)  # FiLM scale and shift per step
        self.step_out = nn.Sequential(nn.ReLU(), _conv(width, width), nn.ReLU(),
                                      _conv(width, est_channels, k=1))
        # Small updates at init keep the K-step sum near the redacted image.
        nn.init.normal_(self.step_embed.weight, std=0.02)
        last = self.step_out[-1]
        nn.init.normal_(last.weight, std=1e-3)
        nn.init.zeros_(last.bias)

    def _step(self, est: torch.Tensor, feats: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        h = self.est_in(est) + feats
        scale, shift = self.step_embed(k).view(1, -1, 1, 1).chunk(2, dim=1)
        return est + self.step_out(h * (1 + scale) + shift)

    def forward(self, redacted: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        feats = self.feats_in(self.encode(
            _unshuffle(torch.cat([redacted, cond], 1), self.downsample)))
        est = _unshuffle(redacted, self.downsample)
        for k in range(self.steps):
            index = torch.tensor([k], device=est.device)
            if self.checkpointing and torch.is_grad_enabled():
                est = checkpoint(self._step, est, feats, index, use_reentrant=False)
            else:
                est = self._step(est, feats, index)
        return _shuffle(est, self.downsample, redacted.shape[-2:])


CRMS = {
    "crm_f": lambda c, in_ch: CRMF(in_ch, c.stages, c.width, c.downsample),
    "crm_r": lambda c, in_ch: CRMR(in_ch, c.steps, c.width, c.downsample, c.checkpointing),
}


# Data settings that change the images a CRM is trained on (not the validation noise, the
# validation split's size or the loader's processes).
_DATA_KEYS = ("name", "root", "image_size", "image_width", "num_classes", "num_train", "noise",
              "seed")


def intended_use(cfg: TrainConfig) -> dict[str, Any]:
    """What a CRM is used for in ``cfg``: stored with pre-trained weights (with every
    redaction kind they learnt) and checked when a run loads them. Only a configuration
    that has a CRM (``cfg.dejavu.uses_crm``: not DejaVu off, not ``mode: augment``) has one."""
    if not cfg.dejavu.uses_crm:
        raise ConfigError(f"dejavu.enabled={cfg.dejavu.enabled}, dejavu.mode="
                         f"{cfg.dejavu.mode!r} uses no CRM: expected dejavu.enabled=true "
                         "with dejavu.mode=regenerate")
    return {"task": cfg.task.name,
            "data": {k: getattr(cfg.data, k) for k in _DATA_KEYS},
            "redaction_kind": cfg.dejavu.redaction.kind}


def build_crm(cfg: CRMConfig, cond_channels: int, image_channels: int = 3,
              use: dict[str, Any] | None = None) -> nn.Module:
    """The CRM for ``cfg``, starting from ``cfg.weights`` when that is set; ``use`` (see
    ``intended_use``) is checked against what stored weights were trained for."""
    try:
        factory = CRMS[cfg.kind]
    except KeyError:
        raise ValueError(f"CRM kind {cfg.kind!r} is not known: expected one of "
                         + ", ".join(CRMS)) from None
    crm = factory(cfg, image_channels + cond_channels)
    if cfg.weights:
        load_crm_weights(crm, cfg.weights, cfg, cond_channels, use)
    elif cfg.init == "pretrained":
        raise CRMWeightsError(
            "dejavu.crm.init=pretrained needs stored CRM weights: a search and "
            "python -m dejavu_tune.train prepare them; elsewhere set dejavu.crm.weights=PATH "
            "(python -m dejavu_tune.train.crm_pretrain writes one) or dejavu.crm.init=scratch")
    return crm


def crm_architecture(cfg: CRMConfig, cond_channels: int | None = None) -> dict[str, Any]:
    """What stored weights record of their CRM, and must match to be loaded; without
    ``cond_channels`` (the task's, known once its dataset is built), all but those."""
    arch: dict[str, Any] = {"kind": cfg.kind, "width": cfg.width, "downsample": cfg.downsample}
    if cond_channels is not None:
        arch["cond_channels"] = cond_channels
    arch["stages" if cfg.kind == "crm_f" else "steps"] = (
        cfg.stages if cfg.kind == "crm_f" else cfg.steps)
    return arch


def save_crm(crm: nn.Module, path: str | Path, cfg: CRMConfig, cond_channels: int,
             trained_for: dict[str, Any] | None = None) -> None:
    """Store CRM weights with the architecture they belong to (plain tensors and ints) and
    what they were trained for: ``{"task", "data", "redaction_kinds"}``."""
    payload = {"format": _FORMAT, "architecture": crm_architecture(cfg, cond_channels),
               "state_dict": {k: v.detach().cpu() for k, v in crm.state_dict().items()}}
    if trained_for is not None:
        payload["trained_for"] = trained_for
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a reader never sees a half-written file


def load_crm_weights(crm: nn.Module, path: str | Path, cfg: CRMConfig,
                     cond_channels: int, use: dict[str, Any] | None = None) -> None:
    path = Path(path)
    payload = read_crm_checkpoint(path)
    want = crm_architecture(cfg, cond_channels)
    if payload["architecture"] != want:
        raise CRMWeightsError(f"CRM weights {path} were stored for {payload['architecture']}, "
                              f"but the configured CRM is {want}")
    _check_use(path, payload.get("trained_for"), use)
    try:
        crm.load_state_dict(payload["state_dict"])
    except RuntimeError:  # keys or shapes that the recorded architecture does not have
        raise CRMWeightsError(f"CRM weights {path}: the stored tensors do not fit the "
                              f"architecture the file records ({want}): a damaged or "
                              "hand-edited file; write it again with python -m "
                              "dejavu_tune.train.crm_pretrain") from None


def read_crm_checkpoint(path: str | Path) -> dict[str, Any]:
    """The ``dejavu-crm/1`` payload in ``path``; anything else is a ``CRMWeightsError``,
    the one error of stored CRM weights that callers handle."""
    try:
        payload = read_weights(path, "dejavu.crm.weights")
    except WeightsError as exc:
        raise CRMWeightsError(f"{exc} (python -m dejavu_tune.train.crm_pretrain writes "
                              "CRM weights)") from None
    if not (isinstance(payload, dict) and payload.get("format") == _FORMAT
            and isinstance(payload.get("architecture"), dict)
            and isinstance(payload.get("state_dict"), dict)):
        raise CRMWeightsError(f"CRM weights {path} are not a {_FORMAT} checkpoint "
                              "(write one with python -m dejavu_tune.train.crm_pretrain)")
    return payload


def _check_use(path: Path, trained: dict[str, Any] | None, use: dict[str, Any] | None) -> None:
    """Weights learnt for other data, another task or other redactions would start a run
    from the wrong place: say which differs. Files that record nothing are trusted."""
    if trained is None or use is None:
        return
    if trained.get("task") != use["task"]:
        raise CRMWeightsError(f"CRM weights {path} were trained for task {trained.get('task')!r}"
                              f", but this run's task is {use['task']!r}")
    stored = trained.get("data") or {}
    differ = sorted(k for k, v in use["data"].items() if k in stored and stored[k] != v)
    if differ:
        raise CRMWeightsError(f"CRM weights {path} were trained on other data: " + ", ".join(
            f"data.{k}={stored[k]!r} (this run: {use['data'][k]!r})" for k in differ))
    kinds = trained.get("redaction_kinds")
    if kinds is not None and use["redaction_kind"] not in kinds:
        raise CRMWeightsError(f"CRM weights {path} learnt to undo {', '.join(kinds)} "
                              f"redaction, not {use['redaction_kind']!r}")
