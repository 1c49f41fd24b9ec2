"""``--warm-start``: a new search seeded from an earlier one.

The earlier search is named (a search in the storage path), or given as its directory,
its ``best_config.json`` or its ``optuna_trials.json``. From it:

- its best configurations (the confirmed ones, best paired gain first, then its best
  complete trials) are the new search's first trials (enqueued in the Optuna study);
- its complete trials are given to the sampler as finished trials before it samples,
  where the new space still contains them: a parameter the space no longer has is
  dropped (one line says which), a trial with a value outside the new range or without
  a parameter the new space needs there is left out (counted);
- its stored CRM weights are reused (its CRM store, unless ``--crm-store`` names one).

Everything is read and checked before anything runs; a source that cannot seed this
search (another metric, another number of objectives for its values) is said in one
line, and what can still be used is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dejavu_tune.config import ConfigError
from dejavu_tune.outcome import direction
from dejavu_tune.search.finished import (
    RESULT_FILE,
    STUDY_FILE,
    FinishedSearch,
    FinishedSearchError,
)
from dejavu_tune.search.space import Param, SearchSpace

__all__ = ["WarmStart", "WarmStartError", "load", "searched_params", "BEST_FIRST"]

BEST_FIRST = 3  # earlier configurations evaluated first, at most


class WarmStartError(ConfigError):
    """The --warm-start source cannot be found or read."""


@dataclass(frozen=True)
class WarmStart:
    source: str  # the earlier search's directory
    points: list[dict[str, Any]]  # evaluated first, in this order (the space's dotted keys)
    priors: list[dict[str, Any]]  # {"params", "values"}: told to the sampler as complete
    notes: list[str] = field(default_factory=list)
    crm_store: str | None = None  # the earlier search's stored CRM weights
    # the baseline's seed-to-seed std the earlier search measured (same data and metric)
    noise_floor: float | None = None

    def describe(self) -> str:
        text = (f"warm start from {self.source}: {len(self.points)} of its best "
                f"configuration(s) evaluated first, {len(self.priors)} of its trials given "
                "to the sampler")
        return text + ("; " + "; ".join(self.notes) if self.notes else "")

    def optuna_trials(self, params: tuple[Param, ...]) -> list[Any]:
        """The priors as Optuna trials over ``params``' distributions."""
        import optuna

        dists = {p.name: p.distribution() for p in params}
        made = []
        for prior in self.priors:
            values = prior["values"]
            made.append(optuna.trial.create_trial(
                params=prior["params"], distributions={k: dists[k] for k in prior["params"]},
                **({"value": values[0]} if len(values) == 1 else {"values": values}),
                user_attrs={"warm_start": self.source}))
        return made


def searched_params(space: SearchSpace) -> tuple[Param, ...]:
    """The parameters the DejaVu search samples (shared ones are tuned for the baseline
    first, then fixed, whenever the search has a baseline)."""
    s = space.search
    if s.baseline and s.algorithm != "grid":
        return tuple(p for p in space.params if not p.shared)
    return space.params


def _source(ref: str, storage: Path) -> Path:
    path = Path(ref).expanduser()
    if path.is_file() and path.name in (RESULT_FILE, STUDY_FILE):
        return path.parent.resolve()
    if path.is_dir():
        return path.resolve()
    if (storage / ref).is_dir():
        return (storage / ref).resolve()
    raise WarmStartError(f"--warm-start {ref!r}: no search of that name in {storage} and no "
                         f"such file or directory: expected a search name, its directory, or "
                         f"its {RESULT_FILE} / {STUDY_FILE}")


def _read(read: Callable[[], Any]) -> Any:
    """One of the earlier search's files, through ``FinishedSearch``; a refusal names
    the flag."""
    try:
        return read()
    except FinishedSearchError as exc:
        raise WarmStartError(f"--warm-start: {exc}") from None


def _data_differs(best: dict[str, Any] | None, space: SearchSpace) -> str:
    """Which of the dataset and task the earlier search trained on differs from this
    one's ('' when the same, or when it did not record them)."""
    best = best or {}
    earlier = (best.get("config")
               or (best.get("unconfirmed") if isinstance(best.get("unconfirmed"), dict)
                   else {}).get("config") or {})
    base = space.base_config()
    now = {"data.name": base.data.name, "data.root": base.data.root,
           "task.name": base.task.name}
    then = {k: (earlier.get(k.split(".")[0]) or {}).get(k.split(".")[1], now[k]) for k in now}
    return ", ".join(f"{k}={then[k]!r} (this search: {now[k]!r})"
                     for k in now if then[k] != now[k])


def _fits(param: Param, value: Any) -> bool:
    if param.type == "categorical":
        return value in param.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return param.low <= value <= param.high and (param.type != "int" or value == int(value))


