"""Typed configuration of one training run.

Every section is a frozen dataclass that validates itself in ``__post_init__``;
``TrainConfig.from_dict`` builds the tree from plain (YAML-shaped) dicts and
rejects unknown keys. Errors are :class:`ConfigError` and name the key path,
the value received and what is allowed, so a typo never runs silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from dejavu_tune.errors import DejavuError

__all__ = [
    "ConfigError",
    "parse_override",
    "load_yaml",
    "crm_essence",
    "IGNORE_INDEX",
    "ENABLED_KEY",
    "is_baseline",
    "MAE_EPOCHS_KEY",
    "trial_config",
    "fail",
    "check_int",
    "check_float",
    "CRMConfig",
    "DataConfig",
    "DejaVuConfig",
    "MAEConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RedactionConfig",
    "TaskConfig",
    "TrainConfig",
    "REDACTION_KINDS",
    "TASK_NAMES",
    "DATASET_NAMES",
    "OPTIMIZERS",
    "MODEL_NAMES",
    "ATTENTION_DIMS",
    "SPECTRAL_KINDS",
    "CRM_KINDS",
    "CRM_INITS",
    "CONDITIONS",
    "DEJAVU_MODES",
]

REDACTION_KINDS = ("random_blocks", "checkerboard", "lowpass", "highpass", "bandstop")
SPECTRAL_KINDS = ("lowpass", "highpass", "bandstop")
CRM_KINDS = ("crm_f", "crm_r")
CRM_INITS = ("pretrained", "scratch")
# How the CRM sees a segmentation prediction: class probabilities (soft), probabilities at a
# temperature below 1 (sharpened), or a straight-through one-hot (hard forward, soft grads).
CONDITIONS = ("soft", "sharpened", "onehot")
# regenerate: the method (redaction -> CRM -> regeneration loss). augment: seed Table B.2's
# control, the redacted images only as extra training inputs with the same labels (no CRM)
DEJAVU_MODES = ("regenerate", "augment")
PRECISIONS = ("fp32", "bf16", "fp16")
TASK_NAMES = ("segmentation", "depth", "normals", "multitask")
DATASET_NAMES = ("synthetic", "cityscapes", "ade20k", "nyud", "kitti", "coco_panoptic")
OPTIMIZERS = ("sgd", "adamw")
# the built-in base networks (dejavu_tune.models.MODELS builds them)
MODEL_NAMES = ("small", "segnet", "hrnet_w18", "hrnet_w19", "hrnet_w20", "hrnet_w48",
               "hrnet_w18_ocr", "poolformer_m48_fpn", "vit_b_upernet", "swin_t_upernet",
               "resnet50_fpn")
ATTENTION_DIMS = (0, 32, 64, 128)  # seed C.1: DejaVu-SA embedding dims; 0 = no SA block
_PLUGIN = "or 'package.module:function'"


class ConfigError(DejavuError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


def fail(path: str, value: Any, allowed: str) -> None:
    """The one form of every refused setting: the key path, the value, what is allowed."""
    raise ConfigError(f"{path}={value!r} is not allowed: expected {allowed}")


def _check_options(path: str, options: Any, name: str, what: str) -> None:
    """A plug-in's own settings: a mapping, for a ``module:function`` name only."""
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        fail(path, options, "a mapping of names to values")
    if options and ":" not in str(name):
        fail(path, options, f"options only for a plug-in {what} "
                            f"({path.rsplit('.', 1)[0]}.name: module:function)")


def _json_hash(self: Any) -> int:
    """A section with a dict field (options) hashes its JSON form."""
    return hash(json.dumps(dataclasses.asdict(self), sort_keys=True, default=str))


def check_int(path: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
        high is not None and value > high
    ):
        upper = f" and {high}" if high is not None else " or more"
        what = f"an integer between {low}{upper}" if high is not None else f"an integer of {low}{upper}"
        fail(path, value, what)


