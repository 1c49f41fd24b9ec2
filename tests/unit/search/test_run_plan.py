"""One plan of a search's runs (search.run_plan): what --dry-run prints is what the
driver runs, step by step."""

import pytest

from dejavu_tune.search.run_plan import plan
from dejavu_tune.search.space_file import load_space

BASE = """fixed:
  seed: 5
  device: cpu
  data: {image_size: 32, num_train: 16, num_val: 8}
  dejavu: {crm: {init: scratch}}
"""
SEARCHED = """params:
  optim.lr: {type: float, low: 0.001, high: 0.1, log: true, shared: true}
  dejavu.loss.gamma: {type: float, low: 0.1, high: 2.0}
"""
GRID = """params:
  dejavu.enabled: {type: categorical, choices: [false, true]}
search:
  algorithm: grid
  num_samples: 2
"""


def _plan(tmp_path, text, **search):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return plan(load_space(str(path), {f"search.{k}": v for k, v in search.items()}))


@pytest.mark.parametrize("text, search, expected", [
    # shared lr tuned by 3 baseline trials: the best of them is the search-seed baseline
    (SEARCHED, {"baseline_trials": 3, "baseline_seeds": 2, "num_samples": 4,
                "confirm_top": 0}, (3, (6, 7), False, 2, 4)),
    # nothing shared to tune: one baseline on the search's seed, beside the replicates
    (SEARCHED.replace(", shared: true", ""), {"baseline_trials": 3, "baseline_seeds": 2,
                                              "num_samples": 4, "confirm_top": 0},
     (0, (6, 7), True, 3, 4)),
    (SEARCHED, {"baseline": False, "num_samples": 4}, (0, (), False, 0, 4)),
    # nothing tuned: the shared lr keeps its fixed value for both
    (SEARCHED, {"baseline_trials": 0, "baseline_seeds": 0, "num_samples": 4,
                "confirm_top": 0}, (0, (), True, 1, 4)),
    # a grid left at baseline: true runs one baseline on its seed (and no replicates)
    (GRID, {}, (0, (), True, 1, 2)),
    (GRID, {"baseline": False}, (0, (), False, 0, 2)),
])
def test_the_plan_counts_each_steps_runs(tmp_path, text, search, expected):
    runs = _plan(tmp_path, BASE + text, **search)
    assert (runs.tuning, runs.replicate_seeds, runs.search_baseline, runs.baselines,
            runs.trials) == expected
    # the DejaVu trials take the baseline's shared values whenever a baseline is paired
    assert runs.paired == (search.get("baseline", True) and text != GRID)
    assert runs.full_budget_runs == runs.tuning + runs.baselines + runs.trials + \
        runs.confirmation


def test_the_dry_run_prints_the_plan_the_driver_follows(tmp_path):
    from dejavu_tune.search.cli import describe

    path = tmp_path / "space.yaml"
    path.write_text(BASE + GRID)
    text = describe(load_space(str(path)))
    assert "  baseline runs                  1 run(s)" in text  # was 0: the driver runs 1
    assert "budget: at most 3 runs x " in text
