"""``python -m dejavu_tune.bench replay``: how much compute each search strategy needs to
reach a good configuration, replayed from recorded learning curves (``replay_table``).

Each repetition is a search of its own, simulated event by event with N workers: the
search's real searcher and scheduler (``raytune.search_algorithms``: Optuna's sampler in
Ray's OptunaSearch, the project's TruthfulOutcomes and BaselineExemptASHA) propose and
stop trials exactly as Tune would call them, while training is replaced by the table: a
proposed configuration is the nearest recorded one (``Table.nearest``), one of its
recorded seeds drawn at random, and its epochs arrive at the recorded epoch times. So
asynchrony is real: with 64 workers the sampler proposes 64 trials before it hears of
any, and ASHA decides on whatever has reached a rung by then.

Per strategy it prints, over the repetitions: the trial-epochs (and the simulated wall
time) until the search's best trial, by the single-seed value it would report, is a
configuration whose true value (mean over seeds) is within δ of the table's best; the
share of searches that end there and that reach it at all within the budget; the final
regret; how often ASHA stopped a configuration within δ of the best (the early-stopping
check of item 5, replayed); and every row's median against random search's (no early
stopping), with a bootstrap interval.
"""

from __future__ import annotations

import argparse
import heapq
import json
import logging
import math
import multiprocessing
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from dejavu_tune.bench.inputs import BenchError, at_least, positive
from dejavu_tune.bench.replay_table import DEFAULT_TABLE, Row, Table, load
from dejavu_tune.cli import check_output_file
from dejavu_tune.outcome import direction
from dejavu_tune.outcome.limits import broken
from dejavu_tune.outcome.numbers import wilson

__all__ = ["STRATEGIES", "Strategy", "Search", "add_parser", "run", "replay", "summarise"]


@dataclass(frozen=True)
class Strategy:
    """A search's sampling and stopping, as ``tune_settings.Trials`` takes them."""

    sampler: str = "tpe"
    early_stopping: bool = True
    brackets: int = 1
    startup_trials: int | None = None
    prior: str = "none"  # none, seed (the supplement's settings), misleading (the worst rows)
    on_metric: bool = False  # ASHA compares the search metric, not the table's stop metric
    grace_period: int | None = None  # ASHA's first rung; None: the space's


STRATEGIES: dict[str, Strategy] = {
    "random": Strategy("random", early_stopping=False),
    "random+asha": Strategy("random"),
    "random+asha-val": Strategy("random", on_metric=True),
    "tpe": Strategy("tpe", early_stopping=False),
    "tpe5": Strategy("tpe", early_stopping=False, startup_trials=5),
    "tpe+asha": Strategy("tpe"),
    "tpe+asha-val": Strategy("tpe", on_metric=True),
    "tpe5+asha": Strategy("tpe", startup_trials=5),
    "tpe+asha8": Strategy("tpe", grace_period=8),
    "random+asha8": Strategy("random", grace_period=8),
    "hyperband": Strategy("random", brackets=3),
    "bohb": Strategy("tpe", brackets=3),
    "gp+asha": Strategy("gp"),
    "tpe+asha+seed": Strategy("tpe", prior="seed"),
    "tpe+asha+misleading": Strategy("tpe", prior="misleading"),
    "tpe+seed": Strategy("tpe", early_stopping=False, prior="seed"),
    "tpe+misleading": Strategy("tpe", early_stopping=False, prior="misleading"),
}
REFERENCE = "random"
WAVES = 3  # the budget is at least this many full trials per worker


@dataclass
class Search:
    """One replayed search: when (trial-epochs, seconds) its reported best first came
    within δ of the true best, where it ended, and what ASHA stopped."""

    reached_epochs: float = math.inf
    reached_s: float = math.inf
    final_regret: float = math.nan
    ended_within: bool = False
    trials: int = 0
    epochs: int = 0
    near_best_stopped: bool = False  # ASHA stopped a configuration within δ of the best
    # when a configuration within δ of the best first ran the full budget, whatever its
    # single-seed value: what a multi-seed confirmation of the top trials could then catch
    found_epochs: float = math.inf
    stopped: int = 0


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    trial: Any = field(compare=False)
    epoch: int = field(compare=False)


