"""Landscapes with a known truth for the search's statistics (``search.trainer``)."""

from dejavu_tune.train.landscape import PLANTED_EFFECT as EFFECT
from dejavu_tune.train.landscape import planted as gamma_effect

__all__ = ["EFFECT", "gamma_effect"]
