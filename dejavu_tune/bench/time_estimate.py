"""``python -m dejavu_tune.bench time-estimate``: ``--dry-run``'s time estimate against the
measured wall time of the same search, run here.

The search's steps after the CRM stage span from the first trial's start (its first
report's timestamp less its ``time_total_s``) to the last trial's end. Two estimates are
compared with that span: the dry run's (every run at the full budget), and the same
probes at the epochs the trials actually ran (ASHA's stops taken out), which is the error
of the probes and of what the estimate leaves out (Ray's and MLflow's cost per trial,
the per-epoch diagnostics).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from dejavu_tune.bench.efficiency import run_search
from dejavu_tune.cli import check_output_file
from dejavu_tune.config import is_baseline, parse_override
from dejavu_tune.raytune.trial_results import read_experiment
from dejavu_tune.search import time_estimate
from dejavu_tune.search.cli import DEFAULT_SPACE
from dejavu_tune.search.progress import duration
from dejavu_tune.search.run_plan import plan
from dejavu_tune.search.space_file import load_space

__all__ = ["add_parser", "run", "measured"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("time-estimate", help="--dry-run's time estimate against the measured "
                                             "wall time of the same search")
    p.add_argument("--space", default=str(DEFAULT_SPACE))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an override of the space, as the search takes it")
    p.add_argument("--storage-path", default="runs/bench-time-estimate")
    p.add_argument("--json", help="also write the results to this file")


def measured(root: Path) -> dict[str, Any]:
    """The steps after the CRM stage of the finished search ``root``: their span (s) and
    the trials and epochs that ran, baseline and DejaVu apart."""
    steps = ("tuning", "search", *sorted(p.name for p in root.glob("confirm*")))
    trials = [(step, t) for step in steps if (root / step).is_dir()
              for t in read_experiment(root / step) if t.rows]
    starts = [t.rows[0]["timestamp"] - t.rows[0].get("time_total_s", 0.0) for _, t in trials]
    ends = [t.rows[-1]["timestamp"] for _, t in trials]
    # the tuning's trials are baselines (DejaVu off in its fixed settings)
    baseline = [t for step, t in trials if step == "tuning" or is_baseline(t.config)]
    dejavu = [t for step, t in trials if step != "tuning" and not is_baseline(t.config)]
    return {"span_s": max(ends) - min(starts), "baseline_runs": len(baseline),
            "baseline_epochs": sum(len(t.rows) for t in baseline), "dejavu_runs": len(dejavu),
            "dejavu_epochs": sum(len(t.rows) for t in dejavu)}


def run(args: argparse.Namespace) -> int:
    if args.json:
        check_output_file(args.json, "--json")
    space = load_space(args.space, dict(parse_override(kv) for kv in args.set))
    estimate = time_estimate.estimate(space, plan(space))
    print(estimate.line(), flush=True)
    flags = ["--space", args.space, *(f for kv in args.set for f in ("--set", kv))]
    start = time.time()
    root = run_search(Path(args.storage_path), "s", flags, "time-estimate")
    command_s = time.time() - start
    ran = measured(root)
    dejavu = estimate.dejavu or estimate.baseline
    at_ran = (ran["baseline_runs"] * estimate.baseline.setup_s
              + ran["baseline_epochs"] * estimate.baseline.epoch_s
              + ran["dejavu_runs"] * dejavu.setup_s
              + ran["dejavu_epochs"] * dejavu.epoch_s) / estimate.slots
    span = ran["span_s"]
    rows = [("dry run (every run at the full budget)", estimate.total_s),
            ("the same probes at the epochs that ran", at_ran)]
    print(f"measured: the steps after the CRM stage took {duration(span)} ({span:.0f} s; "
          f"{ran['baseline_runs']} baseline runs, {ran['baseline_epochs']} epochs; "
          f"{ran['dejavu_runs']} DejaVu runs, {ran['dejavu_epochs']} epochs); the whole "
          f"command {duration(command_s)}")
    print("| estimate | seconds | estimate / measured |\n|---|---|---|")
    for what, seconds in rows:
        print(f"| {what} | {seconds:.0f} | {seconds / span:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "estimate_s": estimate.total_s, "at_epochs_ran_s": at_ran, "command_s": command_s,
            "slots": estimate.slots, "baseline": vars(estimate.baseline),
            "dejavu": vars(dejavu), **ran}, indent=2))
    return 0
