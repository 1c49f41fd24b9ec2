"""``python -m dejavu_tune.search``: a DejaVu hyperparameter search, every trial in MLflow.

With no arguments it runs ``search_spaces/default.yaml`` on the local machine:
a baseline trial (DejaVu off, same network, schedule and budget), then
``num_samples`` DejaVu trials sampled by Optuna's seeded TPE over the YAML's
conditional space, stopped early by ASHA, each logged as a child run of one
MLflow parent run. ``--resume`` continues an interrupted search.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from dejavu_tune.cli import check_output_dir, command_parser, run
from dejavu_tune.config import ConfigError, parse_override
from dejavu_tune.raytune import ray_adapter
from dejavu_tune.search import preflight, run_checks, warm_start
from dejavu_tune.search.record import RECORD_FILE, SearchRecord, latest
from dejavu_tune.search.run_plan import plan
from dejavu_tune.search.space import Resources, SearchSpace
from dejavu_tune.search.space_file import load_space

__all__ = ["main", "run_command", "default_name", "build_parser", "DEFAULT_SPACE"]

# Beside the package in a checkout (editable install); relative to the working directory
# where the package is installed without its checkout (the Docker image's WORKDIR).
DEFAULT_SPACE = Path(__file__).resolve().parents[2] / "search_spaces" / "default.yaml"
if not DEFAULT_SPACE.is_file():
    DEFAULT_SPACE = Path("search_spaces") / "default.yaml"
# Flags that are shorthands for keys of the space file's `search` / `resources` sections.
_FLAG_KEYS = {"num_samples": "search.num_samples", "max_concurrent": "search.max_concurrent",
              "seed": "search.seed", "grace_period": "search.grace_period",
              "reduction_factor": "search.reduction_factor",
              "cpus_per_trial": "resources.cpu", "gpus_per_trial": "resources.gpu",
              "workers_per_trial": "resources.workers"}


def build_parser() -> argparse.ArgumentParser:
    p = command_parser("python -m dejavu_tune.search", __doc__)
    p.add_argument("--space", default=str(DEFAULT_SPACE), help="search-space YAML file")
    p.add_argument("--num-samples", type=int, help="DejaVu trials (the baseline comes on top)")
    p.add_argument("--max-concurrent", type=int, help="trials running at once")
    p.add_argument("--seed", type=int, help="seed of the TPE sampler")
    p.add_argument("--grace-period", type=int, help="ASHA: epochs before a trial can stop")
    p.add_argument("--reduction-factor", type=int, help="ASHA: keep 1/factor at each rung")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial (0.5 = two per GPU; "
                   "above 1: one data-parallel rank per GPU)")
    p.add_argument("--workers-per-trial", type=int,
                   help="data-parallel ranks per trial, sharing its CPUs and GPUs (a Ray "
                        "Train run inside the trial; default: one per GPU above 1, else 1)")
    p.add_argument("--storage-path", default=os.environ.get("DEJAVU_STORAGE_PATH", "runs"),
                   help="directory for trial checkpoints and search state; on a cluster one "
                        "that every node mounts at the same path (default: "
                        "$DEJAVU_STORAGE_PATH, else ./runs)")
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                   help="MLflow tracking URI, passed to every trial (default: "
                        "$MLFLOW_TRACKING_URI, else a SQLite file in the storage path)")
    p.add_argument("--crm-store", default=os.environ.get("DEJAVU_CRM_STORE"),
                   help="directory of stored CRM weights, reused across searches; on a "
                        "cluster a shared one (default: $DEJAVU_CRM_STORE, else crm_store "
                        "in the storage path)")
    p.add_argument("--experiment", default="dejavu-tune", help="MLflow experiment name")
    p.add_argument("--name", help="name of this search (default: <space>-<timestamp>)")
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                   help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray of "
                        "this search's own)")
    p.add_argument("--register", metavar="NAME",
                   help="register the confirmed winner's network in MLflow's model registry "
                        "under NAME (search.register_model; it is logged as a model anyway)")
    p.add_argument("--time-budget", metavar="DURATION",
                   help="no new trial of the baseline tuning or the search starts after "
                        "this long (e.g. 90m, 8h): the running ones finish and the "
                        "confirmation runs on what completed (search.time_budget)")
    p.add_argument("--verbose", action="store_true",
                   help="Ray Tune's own console output (its experiment box and trial "
                        "tables) beside the search's progress lines")
    p.add_argument("--max-failures", type=int, default=0,
                   help="retries of a failed trial from its last checkpoint")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the space file, e.g. optim.epochs=2 or "
                        "search.metric=val_pixel_acc (repeatable)")
    p.add_argument("--warm-start", metavar="SEARCH",
                   help="seed this search from an earlier one: its name in --storage-path, "
                        "its directory, or its best_config.json / optuna_trials.json (its "
                        "best configurations run first, its trials inform the sampler, its "
                        "stored CRM weights are reused)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate, print the resolved space and budget (on a GPU node also a "
                        "memory estimate from one probe step), start nothing")
    p.add_argument("--resume", action="store_true",
                   help="continue the search --name (default: the latest) in --storage-path")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = dict(parse_override(text) for text in args.set)
    if args.time_budget is not None:
        overrides["search.time_budget"] = args.time_budget
    if args.register is not None:
        overrides["search.register_model"] = args.register
    for attr, key in _FLAG_KEYS.items():
        value = getattr(args, attr)
        if value is not None:
            overrides[key] = int(value) if key.startswith("search.") else value
    return overrides


def describe(space: SearchSpace, name: str | None = None) -> str:
    cfg = space.base_config()
    s = space.search
    grid = s.algorithm == "grid"
    height, width = cfg.data.size
    counts = (f"{cfg.data.num_train or 'all'} train / {cfg.data.num_val or 'all'} val"
              if cfg.data.name != "synthetic" else
              f"{cfg.data.num_train or 384} train / {cfg.data.num_val or 96} val")
    lines = [f"space: {space.path}" + (f"   search: {name}" if name else ""),
             f"task: {cfg.task.name}   network: {cfg.model.name}   data: {cfg.data.name} "
             f"{height}x{width}px ({counts})   device: {cfg.device}",
             "parameters:"]
    lines += [f"  {p.name:<30} {p.describe()}" for p in space.params]
    runs = plan(space)
    lines += ["steps:"] + [f"  {label:<28} {n:>3} run(s)" for label, n in runs.steps()]
    lines += [
        f"search: {s.num_samples} {s.algorithm} trials (seed {s.seed}), "
        f"{s.max_concurrent} at once, {s.mode} {s.metric}",
        "early stopping: none (grid: every trial runs the full budget)" if grid else
        f"ASHA on {s.stop_metric} ({s.stop_mode}): grace period {s.grace_period} epoch(s), "
        f"reduction factor {s.reduction_factor}",
        f"budget: at most {runs.full_budget_runs} runs x {cfg.optim.epochs} epochs = "
        f"{runs.full_budget_runs * cfg.optim.epochs} trial-epochs; resources per "
        f"trial: {space.resources.cpu:g} CPU, {space.resources.gpu:g} GPU"
        + _ranks_line(space.resources, cfg.optim.batch_size),
    ]
    if s.time_budget is not None:
        lines.append(f"time budget: {s.time_budget} ({s.time_budget_s:g} s): no new trial of "
                     "the baseline tuning or the search starts after it; the confirmation "
                     "runs on what completed")
    return "\n".join(lines)


def _ranks_line(resources: Resources, batch: int) -> str:
    if resources.ranks == 1:
        return ""
    cpu, gpu = resources.per_rank
    return (f", as {resources.ranks} data-parallel ranks of {cpu:g} CPU, {gpu:g} GPU each "
            f"(global batch {batch}, {batch // resources.ranks} per rank; CRM pre-training "
            "on one rank's share)")


def power_statement(space: SearchSpace, warm: Any = None) -> str:
    """What the planned confirmation can detect, at the noise floor the user gave, the
    one a warm start's search measured, or else one as large as ``min_effect``."""
    from dejavu_tune.outcome import power
    from dejavu_tune.outcome.units import unit_of
    from dejavu_tune.search.confirm import design_for

    s = space.search
    design = design_for(s, s.confirm_top)
    if design is None:
        return "confirmation: none (search.confirm_top 0, no baseline, or a grid)"
    if s.noise_floor is not None:
        floor, where = s.noise_floor, "search.noise_floor"
    elif warm is not None and warm.noise_floor is not None:
        floor, where = warm.noise_floor, f"measured by {Path(warm.source).name}"
    else:
        floor, where = s.min_effect, "assumed equal to min_effect; set search.noise_floor"
    return power.plan(design, floor).text(where, unit_of(s.metric or ""))


