"""Stored CRM weights, as the supplement uses them (C.1: "We initialize the CRM module with
stored weights"), content-addressed and reused across searches.

A CRM trained from scratch beside the network learns to regenerate from the redacted
image alone and ignores the prediction, so DejaVu's gradient never reaches the network
(``docs/benchmarks.md``, "Does the CRM use the prediction"). A CRM pre-trained on
ground-truth conditioning relies on it from the first step. Every DejaVu trial with
``dejavu.crm.init: pretrained`` (the default) starts from such weights.

A ``PretrainSpec`` is everything that makes two pre-trainings differ: the CRM's
architecture, the conditioning it sees (task and channels), the data, the redactions
it learns to undo, the loss weights and the pre-training settings. Its SHA-256 names a
directory of the store (``<cache>/<key>/crm.pt`` with ``spec.json``, ``metrics.json``
and ``regeneration.png``), so a second search with the same spec finds the weights
instead of training them again. ``CRMPlan`` belongs to one search: given a trial's
configuration it names the spec, and so the weights file, that trial starts from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dejavu_tune.config import (
    RedactionConfig,
    TrainConfig,
    check_float,
    check_int,
    crm_essence,
    fail,
)

__all__ = ["PretrainSettings", "PretrainSpec", "CRMPlan", "REDACTION_POOLS", "WEIGHTS_FILE",
           "SPEC_FILE", "METRICS_FILE", "CHECK_EVERY", "iteration_cap", "redaction_pool",
           "shortfall"]

WEIGHTS_FILE = "crm.pt"
SPEC_FILE = "spec.json"
METRICS_FILE = "metrics.json"
CHECK_EVERY = 50  # iterations between two reliance measurements past ``iterations``
# mixture: one CRM per architecture learns every redaction the search can sample (drawn
# per batch); per_kind: one per architecture and redaction kind (docs/benchmarks.md).
REDACTION_POOLS = ("mixture", "per_kind")
# The CRM settings that make its weights: the rest (weights, init, condition, memory
# checkpointing) change how it is used, not what it is.
_ARCH_KEYS = ("kind", "width", "downsample")


@dataclass(frozen=True)
class PretrainSettings:
    """How stored CRM weights are made (the space file's ``crm_pretrain:`` section)."""

    iterations: int = 300  # measured: 150-300 make a CRM rely on the prediction
    lr: float = 1e-3  # Adam: the CRM is a plain regression network
    batch_size: int = 16
    redactions: str = "mixture"
    seed: int = 0  # the pre-training's own seed: every trial seed shares the same weights
    # Reliance on the ground-truth conditioning (held-out images) the CRM must reach after
    # ``iterations``: below it, training goes on in rounds of CHECK_EVERY iterations up to
    # ``max_iterations`` (None: 4 x iterations), and a CRM still short stops the search
    # before any DejaVu trial. 0 turns the check off.
    min_reliance: float = 0.2
    max_iterations: int | None = None
    # The probability that a training image's conditioning is zeroed: the zeroed-condition
    # measurement behind ``reliance`` is then one the CRM was trained for
    condition_dropout: float = 0.1

    def __post_init__(self) -> None:
        for name, low in (("iterations", 1), ("batch_size", 1), ("seed", 0)):
            check_int(f"crm_pretrain.{name}", getattr(self, name), low)
        if self.max_iterations is not None:  # at least the iterations every CRM trains
            check_int("crm_pretrain.max_iterations", self.max_iterations, self.iterations)
        check_float("crm_pretrain.lr", self.lr, 0.0, 1.0, low_open=True)
        check_float("crm_pretrain.min_reliance", self.min_reliance, 0.0, 0.99)
        check_float("crm_pretrain.condition_dropout", self.condition_dropout, 0.0, 0.9)
        if self.redactions not in REDACTION_POOLS:
            fail("crm_pretrain.redactions", self.redactions,
                 "one of " + ", ".join(REDACTION_POOLS))

    @property
    def cap(self) -> int:
        """The most iterations one CRM may train to reach ``min_reliance``."""
        return iteration_cap(self.iterations, self.max_iterations)


def iteration_cap(iterations: int, max_iterations: int | None) -> int:
    return max_iterations or 4 * iterations


def shortfall(description: str, metrics: dict[str, float], min_reliance: float) -> str | None:
    """One line on a stored CRM that does not rely on the prediction enough (its trials
    would measure a CRM that ignores it, docs/method.md), or None."""
    reliance = metrics.get("reliance", 0.0)
    if min_reliance <= 0 or reliance >= min_reliance:  # 0: no check, whatever it measured
        return None
    return (f"the CRM {description} reached a reliance of {reliance:.2f} on the "
            f"ground-truth conditioning after {int(metrics.get('iterations', 0))} iterations, "
            f"below crm_pretrain.min_reliance={min_reliance:g}: raise "
            "crm_pretrain.max_iterations or crm_pretrain.lr, give the CRM more width "
            "(dejavu.crm.width), or lower crm_pretrain.min_reliance (0 turns the check off)")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class PretrainSpec:
    crm: dict[str, Any]
    task: dict[str, Any]
    data: dict[str, Any]
    loss: dict[str, float]
    redactions: tuple[dict[str, Any], ...]
    settings: dict[str, Any]

    @property
    def key(self) -> str:
        return hashlib.sha256(_canonical(dataclasses.asdict(self)).encode()).hexdigest()[:20]

    @property
    def redaction_kinds(self) -> tuple[str, ...]:
        return tuple(sorted({r["kind"] for r in self.redactions}))

    def describe(self) -> str:
        """``crm_r K=4 · 3 redaction kinds`` (what a run name can hold)."""
        kinds = self.redaction_kinds
        return crm_essence(self.crm["kind"], self.crm.get("stages"), self.crm.get("steps")) + " · " + (
            kinds[0] if len(kinds) == 1 else f"{len(kinds)} redaction kinds")

    def train_config(self) -> TrainConfig:
        """The configuration the pre-training runs with (its CRM starts from scratch)."""
        crm = {**self.crm, "init": "scratch", "weights": None}
        return TrainConfig.from_dict({
            "seed": self.settings["seed"], "device": self.settings.get("device", "cpu"),
            "data": self.data, "task": self.task, "optim": {"batch_size":
                                                            self.settings["batch_size"]},
            "dejavu": {"crm": crm, "loss": {"gamma": 1.0, **self.loss},
                       "redaction": self.redactions[0]}})

    def redaction_configs(self) -> list[RedactionConfig]:
        return [RedactionConfig(**r) for r in self.redactions]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class CRMPlan:
    """Which stored weights each trial of one search starts from.

    ``pool``: the redactions the search can sample (drawn from its space), which a
    ``mixture`` pre-training learns all at once. Picklable: trials receive it."""

    store: str
    settings: PretrainSettings = field(default_factory=PretrainSettings)
    pool: tuple[dict[str, Any], ...] = ()
    device: str = "cpu"
    # LPIPS and MSE weights of the pre-training: the search's fixed ones, never a trial's
    # sampled ones (each sampled value would need its own pre-training)
    loss: dict[str, float] = field(default_factory=lambda: {"gamma1": 1.0, "gamma2": 0.3})

    def spec(self, cfg: TrainConfig) -> PretrainSpec | None:
        """The pre-training ``cfg``'s CRM starts from; None when it needs none (DejaVu off,
        ``dejavu.mode: augment``, which has no CRM, ``init: scratch``, or weights given
        explicitly)."""
        crm = cfg.dejavu.crm
        if not cfg.dejavu.uses_crm or crm.init != "pretrained" or crm.weights:
            return None
        arch = {k: getattr(crm, k) for k in _ARCH_KEYS}
        arch["stages" if crm.kind == "crm_f" else "steps"] = (
            crm.stages if crm.kind == "crm_f" else crm.steps)
        pool = self.pool or (dataclasses.asdict(cfg.dejavu.redaction),)
        if self.settings.redactions == "per_kind":
            pool = tuple(r for r in pool if r["kind"] == cfg.dejavu.redaction.kind) or (
                dataclasses.asdict(cfg.dejavu.redaction),)
        from dejavu_tune.method.crm import intended_use  # deferred: this module loads without torch

        settings = dataclasses.asdict(self.settings)
        settings.pop("redactions")
        use = intended_use(cfg)
        return PretrainSpec(crm=arch, task=dataclasses.asdict(cfg.task), data=use["data"],
                            loss=dict(self.loss),
                            redactions=tuple(sorted(pool, key=_canonical)),
                            settings={**settings, "device": self.device})

    def directory(self, spec: PretrainSpec) -> Path:
        return Path(self.store) / spec.key

    def weights(self, spec: PretrainSpec) -> Path:
        return self.directory(spec) / WEIGHTS_FILE

    def has(self, spec: PretrainSpec) -> bool:
        return self.weights(spec).is_file() and (self.directory(spec) / METRICS_FILE).is_file()

    def attach(self, cfg: TrainConfig) -> TrainConfig:
        """``cfg`` starting from its stored weights (unchanged when it needs none)."""
        spec = self.spec(cfg)
        if spec is None:
            return cfg
        path = self.weights(spec)
        if not self.has(spec):
            raise FileNotFoundError(f"no stored CRM weights for {spec.describe()} at {path}: "
                                    "the search's CRM stage prepares them before its trials")
        return cfg.replace(**{"dejavu.crm.weights": str(path)})


def redaction_pool(samples: Iterable[TrainConfig], limit: int = 32,
                   seed: int = 0) -> tuple[dict[str, Any], ...]:
    """Distinct redaction settings of sampled trials with a CRM, at most ``limit`` of them
    (a seeded choice), in a canonical order: the ``mixture`` a CRM is pre-trained on. An
    augment trial's redaction is never regenerated, so no CRM needs to learn it."""
    found = {_canonical(dataclasses.asdict(c.dejavu.redaction)): dataclasses.asdict(
        c.dejavu.redaction) for c in samples if c.dejavu.uses_crm}
    keys = sorted(found)
    if len(keys) > limit:
        keys = sorted(random.Random(seed).sample(keys, limit))
    return tuple(found[k] for k in keys)
