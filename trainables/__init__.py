"""Ray Tune trainables that wrap the DejaVu training step (``dejavu_tune.train``)."""

from trainables.dejavu_trainable import TrialContext, dejavu_trainable

__all__ = ["TrialContext", "dejavu_trainable"]
