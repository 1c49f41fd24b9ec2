"""What a search's Tune experiment keeps for a resume, by the size of the search.

Up to ``EVERY_EVENT_TRIALS`` trials the experiment state (trials and searcher) is saved
after every event, not every 10 s: a driver killed in between left trials that had
started, and logged to MLflow, out of the state it resumed from, and they ran again
under new ids. Tune keeps each trial's newest ``KEEP`` checkpoints.

The state is ~20 kB per trial and written whole each time, so above that size Tune's
"auto" period applies (snapshots at most ~5 % of the driver's time). Tune also forces a
snapshot whenever a trial has written ``num_to_keep`` checkpoints since the last one (so
that the state never names a checkpoint it has deleted): with epochs shorter than the
period that is one whole snapshot per trial, and the cost per trial grew with every
trial already run (docs/benchmarks.md). A large search therefore asks Tune to delete
nothing: a running trial keeps every checkpoint it writes, so whatever the last state
names still exists, and ``NewestCheckpointOnly`` deletes an ended trial's older ones.
A trial lost with a killed driver then ends as a failed run.

"After every event" is Tune's period 0, which saves after every step of its loop, and a
step ends after at most 0.1 s without an event: ten whole snapshots a second while the
trials train, 800 in a 40-trial search of tiny trials, in the driver that every trial's
report waits on. ``apply`` therefore also makes Tune's save skip a step after which
nothing it saves can have changed (no trial added, started, reported, checkpointed or
ended, the searcher not finished): the same snapshots at every event, none between.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import pyarrow.fs
from ray import tune

__all__ = ["EVERY_EVENT_TRIALS", "KEEP", "apply", "NewestCheckpointOnly", "prune"]

log = logging.getLogger(__name__)

EVERY_EVENT_TRIALS = 250
KEEP = 2  # a trial's newest checkpoints kept in a small search: one may be half-written
_USER_PERIOD = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S")  # a user's own choice wins


def apply(trials: int) -> int | None:
    """Set Tune's snapshot period for an experiment of ``trials`` trials; returns the
    ``CheckpointConfig.num_to_keep`` that goes with it (None: see the module's note)."""
    small = trials <= EVERY_EVENT_TRIALS
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = _USER_PERIOD or ("0" if small else "auto")
    # Epochs of small trials are seconds long; Tune's warning about frequent experiment
    # snapshots is then expected and not actionable.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if os.environ["TUNE_GLOBAL_CHECKPOINT_S"] == "0":
        _save_on_change_only()
    return KEEP if small else None


def state_key(trials: list[Any], searcher_finished: bool) -> tuple[Any, ...]:
    """What changes whenever Tune's experiment state does: each trial's status, last
    result and newest checkpoint, and whether the searcher has finished. The searcher's
    own state changes only with a trial's (a suggestion adds one, a result is one)."""
    return (searcher_finished, tuple(
        (t.trial_id, t.status, t.run_metadata.last_result_time,
         t.checkpoint.path if t.checkpoint is not None else None) for t in trials))


def _save_on_change_only() -> None:
    """Wrap ``TuneController.checkpoint`` once per process (see the module's note). A Ray
    whose controller lacks what ``state_key`` reads keeps saving at every step: slower,
    never less exact."""
    from ray.tune.execution.tune_controller import TuneController

    if getattr(TuneController.checkpoint, "on_change_only", False):
        return
    TuneController.checkpoint = _on_change_only(TuneController.checkpoint)


def _on_change_only(save: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(save)
    def checkpoint(self: Any, force: bool = False, wait: bool = False) -> None:
        if not force and os.environ.get("TUNE_GLOBAL_CHECKPOINT_S") == "0":
            try:
                key = state_key(self._trials, self._search_alg.is_finished())
            except AttributeError as exc:  # a Ray that renamed them: save as Tune would
                log.debug("snapshot at every step: %s", exc)
                key = None
            if key is not None and key == getattr(self, "_dejavu_saved_key", None):
                return
            self._dejavu_saved_key = key
        save(self, force=force, wait=wait)

    checkpoint.on_change_only = True  # type: ignore[attr-defined]
    return checkpoint


class NewestCheckpointOnly(tune.Callback):
    """Once a trial has ended, delete its checkpoints but the newest, in its storage
    (local or remote). The newest on disk is kept as well as the one Tune has
    registered: Tune may register a trial's last checkpoint after the trial ends."""

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._prune(trial)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._prune(trial)

    @staticmethod
    def _prune(trial: Any) -> None:
        # An error raised in a Tune callback ends the whole experiment: storage that
        # refuses a deletion costs disk, never the search.
        try:
            prune(trial)
        except OSError as exc:
            log.warning("trial %s: its older checkpoints were not deleted: %s",
                        trial.trial_id, exc)


def prune(trial: Any) -> list[str]:
    """Delete the ended ``trial``'s older checkpoint directories; returns their paths."""
    storage = trial.storage
    fs = storage.storage_filesystem
    found = fs.get_file_info(pyarrow.fs.FileSelector(storage.trial_fs_path,
                                                     allow_not_found=True))
    dirs = sorted(i.path for i in found if i.type == pyarrow.fs.FileType.Directory
                  and PurePosixPath(i.path).name.startswith("checkpoint_"))
    keep = set(dirs[-1:])
    if trial.checkpoint is not None:
        keep.add(trial.checkpoint.path)
    gone = [d for d in dirs if d not in keep]
    for path in gone:
        fs.delete_dir(path)
    return gone
