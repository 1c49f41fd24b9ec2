"""What a person reads in MLflow's runs table: run names that say what a trial is, and
parameter values at a precision a person reads (the exact values stay in
``best_config.json`` and in Tune's results).

A name leads with the trial's number in its Tune experiment, then the DejaVu essence:
``t07 crm_r K=2 · highpass b16 · γ1.68``; a baseline says so, with its seed. Seed Table
B.2's controls say what they are instead of naming a CRM they do not have:
``t05 augment · random_blocks b8`` (``dejavu.mode: augment``) and
``t02 MAE pre-train 4 ep seed 1`` (``model.mae``, DejaVu off).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dejavu_tune.config import ENABLED_KEY, MAE_EPOCHS_KEY, crm_essence

if TYPE_CHECKING:
    from dejavu_tune.config import TrainConfig

__all__ = ["run_name", "trial_name", "tune_dirname", "readable"]

# Significant digits of a float param in MLflow: 0.0351 and 1.68, never 0.035112940183.
_DIGITS = 4
_STEP_PREFIX = {"tuning": "tuning ", "search": ""}


def tune_dirname(number: int, confirming: bool = False, of: str | None = None,
                 seed: Any = None) -> str:
    """Tune's name and directory of the ``number``-th trial of its experiment (Tune's
    ``trial_name_creator`` / ``trial_dirname_creator``): ``t07``; in a confirmation the
    search trial it re-trains on ``seed`` (``t04_seed2``), or the baseline's seed
    (``baseline_seed6``). :func:`trial_name` reads it back."""
    if confirming and of:
        return f"{of}_seed{seed}"
    if confirming and seed is not None:
        return f"baseline_seed{seed}"
    return f"t{number:02d}"


_OURS = re.compile(r"^(?:(t\d+)|(t\d+)_seed(-?\d+)|baseline_seed(-?\d+))$")


def trial_name(trial_id: str | None, trial_dir: str | None = None) -> str:
    """A trial as the terminal, MLflow, the summary and the Optuna plots name it, read off
    its Tune directory (:func:`tune_dirname`): ``t07``, ``confirm of t04 · seed 2``,
    ``confirm baseline seed 6``. A search recorded before Tune's directories were named
    so numbers a trial only inside it (``dejavu_trainable_77934a14_7_<params>``). The
    id itself when the directory is unknown."""
    name = Path(trial_dir).name if trial_dir else ""
    ours = _OURS.match(name)
    if ours:
        own, of, seed, baseline = ours.groups()
        return own or (f"confirm of {of} · seed {seed}" if of
                       else f"confirm baseline seed {baseline}")
    found = re.search(rf"_{re.escape(trial_id)}_(\d+)", name) if trial_id and name else None
    return f"t{int(found.group(1)):02d}" if found else str(trial_id)


def run_name(cfg: TrainConfig, sampled: dict[str, Any], trial_id: str, phase: str,
             trial_dir: str | None = None, confirms: str | None = None) -> str:
    """The child run's name. A tuning baseline names the values it tries; a confirmation
    run the search trial it re-trains (``confirms``, its tNN) and its seed, so its pairs
    with the baseline read off the table and it never reads like a search trial."""
    if phase.startswith("confirm"):
        prefix = f"confirm of {confirms}" if confirms else "confirm"
    else:
        prefix = f"{_STEP_PREFIX.get(phase, phase + ' ')}{trial_name(trial_id, trial_dir)}"
    mae = f"MAE pre-train {cfg.model.mae.epochs} ep" if cfg.model.mae.epochs else ""
    if not cfg.dejavu.enabled:
        tried = [f"{key.rsplit('.', 1)[-1]} {readable(value)}" for key, value in
                 sorted(sampled.items())
                 if key not in ("seed", ENABLED_KEY, MAE_EPOCHS_KEY, "data.heldout")]
        return " · ".join([f"{prefix} {mae or 'baseline'} seed {cfg.seed}", *tried])
    crm, red = cfg.dejavu.crm, cfg.dejavu.redaction
    essence = crm_essence(crm.kind, crm.stages, crm.steps)
    head = [prefix, essence] if phase.startswith("confirm") else [f"{prefix} {essence}"]
    if cfg.dejavu.uses_crm:
        parts = [*head, f"{red.kind} b{red.block_size}", f"γ{readable(cfg.dejavu.loss.gamma)}"]
    else:  # no CRM and no regeneration loss: its weights γ would be misleading
        parts = [f"{prefix} augment", f"{red.kind} b{red.block_size}"]
    if mae:
        parts.append(mae)
    if phase.startswith("confirm"):
        parts.append(f"seed {cfg.seed}")
    return " · ".join(parts)


def readable(value: Any) -> str:
    """A param value as MLflow shows it: floats to 4 significant digits; a float that
    has no more keeps Python's spelling (0.0, 0.1), so grid values read as before."""
    if isinstance(value, float):
        short = f"{value:.{_DIGITS}g}"
        return str(value) if float(short) == value else short
    return str(value)
