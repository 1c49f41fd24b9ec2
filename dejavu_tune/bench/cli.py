"""Benchmarks that print numbers: ``python -m dejavu_tune.bench overhead`` (and ``search``,
``efficiency``, ``crm-usage``, ``scale``, ``warm-start``, ``bounds``, ``verdicts``,
``verdict-check``, ``noise-floor``, ``scaling``, ``time-estimate``, ``system-metrics``,
``peer``, ``replay``, ``replay-table``).

``overhead`` measures, side by side in one run, seconds per training iteration
and peak memory of the baseline step and of DejaVu steps (CRM-F 2 stages,
CRM-R 20 steps with and without gradient checkpointing) and prints the ratios
to the baseline. Time: all variants live in one process and take turns step
by step (median per variant). Memory: one fresh process per variant, so its
peak is its own (CUDA: peak allocated bytes; CPU: peak RSS over one step, with
large allocations bypassing glibc's heap cache).
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
from pathlib import Path
from typing import Any

from dejavu_tune.bench.inputs import BenchError, finished_search, search_runs
from dejavu_tune.cli import check_output_file, command_parser, run

__all__ = ["PRESETS", "PRESET_VARIANTS", "VARIANTS", "main", "measure"]

# Paper-sized: HRNet-W18 at a 512x512 crop, batch 2 (the target). 8 classes is the
# synthetic data's maximum; Cityscapes' 19 would add 11 conditioning channels to the CRM input.
PRESETS: dict[str, dict[str, Any]] = {
    "small": {"model": {"name": "small"}, "data": {"image_size": 64, "num_classes": 5},
              "optim": {"batch_size": 16}},
    "paper": {"model": {"name": "hrnet_w18"}, "data": {"image_size": 512, "num_classes": 8},
              "optim": {"batch_size": 2}},
    # Seed Table B.5's two rows, as it measured them: batch 1, CRM-R 20 steps, the dataset's
    # class count and resolution (NVIDIA's Cityscapes recipe trains on full 1024x2048
    # frames; mmsegmentation's ADE20K recipe on 512x512 crops). A one-image dataset in the
    # real layout is written first (bench.sample_data).
    "b5_hrnet18_ocr": {"model": {"name": "hrnet_w18_ocr"},
                       "data": {"name": "cityscapes", "image_size": 1024, "image_width": 2048},
                       "optim": {"batch_size": 1}},
    "b5_poolformer_m48": {"model": {"name": "poolformer_m48_fpn"},
                          "data": {"name": "ade20k", "image_size": 512},
                          "optim": {"batch_size": 1}},
}
# The seed's B.5 rows compare the baseline with CRM-R 20 steps only.
_B5_VARIANTS = ("baseline", "crm_r20", "crm_r20_ckpt", "crm_r20_no_lpips")
PRESET_VARIANTS = {"b5_hrnet18_ocr": _B5_VARIANTS, "b5_poolformer_m48": _B5_VARIANTS}

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"enabled": False},
    "crm_f2": {"crm": {"kind": "crm_f", "stages": 2}},
    "crm_r20": {"crm": {"kind": "crm_r", "steps": 20}},
    "crm_r20_ckpt": {"crm": {"kind": "crm_r", "steps": 20, "checkpointing": True}},
}
# With --breakdown: the same CRMs without LPIPS, so the table shows what LPIPS costs.
BREAKDOWN: dict[str, dict[str, Any]] = {
    "crm_f2_no_lpips": {"crm": {"kind": "crm_f", "stages": 2}, "loss": {"gamma1": 0.0}},
    "crm_r20_no_lpips": {"crm": {"kind": "crm_r", "steps": 20}, "loss": {"gamma1": 0.0}},
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def measure(raw_config: dict[str, Any], iters: int, warmup: int) -> dict[str, float]:
    """Peak memory of ``iters`` steps of ``Trainer.train_step`` on one fixed batch."""
    from dejavu_tune.config import TrainConfig
    from dejavu_tune.train.memory import step_peak
    from dejavu_tune.train.trainer import Trainer

    cfg = TrainConfig.from_dict(raw_config)
    trainer = Trainer(cfg)
    return step_peak(trainer, trainer.first_batch(cfg.optim.batch_size), iters, warmup)


def _run_variant(raw: dict[str, Any], iters: int, warmup: int,
                 memory: bool = False) -> dict[str, float]:
    cmd = [sys.executable, "-m", "dejavu_tune.bench", "_measure", json.dumps(raw),
           "--iters", str(iters), "--warmup", str(warmup)]
    env = dict(os.environ)
    if memory:
        # Large blocks through mmap: freed tensors leave RSS at once, so peak RSS measures
        # live memory rather than what glibc's heap kept. It slows allocation down, hence
        # a separate process for memory and for time.
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark variant failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _time_interleaved(raws: dict[str, dict[str, Any]], iters: int,
                      warmup: int) -> dict[str, float]:
    """Median seconds per step of every variant, taking turns step by step in one process,
    so that drifts of the machine (clock, other load) hit every variant alike."""
    import torch

    from dejavu_tune.config import TrainConfig
    from dejavu_tune.train.trainer import Trainer

    runs = {}
    for name, raw in raws.items():
        trainer = Trainer(TrainConfig.from_dict(raw))
        bs = trainer.cfg.optim.batch_size
        runs[name] = (trainer, trainer.first_batch(bs))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for step in range(warmup + iters):
        for name, (trainer, batch) in runs.items():
            start = time.perf_counter()
            trainer.train_step(batch)
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            if step >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _check_variants(raws: dict[str, dict[str, Any]], device: str) -> None:
    """The settings every variant's process will build, built here first: a bad
    ``--device`` is one line, not a failed child process."""
    from dejavu_tune.config import TrainConfig
    from dejavu_tune.models.device import resolve_device

    for raw in raws.values():
        TrainConfig.from_dict(raw)
    resolve_device(device, "--device")


def overhead(args: argparse.Namespace) -> int:
    if args.json:
        check_output_file(args.json, "--json")
    preset = PRESETS[args.preset]
    if preset["data"].get("name", "synthetic") != "synthetic":
        from dejavu_tune.bench.sample_data import write_sample

        data = preset["data"]
        root = Path(tempfile.mkdtemp(prefix="dejavu-bench-"))
        write_sample(data["name"], root, data["image_size"],
                     data.get("image_width") or data["image_size"])
        preset = _merge(preset, {"data": {"root": str(root)}})
    base = _merge(preset, {"device": args.device, "precision": args.precision,
                           "data": {"num_train": preset["optim"]["batch_size"], "num_val": 1}})
    variants = dict(VARIANTS, **(BREAKDOWN if args.breakdown else {}))
    if args.preset in PRESET_VARIANTS:
        variants = {k: v for k, v in variants.items() if k in PRESET_VARIANTS[args.preset]}
    # Time and memory do not depend on where the CRM's weights start.
    raws = {name: _merge(base, {"dejavu": _merge({"crm": {"init": "scratch"}}, extra)})
            for name, extra in variants.items()}
    _check_variants(raws, args.device)
    # Memory first, one fresh process per variant (its peak is its own), then time.
    rows = {name: _run_variant(raw, 1, 1, memory=True) for name, raw in raws.items()}
    for name, seconds in _time_interleaved(raws, args.iters, args.warmup).items():
        rows[name]["sec_per_iter"] = seconds
    ref = rows["baseline"]
    print(f"\noverhead: preset={args.preset} device={args.device} precision={args.precision} "
          f"iters={args.iters} warmup={args.warmup}")
    print(f"{'variant':<18}{'s/iter':>9}{'time x':>8}{'peak MB':>10}{'step MB':>10}"
          f"{'extra step MB':>15}")
    for name, row in rows.items():
        print(f"{name:<18}{row['sec_per_iter']:>9.3f}{row['sec_per_iter'] / ref['sec_per_iter']:>8.3f}"
              f"{row['peak_mb']:>10.0f}{row['step_mb']:>10.0f}"
              f"{row['step_mb'] - ref['step_mb']:>15.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)
    return 0


def search_costs(args: argparse.Namespace) -> int:
    """Wall time, slot utilisation and per-trial overhead of a finished search.

    Slot utilisation = sum of trial busy time / (slots x wall time), where a trial is busy
    from its MLflow run's start to its end (everything it does in its slot), counted two
    ways: over the trials' span (first trial start to last trial end: how well the slots
    were kept busy) and over the driver's whole wall time (adds Ray start-up, the MLflow
    parent run, the final summary and plots)."""
    from dejavu_tune.tracking import runs as tracking

    search = finished_search(Path(args.search_dir))
    record = search.with_results()
    parent, runs = search_runs(search)
    ended = [(trial, compute) for trial, compute in runs if trial.end_ms]
    if "wall_time_s" not in parent.metrics or not ended:
        raise BenchError(f"search {record.name!r} recorded no finished trial runs in "
                         f"{record.tracking_uri}: expected a search that ran its trials")
    wall = parent.metrics["wall_time_s"]
    slots = int(parent.params["max_concurrent"])
    rows, starts, ends = [], [], []
    for trial, compute in ended:
        starts.append(trial.start_ms / 1000)
        ends.append(trial.end_ms / 1000)
        rows.append((trial.name, trial.tags.get(tracking.STATUS_TAG),
                     trial.tags.get(tracking.NODE_TAG, ""), compute, trial.seconds))
    busy = sum(r[4] for r in rows)
    total_compute = sum(r[3] for r in rows)
    span = max(ends) - min(starts)
    overhead = [r[4] - r[3] for r in rows]
    print(f"search {record.name}: {len(rows)} trials, {slots} slots, "
          f"{len({r[2] for r in rows})} node(s)")
    print(f"{'trial':<28}{'status':>15}{'node':>12}{'compute s':>11}{'run s':>8}"
          f"{'overhead s':>12}")
    for name, status, node, compute, duration in rows:
        print(f"{name[:27]:<28}{status or '?':>15}{node:>12}{compute:>11.1f}{duration:>8.1f}"
              f"{duration - compute:>12.2f}")
    print(f"trial busy time {busy:.1f} s (compute {total_compute:.1f} s); trials' span "
          f"{span:.1f} s; driver wall time {wall:.1f} s")
    print(f"slot utilisation: {busy / (slots * span):.1%} over the trials' span, "
          f"{busy / (slots * wall):.1%} over the driver's wall time "
          f"(compute only: {total_compute / (slots * wall):.1%})")
    print(f"in-trial overhead per trial: mean {statistics.mean(overhead):.2f} s, "
          f"max {max(overhead):.2f} s")
    return 0


def _measure_config(text: str) -> dict[str, Any]:
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise BenchError(f"_measure: the configuration is not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise BenchError("_measure: expected a JSON object of training settings")
    return raw


def main(argv: list[str] | None = None) -> int:
    """The command; a user error is one line and exit 2 (``--debug``: its traceback)."""
    return run(_main, argv)


def _main(argv: list[str]) -> int:
    # subcommands inherit the one-line usage errors (argparse builds them with this class)
    parser = command_parser("python -m dejavu_tune.bench", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ov = sub.add_parser("overhead", help="baseline vs DejaVu step: time and memory ratios")
    ov.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ov.add_argument("--device", default="cpu")
    ov.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    ov.add_argument("--iters", type=int, default=10)
    ov.add_argument("--warmup", type=int, default=2)
    ov.add_argument("--breakdown", action="store_true",
                    help="also measure each CRM without LPIPS, to split the cost")
    ov.add_argument("--json", help="also write the results to this file")
    costs = sub.add_parser("search", help="costs of a finished search (wall, compute, "
                                          "overhead per trial)")
    costs.add_argument("search_dir", help="runs/<name> of a finished search")
    from dejavu_tune.bench import bounds as bench_bounds
    from dejavu_tune.bench import crm_usage as bench_crm
    from dejavu_tune.bench import efficiency as bench_efficiency
    from dejavu_tune.bench import noise_floor as bench_noise
    from dejavu_tune.bench import peer as bench_peer
    from dejavu_tune.bench import rank_scaling as bench_ranks
    from dejavu_tune.bench import replay as bench_replay
    from dejavu_tune.bench import replay_table as bench_replay_table
    from dejavu_tune.bench import scale as bench_scale
    from dejavu_tune.bench import system_metrics as bench_system
    from dejavu_tune.bench import time_estimate as bench_time
    from dejavu_tune.bench import verdict_check as bench_check
    from dejavu_tune.bench import verdicts as bench_verdicts
    from dejavu_tune.bench import warm_start as bench_warm

    bench_efficiency.add_parser(sub)
    bench_scale.add_parser(sub)
    bench_peer.add_parser(sub)
    bench_replay.add_parser(sub)
    bench_replay_table.add_parser(sub)
    bench_crm.add_parser(sub)
    bench_warm.add_parser(sub)
    bench_bounds.add_parser(sub)
    bench_verdicts.add_parser(sub)
    bench_noise.add_parser(sub)
    bench_check.add_parser(sub)
    bench_ranks.add_parser(sub)
    bench_time.add_parser(sub)
    bench_system.add_parser(sub)
    one = sub.add_parser("_measure", help=argparse.SUPPRESS)
    one.add_argument("config")
    one.add_argument("--iters", type=int, default=10)
    one.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "search":
        return search_costs(args)
    if args.command == "efficiency":
        return bench_efficiency.run(args)
    if args.command == "crm-usage":
        return bench_crm.run(args)
    if args.command == "scale":
        return bench_scale.run(args)
    if args.command == "peer":
        return bench_peer.run(args)
    if args.command == "replay":
        return bench_replay.run(args)
    if args.command == "replay-table":
        return bench_replay_table.run(args)
    if args.command == "warm-start":
        return bench_warm.run(args)
    if args.command == "bounds":
        return bench_bounds.run(args)
    if args.command == "verdicts":
        return bench_verdicts.run(args)
    if args.command == "verdict-check":
        return bench_check.run(args)
    if args.command == "noise-floor":
        return bench_noise.run(args)
    if args.command == "scaling":
        return bench_ranks.run(args)
    if args.command == "time-estimate":
        return bench_time.run(args)
    if args.command == "system-metrics":
        return bench_system.run(args)
    if args.command == "_measure":
        print(json.dumps(measure(_measure_config(args.config), args.iters, args.warmup)))
        return 0
    if args.iters < 1 or args.warmup < 0:
        ov.error("--iters must be at least 1 and --warmup at least 0")
    return overhead(args)
