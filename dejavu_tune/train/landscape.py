"""A trainer that does not train: each run's metric is a fixed function of its
configuration and seed, so the whole search (Ray, Optuna, ASHA, MLflow, the paired
confirmation) runs in seconds against a known truth. Tests plant an effect in it and
check that the search finds it, or that it says "within noise" when there is none;
benchmarks measure the framework's own cost with it.

Use it with ``search.trainer: dejavu_tune.train.landscape:trainer`` (no effect), or a
function of your own that returns ``LandscapeTrainer(cfg, effect=...)``.

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
import random
from collections.abc import Callable
from typing import Any

import torch

from dejavu_tune.config import TrainConfig
from dejavu_tune.train.trainer import Trainer

__all__ = ["LandscapeTrainer", "trainer"]


def _z(*parts: Any) -> float:
    """A standard normal draw fixed by ``parts``."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return random.Random(digest).gauss(0.0, 1.0)


class LandscapeTrainer:
    """The ``dejavu_tune.train.trainer.Trainer`` interface the trainable uses, without training."""

    crm = None  # no CRM: nothing to probe

    def __init__(self, cfg: TrainConfig, effect: Callable[[TrainConfig], float] = lambda c: 0.0,
                 base: float = 0.8, seed_noise: float = 0.03, run_noise: float = 0.003,
                 tau: float = 2.0, metric: str = "val_miou") -> None:
        self.cfg, self.metric, self.tau = cfg, metric, tau
        self.epoch = 0
        gain = effect(cfg) if cfg.dejavu.enabled else 0.0
        sampled = {k: v for k, v in cfg.to_dict().items() if k != "seed"}
        self.ceiling = (base + gain + seed_noise * _z("seed", cfg.seed)
                        + run_noise * _z("run", sampled, cfg.seed))

    def _value(self) -> float:
        return self.ceiling * (1 - math.exp(-self.epoch / self.tau))

    def train_epoch(self) -> dict[str, float]:
        self.epoch += 1
        # a training loss that falls as the metric rises: ASHA may stop on either
        loss = 1.0 - self._value()
        return {"loss": loss, "task_loss": loss, "epoch": float(self.epoch),
                "sec_per_iter": 0.0, "lr": self.cfg.optim.lr}

    epochs = Trainer.epochs  # the same loop over its own train_epoch and evaluate

    def evaluate(self) -> dict[str, float]:
        return {self.metric: self._value()}

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