def main(argv: list[str] | None = None) -> int:
    """The search command; a user error is one line and exit 2 (``--debug``: its
    traceback), found before Ray starts and before anything is written."""
    return run(_main, argv)


def _main(argv: list[str]) -> int:
    return run_command(argv)[0]


def default_name(space: str | None) -> str:
    """``<space file's stem>-<timestamp>``, of the stem's safe characters only."""
    stem = Path(space or DEFAULT_SPACE).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.")[:70] or "search"
    return run_checks.check_name(f"{stem}-{datetime.now():%Y%m%d-%H%M%S}")


def run_command(argv: list[str]) -> tuple[int, Path]:
    """The search ``argv`` asks for, its errors raised (``main`` prints them in one
    line): (its exit status, its directory). The Python API runs searches through it."""
    args = build_parser().parse_args(argv)
    if "://" in args.storage_path:
        raise ConfigError(f"--storage-path {args.storage_path!r}: a directory is needed "
                          "(on a cluster, a shared file system such as NFS or EFS mounted "
                          "at the same path on every node); storage URIs are not supported")
    run_checks.check_max_failures(args.max_failures)
    run_checks.check_experiment(args.experiment)
    storage = Path(args.storage_path).expanduser().resolve()
    check_output_dir(storage, "--storage-path")
    if args.name is not None:
        run_checks.check_name(args.name)
    run_checks.check_address(args.address)
    if args.resume:
        space, root, record, warm = _resumed(args, storage)
    else:
        space, root, record, warm = _started(args, storage)
    check_output_dir(Path(record.crm_store), "--crm-store")
    preflight.check_batches(space)
    preflight.check_lpips(space)
    run_checks.check_tracking_uri(record.tracking_uri)
    if not args.address:
        run_checks.check_local_resources(space.resources.cpu, space.resources.gpu)
    if args.dry_run:
        from dejavu_tune.search import time_estimate
        from dejavu_tune.search.memory_estimate import estimate
        from dejavu_tune.search.run_plan import plan

        print(describe(space, root.name))
        print(estimate(space))
        print(time_estimate.dry_run_line(space, plan(space), local=not args.address))
        if warm is not None:
            print(warm.describe())
        print(power_statement(space, warm))
        return 0, root
    if args.address:
        ray_adapter.use_cluster_auth()
    # deferred: these import Ray, MLflow, torch
    from dejavu_tune.plugins import load_object
    from dejavu_tune.search.driver import run_search
    from dejavu_tune.search.trial_context import TRAINABLE

    return run_search(space, root, record, load_object(TRAINABLE, "the trainable"),
                      address=args.address, max_failures=args.max_failures,
                      resume=args.resume, started=time.time(), warm=warm,
                      verbose=args.verbose), root


