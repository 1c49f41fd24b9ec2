"""``python -m dejavu_tune.bench system-metrics``: what MLflow's system-metrics monitor
(``search.system_metrics``) costs a trial's training.

One process trains the project's ``Trainer`` on the built-in synthetic data and logs to a
local SQLite store as a trial does: each phase is a run of the same number of epochs
(train and evaluate, each epoch's metrics logged), with the monitor on or off; that
number is calibrated so a phase spans ``SAMPLES_PER_PHASE`` intervals. The phases
alternate in pairs whose order swaps every repeat (on/off, off/on, ...), so a drift of the
machine hits both alike. Printed: each pair's ratios (monitor on / off) of wall seconds
and of the process's CPU seconds (all its threads: the monitor's own work counts, other
processes' load does not), their medians and spread, and the system-metric points each monitored run got (none would mean
the monitor measured nothing). Then what one sample costs on its own (reading the
system, looking at the run, logging the sample; median of ``SAMPLES``): its CPU seconds,
which a loaded machine does not blur, and their share of a core at the search's default
interval.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from typing import Any

from dejavu_tune.bench.inputs import BenchError, at_least, positive

__all__ = ["add_parser", "run", "measure"]

SAMPLES = 50  # timed samples of the monitor on its own
SAMPLES_PER_PHASE = 10  # intervals a timed phase spans: the monitor works all through it
# The overhead benchmark's small preset, narrower: short epochs, against which the
# monitor's cost shows if anywhere.
_CONFIG: dict[str, Any] = {"model": {"name": "small", "width": 8},
                           "data": {"image_size": 64, "num_classes": 5, "num_train": 32,
                                    "num_val": 16},
                           "optim": {"batch_size": 16, "epochs": 100_000},  # never reached
                           "dejavu": {"enabled": False}}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("system-metrics", help="training time with MLflow's system-metrics "
                                              "monitor on / off")
    p.add_argument("--repeats", type=int, default=6, help="pairs of phases (on, off)")
    # ten times the search's rate: what a trial pays at most, measurably if anywhere
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between samples (search.system_metrics_interval; "
                        "default 1, ten times the search's default rate)")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from dejavu_tune.models.device import resolve_device
    from dejavu_tune.search.space import SearchSettings
    from dejavu_tune.tracking.system_metrics import EXTRA, missing

    at_least(1, repeats=args.repeats)
    positive(interval=args.interval)
    resolve_device(args.device, "--device")
    lacking = missing(gpu=args.device.startswith("cuda"))
    if lacking:
        raise BenchError(f"system-metrics needs {' and '.join(lacking)}: {EXTRA}")
    result = measure(args.repeats, args.interval, args.device)
    print(f"\nsystem-metrics: device={args.device} epochs per phase={result['epochs']} "
          f"repeats={args.repeats} interval={args.interval:g} s")
    print(f"{'pair':<6}{'order':<9}{'on s':>8}{'off s':>8}{'wall on/off':>13}"
          f"{'CPU on/off':>12}{'points':>8}")
    for i, ((on, on_cpu), (off, off_cpu), points) in enumerate(zip(
            result["on_s"], result["off_s"], result["points"], strict=True)):
        order = "on,off" if i % 2 == 0 else "off,on"
        print(f"{i + 1:<6}{order:<9}{on:>8.2f}{off:>8.2f}{on / off:>13.3f}"
              f"{on_cpu / off_cpu:>12.3f}{points:>8}")
    for what, index in (("wall", 0), ("CPU", 1)):
        ratios = [on[index] / off[index] for on, off in zip(result["on_s"], result["off_s"],
                                                            strict=True)]
        spread = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
        print(f"{what} on/off: median {statistics.median(ratios):.3f}, mean "
              f"{statistics.mean(ratios):.3f} ± {spread:.3f} (std over {len(ratios)} pairs), "
              f"range {min(ratios):.3f}–{max(ratios):.3f}")
    wall = statistics.median(w for w, _ in result["sample_s"])
    cpu = statistics.median(c for _, c in result["sample_s"])
    default = SearchSettings().system_metrics_interval
    print(f"one sample on its own (median of {SAMPLES}): {cpu * 1000:.1f} ms of CPU, "
          f"{wall * 1000:.1f} ms wall; its CPU is {cpu / args.interval:.2%} of one core at "
          f"{args.interval:g} s, {cpu / default:.2%} at the search's default {default:g} s")
    return 0


def measure(repeats: int, interval_s: float, device: str) -> dict[str, Any]:
    """(wall, CPU) seconds of every phase with the monitor on and off, the
    system-metric points (``system/cpu_utilization_percentage``) each monitored run got,
    the epochs per phase, and (wall, CPU) seconds of ``SAMPLES`` samples on their own."""
    from dejavu_tune.config import TrainConfig
    from dejavu_tune.tracking import runs as tracking
    from dejavu_tune.tracking.system_metrics import sample_seconds
    from dejavu_tune.train.trainer import Trainer

    trainer = Trainer(TrainConfig.from_dict({**_CONFIG, "device": device}))
    trainer.train_epoch()  # the first epoch pays for start-up: timed by neither
    with tempfile.TemporaryDirectory(prefix="dejavu-bench-sysmetrics-") as tmp:
        tracking.quiet_store_setup()
        uri = tracking.default_tracking_uri(tmp)

        def new_run() -> str:
            return tracking.open_parent_run(uri, "system-metrics", "phase")[1]

        def phase(epochs: int, monitored: bool) -> tuple[tuple[float, float], int]:
            run_id = new_run()
            seconds = _phase(trainer, uri, run_id, epochs, interval_s if monitored else None)
            tracking.set_trial_status(uri, run_id, "completed")
            return seconds, len(tracking.logged_steps(uri, run_id,
                                                      "system/cpu_utilization_percentage"))

        epochs = math.ceil(SAMPLES_PER_PHASE * interval_s / phase(3, False)[0][0] * 3)
        out: dict[str, Any] = {"epochs": epochs, "on_s": [], "off_s": [], "points": []}
        out["sample_s"] = sample_seconds(uri, new_run(), SAMPLES)
        for repeat in range(repeats):
            order = (True, False) if repeat % 2 == 0 else (False, True)
            seconds: dict[bool, tuple[float, float]] = {}
            for monitored in order:
                seconds[monitored], points = phase(epochs, monitored)
                if monitored:
                    out["points"].append(points)
            out["on_s"].append(seconds[True])
            out["off_s"].append(seconds[False])
    return out


def _phase(trainer: Any, uri: str, run_id: str, epochs: int,
           interval_s: float | None) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``epochs`` epochs logged to the run, the monitor's
    start and stop included when ``interval_s`` is given."""
    from dejavu_tune.tracking import runs as tracking
    from dejavu_tune.tracking.system_metrics import SystemMetrics

    start, cpu = time.perf_counter(), time.process_time()
    monitor = SystemMetrics(interval_s) if interval_s is not None else None
    if monitor is not None:
        monitor.start(uri, run_id, resumed=False)
        if not monitor.running:
            raise BenchError("the system-metrics monitor did not start (see the warning)")
    for _ in range(epochs):
        metrics = trainer.train_epoch()
        metrics.update(trainer.evaluate())
        tracking.log_epoch(uri, run_id, metrics, trainer.epoch)
    if monitor is not None:
        monitor.stop()
    return time.perf_counter() - start, time.process_time() - cpu
