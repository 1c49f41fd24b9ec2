"""``python -m dejavu_tune.bench scale``: the framework's own cost per trial."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dejavu_tune.bench.scale import _tenths
from dejavu_tune.tracking.runs import RunRow

ROOT = Path(__file__).resolve().parents[3]


def _runs(starts):
    return [RunRow(f"r{i}", f"t{i}", "FINISHED", t, t + 1, {}, {}, {})
            for i, t in enumerate(starts)]


def test_wall_per_trial_by_tenth_of_the_search():
    # gaps of 1, 2, ..., 10 ms between successive starts: a cost growing with the search
    starts = [0, 1, 3, 6, 10, 15, 21, 28, 36, 45, 55]
    assert _tenths(_runs(reversed(starts))) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    # 21 runs, 5 ms apart: two gaps per tenth, flat
    assert _tenths(_runs(range(0, 105, 5))) == [5.0] * 10


@pytest.mark.integration
@pytest.mark.slow
def test_the_scale_benchmark_runs_a_real_search_and_prints_its_costs(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    proc = subprocess.run(
        [sys.executable, "-m", "dejavu_tune.bench", "scale", "--trials", "3", "--algorithm",
         "random", "--storage-path", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert "random sampler, local SQLite store" in lines[-4] and lines[-3].split()[0] == "trials"
    trials, wall, compute, cost, *_ = lines[-2].split()
    # 3 sampled trials and the baseline run; the landscape's compute is near zero
    assert trials == "3" and float(wall) > float(cost) > 0 and float(compute) < 1
    assert lines[-1].startswith("3 trials, wall per trial in each tenth")
