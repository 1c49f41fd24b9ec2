"""``python -m dejavu_tune.bench peer``: what the search service costs per trial next to
the stack a user would wire by hand from the same libraries, on the same trials.

Each pair runs, one after the other (``--order``), two searches of the same
``--trials`` DejaVu configurations, each in a process of its own:

- **ours**: the real search command (``python -m dejavu_tune.search``), Optuna's random
  sampler, ASHA, no baseline tuning, replicates or confirmation (it still trains its one
  baseline run on the search's own seed);
- **peer**: a plain Ray Tune script (``peer_main``): a local ``ray.init``, a function
  trainable that builds ``TrainConfig`` from the space's fixed keys and the sampled ones,
  runs ``Trainer.epochs()`` and calls ``ray.tune.report`` each epoch;
  ``OptunaSearch`` over the same define-by-run space and seeded ``RandomSampler`` in a
  ``ConcurrencyLimiter``; ``ASHAScheduler`` on the same metric and rungs; Ray's
  ``MLflowLoggerCallback`` into a SQLite store.

Both load the same space file with the same overrides and seed, so the random sampler
proposes the same configurations; each side's trained configurations are read back and
compared (a mismatch is an error). Both report ``compute_s``, the seconds of each
epoch's training and evaluation, so per side:

    framework cost per trial = (slots x driver wall - sum of compute_s) / trials

(slots: ``--concurrent``; driver wall: the process's wall time; the sum over every epoch
of every run, our baseline run's included). Per pair: both costs and their ratio, then
the mean ratio and its spread; and where each side's time goes, from its MLflow runs:
process start to the first run's start, the runs' span, the last run's end to process
end, and the in-run overhead (run duration - compute) per run. The run boundaries
differ: ours opens and closes its run inside the trial, Ray's callback in the driver
when Tune starts and completes the trial.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dejavu_tune.bench.inputs import BenchError, at_least, positive
from dejavu_tune.cli import check_output_dir, check_output_file
from dejavu_tune.config import is_baseline, parse_override, trial_config

__all__ = ["ORDERS", "add_parser", "run", "check", "overrides", "search_space",
           "framework_cost", "config_key", "compare_configs", "sides", "breakdown",
           "summarize", "peer_main", "peer_trainable"]

# what each pair runs first: ours then the peer in every pair, the peer first in every
# pair, or ours first in odd pairs and the peer first in even ones
ORDERS = ("ours-peer", "peer-ours", "alternate")
# The search's steps around its trials switched off: every trial is one sampled
# configuration, ASHA may stop it after its first epoch, the CRM starts from scratch.
_SETTINGS = {"search.algorithm": "random", "search.baseline_trials": 0,
             "search.baseline_seeds": 0, "search.confirm_top": 0, "search.grace_period": 1,
             "dejavu.crm.init": "scratch", "device": "cpu"}
PEER_EXPERIMENT = "peer"  # the MLflow experiment and Tune experiment of the peer
_DIGITS = 10  # significant digits of a float in a configuration's key


def add_parser(sub: Any) -> None:
    p = sub.add_parser("peer", help="the search's framework cost per trial next to a "
                                    "hand-wired Ray Tune + Optuna + ASHA + MLflow script")
    p.add_argument("--pairs", type=int, default=3, help="pairs of searches (ours and the peer)")
    p.add_argument("--order", choices=ORDERS, default="ours-peer",
                   help="which side of a pair runs first (alternate: ours in odd pairs)")
    p.add_argument("--trials", type=int, default=40, help="sampled trials per search")
    p.add_argument("--concurrent", type=int, default=2, help="trials at once")
    p.add_argument("--epochs", type=int, default=2, help="epochs per trial (ASHA's rungs)")
    p.add_argument("--space", default=None, help="space file (default: the default space)")
    p.add_argument("--seed", type=int, default=0, help="the random sampler's seed")
    p.add_argument("--lr", type=float, default=0.035, help="the fixed learning rate")
    p.add_argument("--num-train", type=int, default=16, help="training images per trial")
    p.add_argument("--num-val", type=int, default=8, help="validation images per trial")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--peer-new-actors", action="store_true",
                   help="the peer starts a worker process per trial (Tune's default, "
                        "reuse_actors=False); default: it reuses them, as the search does")
    p.add_argument("--storage-path", default=None,
                   help="where the searches are kept (default: a temporary directory)")
    p.add_argument("--json", help="also write the numbers to this file")


def check(args: argparse.Namespace) -> None:
    """The flags, before the first search starts."""
    at_least(1, pairs=args.pairs, trials=args.trials, concurrent=args.concurrent,
             epochs=args.epochs, num_train=args.num_train, num_val=args.num_val,
             batch_size=args.batch_size)
    at_least(0, seed=args.seed)
    positive(lr=args.lr)
    if args.storage_path:
        check_output_dir(args.storage_path, "--storage-path")
    if args.json:
        check_output_file(args.json, "--json")


def set_flags(args: argparse.Namespace) -> list[str]:
    """The search's ``--set KEY=VALUE`` overrides of the space file (trials, slots and the
    seed go as the search's own flags)."""
    settings = {**_SETTINGS, "optim.epochs": args.epochs, "optim.lr": args.lr,
                "optim.batch_size": args.batch_size, "data.num_train": args.num_train,
                "data.num_val": args.num_val}
    return [f"{key}={value}" for key, value in settings.items()]


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The overrides the search command makes of ``set_flags`` and its flags
    (``search.cli``): what the peer loads the space with."""
    out = dict(parse_override(text) for text in set_flags(args))
    out.update({"search.num_samples": args.trials, "search.max_concurrent": args.concurrent,
                "search.seed": args.seed})
    return out


def search_space(space: Any) -> Any:
    """The space of the search step's DejaVu trials, as the driver builds it: with a
    baseline, the shared parameters (the learning rate) are held at their fixed values
    (there is no baseline tuning here), so they are not sampled."""
    from dejavu_tune.search.run_plan import plan

    return space.with_shared({}) if plan(space).paired else space


def framework_cost(wall_s: float, compute_s: float, trials: int, slots: int) -> float:
    """Slot seconds a trial costs beyond its own compute: (slots x wall - compute) / trials."""
    return (slots * wall_s - compute_s) / trials


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{_DIGITS}g}")
    if isinstance(value, dict):
        return {str(k): _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


def config_key(config: dict[str, Any]) -> str:
    """A configuration as canonical JSON: sorted keys, floats to ``_DIGITS`` significant
    digits (a value that went through JSON and back compares equal)."""
    return json.dumps(_rounded(config), sort_keys=True)


def compare_configs(ours: Iterable[dict[str, Any]], peer: Iterable[dict[str, Any]],
                    trials: int) -> int:
    """The number of configurations both sides trained; a ``BenchError`` unless both
    trained the same ``trials`` distinct configurations."""
    mine, theirs = {config_key(c) for c in ours}, {config_key(c) for c in peer}
    if mine == theirs and len(mine) == trials:
        return trials
    only_ours, only_peer = sorted(mine - theirs), sorted(theirs - mine)
    raise BenchError(
        f"the two sides did not train the same configurations: ours {len(mine)}, the peer "
        f"{len(theirs)}, expected {trials} each; {len(only_ours)} only in ours"
        + (f" (first: {only_ours[0]})" if only_ours else "") + f", {len(only_peer)} only in "
        "the peer's" + (f" (first: {only_peer[0]})" if only_peer else ""))


def sides(pair: int, order: str) -> tuple[str, str]:
    """The sides of pair ``pair`` (0-based) in the order they run."""
    ours_first = order == "ours-peer" or (order == "alternate" and pair % 2 == 0)
    return ("ours", "peer") if ours_first else ("peer", "ours")


def breakdown(runs: list[Any], compute_s: float, started: float,
              ended: float) -> dict[str, float]:
    """Where a process's time went, from its MLflow runs (``tracking.runs.RunRow``):
    process start to the first run's start, the runs' span, the last run's end to
    process end, and the mean of run duration - compute per run (``compute_s``: the
    sum over the runs). ``started``/``ended``: the process's, in seconds since the epoch."""
    timed = [r for r in runs if r.start_ms is not None and r.end_ms is not None]
    if not timed:
        raise BenchError("no finished MLflow run to read the trials' times from")
    first = min(r.start_ms for r in timed) / 1000
    last = max(r.end_ms for r in timed) / 1000
    return {"to_first_s": first - started, "span_s": last - first,
            "after_last_s": ended - last,
            "in_run_s": (sum(r.seconds for r in timed) - compute_s) / len(timed)}


