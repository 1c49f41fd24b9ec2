"""Recorded learning curves for the replay benchmark (``bench replay``): every epoch of
many configurations of a search space, each trained on several seeds.

Made by real searches (``python -m dejavu_tune.search`` with the random sampler, no early
stopping, the learning rate fixed and the training seed set with ``--set seed=S``: one
search per seed, the same sampler seed, so every search trains the same configurations),
then read back from their Tune results by ``bench replay-table``. Stored as gzipped JSON
in the repository (``DEFAULT_TABLE``), with the commands that made it.

A configuration's *true* value is the mean of its final metric over its seeds; a replayed
trial asks the table for the configuration nearest to what the sampler proposed
(``Table.nearest``) and gets one of its recorded seeds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dejavu_tune.outcome import direction

__all__ = ["DEFAULT_TABLE", "Run", "Row", "Table", "build", "load", "save", "add_parser", "run"]

DEFAULT_TABLE = Path(__file__).with_name("replay_default.json.gz")
_DIGITS = 6  # significant digits kept: far below the seed-to-seed spread


@dataclass(frozen=True)
class Run:
    """One training run: per epoch the search metric, what ASHA compares and seconds."""

    seed: int
    metric: tuple[float, ...]
    stop: tuple[float, ...]
    seconds: tuple[float, ...]
    costs: dict[str, float] = field(default_factory=dict)  # step_time_ratio, mem_ratio


@dataclass(frozen=True)
class Row:
    params: dict[str, Any]  # the sampled values (active parameters only)
    runs: tuple[Run, ...]

    @property
    def true(self) -> float:
        """The mean over seeds of the final metric."""
        return statistics.fmean(r.metric[-1] for r in self.runs)


@dataclass(frozen=True)
class Table:
    space: str  # the space file the configurations were sampled from
    metric: str
    mode: str
    stop_metric: str
    stop_mode: str
    epochs: int
    rows: tuple[Row, ...]
    baseline: tuple[Run, ...] = ()
    made_by: tuple[str, ...] = ()  # the commands that recorded it
    # a parameter's range, to weigh its distance: name -> (low, high, log) for numbers
    ranges: dict[str, tuple[float, float, bool]] = field(default_factory=dict)

    @property
    def best(self) -> float:
        sign = direction.sign(self.mode)
        return max((r.true for r in self.rows), key=lambda v: sign * v)

    def within(self, row: Row, delta: float) -> bool:
        """Whether ``row``'s true value is within ``delta`` of the best row's."""
        return direction.sign(self.mode) * (self.best - row.true) <= delta + 1e-12

    def nearest(self, params: dict[str, Any]) -> Row:
        """The recorded configuration nearest to ``params``: a Gower distance (Gower
        1971), the mean over parameters of 0/1 for a categorical value or for a parameter
        set on one side only, and |a - b| / range for a number (on a log scale for a
        log-sampled one); ties go to the first recorded."""
        names = sorted({*params, *self.ranges, *(k for r in self.rows for k in r.params)})
        return min(self.rows, key=lambda r: sum(self._gap(n, params.get(n), r.params.get(n))
                                                for n in names))

    def _gap(self, name: str, a: Any, b: Any) -> float:
        if a is None and b is None:
            return 0.0
        if a is None or b is None:
            return 1.0
        span = self.ranges.get(name)
        if span is None or isinstance(a, str) or isinstance(b, str):
            return 0.0 if a == b else 1.0
        low, high, log = span
        if log and min(a, b, low) > 0:
            a, b, low, high = (math.log(x) for x in (a, b, low, high))
        return abs(float(a) - float(b)) / ((high - low) or 1.0)


def _round(value: float) -> float:
    return float(f"{value:.{_DIGITS}g}")


def _run_json(run: Run) -> dict[str, Any]:
    return {"seed": run.seed, "metric": [_round(v) for v in run.metric],
            "stop": [_round(v) for v in run.stop], "seconds": [round(v, 3) for v in run.seconds],
            **({"costs": {k: _round(v) for k, v in run.costs.items()}} if run.costs else {})}


def _run(raw: dict[str, Any]) -> Run:
    return Run(int(raw["seed"]), tuple(raw["metric"]), tuple(raw["stop"]),
               tuple(raw["seconds"]), dict(raw.get("costs", {})))


def save(table: Table, path: str | Path) -> None:
    data = {"space": table.space, "metric": table.metric, "mode": table.mode,
            "stop_metric": table.stop_metric, "stop_mode": table.stop_mode,
            "epochs": table.epochs, "made_by": list(table.made_by),
            "ranges": {k: [float(v[0]), float(v[1]), bool(v[2])]
                       for k, v in table.ranges.items()},
            "baseline": [_run_json(r) for r in table.baseline],
            "rows": [{"params": r.params, "runs": [_run_json(x) for x in r.runs]}
                     for r in table.rows]}
    text = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    # no time or name in the header: the same table gives the same bytes
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                 mtime=0) as out:
        out.write(text)


def load(path: str | Path) -> Table:
    with gzip.open(path, "rt", encoding="utf-8") as src:
        data = json.load(src)
    return Table(space=data["space"], metric=data["metric"], mode=data["mode"],
                 stop_metric=data["stop_metric"], stop_mode=data["stop_mode"],
                 epochs=int(data["epochs"]), made_by=tuple(data.get("made_by", ())),
                 ranges={k: (float(v[0]), float(v[1]), bool(v[2]))
                         for k, v in data.get("ranges", {}).items()},
                 baseline=tuple(_run(r) for r in data.get("baseline", ())),
                 rows=tuple(Row(dict(r["params"]), tuple(_run(x) for x in r["runs"]))
                            for r in data["rows"]))


def build(searches: dict[int, list[Path]], space: Any, made_by: list[str]) -> Table:
    """The table of the finished searches ``{training seed: its search directories}`` of
    ``space`` (a ``SearchSpace``): a configuration trained to the full budget on every
    seed becomes a row; one that some seed did not finish is left out."""
    from dejavu_tune.config import is_baseline
    from dejavu_tune.raytune import trial_results
    from dejavu_tune.search.trial_context import config_key

    s = space.search
    epochs = space.base_config().optim.epochs
    costs = ("step_time_ratio", "mem_ratio")
    by_config: dict[tuple, dict[int, Run]] = {}
    params: dict[tuple, dict[str, Any]] = {}
    baseline = []
    found = [(seed, d) for seed, dirs in sorted(searches.items()) for d in dirs]
    for seed, directory in found:
        for result in trial_results.read_experiment(Path(directory) / "search"):
            metric, stop = result.curve(s.metric), result.curve(s.stop_metric or s.metric)
            if len(metric) != epochs or len(stop) != epochs:
                continue
            seconds = tuple(float(r.get("time_this_iter_s", math.nan)) for r in result.rows
                            if s.metric in r)
            run = Run(seed, metric, stop, seconds,
                      {k: float(result.last[k]) for k in costs if k in result.last})
            if is_baseline(result.config):
                baseline.append(run)
                continue
            key = config_key(result.config)
            params[key] = {k: v for k, v in result.config.items() if k != "seed"}
            by_config.setdefault(key, {})[seed] = run
    rows = tuple(Row(params[k], tuple(runs[seed] for seed in sorted(runs)))
                 for k, runs in by_config.items() if len(runs) == len(searches))
    ranges = {p.name: (float(p.low), float(p.high), bool(p.log)) for p in space.params
              if p.type != "categorical"}
    return Table(space=Path(space.path).name, metric=s.metric, mode=s.mode,
                 stop_metric=s.stop_metric or s.metric, stop_mode=s.stop_mode or s.mode,
                 epochs=epochs, rows=rows, baseline=tuple(baseline), made_by=tuple(made_by),
                 ranges=ranges)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("replay-table", help="the replay benchmark's table, from finished "
                                            "searches of the same configurations")
    p.add_argument("searches", nargs="+", metavar="SEED=DIR",
                   help="a training seed and the directory of a search that trained on it "
                        "(a seed may be given several searches)")
    p.add_argument("--space", default=None, help="the searches' space file (default: the "
                   "default space)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="the overrides the searches ran with (optim.lr=0.035, ...)")
    p.add_argument("--made-by", action="append", default=[],
                   help="the command that recorded a search (kept in the table)")
    p.add_argument("--output", default=str(DEFAULT_TABLE), help="the table (.json.gz)")


def run(args: argparse.Namespace) -> int:
    from dejavu_tune.bench.inputs import BenchError
    from dejavu_tune.cli import check_output_file
    from dejavu_tune.config import parse_override
    from dejavu_tune.search.cli import DEFAULT_SPACE
    from dejavu_tune.search.space_file import load_space

    searches: dict[int, list[Path]] = {}
    for item in args.searches:
        seed, _, directory = item.partition("=")
        if not seed.isdigit() or not (Path(directory) / "search").is_dir():
            raise BenchError(f"{item!r} is not allowed: expected SEED=DIR, a training seed "
                             "and the directory of a finished search")
        searches.setdefault(int(seed), []).append(Path(directory))
    check_output_file(args.output, "--output")
    space = load_space(args.space or DEFAULT_SPACE, dict(parse_override(t) for t in args.set))
    table = build(searches, space, args.made_by)
    if not table.rows:
        raise BenchError("no configuration was trained to the full budget by every search: "
                         "expected searches of the same configurations (the same sampler "
                         "seed and space), each on its own training seed")
    save(table, args.output)
    print(f"replay table: {len(table.rows)} configurations x {len(searches)} seeds, "
          f"{table.epochs} epochs, {len(table.baseline)} baseline run(s) -> {args.output} "
          f"({Path(args.output).stat().st_size / 1024:.0f} KiB)")
    return 0
