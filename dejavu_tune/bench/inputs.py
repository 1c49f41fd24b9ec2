"""What the benchmarks check before they run for minutes: counts, the searches they read
back, and the MLflow store those record in. Each failure is a ``BenchError``: one line
and exit status 2 (``dejavu_tune.cli``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dejavu_tune.config import ConfigError
from dejavu_tune.errors import DejavuError

__all__ = ["BenchError", "at_least", "positive", "finished_search", "store_client"]


class BenchError(DejavuError, ValueError):
    """A benchmark's input that cannot be used: a count, a search, a store."""


def at_least(low: int | float, **values: Any) -> None:
    """Every flag's value (``num_samples=...`` for ``--num-samples``; a list: each of its
    items) is a finite number of at least ``low``."""
    _check(lambda v: v >= low, f"{low} or more", values)


def positive(**values: Any) -> None:
    """Every flag's value is a finite number above 0 (a learning rate)."""
    _check(lambda v: v > 0, "a positive number", values)


def _check(ok: Any, allowed: str, values: dict[str, Any]) -> None:
    for name, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            if not (math.isfinite(item) and ok(item)):
                raise BenchError(f"--{name.replace('_', '-')}={item} is not allowed: "
                                 f"expected {allowed}")


def finished_search(root: Path) -> Any:
    """The record of the finished search in ``root``, one that reported results."""
    from dejavu_tune.search.record import SearchRecord
    from dejavu_tune.search.warm_start import BEST_FILE

    try:
        record = SearchRecord.load(root)
    except ConfigError as exc:
        raise BenchError(f"{root} is not a search directory: {exc}") from None
    if not record.finished:
        raise BenchError(f"search {record.name!r} in {root} has not finished (search.json: "
                         "finished is false): expected a finished search; continue it with "
                         f"python -m dejavu_tune.search --resume --name {record.name}")
    if record.parent_run_id is None:
        raise BenchError(f"search {record.name!r} in {root} names no MLflow run (search.json: "
                         "parent_run_id is null): expected the record a search wrote")
    # a search whose trials all failed is finished too, but reports no results
    if not (root / BEST_FILE).is_file():
        raise BenchError(f"search {record.name!r} in {root} finished without results (no "
                         f"{BEST_FILE}: its trials failed): expected a search that "
                         "reported results")
    return record


def store_client(uri: str | None) -> Any:
    """The MLflow client of a finished search's store, which must still be there."""
    from dejavu_tune.tracking import runs as tracking

    # MLflow would silently create an empty store at a missing SQLite path.
    if not uri or (uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file()):
        raise BenchError(f"no MLflow store at {uri}: expected the store the search recorded "
                         "in (search.json: tracking_uri)")
    return tracking.client(uri)
