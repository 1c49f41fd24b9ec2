"""``python -m dejavu_tune.bench verdict-check``: the verdict simulation (``bench verdicts``)
checked against real searches.

It runs ``--searches`` whole searches (``python -m dejavu_tune.search``: the driver, Ray
Tune, Optuna, ASHA, MLflow, baseline tuning and replicates, the sequential confirmation on
the held-out split) on the landscape trainer ``dejavu_tune.train.landscape:from_env``, one
search seed each, then simulates the same design under the same noise with
``bench.verdicts.simulate`` and prints both: every rate with its 95% Wilson interval, and a
two-sided Fisher exact test of the two counts (scipy.stats.fisher_exact; Fisher, 1935).
The simulation describes the real decision when no p-value is small.

Scenarios: ``a`` (no effect anywhere) and ``d`` (every DejaVu configuration 2δ better on
both splits: whichever the search selects carries the gain, so the check does not depend
on how well Optuna searched). The noise, in the landscape's terms and the simulation's:
``--seed-noise`` s (every run on a seed shares it: pairing cancels it), ``--run-noise`` r
(each run's own), ``--image-noise`` i (a configuration's luck on one split's images, the
same on every seed) give seed_sd = sqrt(s² + r²), pairing = s² / (s² + r²), image_sd = i.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dejavu_tune.bench.inputs import BenchError, at_least
from dejavu_tune.bench.verdicts import EVERY, SCENARIOS, Model, Rates, simulate

__all__ = ["add_parser", "run", "FAST"]

CASES = {"a": SCENARIOS[0], "d": EVERY}
# the landscape needs no CRM and no long budget: 2 epochs (ASHA's first rung at 1), a
# time constant that puts the metric within 0.03% of its ceiling by then
FAST = {"dejavu.crm.init": "scratch", "optim.epochs": 2, "search.grace_period": 1,
        "device": "cpu", "search.trainer": "dejavu_tune.train.landscape:from_env"}
TAU = 0.25


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verdict-check", help="bench verdicts' simulation against real "
                                             "searches on the landscape, side by side")
    p.add_argument("--searches", type=int, default=20, help="real searches (default 20)")
    p.add_argument("--scenario", choices=sorted(CASES), default="a",
                   help="a: no effect; d: every DejaVu configuration 2δ better")
    # defaults: bench verdicts' own model (seed std 0.0035, half of it shared by a seed)
    p.add_argument("--seed-noise", type=float, default=0.0025,
                   help="std every run on a seed shares (default 0.0025)")
    p.add_argument("--run-noise", type=float, default=0.0025,
                   help="std of each run's own noise (default 0.0025)")
    p.add_argument("--image-noise", type=float, default=0.0,
                   help="std of a configuration's luck on one split (default 0)")
    p.add_argument("--reps", type=int, default=4000, help="simulated searches (default 4000)")
    p.add_argument("--space", help="search-space YAML (default: the embedded default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting over the space's and the check's own (e.g. "
                        "search.num_samples=4): the simulation follows the design")
    p.add_argument("--search-timeout", type=float, default=900.0,
                   help="seconds one search may take (default 900)")
    p.add_argument("--storage-path", help="where the searches are kept (default: a new "
                                          "temporary directory)")
    p.add_argument("--first-seed", type=int, default=0, help="search.seed of the first one")
    p.add_argument("--parallel", type=int, default=1,
                   help="searches at a time, each with its own local Ray (default 1)")


def _model(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[Model, Any]:
    from dejavu_tune.search.cli import DEFAULT_SPACE
    from dejavu_tune.search.confirm import ROUND_SEEDS
    from dejavu_tune.search.space_file import load_space

    space = load_space(args.space or DEFAULT_SPACE, overrides)
    s = space.search
    if not s.baseline or s.baseline_seeds < 2 or s.confirm_top < 1:
        raise BenchError("verdict-check needs a search that confirms: search.baseline true, "
                         "baseline_seeds 2 or more, confirm_top 1 or more")
    total = math.hypot(args.seed_noise, args.run_noise)
    model = Model(total, args.image_noise, args.seed_noise ** 2 / total ** 2 if total else 0.0,
                  s.min_effect, trials=s.num_samples, top=s.confirm_top,
                  first=s.baseline_seeds, max_seeds=s.max_seeds, step=ROUND_SEEDS)
    return model, space


def _one_search(storage: Path, index: int, args: argparse.Namespace, sets: list[str],
                landscape: dict[str, float]) -> dict[str, Any]:
    from dejavu_tune.train.landscape import LANDSCAPE_ENV

    name = f"check-{index}"
    storage = storage / name  # its own MLflow store: SQLite takes one writer at a time
    env = {**os.environ, LANDSCAPE_ENV: json.dumps(landscape)}
    env.pop("RAY_ADDRESS", None)  # each search starts its own local Ray
    cmd = [sys.executable, "-m", "dejavu_tune.search", "--storage-path", str(storage),
           "--name", name, *(a for kv in sets for a in ("--set", kv)),
           "--set", f"search.seed={index}"]
    if args.space:
        cmd += ["--space", args.space]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=args.search_timeout, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"search {name} did not finish within --search-timeout="
                         f"{args.search_timeout:g} s (kept in {storage})") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"search {name} failed (exit {proc.returncode}): {tail} "
                         f"(kept in {storage})")
    return json.loads((storage / name / "best_config.json").read_text())


def _timed(*args: Any) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    return _one_search(*args), time.perf_counter() - started


def _fisher(a: int, b: int, n_a: int, n_b: int) -> float:
    from scipy.stats import fisher_exact

    return float(fisher_exact([[a, n_a - a], [b, n_b - b]])[1])


def _welch(x: list[int], y: list[int]) -> float:
    from scipy.stats import ttest_ind

    if min(len(x), len(y)) < 2:
        return float("nan")
    if np.var(x) == 0 and np.var(y) == 0:
        return 1.0 if np.mean(x) == np.mean(y) else 0.0
    return float(ttest_ind(x, y, equal_var=False).pvalue)


def run(args: argparse.Namespace) -> int:
    from dejavu_tune.cli import check_output_dir
    from dejavu_tune.config import parse_override

    if args.storage_path:
        check_output_dir(args.storage_path, "--storage-path")  # before any search starts
    at_least(1, searches=args.searches, reps=args.reps, search_timeout=args.search_timeout,
             parallel=args.parallel)
    at_least(0, seed_noise=args.seed_noise, run_noise=args.run_noise,
             image_noise=args.image_noise, first_seed=args.first_seed)
    sets = [f"{k}={v}" for k, v in FAST.items()] + list(args.set)
    model, _ = _model(args, dict(parse_override(kv) for kv in sets))
    scenario = CASES[args.scenario]
    effect = 2 * model.min_effect if args.scenario == "d" else 0.0
    landscape = {"seed_noise": args.seed_noise, "run_noise": args.run_noise,
                 "image_noise": args.image_noise, "tau": TAU, "effect": effect}
    storage = Path(args.storage_path or tempfile.mkdtemp(prefix="dejavu-verdict-check-"))
    storage.mkdir(parents=True, exist_ok=True)
    looks = ", ".join(map(str, model.design().looks))
    print(f"verdict-check: scenario {scenario}; landscape seed noise {args.seed_noise:g}, run "
          f"noise {args.run_noise:g}, image noise {args.image_noise:g}; δ = "
          f"{model.min_effect:g}; {model.trials} trials, top {model.top}, looks at {looks} "
          f"seeds; {args.searches} real searches in {storage}", flush=True)
    real = Rates()
    started = time.perf_counter()
    gains = np.full(model.trials, effect)
    planted = gains > 0
    seeds = range(args.first_seed, args.first_seed + args.searches)
    with ThreadPoolExecutor(args.parallel) as pool:  # each one a process: threads only wait
        jobs = {i: pool.submit(_timed, storage, i, args, sets, landscape) for i in seeds}
        for i, job in jobs.items():
            result, seconds = job.result()  # bounded: each search by --search-timeout
            runs = int((result.get("design") or {}).get("runs", 0))
            named = 0 if result["winner"] is not None else None  # any one: all are alike
            real.add(named, planted, gains, result["verdict"], runs)
            went_on = max((len(c.get("seeds", [])) for c in result.get("confirmation", [])),
                          default=0)
            print(f"  search {i}: {result['verdict']}, {runs} confirmation runs, "
                  f"{len(result.get('confirmation', []))} candidates, the furthest to "
                  f"{went_on} seeds ({seconds:.0f} s)", flush=True)
    real_s = time.perf_counter() - started
    _, sim = simulate(model, scenario, args.reps, seed=args.first_seed)
    print(f"\n| rate | real searches ({real.reps}) | simulation ({sim.reps}) | Fisher p |")
    print("|---|---|---|---|")
    rows = [("false winner", "false_winner"), ("no gain of δ", "no_gain"),
            ("inconclusive", "inconclusive")]
    if effect:
        rows.insert(1, ("detected", "detected"))
    for label, attr in rows:
        a, b = getattr(real, attr), getattr(sim, attr)
        print(f"| {label} | {real.rate(a)} | {sim.rate(b)} | "
              f"{_fisher(a, b, real.reps, sim.reps):.2f} |")
    print(f"| confirmation runs, mean (max) | {np.mean(real.runs):.1f} ({max(real.runs)}) | "
          f"{np.mean(sim.runs):.1f} ({max(sim.runs)}) | Welch p "
          f"{_welch(real.runs, sim.runs):.2f} |")
    print(f"\n{real_s:.0f} s for the {real.reps} real searches, {args.parallel} at a time")
    return 0
