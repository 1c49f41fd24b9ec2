"""One reader of a finished search's directory, for everything that reads one after the
fact (a warm start, the benchmarks): its record (``search.json``), its result
(``best_config.json``), its Optuna study (``optuna_trials.json``) and its MLflow runs, as
``tracking`` rows. A file that is not what a search writes there is refused, not
half-used; every refusal is a ``FinishedSearchError`` naming the file and what a search
writes, which a command prefixes with its flag."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dejavu_tune.config import ConfigError
from dejavu_tune.errors import DejavuError
from dejavu_tune.search.record import SearchRecord
from dejavu_tune.tracking import runs as tracking

__all__ = ["RESULT_FILE", "STUDY_FILE", "FinishedSearchError", "FinishedSearch", "read_json"]

RESULT_FILE = "best_config.json"
STUDY_FILE = "optuna_trials.json"


class FinishedSearchError(DejavuError, ValueError):
    """A search directory, or a file in it, that cannot be read as a finished search."""


def read_json(path: Path, shape: type) -> Any:
    """A JSON file a search wrote: a mapping (``best_config.json``) or a list of mappings
    (``optuna_trials.json``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FinishedSearchError(f"{path} cannot be read ({type(exc).__name__}: {exc})"
                                  ) from None
    items = data if isinstance(data, list) else []
    if not isinstance(data, shape) or not all(isinstance(t, dict) for t in items) or (
            shape is dict and not all(isinstance(data.get(k), t) or data.get(k) is None
                                      for k, t in (("confirmation", list), ("config", dict)))):
        want = ("a mapping with verdict, config and confirmation" if shape is dict else
                "a list of trials, each a mapping with number, state, value and params")
        raise FinishedSearchError(f"{path} is not what a search writes there: expected "
                                  f"{want} (a {type(data).__name__} was found)")
    return data


@dataclass(frozen=True)
class FinishedSearch:
    root: Path

    def result(self) -> dict[str, Any] | None:
        """``best_config.json``; None when the search wrote none."""
        path = self.root / RESULT_FILE
        return read_json(path, dict) if path.is_file() else None

    def study(self) -> list[dict[str, Any]] | None:
        """``optuna_trials.json``; None when the search wrote none."""
        path = self.root / STUDY_FILE
        return read_json(path, list) if path.is_file() else None

    def record(self) -> SearchRecord | None:
        """``search.json``; None for a directory that holds only the result files."""
        return self._load() if SearchRecord.path(self.root).is_file() else None

    def _load(self) -> SearchRecord:
        try:
            return SearchRecord.load(self.root)
        except ConfigError as exc:
            raise FinishedSearchError(f"{self.root} is not a search directory: {exc}") from None

    def with_results(self) -> SearchRecord:
        """The record of a search that finished and reported results, else the reason."""
        record = self._load()
        if not record.finished:
            raise FinishedSearchError(
                f"search {record.name!r} in {self.root} has not finished (search.json: "
                "finished is false): expected a finished search; continue it with "
                f"python -m dejavu_tune.search --resume --name {record.name}")
        if record.parent_run_id is None:
            raise FinishedSearchError(
                f"search {record.name!r} in {self.root} names no MLflow run (search.json: "
                "parent_run_id is null): expected the record a search wrote")
        # a search whose trials all failed is finished too, but reports no results
        if not (self.root / RESULT_FILE).is_file():
            raise FinishedSearchError(
                f"search {record.name!r} in {self.root} finished without results (no "
                f"{RESULT_FILE}: its trials failed): expected a search that reported results")
        return record

    def runs(self) -> tuple[tracking.RunRow, list[tuple[tracking.RunRow, float]]]:
        """The parent run and every trial run with its compute seconds (``compute_s``
        summed over its epochs), from the store the search recorded in."""
        record = self.with_results()
        uri = record.tracking_uri
        # MLflow would silently create an empty store at a missing SQLite path.
        if not uri or (uri.startswith("sqlite:///")
                       and not Path(uri[len("sqlite:///"):]).is_file()):
            raise FinishedSearchError(f"no MLflow store at {uri}: expected the store the "
                                      "search recorded in (search.json: tracking_uri)")
        try:
            parent = tracking.get_run(uri, record.parent_run_id)
            trials = [(run, tracking.metric_total(uri, run.run_id, "compute_s"))
                      for run in tracking.child_runs(uri, record.experiment_id,
                                                     record.parent_run_id)]
        except Exception as exc:  # noqa: BLE001 - MLflow, SQLAlchemy and HTTP clients each
            # raise their own kinds for a store that moved, is locked or is not MLflow's
            raise FinishedSearchError(
                f"cannot read the runs of search {record.name!r} from {uri}: "
                f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
            ) from exc
        return parent, trials
