"""``python -m dejavu_tune.bench scale --trials 100 1000``: what the search service itself
costs per trial as a search grows.

Each size runs the real search command (Ray Tune, Optuna's sampler, ASHA, MLflow
logging, checkpoints, settling, the summary and plots) around trials that skip training:
``search.trainer`` is the landscape (``dejavu_tune.train.landscape``), whose metric is
a fixed function of the configuration, so Optuna and ASHA still act on it. Then it reads
the search back from MLflow and prints, per size:

- driver wall time and the trials' compute (the landscape's, near zero);
- framework cost per trial: (driver wall x slots - compute) / trials, the slot time a
  trial costs beyond its own work;
- in-trial overhead: a run's duration minus its compute (the trial's own bookkeeping);
- the time from the last trial's end to the summary (settling, the summary, the plots),
  in total and per trial;
- the driver's peak memory (its own process, from ``wait4``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dejavu_tune.bench.inputs import at_least
from dejavu_tune.cli import check_output_dir

__all__ = ["add_parser", "run", "measure_size"]

LANDSCAPE = "dejavu_tune.train.landscape:trainer"
# No baseline tuning, replicates or confirmation: every trial is one sampled configuration;
# ASHA may stop a trial after its first epoch.
_SETTINGS = {"search.trainer": LANDSCAPE, "search.baseline_trials": 0,
             "search.baseline_seeds": 0, "search.confirm_top": 0,
             "search.grace_period": 1, "dejavu.crm.init": "scratch", "device": "cpu"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("scale", help="the framework's cost per trial at growing search sizes")
    p.add_argument("--trials", type=int, nargs="+", default=[100, 1000],
                   help="search sizes (sampled trials; one baseline run is added to each)")
    p.add_argument("--concurrent", type=int, default=2, help="trials at once")
    p.add_argument("--epochs", type=int, default=2, help="epochs per trial (ASHA's rungs)")
    p.add_argument("--algorithm", choices=("tpe", "random"), default="tpe",
                   help="the search's sampler (search.algorithm): random separates the "
                        "bookkeeping's cost from TPE's, which weighs every earlier trial")
    p.add_argument("--tracking-uri", default=None,
                   help="an MLflow server to log to (default: the local SQLite store)")
    p.add_argument("--storage-path", default=None,
                   help="where the searches are kept (default: a temporary directory)")


def run(args: argparse.Namespace) -> int:
    at_least(1, trials=args.trials, concurrent=args.concurrent, epochs=args.epochs)
    if args.storage_path:
        # made when missing, as the search itself makes its --storage-path
        check_output_dir(args.storage_path, "--storage-path")
        Path(args.storage_path).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dejavu-scale-") as tmp:
        storage = Path(args.storage_path or tmp)
        rows = [measure_size(n, args.concurrent, args.epochs, storage, args.tracking_uri,
                             args.algorithm) for n in args.trials]
    store = args.tracking_uri or "local SQLite store"
    print(f"\nscale: {args.concurrent} trials at once, {args.epochs} epoch(s) each, "
          f"{args.algorithm} sampler, {store}")
    print(f"{'trials':>7}{'wall s':>9}{'compute s':>11}{'cost/trial s':>14}"
          f"{'in-trial s':>12}{'after last s':>14}{'per trial s':>13}{'driver MB':>11}")
    for r in rows:
        print(f"{r['trials']:>7}{r['wall_s']:>9.1f}{r['compute_s']:>11.1f}"
              f"{r['cost_per_trial_s']:>14.3f}{r['in_trial_s']:>12.3f}"
              f"{r['after_last_s']:>14.1f}{r['after_last_s'] / r['trials']:>13.4f}"
              f"{r['driver_mb']:>11.0f}")
    for r in rows:
        print(f"{r['trials']} trials, wall per trial in each tenth of the search (ms): "
              + " ".join(f"{ms:.0f}" for ms in r["tenths_ms"]))
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"cost per trial at {last['trials']} / at {first['trials']}: "
              f"{last['cost_per_trial_s'] / first['cost_per_trial_s']:.2f}x; after the last "
              f"trial, per trial: "
              f"{(last['after_last_s'] / last['trials']) / (first['after_last_s'] / first['trials']):.2f}x")
    return 0


def measure_size(trials: int, concurrent: int, epochs: int, storage: Path,
                 tracking_uri: str | None, algorithm: str = "tpe") -> dict[str, float]:
    """Run one search of ``trials`` sampled trials and read its costs back."""
    name = f"scale-{algorithm}-{trials}-{int(time.time())}"
    settings = {**_SETTINGS, "optim.epochs": epochs, "search.algorithm": algorithm}
    cmd = [sys.executable, "-m", "dejavu_tune.search", "--num-samples", str(trials),
           "--max-concurrent", str(concurrent), "--storage-path", str(storage),
           "--name", name, *(f"--set={k}={v}" for k, v in settings.items())]
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    print(f"scale: {trials} trials ...", flush=True)
    start = time.monotonic()
    with open(storage / f"{name}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the {trials}-trial search failed: see {storage / name}.log")
    return {"trials": trials, "driver_mb": usage.ru_maxrss / 1024,
            **_costs(storage / name, concurrent, wall)}


def _tenths(runs: list[Any]) -> list[float]:
    """Wall time per trial (ms) in each tenth of the search, from the runs' start times:
    flat when the cost of a trial does not depend on how many ran before it."""
    starts = sorted(r.start_ms for r in runs)
    cut = [round(i * (len(starts) - 1) / 10) for i in range(11)]
    return [(starts[b] - starts[a]) / max(1, b - a) for a, b in zip(cut[:-1], cut[1:], strict=True)]


def _costs(root: Path, slots: int, wall: float) -> dict[str, float]:
    from dejavu_tune.search.finished import FinishedSearch

    parent, trials = FinishedSearch(root).runs()
    runs = [run for run, _ in trials]
    # the compute of a landscape epoch is what it reports: near zero
    compute = [c for _, c in trials]
    durations = [r.seconds for r in runs]
    last_end = max(r.end_ms for r in runs) / 1000
    return {"wall_s": wall, "compute_s": sum(compute), "tenths_ms": _tenths(runs),
            "cost_per_trial_s": (wall * slots - sum(compute)) / len(runs),
            "in_trial_s": statistics.mean(d - c for d, c in zip(durations, compute, strict=True)),
            "after_last_s": parent.end_ms / 1000 - last_end}
