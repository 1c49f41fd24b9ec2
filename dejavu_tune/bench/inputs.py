"""What the benchmarks check before they run for minutes: counts, the searches they read
back, and the MLflow store those record in. Each failure is a ``BenchError``: one line
and exit status 2 (``dejavu_tune.cli``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dejavu_tune.errors import DejavuError

__all__ = ["BenchError", "at_least", "positive", "finished_search", "search_runs"]


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
    """The finished search in ``root`` (``search.finished.FinishedSearch``), one that
    reported results; its record and runs are read through it."""
    from dejavu_tune.search.finished import FinishedSearch, FinishedSearchError

    search = FinishedSearch(root)
    try:
        search.with_results()
    except FinishedSearchError as exc:
        raise BenchError(str(exc)) from None
    return search


def search_runs(search: Any) -> tuple[Any, list[tuple[Any, float]]]:
    """The parent run and every trial run with its compute seconds, as ``tracking`` rows;
    a store that cannot be read, or lacks the runs, is a ``BenchError``."""
    from dejavu_tune.search.finished import FinishedSearchError

    try:
        return search.runs()
    except FinishedSearchError as exc:
        raise BenchError(str(exc)) from exc