def summarize(ratios: list[float]) -> dict[str, float]:
    """The mean ratio and its spread (sample standard deviation; 0 for one pair)."""
    return {"mean": statistics.mean(ratios), "min": min(ratios), "max": max(ratios),
            "stdev": statistics.stdev(ratios) if len(ratios) > 1 else 0.0}


# -- the two sides -------------------------------------------------------------------------
def _environment() -> dict[str, str]:
    """Both sides start a Ray and a store of their own, whatever this shell points at."""
    return {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}


def _timed(cmd: list[str], log: Path, cwd: Path | None = None) -> tuple[float, float, float]:
    """Run ``cmd`` with its output in ``log``: (its wall seconds, start and end time)."""
    started, start = time.time(), time.monotonic()
    with open(log, "w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                              env=_environment(), check=False).returncode
    wall, ended = time.monotonic() - start, time.time()
    if code != 0:
        raise RuntimeError(f"{cmd[2]} exited with status {code}: see {log}")
    return wall, started, ended


def _compute(results: list[Any]) -> float:
    """``compute_s`` summed over every epoch every trial reported."""
    rows = [row for r in results for row in r.rows]
    if any("compute_s" not in row for row in rows):
        raise BenchError("a trial reported an epoch without compute_s")
    return sum(float(row["compute_s"]) for row in rows)


def _ours(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from dejavu_tune.raytune import trial_results
    from dejavu_tune.search.finished import FinishedSearch

    root.mkdir(parents=True)
    name = "search"
    cmd = [sys.executable, "-m", "dejavu_tune.search", "--num-samples", str(args.trials),
           "--max-concurrent", str(args.concurrent), "--seed", str(args.seed),
           "--storage-path", str(root), "--name", name,
           *(f"--set={text}" for text in set_flags(args))]
    if args.space:
        cmd += ["--space", args.space]
    wall, started, ended = _timed(cmd, root / "terminal.txt")
    results = trial_results.read_experiment(root / name / "search")
    compute = _compute(results)
    _, trials = FinishedSearch(root / name).runs()
    return {"wall_s": wall, "compute_s": compute, "runs": len(results),
            "configs": [r.config for r in results if not is_baseline(r.config)],
            **breakdown([run for run, _ in trials], compute, started, ended)}


def _peer(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from dejavu_tune.raytune import trial_results
    from dejavu_tune.tracking import runs as tracking

    root.mkdir(parents=True)
    root = root.resolve()  # the peer runs from inside it: a relative path would not resolve
    uri = tracking.default_tracking_uri(root)
    spec = {"space": str(Path(args.space).resolve()) if args.space else None,
            "overrides": overrides(args), "storage_path": str(root.resolve()),
            "tracking_uri": uri, "reuse_actors": not args.peer_new_actors}
    (root / "spec.json").write_text(json.dumps(spec, indent=2))
    # from its own directory: MLflow's default artifact root is ./mlruns of the process
    wall, started, ended = _timed([sys.executable, "-m", "dejavu_tune.bench.peer",
                                   str(root / "spec.json")], root / "terminal.txt", cwd=root)
    results = trial_results.read_experiment(root / PEER_EXPERIMENT)
    compute = _compute(results)
    experiment = tracking.experiment_id(uri, PEER_EXPERIMENT)
    runs = tracking.all_runs(uri, [experiment]) if experiment else []
    configs = json.loads((root / "configs.json").read_text())
    return {"wall_s": wall, "compute_s": compute, "runs": len(results), "configs": configs,
            **breakdown(runs, compute, started, ended)}


def peer_main(argv: list[str]) -> int:
    """The peer: the Ray Tune script a user would write, set up by the spec file
    ``argv[0]``; writes the trained configurations (Tune's results') as ``configs.json``
    beside it. Exit 1 when a trial failed."""
    import optuna
    import ray
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from dejavu_tune.search.cli import DEFAULT_SPACE
    from dejavu_tune.search.space_file import load_space

    spec = json.loads(Path(argv[0]).read_text())
    space = search_space(load_space(spec["space"] or DEFAULT_SPACE, spec["overrides"]))
    s, epochs = space.search, space.base_config().optim.epochs
    ray.init(address="local", include_dashboard=False)
    searcher = ConcurrencyLimiter(
        OptunaSearch(space=space.define_by_run,
                     sampler=optuna.samplers.RandomSampler(seed=s.seed),
                     metric=s.metric, mode=s.mode),
        max_concurrent=s.max_concurrent)
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=epochs,
                              grace_period=min(s.grace_period, epochs),
                              reduction_factor=s.reduction_factor,
                              metric=s.stop_metric or s.metric, mode=s.stop_mode or s.mode)
    trainable = tune.with_resources(
        tune.with_parameters(peer_trainable, fixed=space.fixed, cpus=space.resources.cpu),
        {"cpu": space.resources.cpu})
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(num_samples=s.num_samples, search_alg=searcher,
                                    scheduler=scheduler, reuse_actors=spec["reuse_actors"]),
        run_config=tune.RunConfig(
            name=PEER_EXPERIMENT, storage_path=spec["storage_path"],
            callbacks=[MLflowLoggerCallback(tracking_uri=spec["tracking_uri"],
                                            experiment_name=PEER_EXPERIMENT)]))
    grid = tuner.fit()
    (Path(argv[0]).parent / "configs.json").write_text(json.dumps([r.config for r in grid]))
    if grid.errors:
        print(f"peer: {len(grid.errors)} trial(s) failed: {grid.errors[0]}", file=sys.stderr)
        return 1
    return 0


def peer_trainable(config: dict[str, Any], fixed: dict[str, Any], cpus: float) -> None:
    """The peer's function trainable: ``fixed`` (the space's fixed keys) and ``cpus``
    come through ``tune.with_parameters``."""
    import torch
    from ray import tune

    from dejavu_tune.train.trainer import Trainer

    torch.set_num_threads(max(1, int(cpus)))  # as the search's trials do
    trainer = Trainer(trial_config(fixed, config))
    start = time.perf_counter()
    for metrics in trainer.epochs():
        tune.report({**metrics, "compute_s": time.perf_counter() - start})
        start = time.perf_counter()


# -- the benchmark -------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    from dejavu_tune.search.cli import DEFAULT_SPACE
    from dejavu_tune.search.space_file import load_space

    check(args)
    # the space with these overrides, as both sides will load it: a bad one is one line
    search_space(load_space(args.space or DEFAULT_SPACE, overrides(args)))
    if args.storage_path:
        Path(args.storage_path).mkdir(parents=True, exist_ok=True)
    measure = {"ours": _ours, "peer": _peer}
    pairs = []
    with tempfile.TemporaryDirectory(prefix="dejavu-peer-") as tmp:
        base = Path(args.storage_path or tmp) / f"peer-{time.strftime('%Y%m%d-%H%M%S')}"
        for i in range(args.pairs):
            row: dict[str, Any] = {}
            for side in sides(i, args.order):
                print(f"peer: pair {i + 1} of {args.pairs}: {side} ...", flush=True)
                row[side] = measure[side](args, base / f"pair{i + 1}-{side}")
            matched = compare_configs(row["ours"].pop("configs"), row["peer"].pop("configs"),
                                      args.trials)
            for side in ("ours", "peer"):
                r = row[side]
                r["cost_per_trial_s"] = framework_cost(r["wall_s"], r["compute_s"],
                                                       args.trials, args.concurrent)
            row["ratio"] = row["ours"]["cost_per_trial_s"] / row["peer"]["cost_per_trial_s"]
            row["matched"] = matched
            pairs.append(row)
            _print_pair(i, row, args)
    ratios = summarize([r["ratio"] for r in pairs])
    _print_summary(pairs, ratios, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "pairs": pairs, "ratio": ratios}, f, indent=2)
    return 0


