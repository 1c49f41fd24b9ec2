"""Ray Tune trainables that wrap the DejaVu training step (``dejavu_tune.train``); the
search runs the one ``dejavu_tune.search.trial_context.TRAINABLE`` names. The folder
installs as ``dejavu_tune.trainables`` (pyproject.toml)."""

from dejavu_tune.trainables.dejavu_trainable import dejavu_trainable

__all__ = ["dejavu_trainable"]
