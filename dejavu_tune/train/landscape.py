"""A trainer that does not train: each run's metric is a fixed function of its
configuration and seed, so the whole search (Ray, Optuna, ASHA, MLflow, the paired
confirmation) runs in seconds against a known truth. Tests plant an effect in it and
check that the search finds it, or that it names no winner when there is none;
benchmarks measure the framework's own cost with it.

Use it with ``search.trainer: dejavu_tune.train.landscape:trainer`` (no effect),
``dejavu_tune.train.landscape:planted`` (a known best region, half the space),
``dejavu_tune.train.landscape:narrow`` (a small best region), or a function of your own
that returns ``LandscapeTrainer(cfg, effect=...)``.

The metric after epoch e is ``ceiling * (1 - exp(-e / tau))`` (the training loss one
minus it) with
``ceiling = base + effect(cfg) + seed_noise * z(seed) + run_noise * z(cfg, seed)``: the
seed term is shared by every run on that seed (what pairing cancels), the run term is
each run's own. ``effect`` applies to DejaVu runs only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from typing import Any

import torch

from dejavu_tune.config import TrainConfig
from dejavu_tune.train.cost_probe import MEM_RATIO, STEP_TIME_RATIO
from dejavu_tune.train.trainer import Trainer, heldout_name

__all__ = ["LandscapeTrainer", "trainer", "planted", "narrow", "paced", "from_env",
           "PLANTED_EFFECT", "PACED_EPOCH_S", "LANDSCAPE_ENV"]


def _z(*parts: Any) -> float:
    """A standard normal draw fixed by ``parts``."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return random.Random(digest).gauss(0.0, 1.0)


class LandscapeTrainer:
    """The ``dejavu_tune.train.trainer.Trainer`` interface the trainable uses, without training."""

    crm = None  # no CRM: nothing to probe

    def __init__(self, cfg: TrainConfig, effect: Callable[[TrainConfig], float] = lambda c: 0.0,
                 base: float = 0.8, seed_noise: float = 0.03, run_noise: float = 0.003,
                 tau: float = 2.0, metric: str = "val_miou", image_noise: float = 0.0,
                 heldout_effect: Callable[[TrainConfig], float] | None = None,
                 epoch_s: float = 0.0) -> None:
        self.cfg, self.metric, self.tau, self.epoch_s = cfg, metric, tau, epoch_s
        self.epoch = 0
        gain = effect(cfg) if cfg.dejavu.enabled else 0.0
        # the same configuration whether or not it scores the held-out split too, and
        # wherever its search stored the CRM weights (a path is not a setting)
        sampled = {k: v for k, v in cfg.to_dict().items() if k != "seed"}
        sampled["data"] = {k: v for k, v in sampled["data"].items() if k != "heldout"}
        if sampled["dejavu"]["crm"].get("weights") is not None:
            sampled["dejavu"] = {**sampled["dejavu"], "crm": {
                k: v for k, v in sampled["dejavu"]["crm"].items() if k != "weights"}}
        self.ceiling = (base + gain + seed_noise * _z("seed", cfg.seed)
                        + run_noise * _z("run", sampled, cfg.seed))
        # each configuration's luck on one split's images (the same on every seed), and on
        # the held-out split its own effect (default: the same as on the search split)
        later = (heldout_effect or effect)(cfg) if cfg.dejavu.enabled else 0.0
        self.heldout_ceiling = (self.ceiling - gain + later
                                + image_noise * _z("heldout", sampled))
        self.ceiling += image_noise * _z("search", sampled)

    def cost_ratios(self) -> dict[str, float]:
        """A cost that grows with the CRM's size and LPIPS, as the real step's does
        (docs/benchmarks.md), so a search on cost and quality has a front to find."""
        dv = self.cfg.dejavu
        if not dv.enabled:
            return {STEP_TIME_RATIO: 1.0, MEM_RATIO: 1.0}
        crm = 0.05 * dv.crm.steps if dv.crm.kind == "crm_r" else 0.15 * dv.crm.stages
        lpips = 0.2 if dv.loss.gamma1 > 0 else 0.0
        return {STEP_TIME_RATIO: round(1.0 + crm + lpips, 4),
                MEM_RATIO: round(1.0 + 0.6 * crm + 0.05 * (lpips > 0), 4)}

    def _value(self) -> float:
        return self.ceiling * (1 - math.exp(-self.epoch / self.tau))

    def train_epoch(self) -> dict[str, float]:
        if self.epoch_s:
            time.sleep(self.epoch_s)  # wall time without compute: a trial that outlives a fault
        self.epoch += 1
        # a training loss that falls as the metric rises: ASHA may stop on either
        loss = 1.0 - self._value()
        return {"loss": loss, "task_loss": loss, "epoch": float(self.epoch),
                "sec_per_iter": 0.0, "lr": self.cfg.optim.lr}

    epochs = Trainer.epochs  # the same loop over its own train_epoch and evaluate

    def evaluate(self) -> dict[str, float]:
        return {self.metric: self._value()}

    def evaluate_heldout(self) -> dict[str, float]:
        return {heldout_name(self.metric):
                self.heldout_ceiling * (1 - math.exp(-self.epoch / self.tau))}

    def sample(self, count: int = 4) -> dict[str, torch.Tensor]:
        return {"input": torch.zeros(1, 3, 8, 8)}

    def legend(self) -> list[tuple[str, tuple[int, int, int]]]:
        return []

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])