def _resumed(args: argparse.Namespace, storage: Path
             ) -> tuple[SearchSpace, Path, SearchRecord, warm_start.WarmStart | None]:
    """The interrupted search --name (or the latest) as it was started."""
    if args.set or args.warm_start or args.time_budget is not None or args.register or any(
            getattr(args, a) is not None for a in _FLAG_KEYS):
        raise ConfigError("--resume continues a search as it was started: "
                          "drop --set, --warm-start, --time-budget, --register and the "
                          "search/resource "
                          "flags")
    root = storage / args.name if args.name else latest(storage)
    if root is None or not SearchRecord.path(root).is_file():
        raise ConfigError(f"--resume: no search to continue in {storage} "
                          f"(expected {root or storage}/{RECORD_FILE})")
    try:
        record = SearchRecord.load(root)
    except ConfigError as exc:
        raise ConfigError(f"--resume: {exc}") from None
    if record.finished:
        raise ConfigError(f"--resume: search {root.name!r} has already finished; its "
                          f"results are in {root}")
    space = load_space(root / "space.yaml", record.overrides)
    warm = warm_start.load(record.warm_start, storage, space) if record.warm_start else None
    return space, root, record, warm


def _started(args: argparse.Namespace, storage: Path
             ) -> tuple[SearchSpace, Path, SearchRecord, warm_start.WarmStart | None]:
    """A new search: its space validated, its name free, its record not yet written."""
    overrides = _overrides(args)
    space = load_space(args.space, overrides)
    name = args.name or default_name(args.space)
    root = storage / name
    if SearchRecord.path(root).exists():
        raise ConfigError(f"search {name!r} already exists in {storage}: "
                          "use --resume to continue it, or another --name")
    warm = warm_start.load(args.warm_start, storage, space) if args.warm_start else None
    store = args.crm_store or (warm and warm.crm_store) or storage / "crm_store"
    record = SearchRecord(
        name=name, space_file=str(Path(args.space).resolve()), overrides=overrides,
        experiment=args.experiment, tracking_uri=args.tracking_uri,
        crm_store=str(Path(store).expanduser().resolve()),
        warm_start=warm.source if warm else None)
    return space, root, record, warm
