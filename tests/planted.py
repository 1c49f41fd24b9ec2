"""Landscapes with a known truth for the search's statistics (``search.trainer``)."""

from dejavu_tune.train.landscape import LandscapeTrainer

EFFECT = 0.05  # what a small regeneration weight adds to the metric, planted


def gamma_effect(cfg):
    """DejaVu with dejavu.loss.gamma below 0.3 gains EFFECT; above, it loses 0.03."""
    return LandscapeTrainer(cfg, effect=lambda c: EFFECT if c.dejavu.loss.gamma < 0.3 else -0.03)