def trainer(cfg: TrainConfig) -> LandscapeTrainer:
    """The landscape with no effect: DejaVu and the baseline differ only by noise."""
    return LandscapeTrainer(cfg)


PACED_EPOCH_S = 1.5


def paced(cfg: TrainConfig) -> LandscapeTrainer:
    """The landscape with no effect whose every epoch takes ``PACED_EPOCH_S`` of wall
    time and no compute: trials that run for minutes on an idle machine (fault tests)."""
    return LandscapeTrainer(cfg, epoch_s=PACED_EPOCH_S)


PLANTED_EFFECT = 0.05  # what a small regeneration weight adds to the metric in ``planted``


def planted(cfg: TrainConfig) -> LandscapeTrainer:
    """A landscape with a known best region: DejaVu with ``dejavu.loss.gamma`` below 0.3
    gains ``PLANTED_EFFECT``; above, it loses 0.03 (tests of the verdict, and the
    warm-start benchmark: a region a search must find)."""
    return LandscapeTrainer(cfg, effect=lambda c: PLANTED_EFFECT if c.dejavu.loss.gamma < 0.3
                            else -0.03)


def narrow(cfg: TrainConfig) -> LandscapeTrainer:
    """A landscape whose best region is small: up to 0.06 for ``dejavu.loss.gamma`` near
    0.08 and ``dejavu.loss.gamma2`` near 0.2 (a bump in log space on each), nothing far
    from them; what a search must find rather than stumble on (the warm-start benchmark)."""
    def effect(c: TrainConfig) -> float:
        loss = c.dejavu.loss
        return 0.06 * math.exp(-(math.log(loss.gamma / 0.08) / 0.5) ** 2
                               - (math.log(loss.gamma2 / 0.2) / 0.8) ** 2)

    return LandscapeTrainer(cfg, effect=effect)


LANDSCAPE_ENV = "DEJAVU_TUNE_LANDSCAPE"
_SETTINGS = ("base", "seed_noise", "run_noise", "image_noise", "tau", "epoch_s")


def from_env(cfg: TrainConfig) -> LandscapeTrainer:
    """The landscape the environment variable ``DEJAVU_TUNE_LANDSCAPE`` describes, as JSON:
    any of ``base``, ``seed_noise``, ``run_noise``, ``image_noise``, ``tau``, ``epoch_s``
    (wall seconds an epoch takes, as in ``paced``) and ``effect``, a gain every DejaVu run
    has. ``python -m dejavu_tune.bench verdict-check``
    runs real searches on it with the noise its simulation assumes (Ray's workers inherit
    the driver's environment)."""
    try:
        spec = json.loads(os.environ[LANDSCAPE_ENV])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{LANDSCAPE_ENV} must hold a JSON object of the landscape's "
                         f"settings ({type(exc).__name__}: {exc})") from None
    unknown = set(spec) - {*_SETTINGS, "effect"}
    if unknown:
        raise ValueError(f"{LANDSCAPE_ENV}: unknown key(s) {sorted(unknown)}; allowed: "
                         f"{[*_SETTINGS, 'effect']}")
    gain = float(spec.get("effect", 0.0))
    return LandscapeTrainer(cfg, effect=lambda c: gain,
                            **{k: float(spec[k]) for k in _SETTINGS if k in spec})
