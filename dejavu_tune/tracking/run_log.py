"""One MLflow run to write to, as one object: what the search logs of a run (its
params, an epoch, a series, tags, a figure, artifacts, its note, its end) goes through a
``RunLog`` instead of a tracking URI and a run id handed along side by side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dejavu_tune.tracking import mlflow_views
from dejavu_tune.tracking import runs as tracking

__all__ = ["RunLog"]


@dataclass(frozen=True)
class RunLog:
    uri: str
    run_id: str

    def params(self, params: dict[str, Any], existing: dict[str, str] | None = None) -> None:
        tracking.log_params(self.uri, self.run_id, params, existing=existing)

    def epoch(self, metrics: dict[str, float], step: int,
              timestamp_ms: int | None = None) -> None:
        tracking.log_epoch(self.uri, self.run_id, metrics, step, timestamp_ms)

    def new_epoch(self, metrics: dict[str, float], step: int, timestamp_ms: int | None = None,
                  key: str = "compute_s") -> bool:
        """The epoch, unless the run has it (``tracking.runs.log_new_epoch``)."""
        return tracking.log_new_epoch(self.uri, self.run_id, metrics, step, timestamp_ms, key)

    def series(self, key: str, values: dict[int, float],
               more: dict[str, dict[int, float]] | None = None) -> None:
        tracking.log_series(self.uri, self.run_id, key, values, more)

    def tags(self, tags: dict[str, Any]) -> None:
        tracking.set_tags(self.uri, self.run_id, tags)

    def new_figure(self, png: bytes, step: int) -> bool:
        """The regeneration figure at ``step``, unless the run has one there."""
        return tracking.log_new_figure(self.uri, self.run_id, png, step)

    def text(self, name: str, text: str) -> None:
        tracking.log_artifact_text(self.uri, self.run_id, name, text)

    def json(self, name: str, payload: Any) -> None:
        tracking.log_json(self.uri, self.run_id, name, payload)

    def plot(self, name: str, figure: Any, width_px: int = mlflow_views.NOTE_IMAGE_PX) -> None:
        """A matplotlib figure as the PNG artifact ``name``, ``width_px`` wide (what a run's
        description shows whole); the caller closes it."""
        tracking.log_plot(self.uri, self.run_id, name, figure,
                          dpi=width_px / figure.get_figwidth())

    def file(self, path: str | Path) -> None:
        tracking.log_artifact_file(self.uri, self.run_id, path)

    def note(self, markdown: str) -> None:
        """The run's description in MLflow's UI."""
        mlflow_views.set_run_note(self.uri, self.run_id, markdown)

    def finish(self, status: str, reason: str | None = None, end_ms: int | None = None,
               row: tracking.RunRow | None = None) -> None:
        """Our status tag and MLflow's end (``tracking.runs.set_trial_status``)."""
        tracking.set_trial_status(self.uri, self.run_id, status, reason, end_ms, run=row)

    def read(self) -> tracking.RunRow:
        return tracking.get_run(self.uri, self.run_id)
