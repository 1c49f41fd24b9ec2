"""The search from Python (a notebook, a script): ``run`` starts one exactly as the
command does and returns its ``SearchResult``; ``load`` reads the same from a finished
search. ``dejavu_tune.search.run`` and ``dejavu_tune.search.load`` are these.

    from dejavu_tune.search import run
    result = run(overrides={"optim.epochs": 2}, num_samples=4, storage_path="runs")
    result.verdict, result.config, result.trials[["name", "status", "metrics.val_miou"]]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dejavu_tune.errors import DejavuError

__all__ = ["SearchResult", "SearchFailed", "run", "load"]


class SearchFailed(DejavuError, RuntimeError):
    """A search that started but ended without a verdict (its trials failed, its CRMs
    ignored the prediction, it was interrupted): the reason is in its parent run."""


@dataclass(frozen=True)
class SearchResult:
    """A finished search: its verdict, the confirmed winner (None when nothing was
    confirmed), ``best_config.json`` whole, its trials as a table (one row per MLflow
    child run: ``run_id``, ``name``, ``trial_id``, ``phase``, ``kind``, ``status``,
    ``compute_s``, then ``params.<key>`` and ``metrics.<key>``, the latest values), and
    where to open it."""

    name: str
    root: Path
    verdict: str
    winner: dict[str, Any] | None  # its paired statistics (Δ, interval, seeds)
    config: dict[str, Any] | None  # the winner's full training configuration
    # the winner's network in MLflow (``model_uri``: ``mlflow.pytorch.load_model`` loads
    # it; its run, checkpoint and registered version); None: nothing confirmed
    model: dict[str, Any] | None
    result: dict[str, Any]
    trials: Any  # a pandas DataFrame
    tracking_uri: str
    parent_run_id: str
    urls: dict[str, str]  # "trials": the ranked runs table, "outcome": the parent run


def load(search: str | Path, storage_path: str | Path = "runs") -> SearchResult:
    """The finished search ``search`` (its directory, or its name in ``storage_path``)."""
    import pandas as pd

    from dejavu_tune.search.finished import FinishedSearch
    from dejavu_tune.tracking import mlflow_views
    from dejavu_tune.tracking import runs as tracking

    root = Path(search).expanduser()
    if not root.is_dir():
        root = Path(storage_path).expanduser() / str(search)
    found = FinishedSearch(root.resolve())
    record = found.with_results()
    result = found.result() or {}
    _, trials = found.runs()
    rows = [{"run_id": run.run_id, "name": run.name,
             "trial_id": run.tags.get(tracking.TRIAL_TAG),
             "phase": run.tags.get(tracking.PHASE_TAG), "kind": run.tags.get(tracking.KIND_TAG),
             "status": run.tags.get(tracking.STATUS_TAG), "compute_s": compute,
             **{f"params.{k}": v for k, v in sorted(run.params.items())},
             **{f"metrics.{k}": v for k, v in sorted(run.metrics.items())}}
            for run, compute in trials]
    uri, exp_id, parent = record.tracking_uri, record.experiment_id, record.parent_run_id
    return SearchResult(
        name=record.name, root=found.root, verdict=result.get("verdict", ""),
        winner=result.get("winner"), config=result.get("config"), model=result.get("model"),
        result=result,
        trials=pd.DataFrame(rows), tracking_uri=uri, parent_run_id=parent,
        urls={"trials": mlflow_views.runs_url(uri, exp_id, mlflow_views.view_key(parent)),
              "outcome": mlflow_views.run_url(uri, exp_id, parent)})


def run(space: str | Path | None = None, overrides: dict[str, Any] | None = None,
        **options: Any) -> SearchResult:
    """Run a search and return its result. ``space``: the space file (default: the
    embedded one); ``overrides``: its keys, as ``--set`` takes them
    (``{"optim.epochs": 2}``); ``options``: the command's other options by their names
    (``num_samples=4``, ``storage_path="runs"``, ``name=...``, ``tracking_uri=...``,
    ``warm_start=...``, ``resume=True``). A bad option or value raises the command's
    one-line error (a ``DejavuError``) before anything starts; a search that ends
    without a verdict raises ``SearchFailed``."""
    from dejavu_tune.search.cli import build_parser, default_name
    from dejavu_tune.search.cli import run_command as command

    flags = {a.dest: a for a in build_parser()._actions if a.option_strings}
    allowed = sorted(set(flags) - {"help", "set", "space", "dry_run"})
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DejavuError(f"{', '.join(unknown)}: not an option of a search: expected "
                          f"space=, overrides= or one of {', '.join(allowed)}")
    argv: list[str] = []
    if space is not None:
        argv += ["--space", str(space)]
    for key, value in (overrides or {}).items():
        argv += ["--set", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    if not options.get("resume") and not options.get("name"):
        options["name"] = default_name(str(space) if space is not None else None)
    for dest, value in options.items():
        flag = flags[dest].option_strings[-1]
        if isinstance(value, bool):
            argv += [flag] if value else []
        elif value is not None:
            argv += [flag, str(value)]
    storage = Path(options.get("storage_path") or build_parser().get_default("storage_path"))
    code, root = command(argv)
    if code != 0:
        raise SearchFailed(f"search {root.name!r} ended without a verdict (exit {code}): "
                           f"the reason is above and in its parent run ({root})")
    return load(root, storage)