def _trials(table: Table, space: Any, strategy: Strategy, budget_trials: int, workers: int,
            seed: int, points: list[dict[str, Any]] | None, limits: tuple[Any, ...]) -> Any:
    from dejavu_tune.raytune.tune_settings import Trials

    s = space.search
    return Trials(num_samples=budget_trials, metric=table.metric, mode=table.mode,
                  max_epochs=table.epochs, max_concurrent=workers, sampler=strategy.sampler,
                  define_by_run=space.define_by_run, seed=seed, points=points,
                  early_stopping=strategy.early_stopping,
                  grace_period=strategy.grace_period or s.grace_period,
                  reduction_factor=s.reduction_factor, brackets=strategy.brackets,
                  startup_trials=strategy.startup_trials,
                  stop_metric=table.metric if strategy.on_metric else table.stop_metric,
                  stop_mode=table.mode if strategy.on_metric else table.stop_mode,
                  constraints=limits)


def replay(table: Table, space: Any, strategy: Strategy, workers: int, budget_epochs: int,
           delta: float, seed: int, points: list[dict[str, Any]] | None = None,
           stops_dir: str | Path | None = None, limits: tuple[Any, ...] = (),
           sampled: list[Row] | None = None) -> Search:
    """One search of ``strategy`` with ``workers`` simulated workers until
    ``budget_epochs`` trial-epochs are spent (trials running then finish their epoch
    and stop); the real searcher and scheduler, seeded by ``seed``. ``limits``: the
    search's hard limits (``outcome.limits``), read from the recorded cost ratios; a
    configuration that breaks one is never the search's best. ``sampled``: filled with
    the row of every trial, in order."""
    from dejavu_tune.raytune.search_algorithms import decisions, make_scheduler, make_searcher

    go_on, stop = decisions()
    np.random.seed(seed)  # ASHA draws each trial's bracket from NumPy's global generator
    rng = random.Random(seed)
    trials = _trials(table, space, strategy, 10 * budget_epochs, workers, seed, points, limits)
    searcher, scheduler = make_searcher(trials), make_scheduler(trials, stops_dir)
    sign = direction.sign(table.mode)
    out, events, now, seq, spent, free = Search(), [], 0.0, 0, 0, workers
    incumbent: tuple[float, Row] | None = None
    while True:
        while free and spent < budget_epochs:
            trial_id = f"r{out.trials:05d}"
            config = searcher.suggest(trial_id)
            if config is None:
                break
            row = table.nearest(config)
            if sampled is not None:
                sampled.append(row)
            trial = SimpleNamespace(trial_id=trial_id, config=config, row=row,
                                    run=rng.choice(row.runs))
            if scheduler is not None:
                scheduler.on_trial_add(None, trial)
            out.trials, free, seq = out.trials + 1, free - 1, seq + 1
            heapq.heappush(events, _Event(now + trial.run.seconds[0], seq, trial, 1))
        if not events:
            break
        event = heapq.heappop(events)
        now, trial, epoch = event.at, event.trial, event.epoch
        spent += 1
        run = trial.run
        result = {table.metric: run.metric[epoch - 1], table.stop_metric: run.stop[epoch - 1],
                  "training_iteration": epoch, **run.costs}
        action = (scheduler.on_trial_result(None, trial, result) if scheduler is not None
                  else go_on)
        last = epoch == table.epochs or spent >= budget_epochs
        if action == go_on and not last:
            searcher.on_trial_result(trial.trial_id, result)
            seq += 1
            heapq.heappush(events, _Event(now + run.seconds[epoch], seq, trial, epoch + 1))
            continue
        searcher.on_trial_complete(trial.trial_id, result=result)
        if scheduler is not None:
            scheduler.on_trial_complete(None, trial, result)
        free += 1
        if epoch < table.epochs:
            if action == stop:
                out.stopped += 1
                out.near_best_stopped |= table.within(trial.row, delta)
            continue
        value = run.metric[-1]
        if broken(limits, run.costs):
            continue
        if math.isinf(out.found_epochs) and table.within(trial.row, delta):
            out.found_epochs = spent
        if incumbent is None or sign * value > sign * incumbent[0]:
            incumbent = (value, trial.row)
            if math.isinf(out.reached_epochs) and table.within(trial.row, delta):
                out.reached_epochs, out.reached_s = spent, now
    out.epochs = spent
    if incumbent is not None:
        out.final_regret = sign * (table.best - incumbent[1].true)
        out.ended_within = table.within(incumbent[1], delta)
    return out