def _in_space(config: dict[str, Any], params: tuple[Param, ...],
              complete: bool = True) -> dict[str, Any] | None:
    """``config`` as a define-by-run path of ``params``: the values of the parameters that
    are active, in order. ``complete``: None when one is missing or out of range (a
    finished trial must be a whole point of the space); else those are left out (a
    configuration to evaluate first: the sampler fills them in)."""
    out: dict[str, Any] = {}
    for param in params:
        if not param.active(out):
            continue
        if param.name in config and _fits(param, config[param.name]):
            out[param.name] = config[param.name]
        elif complete:
            return None
    return out


def load(ref: str, storage: Path, space: SearchSpace) -> WarmStart:
    """The warm start of a search over ``space`` from the earlier search ``ref``."""
    if space.search.algorithm == "grid":
        raise WarmStartError("--warm-start is not allowed with search.algorithm: grid (a grid "
                             "evaluates every combination anyway): expected tpe or random")
    root = _source(ref, storage)
    found = FinishedSearch(root)
    best, trials = _read(found.result), _read(found.study)
    if best is None and trials is None:
        raise WarmStartError(f"--warm-start {ref!r}: {root} has neither {RESULT_FILE} nor "
                             f"{STUDY_FILE}: the search has not finished")
    params = searched_params(space)
    names = {p.name for p in params}
    s = space.search
    notes: list[str] = []
    configs = _best_configs(best, trials, s.mode)
    dropped = sorted({k for c in configs for k in c if k not in names and k != "seed"})
    if dropped:
        notes.append("dropped (not in this space): " + ", ".join(dropped))
    points: list[dict[str, Any]] = []
    for config in configs:
        point = _in_space(config, params, complete=False)
        if point and point not in points:
            points.append(point)
    points = points[:BEST_FIRST]
    other = _data_differs(best, space)
    if other:
        # values measured on other data would mislead the sampler: its configurations are
        # still tried first, as starting points
        priors, skipped = [], f"its trials are not given to the sampler: it trained on {other}"
    else:
        priors, skipped = _priors(best, trials, params, s)
    if skipped:
        notes.append(skipped)
    record = _read(found.record)
    store = record.crm_store if record is not None else None
    floor = ((best or {}).get("noise_floor") or {}).get("std") if isinstance(
        (best or {}).get("noise_floor"), dict) else None
    measured = (float(floor) if _finite(floor) and floor > 0 and not other
                and (best or {}).get("metric") == s.metric else None)
    return WarmStart(str(root), points, priors, notes, store, measured)


def _best_configs(best: dict[str, Any] | None, trials: list[dict[str, Any]] | None,
                  mode: str) -> list[dict[str, Any]]:
    """The earlier search's best configurations, best first: its confirmed ones by their
    paired gain, then its complete trials by their (first) value."""
    out: list[dict[str, Any]] = []
    sign = direction.sign(mode)
    if best:
        confirmed = sorted((c for c in best.get("confirmation") or [] if isinstance(c, dict)),
                           key=lambda c: -sign * (c.get("mean") if _finite(c.get("mean"))
                                                  else -sign * math.inf))
        out += [c["config"] for c in confirmed if isinstance(c.get("config"), dict)]
    complete = [t for t in trials or [] if t.get("state") == "COMPLETE"
                and _finite(_first(t.get("value"))) and isinstance(t.get("params"), dict)]
    complete.sort(key=lambda t: -sign * _first(t["value"]))
    return out + [t["params"] for t in complete]


def _priors(best: dict[str, Any] | None, trials: list[dict[str, Any]] | None,
            params: tuple[Param, ...], s: Any) -> tuple[list[dict[str, Any]], str]:
    objectives = len(s.objectives) or 1
    if not trials:
        return [], ""
    earlier_metric = (best or {}).get("metric")
    if earlier_metric is not None and earlier_metric != s.metric:
        return [], (f"its trials are not given to the sampler: they measured {earlier_metric}, "
                    f"this search {s.metric}")
    out, outside = [], 0
    for t in trials:
        if t.get("state") != "COMPLETE":
            continue
        values = t.get("value")
        values = list(values) if isinstance(values, list) else [values]
        if len(values) != objectives:
            return [], (f"its trials are not given to the sampler: they have {len(values)} "
                        f"objective value(s), this search {objectives}")
        given = t.get("params")
        path = _in_space(given, params) if isinstance(given, dict) else None
        if path is None or not all(_finite(v) for v in values):
            outside += 1
            continue
        out.append({"params": path, "values": [float(v) for v in values]})
    return out, (f"{outside} of its complete trials left out (outside this space)"
                 if outside else "")


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