def _print_pair(i: int, row: dict[str, Any], args: argparse.Namespace) -> None:
    ours, peer = row["ours"], row["peer"]
    print(f"pair {i + 1}: cost per trial ours {ours['cost_per_trial_s']:.3f} s, peer "
          f"{peer['cost_per_trial_s']:.3f} s, ours/peer {row['ratio']:.2f}  (wall "
          f"{ours['wall_s']:.1f} / {peer['wall_s']:.1f} s, compute {ours['compute_s']:.1f} / "
          f"{peer['compute_s']:.1f} s; the same {row['matched']} configurations)", flush=True)


def _print_summary(pairs: list[dict[str, Any]], ratios: dict[str, float],
                   args: argparse.Namespace) -> None:
    actors = "a new worker per trial" if args.peer_new_actors else "workers reused"
    print(f"\npeer: {args.trials} random-sampler trials x {args.epochs} epoch(s), "
          f"{args.concurrent} at once, {len(pairs)} pair(s), order {args.order}; the peer: "
          f"{actors}")
    print(f"{'pair':>5}{'ours s/trial':>14}{'peer s/trial':>14}{'ours/peer':>11}")
    for i, row in enumerate(pairs):
        print(f"{i + 1:>5}{row['ours']['cost_per_trial_s']:>14.3f}"
              f"{row['peer']['cost_per_trial_s']:>14.3f}{row['ratio']:>11.2f}")
    print(f"ratio ours/peer: mean {ratios['mean']:.2f}, stdev {ratios['stdev']:.2f}, "
          f"range {ratios['min']:.2f}-{ratios['max']:.2f}")
    print("\nwhere the time goes (mean over the pairs, seconds; runs as MLflow has them):")
    print(f"{'side':<6}{'wall':>8}{'compute':>9}{'to first run':>14}{'runs span':>11}"
          f"{'after last':>12}{'in-run/run':>12}")
    for side in ("ours", "peer"):
        mean = {k: statistics.mean(r[side][k] for r in pairs) for k in
                ("wall_s", "compute_s", "to_first_s", "span_s", "after_last_s", "in_run_s")}
        print(f"{side:<6}{mean['wall_s']:>8.1f}{mean['compute_s']:>9.1f}"
              f"{mean['to_first_s']:>14.1f}{mean['span_s']:>11.1f}"
              f"{mean['after_last_s']:>12.1f}{mean['in_run_s']:>12.2f}")


if __name__ == "__main__":
    # through the imported module, not this __main__ copy: Tune pickles the trainable
    # by reference to dejavu_tune.bench.peer
    from dejavu_tune.bench.peer import peer_main as _peer_main

    raise SystemExit(_peer_main(sys.argv[1:]))
