"""Benchmarks that print numbers: ``python -m dejavu_tune.bench overhead``.

``overhead`` measures, side by side in one run, seconds per training iteration
and peak memory of the baseline step and of DejaVu steps (CRM-F 2 stages,
CRM-R 20 steps with and without gradient checkpointing) and prints the ratios
to the baseline. Each variant runs in a fresh subprocess so that its peak
memory is its own (CPU: peak RSS of the process; CUDA: peak allocated bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

__all__ = ["PRESETS", "VARIANTS", "main", "measure"]

# Paper-sized: HRNet-W18 at a 512x512 crop, batch 2, 19 Cityscapes classes (issue target).
PRESETS: dict[str, dict[str, Any]] = {
    "small": {"model": {"name": "small"}, "data": {"image_size": 64, "num_classes": 5},
              "optim": {"batch_size": 16}},
    "paper": {"model": {"name": "hrnet_w18"}, "data": {"image_size": 512, "num_classes": 19},
              "optim": {"batch_size": 2}},
}

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"enabled": False},
    "crm_f2": {"crm": {"kind": "crm_f", "stages": 2}},
    "crm_r20": {"crm": {"kind": "crm_r", "steps": 20}},
    "crm_r20_ckpt": {"crm": {"kind": "crm_r", "steps": 20, "checkpointing": True}},
}
# With --breakdown: the same CRMs without LPIPS, so the table shows what LPIPS costs.
BREAKDOWN: dict[str, dict[str, Any]] = {
    "crm_f2_no_lpips": {"crm": {"kind": "crm_f", "stages": 2}, "loss": {"gamma2": 0.0}},
    "crm_r20_no_lpips": {"crm": {"kind": "crm_r", "steps": 20}, "loss": {"gamma2": 0.0}},
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(raw_config: dict[str, Any], iters: int, warmup: int) -> dict[str, float]:
    """Seconds per iteration and peak memory of ``Trainer.train_step`` on one fixed batch."""
    import torch

    from dejavu_tune.config import TrainConfig
    from dejavu_tune.train import Trainer

    cfg = TrainConfig.from_dict(raw_config)
    trainer = Trainer(cfg)
    bs = cfg.optim.batch_size
    images, labels = trainer.train_images[:bs], trainer.train_labels[:bs]
    cuda = trainer.device.type == "cuda"
    for _ in range(warmup):
        trainer.train_step(images, labels)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = _rss_mb()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        trainer.train_step(images, labels)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux
    return {"sec_per_iter": statistics.median(times), "peak_mb": peak,
            "step_mb": peak - before, "iters": iters}


def _run_variant(raw: dict[str, Any], iters: int, warmup: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "dejavu_tune.bench", "_measure", json.dumps(raw),
           "--iters", str(iters), "--warmup", str(warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark variant failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def overhead(args: argparse.Namespace) -> int:
    base = _merge(PRESETS[args.preset], {"device": args.device, "precision": args.precision,
                                         "data": {"num_train": PRESETS[args.preset]["optim"]
                                                  ["batch_size"], "num_val": 1}})
    variants = dict(VARIANTS, **(BREAKDOWN if args.breakdown else {}))
    rows = {}
    for name, extra in variants.items():
        raw = _merge(base, {"dejavu": extra})
        rows[name] = _run_variant(raw, args.iters, args.warmup)
        print(f"  measured {name}: {rows[name]['sec_per_iter']:.3f} s/iter", file=sys.stderr)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dejavu_tune.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    one = sub.add_parser("_measure", help=argparse.SUPPRESS)
    one.add_argument("config")
    one.add_argument("--iters", type=int, default=10)
    one.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "_measure":
        print(json.dumps(measure(json.loads(args.config), args.iters, args.warmup)))
        return 0
    if args.iters < 1 or args.warmup < 0:
        parser.error("--iters must be at least 1 and --warmup at least 0")
    return overhead(args)


if __name__ == "__main__":
    raise SystemExit(main())
