"""A finished Tune trial in the project's own terms (``TrialResult``): the search reads
trials through it and never Tune's ``Result``, its data frame or its files, so what Tune
renames between releases is mended here.

From a Tune run the driver has in hand (``from_grid``), or from a finished search's
directory on disk (``read_experiment``: Tune's ``params.json`` and ``result.json`` of each
trial, what a benchmark reads long after the run).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# When the trial queued an epoch's MLflow record (ms), in that epoch's result: the
# driver's backfill writes the identical point, which MLflow keeps once, so a record
# still on its way from the trial (a queue catching up after an outage, a request the
# server finishes late) and the backfill never make two points of one epoch.
RECORDED_MS_KEY = "recorded_ms"

__all__ = ["RECORDED_MS_KEY", "TrialResult", "TrialState", "state_of", "from_grid", "from_tune",
           "read_experiment", "error_reason"]

# Keys Tune adds to every reported row (besides ``ray.tune.result.AUTO_RESULT_KEYS``): not
# the trial's own metrics
_TUNE_KEYS = {"done", "trial_id", "experiment_tag", "should_checkpoint",
              "iterations_since_restore", RECORDED_MS_KEY}


@dataclass(frozen=True)
class TrialResult:
    """What a trial left: its sampled configuration, every row it reported (epoch 1
    first, Tune's own keys included), its error in one line, its directory and newest
    checkpoint directory."""

    config: dict[str, Any]
    rows: tuple[dict[str, Any], ...] = ()
    error: str | None = None
    path: str | None = None
    checkpoint: str | None = None
    last: dict[str, Any] = field(default_factory=dict)  # the last result Tune holds

    @property
    def trial_id(self) -> str | None:
        return self.last.get("trial_id")

    def curve(self, metric: str) -> tuple[float, ...]:
        """``metric`` per epoch (NaN where a row lacks it); () when no row has it."""
        if not any(metric in row for row in self.rows):
            return ()
        return tuple(float(row.get(metric, math.nan)) for row in self.rows)

    def epochs(self) -> dict[int, tuple[dict[str, float], int | None]]:
        """The trial's own numeric metrics per epoch, with the time the trial stamped the
        epoch's record (``RECORDED_MS_KEY``; None for rows without it)."""
        out, tune_keys = {}, _tune_keys()
        for row in self.rows:
            if "training_iteration" not in row:
                continue
            stamp = row.get(RECORDED_MS_KEY)
            out[int(row["training_iteration"])] = (
                {k: float(v) for k, v in row.items() if k not in tune_keys and "/" not in k
                 and isinstance(v, (int, float)) and not isinstance(v, bool)},
                int(stamp) if isinstance(stamp, (int, float)) and stamp == stamp else None)
        return out

    def checkpoint_file(self, name: str) -> Path | None:
        """``name`` in the trial's newest checkpoint (``ray_adapter.report``'s files)."""
        if self.checkpoint is None:
            return None
        path = Path(self.checkpoint) / name
        return path if path.is_file() else None


@dataclass(frozen=True)
class TrialState:
    """A trial while its experiment runs: Tune's status (PENDING, RUNNING, PAUSED,
    TERMINATED or ERROR), its configuration, its newest result and its directory."""

    trial_id: str
    status: str
    config: dict[str, Any]
    last: dict[str, Any]
    path: str | None = None

    @property
    def epochs(self) -> int:
        return int(self.last.get("training_iteration", 0) or 0)

    @property
    def ended(self) -> bool:
        return self.status in ("TERMINATED", "ERROR")


def state_of(trial: Any) -> TrialState:
    """One of Tune's ``Trial`` objects, as the experiment's loop has it (its config and
    result are Tune's own, not copies: read, never changed)."""
    return TrialState(trial.trial_id, trial.status, trial.config or {},
                      trial.last_result or {}, getattr(trial, "local_path", None))


def _tune_keys() -> set[str]:
    from ray.tune.result import AUTO_RESULT_KEYS

    return set(AUTO_RESULT_KEYS) | _TUNE_KEYS


def from_grid(grid: Any) -> list[TrialResult]:
    """Every trial of a finished ``Tuner.fit()``."""
    return [from_tune(grid[i]) for i in range(len(grid))]


def from_tune(result: Any) -> TrialResult:
    """One of Tune's ``Result``s."""
    frame = result.metrics_dataframe
    rows: list[dict[str, Any]] = []
    if frame is not None:
        if "training_iteration" in frame:
            frame = frame.sort_values("training_iteration")
        rows = frame.to_dict("records")
    return TrialResult(config=dict(result.config or {}), rows=tuple(rows),
                       error=None if result.error is None else error_reason(result.error),
                       path=str(result.path) if result.path else None,
                       checkpoint=result.checkpoint.path if result.checkpoint else None,
                       last=dict(result.metrics or {}))


def read_experiment(path: str | Path) -> list[TrialResult]:
    """The trials of a finished Tune experiment directory that reported at least once."""
    out = []
    for trial_dir in sorted(Path(path).iterdir()):
        params, results = trial_dir / "params.json", trial_dir / "result.json"
        if not params.is_file() or not results.is_file():
            continue
        rows = [json.loads(line) for line in results.read_text().splitlines() if line]
        rows.sort(key=lambda r: r.get("training_iteration", 0))
        if rows:
            out.append(TrialResult(config=json.loads(params.read_text()), rows=tuple(rows),
                                   path=str(trial_dir), last=rows[-1]))
    return out


def error_reason(error: BaseException) -> str:
    """A failed trial's own error in one line (``ValueError: ...``), not the wrapper Ray
    puts around it (a header naming the actor, its process and address)."""
    seen = set()
    while getattr(error, "cause", None) is not None and id(error) not in seen:
        seen.add(id(error))
        error = error.cause
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if type(error).__name__.startswith(("RayTaskError", "TuneError")) and lines:
        # only the text is left: its last line naming an error is the trial's own
        named = [ln for ln in lines if re.match(r"[\w.]*(Error|Exception)\b", ln)]
        return (named[-1] if named else lines[-1])[:500]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:500]