def check_float(path: str, value: Any, low: float, high: float = math.inf,
                 low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        upper = "inf)" if high == math.inf else f"{high}]"
        fail(path, value, f"a finite number in {bracket}{low}, {upper}")


def _check_choice(path: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        fail(path, value, "one of " + ", ".join(map(str, choices)))


def _check_name(path: str, value: Any, choices: tuple[str, ...]) -> None:
    """A built-in name from ``choices`` or a bring-your-own ``module:function``."""
    from dejavu_tune.plugins import is_plugin

    if not is_plugin(value):
        if not choices:
            fail(path, value, "'package.module:function'")
        _check_choice(path, value, choices + (_PLUGIN,))


def _check_path(path: str, value: Any, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value:
        fail(path, value, "a file or directory path" + ("" if required else " or null"))


@dataclass(frozen=True)
class RedactionConfig:
    """How the input image is redacted before regeneration (METHOD.md, Redaction)."""

    kind: str = "random_blocks"
    block_size: int = 32  # seed C.1: b=32 for Cityscapes/ADE20K/KITTI/NYUD-v2
    threshold: float = 0.4  # seed C.1: t=0.4; only random_blocks reads it
    fill: float = 0.0  # redacted pixels take this value; 0 is the mean grey of [-1, 1] images
    cutoff: float = 0.25  # lowpass removes radius >= cutoff, highpass removes radius < cutoff
    band_low: float = 0.1  # bandstop removes band_low <= radius < band_high
    band_high: float = 0.5

    def validate(self, prefix: str = "redaction") -> None:
        _check_choice(f"{prefix}.kind", self.kind, REDACTION_KINDS)
        check_int(f"{prefix}.block_size", self.block_size, 1, 1024)
        check_float(f"{prefix}.threshold", self.threshold, 0.0, 1.0)
        check_float(f"{prefix}.fill", self.fill, -math.inf)
        check_float(f"{prefix}.cutoff", self.cutoff, 0.0, 1.0)
        check_float(f"{prefix}.band_low", self.band_low, 0.0, 1.0)
        check_float(f"{prefix}.band_high", self.band_high, 0.0, 1.0)
        if self.kind == "bandstop" and self.band_low >= self.band_high:
            fail(f"{prefix}.band_low", self.band_low,
                  f"a value below {prefix}.band_high={self.band_high}")


IGNORE_INDEX = 255  # the label of pixels no loss or metric counts (Cityscapes convention)
ENABLED_KEY = "dejavu.enabled"  # False: the baseline, DejaVu off
MAE_EPOCHS_KEY = "model.mae.epochs"  # > 0: MAE-style pre-training first (seed Table B.2)


def is_baseline(sampled: dict[str, Any]) -> bool:
    """Whether a trial's sampled (dotted) keys switch DejaVu off and sample no MAE-style
    pre-training: a Table B.2 row with MAE on is compared with the baseline, not one."""
    return sampled.get(ENABLED_KEY) is False and not sampled.get(MAE_EPOCHS_KEY)


def crm_essence(kind: str, stages: int | None, steps: int | None) -> str:
    """``crm_f S=2`` / ``crm_r K=4``: a CRM architecture as a run name shows it."""
    return f"{kind} S={stages}" if kind == "crm_f" else f"{kind} K={steps}"


@dataclass(frozen=True)
class CRMConfig:
    """The Conditional Regeneration Module (METHOD.md, CRM)."""

    kind: str = "crm_r"
    stages: int = 2  # seed Table B.3: 2 stages is best for CRM-F
    steps: int = 20  # seed C.1: 20 recursion steps for CRM-R
    width: int = 32  # channels of the first level; small because the CRM is discarded after training
    downsample: int = 4  # the CRM works at 1/4 resolution: cost / 16, output still full size
    checkpointing: bool = False  # recompute CRM-R steps in backward: memory no longer grows with K
    weights: str | None = None  # stored CRM checkpoint to start from (seed C.1)
    # pretrained: start from stored weights (seed C.1), which a search prepares for every
    # architecture it samples; a CRM from scratch ignores the prediction (docs/benchmarks.md)
    init: str = "pretrained"
    condition: str = "soft"  # how a segmentation prediction conditions the CRM (CONDITIONS)
    temperature: float = 0.5  # of condition: sharpened (softmax(logits / temperature))

    def validate(self, prefix: str = "crm") -> None:
        _check_choice(f"{prefix}.kind", self.kind, CRM_KINDS)
        check_int(f"{prefix}.stages", self.stages, 1, 4)
        check_int(f"{prefix}.steps", self.steps, 1, 200)
        check_int(f"{prefix}.width", self.width, 4, 512)
        if self.downsample not in (1, 2, 4, 8) or not isinstance(self.downsample, int):
            fail(f"{prefix}.downsample", self.downsample, "one of 1, 2, 4, 8")
        if not isinstance(self.checkpointing, bool):
            fail(f"{prefix}.checkpointing", self.checkpointing, "true or false")
        if self.weights is not None and not isinstance(self.weights, str):
            fail(f"{prefix}.weights", self.weights, "a file path or null")
        _check_choice(f"{prefix}.init", self.init, CRM_INITS)
        _check_choice(f"{prefix}.condition", self.condition, CONDITIONS)
        check_float(f"{prefix}.temperature", self.temperature, 0.0, 100.0, low_open=True)


@dataclass(frozen=True)
class LossConfig:
    """Weights of L = L_task + gamma * (gamma1 * LPIPS + gamma2 * MSE) + cl_weight * L_CL.

    gamma1 weights LPIPS, gamma2 MSE (seed C.3: with gamma1=1, gamma2=0.1 "MSE loss has a
    lower weight")."""

    gamma: float = 1.0  # seed C.1
    gamma1: float = 1.0  # LPIPS; seed C.1
    gamma2: float = 0.3  # MSE; seed C.1 (segmentation)
    cl_weight: float = 0.0  # seed B.1 uses 0.1; off by default because it costs a second forward
    ts_weight: float = 0.0  # DejaVu-TS, seed C.1 uses 0.3; needs ts_encoder
    ts_encoder: str | None = None  # 'package.module:function' -> an image/text encoder

    def validate(self, prefix: str = "loss") -> None:
        for name in ("gamma", "gamma1", "gamma2", "cl_weight", "ts_weight"):
            check_float(f"{prefix}.{name}", getattr(self, name), 0.0, 1000.0)
        if self.ts_encoder is not None:
            _check_name(f"{prefix}.ts_encoder", self.ts_encoder, ())
        if self.ts_weight > 0 and self.ts_encoder is None:
            fail(f"{prefix}.ts_weight", self.ts_weight, "0 unless dejavu.loss.ts_encoder "
                  "names an image/text encoder ('package.module:function')")


@dataclass(frozen=True)
class DejaVuConfig:
    enabled: bool = True
    # augment: no CRM, no regeneration loss; the redacted batch is trained on with the same
    # labels (docs/method.md, "Table B.2 settings")
    mode: str = "regenerate"
    redaction: RedactionConfig = field(default_factory=RedactionConfig)
    crm: CRMConfig = field(default_factory=CRMConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    @property
    def uses_crm(self) -> bool:
        """Whether a run builds, pre-trains and loads a CRM (and LPIPS)."""
        return self.enabled and self.mode == "regenerate"

    def validate(self, prefix: str = "dejavu") -> None:
        if not isinstance(self.enabled, bool):
            fail(f"{prefix}.enabled", self.enabled, "true or false")
        _check_choice(f"{prefix}.mode", self.mode, DEJAVU_MODES)
        if self.enabled and self.mode == "augment":
            # both feed the regenerated image somewhere; augment makes none
            for name in ("cl_weight", "ts_weight"):
                if getattr(self.loss, name) > 0:
                    fail(f"{prefix}.loss.{name}", getattr(self.loss, name),
                         f"0 when {prefix}.mode=augment (no CRM, so no regenerated image)")
        self.redaction.validate(f"{prefix}.redaction")
        self.crm.validate(f"{prefix}.crm")
        self.loss.validate(f"{prefix}.loss")


@dataclass(frozen=True)
class DataConfig:
    """Which images and targets: the built-in synthetic scenes, a dataset in its own
    on-disk format under ``root`` (nothing is downloaded), or ``module:function``."""

    name: str = "synthetic"
    root: str | None = None  # dataset directory; required for every name but synthetic
    image_size: int = 64  # height every image is resized to; small enough for a CPU
    image_width: int = 0  # 0: square images (image_size x image_size)
    num_classes: int = 5  # synthetic: 2-8; a plug-in dataset may use it (2-254); files: their own
    num_train: int | None = None  # synthetic: 384 when null; files: the first N (null: all)
    num_val: int | None = None  # synthetic: 96 when null; files: the first N (null: all)
    noise: float = 0.05  # pixel noise of the synthetic scenes, in [-1, 1] units
    input_noise: float = 0.0  # Gaussian noise sigma added to validation inputs (seed Table B.1)
    seed: int = 0
    num_workers: int = 0  # DataLoader worker processes; 0 decodes in the trial's own process
    # also score the held-out split after the last epoch (``heldout_*`` metrics); the
    # search sets it for the runs its confirmation pairs, never for a trial it selects
    # among (dejavu_tune.data.heldout)
    heldout: bool = False
    # a plug-in dataset's own settings (``module:function`` reads ``cfg.options``); logged
    # with the run's configuration, searchable as ``data.options.<key>``
    options: dict[str, Any] = field(default_factory=dict)

    __hash__ = _json_hash

    def validate(self, prefix: str = "data") -> None:
        _check_name(f"{prefix}.name", self.name, DATASET_NAMES)
        _check_path(f"{prefix}.root", self.root,
                    required=self.name not in ("synthetic",) and ":" not in str(self.name))
        check_int(f"{prefix}.image_size", self.image_size, 16, 4096)
        if self.image_width != 0:
            check_int(f"{prefix}.image_width", self.image_width, 16, 4096)
            if self.name == "synthetic" and self.image_width != self.image_size:
                fail(f"{prefix}.image_width", self.image_width,
                      "0 for the synthetic data (its scenes are square)")
        # 255 is the ignore label (IGNORE_INDEX): 254 classes at most
        check_int(f"{prefix}.num_classes", self.num_classes, 2,
                   8 if self.name == "synthetic" else 254)
        _check_options(f"{prefix}.options", self.options, self.name, "dataset")
        for name in ("num_train", "num_val"):
            if getattr(self, name) is not None:
                check_int(f"{prefix}.{name}", getattr(self, name), 1)
        check_float(f"{prefix}.noise", self.noise, 0.0, 2.0)
        check_float(f"{prefix}.input_noise", self.input_noise, 0.0, 2.0)
        check_int(f"{prefix}.seed", self.seed, 0)
        check_int(f"{prefix}.num_workers", self.num_workers, 0, 64)
        if not isinstance(self.heldout, bool):
            fail(f"{prefix}.heldout", self.heldout, "true or false")

    @property
    def size(self) -> tuple[int, int]:
        return self.image_size, self.image_width or self.image_size


@dataclass(frozen=True)
class TaskConfig:
    """What the base network predicts (METHOD.md); multitask is segmentation + depth +
    normals from one network, the CRM conditioned on all three (seed C.5)."""

    name: str = "segmentation"
    seg_weight: float = 1.0  # multitask loss weights; equal, as in the MTPSL baselines
    depth_weight: float = 1.0
    normals_weight: float = 1.0
    # a plug-in task's own settings (``function(cfg, dataset)`` reads ``cfg.options``);
    # logged with the run's configuration, searchable as ``task.options.<key>``
    options: dict[str, Any] = field(default_factory=dict)

    __hash__ = _json_hash

    def validate(self, prefix: str = "task") -> None:
        _check_name(f"{prefix}.name", self.name, TASK_NAMES)
        _check_options(f"{prefix}.options", self.options, self.name, "task")
        for name in ("seg_weight", "depth_weight", "normals_weight"):
            check_float(f"{prefix}.{name}", getattr(self, name), 0.0, 1000.0)


@dataclass(frozen=True)
class MAEConfig:
    """MAE-style masked-image-modelling pre-training of the base network before its task
    training (seed Table B.2; docs/method.md says what differs from He et al.'s MAE)."""

    epochs: int = 0  # 0: off; passes over the training split before task training
    mask_ratio: float = 0.75  # He et al.'s default: 75 % of the patches masked
    patch: int = 16  # ViT-B/16's patch side, in pixels
    # AdamW at MAE's base rate; 1e-3 left the small network 24 mIoU below the baseline after
    # its task training (docs/benchmarks.md, "Table B.2 on the built-in data")
    lr: float = 1.5e-4

    def validate(self, prefix: str = "model.mae") -> None:
        check_int(f"{prefix}.epochs", self.epochs, 0, 10000)
        ratio = self.mask_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
            fail(f"{prefix}.mask_ratio", ratio, "a number in (0, 1): some patches are masked, "
                 "some stay visible")
        check_int(f"{prefix}.patch", self.patch, 1, 1024)
        check_float(f"{prefix}.lr", self.lr, 0.0, 10.0, low_open=True)


@dataclass(frozen=True)
class ModelConfig:
    """The base network h: a name of ``MODEL_NAMES`` or ``module:function``."""

    name: str = "small"
    width: int = 16  # channels of the small network's first level (and SegNet's, / 4)
    pretrained: str | None = None  # enhanced strategy (seed C.1): local backbone weights file
    attention: int = 0  # DejaVu-SA embedding dim (32/64/128); 0 = no shared-attention block
    # a plug-in network's own keyword arguments (``function(heads, width, pretrained,
    # **options)``); logged with the run's configuration, searchable as ``model.options.<key>``
    options: dict[str, Any] = field(default_factory=dict)
    mae: MAEConfig = field(default_factory=MAEConfig)
    # a trial on several data-parallel workers: BatchNorm over the global batch (false:
    # each rank normalises its own rows, as plain DDP does)
    sync_batchnorm: bool = True

    __hash__ = _json_hash

    def validate(self, prefix: str = "model") -> None:
        _check_name(f"{prefix}.name", self.name, MODEL_NAMES)
        _check_options(f"{prefix}.options", self.options, self.name, "network")
        check_int(f"{prefix}.width", self.width, 4, 512)
        _check_path(f"{prefix}.pretrained", self.pretrained)
        _check_choice(f"{prefix}.attention", self.attention, ATTENTION_DIMS)
        self.mae.validate(f"{prefix}.mae")
        if not isinstance(self.sync_batchnorm, bool):
            fail(f"{prefix}.sync_batchnorm", self.sync_batchnorm, "true or false")
        if self.mae.epochs and ":" in str(self.name):
            fail(f"{prefix}.mae.epochs", self.mae.epochs, "0 for a plug-in network (the "
                 "pre-training decodes the built-in networks' trunk features)")


@dataclass(frozen=True)
class OptimConfig:
    """The seed's vanilla strategy (C.1): SGD, lr 0.01, polynomial decay with power 2."""

    name: str = "sgd"  # sgd: the seed's HRNet recipe; adamw: mmsegmentation's PoolFormer/ViT
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 2.0
    epochs: int = 10
    # the seed's iteration budgets (ADE20K 40K/80K, COCO 160K): exactly this many steps, the
    # poly schedule spanning them; null: every epoch in full. The search counts epochs, so
    # ``epochs`` must be the epochs they take (total_iterations checks it)
    iterations: int | None = None
    batch_size: int = 16
    grad_clip: float = 0.0  # 0 disables clipping

    def total_iterations(self, iters_per_epoch: int) -> int:
        """Optimiser steps of the run at ``iters_per_epoch`` (known once the data is)."""
        if self.iterations is None:
            return self.epochs * iters_per_epoch
        needed = -(-self.iterations // iters_per_epoch)  # the last epoch stops short
        if needed != self.epochs:
            fail("optim.epochs", self.epochs, f"{needed} with optim.iterations="
                 f"{self.iterations} at {iters_per_epoch} iterations per epoch "
                 f"(ceil({self.iterations} / {iters_per_epoch}); a search budgets epochs)")
        return self.iterations

    def validate(self, prefix: str = "optim") -> None:
        _check_choice(f"{prefix}.name", self.name, OPTIMIZERS)
        check_float(f"{prefix}.lr", self.lr, 0.0, 10.0, low_open=True)
        check_float(f"{prefix}.momentum", self.momentum, 0.0, 1.0)
        check_float(f"{prefix}.weight_decay", self.weight_decay, 0.0, 1.0)
        check_float(f"{prefix}.poly_power", self.poly_power, 0.0, 10.0)
        check_int(f"{prefix}.epochs", self.epochs, 1)
        if self.iterations is not None:
            check_int(f"{prefix}.iterations", self.iterations, 1)
        check_int(f"{prefix}.batch_size", self.batch_size, 1)
        check_float(f"{prefix}.grad_clip", self.grad_clip, 0.0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; the unit a search trial samples."""

    seed: int = 0
    device: str = "cpu"  # "cpu", "cuda", "cuda:N" or "auto" (cuda when available)
    precision: str = "fp32"  # bf16/fp16 autocast is for CUDA; fp32 keeps CPU runs exact
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    dejavu: DejaVuConfig = field(default_factory=DejaVuConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_int("seed", self.seed, 0)
        if not isinstance(self.device, str) or not (
            self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")
        ):
            fail("device", self.device, "cpu, cuda, cuda:N or auto")
        _check_choice("precision", self.precision, PRECISIONS)
        self.data.validate("data")
        self.task.validate("task")
        self.model.validate("model")
        self.optim.validate("optim")
        self.dejavu.validate("dejavu")
        loss = self.dejavu.loss
        if self.dejavu.uses_crm and loss.gamma > 0 and loss.gamma1 > 0 and self.data.image_size < 32:
            fail("data.image_size", self.data.image_size, "at least 32 when dejavu.loss.gamma1 "
                  "> 0 (LPIPS' AlexNet needs 31 px)")
        mae = self.model.mae
        if mae.epochs:
            height, width = self.data.size
            patches = -(-height // mae.patch) * -(-width // mae.patch)
            if not 1 <= round(patches * mae.mask_ratio) < patches:
                fail("model.mae.patch", mae.patch, f"a patch size that leaves at least one "
                     f"masked and one visible patch of {height}x{width} images at "
                     f"model.mae.mask_ratio={mae.mask_ratio} ({patches} patches now)")

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None = None) -> TrainConfig:
        return _build(cls, raw or {}, "")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **overrides: Any) -> TrainConfig:
        """Copy with dotted-key overrides, e.g. ``replace(**{"dejavu.crm.steps": 5})``."""
        tree = self.to_dict()
        for dotted, value in overrides.items():
            node = tree
            *parents, leaf = dotted.split(".")
            for part in parents:
                if not isinstance(node.get(part), dict):
                    raise ConfigError(f"{dotted} is not a configuration key")
                node = node[part]
            # a plug-in's options take any key (data.options.<key>)
            if leaf not in node and not dotted.startswith("data.options."):
                raise ConfigError(f"{dotted} is not a configuration key")
            node[leaf] = value
        return TrainConfig.from_dict(tree)


def trial_config(fixed: dict[str, Any], sampled: dict[str, Any]) -> TrainConfig:
    """A trial's configuration: a space's fixed keys with its sampled (dotted) ones; the
    one place a search, its trainable and its records build it."""
    return TrainConfig.from_dict(fixed).replace(**sampled)


def load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` (no tags, nothing constructed but plain values) that refuses a key
    given twice in one mapping: PyYAML keeps the last silently, which once dropped a whole
    ``optim:`` block. ``where`` names the text in errors."""
    import yaml  # deferred: only files and command lines need it

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key, line = loader.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                twice = key in seen
            except TypeError:  # an unhashable key (a list): the constructor refuses it
                continue
            if twice:
                raise ConfigError(f"{where}: line {line}: key {key!r} is given twice in one "
                                  f"mapping (first on line {seen[key]}): expected each key once")
            seen[key] = line
        return loader.construct_mapping(node, deep=True)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{where}: {line}not valid YAML ({problem})") from None


def parse_override(text: str) -> tuple[str, Any]:
    """``"dejavu.crm.steps=5"`` -> ``("dejavu.crm.steps", 5)``; the value is read as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not allowed: expected KEY=VALUE, "
                          "e.g. dejavu.crm.steps=5")
    return key.strip(), load_yaml(value, f"override {text!r}: the value")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        fail(prefix.rstrip(".") or "config", raw, "a mapping")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        path = prefix + str(unknown[0])
        raise ConfigError(f"{path} is not a known key: expected one of " + ", ".join(names))
    kwargs = {}
    for name, value in raw.items():
        sub = hints[name]
        if dataclasses.is_dataclass(sub):
            kwargs[name] = _build(sub, value, f"{prefix}{name}.")
        else:
            kwargs[name] = value
    # Sections are validated once, by TrainConfig.__post_init__, with full key paths.
    return cls(**kwargs)
