"""Landscapes with a known truth for the search's statistics (``search.trainer``)."""

import torch

from dejavu_tune.train.landscape import PLANTED_EFFECT as EFFECT
from dejavu_tune.train.landscape import LandscapeTrainer
from dejavu_tune.train.landscape import planted as gamma_effect

__all__ = ["EFFECT", "gamma_effect", "gamma_effect_network", "too_large"]

TOO_LARGE_BYTES = 1 << 50  # a petabyte: no allocator has it


class _TooLarge(LandscapeTrainer):
    def train_epoch(self):
        if self.cfg.dejavu.enabled and self.epoch == 1:
            torch.empty(TOO_LARGE_BYTES, dtype=torch.uint8)  # a real allocation failure
        return super().train_epoch()


def too_large(cfg):
    """The no-effect landscape whose DejaVu runs ask the allocator for more memory than
    exists in their second epoch; the baselines run."""
    return _TooLarge(cfg)


def gamma_effect_network(cfg):
    """``gamma_effect``, whose checkpoints also carry the network its configuration builds
    (untrained: the landscape trains nothing), so a confirmed winner goes through the
    same model logging as a real search's."""
    from dejavu_tune.config import ENABLED_KEY
    from dejavu_tune.train.trainer import Trainer

    trainer = gamma_effect(cfg)
    network = Trainer(cfg.replace(**{ENABLED_KEY: False, "device": "cpu",
                                     "data.heldout": False})).model
    state = trainer.state_dict
    trainer.state_dict = lambda: {**state(), "model": network.state_dict()}
    return trainer