def _points(strategy: Strategy, table: Table, space: Any) -> list[dict[str, Any]] | None:
    """The trials enqueued first: the seed's settings, or as many of the table's worst
    configurations (a misleading prior, the control)."""
    from dejavu_tune.search import seed_prior

    seeded = seed_prior.points(space)
    if strategy.prior == "seed":
        return seeded
    if strategy.prior == "misleading":
        sign = direction.sign(table.mode)
        worst = sorted(table.rows, key=lambda r: sign * r.true)[:len(seeded)]
        return [dict(r.params) for r in worst]
    return None


def _median(values: list[float]) -> float:
    """The median, infinite when more than half never reached the target."""
    return float(np.median(np.asarray(values, dtype=float)))


def _bootstrap(a: list[float], b: list[float] | None, reps: int = 2000,
               seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (Efron and Tibshirani 1993) 95 % interval of a's median, or
    of the ratio of a's median to b's (independent resamples of each)."""
    gen = np.random.default_rng(seed)
    xa = np.asarray(a, dtype=float)
    xb = None if b is None else np.asarray(b, dtype=float)
    stats = []
    for _ in range(reps):
        ma = np.median(gen.choice(xa, xa.size))
        if xb is None:
            stats.append(ma)
            continue
        mb = np.median(gen.choice(xb, xb.size))
        stats.append(ma / mb if math.isfinite(ma) and math.isfinite(mb) and mb > 0
                     else math.inf if not math.isfinite(ma) else math.nan)
    values = np.asarray([v for v in stats if not math.isnan(v)])
    if values.size == 0:
        return math.nan, math.nan
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def summarise(name: str, runs: list[Search], reference: list[Search] | None,
              scale: float) -> dict[str, Any]:
    """One strategy's row: medians with bootstrap intervals, shares with Wilson ones."""
    epochs = [r.reached_epochs for r in runs]
    wall = [r.reached_s for r in runs]
    regrets = [r.final_regret for r in runs if math.isfinite(r.final_regret)]
    row: dict[str, Any] = {
        "strategy": name, "repetitions": len(runs),
        "epochs_median": _median(epochs), "epochs_ci": _bootstrap(epochs, None),
        "wall_median_s": _median(wall),
        "reached": wilson(sum(math.isfinite(e) for e in epochs), len(runs)),
        "found_median": _median([r.found_epochs for r in runs]),
        "found": wilson(sum(math.isfinite(r.found_epochs) for r in runs), len(runs)),
        "ended_within": wilson(sum(r.ended_within for r in runs), len(runs)),
        # a search whose budget ran out before any trial finished has no best: left out
        "regret_mean": statistics.fmean(regrets) * scale if regrets else math.nan,
        "regret_sd": statistics.stdev(regrets) * scale if len(regrets) > 1 else math.nan,
        "no_best": len(runs) - len(regrets),
        "near_best_stopped": wilson(sum(r.near_best_stopped for r in runs), len(runs)),
        "trials_mean": statistics.fmean(r.trials for r in runs)}
    if reference is not None:
        ref = [r.reached_epochs for r in reference]
        mine, theirs = _median(epochs), _median(ref)
        row["ratio"] = (mine / theirs if math.isfinite(mine) and math.isfinite(theirs)
                        and theirs > 0 else math.inf if not math.isfinite(mine) else math.nan)
        row["ratio_ci"] = _bootstrap(epochs, ref, seed=1)
    return row


def add_parser(sub: Any) -> None:
    p = sub.add_parser("replay", help="search strategies replayed on recorded learning "
                                      "curves: compute to reach within δ of the true best")
    p.add_argument("--table", default=str(DEFAULT_TABLE), help="recorded table (.json.gz)")
    p.add_argument("--space", default=None, help="the space file the table was recorded "
                   "from (default: search_spaces/<the table's space>)")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    p.add_argument("--workers", type=int, nargs="+", default=[4, 16, 64])
    p.add_argument("--repetitions", type=int, default=200)
    p.add_argument("--budget", type=float, default=50.0,
                   help="trial-epochs per search, in full-budget trials (default 50)")
    p.add_argument("--delta", type=float, default=None,
                   help="δ in the metric's units (default: the space's min_effect)")
    p.add_argument("--processes", type=int, default=2,
                   help="repetitions replayed at once, one process each (default 2)")
    p.add_argument("--json", help="also write the rows to this file")


def _check(args: argparse.Namespace) -> None:
    at_least(1, workers=args.workers, repetitions=args.repetitions, processes=args.processes)
    positive(budget=args.budget)
    if args.delta is not None:
        at_least(0, delta=args.delta)
    if not Path(args.table).is_file():
        raise BenchError(f"--table {args.table}: no such file: expected a table that "
                         "`python -m dejavu_tune.bench replay-table` wrote")
    if args.json:
        check_output_file(args.json, "--json")
        try:  # its directories made now, before minutes of replay
            Path(args.json).absolute().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BenchError(f"--json {args.json}: its directory cannot be made: "
                             f"{exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    from dejavu_tune.outcome.units import unit_of
    from dejavu_tune.search.cli import DEFAULT_SPACE
    from dejavu_tune.search.space_file import load_space

    _check(args)
    table = load(args.table)
    # the shared params (the learning rate) were fixed when the table was recorded, as a
    # search fixes them at the baseline's best before it samples DejaVu's
    space = load_space(args.space or Path(DEFAULT_SPACE).with_name(table.space)).with_shared({})
    delta = args.delta if args.delta is not None else (space.search.min_effect or 0.0)
    unit = unit_of(table.metric)
    _quiet()
    within = sum(table.within(r, delta) for r in table.rows)
    print(f"replay: {len(table.rows)} configurations x {len(table.rows[0].runs)} seeds of "
          f"{table.space}, {table.epochs} epochs; true best {table.metric} "
          f"{table.best * unit.scale:.2f} {unit.name}; {within} configuration(s) within δ = "
          f"{delta * unit.scale:g} {unit.name} of it; budget per search: {args.budget:g} full "
          f"trials' epochs, at least {WAVES} per worker; {args.repetitions} repetitions per "
          "strategy", flush=True)
    rows = []
    names = [REFERENCE] + [s for s in args.strategies if s != REFERENCE]
    context = multiprocessing.get_context("fork")  # the table and space, not re-read
    _SHARED.update(table=table, space=space)
    with context.Pool(args.processes) as pool:
        for workers in args.workers:
            # with many workers a search needs a few waves of trials to finish any
            budget = round(max(args.budget, WAVES * workers) * table.epochs)
            print(f"{workers} workers: {budget} trial-epochs per search", flush=True)
            by_name: dict[str, list[Search]] = {}
            for name in names:
                started = time.perf_counter()
                jobs = [(name, workers, budget, delta, seed)
                        for seed in range(args.repetitions)]
                by_name[name] = pool.map(_one, jobs, chunksize=max(1, len(jobs) // 8))
                row = summarise(name, by_name[name], None if name == REFERENCE
                                else by_name[REFERENCE], unit.scale)
                row.update(workers=workers, seconds=time.perf_counter() - started)
                rows.append(row)
                print(_line(row, unit.name), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=_json))
    return 0


_SHARED: dict[str, Any] = {}  # the table and space, inherited by the forked processes


def _one(job: tuple[str, int, int, float, int]) -> Search:
    name, workers, budget, delta, seed = job
    _quiet()
    table, space = _SHARED["table"], _SHARED["space"]
    strategy = STRATEGIES[name]
    return replay(table, space, strategy, workers, budget, delta, seed,
                  _points(strategy, table, space))


def _json(value: Any) -> Any:
    return str(value)


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("ray.tune").setLevel(logging.ERROR)


def _share(share: tuple[float, float, float]) -> str:
    p, low, high = share
    return f"{100 * p:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def _line(row: dict[str, Any], unit: str) -> str:
    low, high = row["epochs_ci"]
    ratio = ""
    if "ratio" in row:
        r_low, r_high = row["ratio_ci"]
        ratio = f"  ×random {row['ratio']:.2f} [{r_low:.2f}, {r_high:.2f}]"
    reached = (f"median {row['epochs_median']:g} [{low:g}, {high:g}]  wall "
               f"{row['wall_median_s']:.0f} s" if math.isfinite(row["epochs_median"])
               else "median not reached")
    return (f"{row['workers']:>3} workers  {row['strategy']:<20} epochs to δ: {reached}"
            f"  reached {_share(row['reached'])}  ended within δ {_share(row['ended_within'])}"
            f"  regret {row['regret_mean']:.2f} ± {row['regret_sd']:.2f} {unit}"
            f"  tried within δ {_share(row['found'])} (median {row['found_median']:g} epochs)"
            f"  near-best stopped {_share(row['near_best_stopped'])}"
            f"  trials {row['trials_mean']:.0f}{ratio}"
            + (f"  ({row['no_best']} ended before any trial finished)" if row["no_best"] else "")
            + f"  ({row['seconds']:.0f} s)")
