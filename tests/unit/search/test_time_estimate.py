"""--dry-run's time estimate: probes times the plan, divided by the trials at once."""

import json
import math

import pytest

from dejavu_tune.search import time_estimate
from dejavu_tune.search.run_plan import plan
from dejavu_tune.search.space_file import load_space
from dejavu_tune.search.time_estimate import Estimate, Probe

SPACE = """fixed:
  device: cpu
  data: {image_size: 32, num_train: 12, num_val: 5}
  optim: {epochs: 3, batch_size: 4}
  dejavu: {crm: {init: scratch}}
params:
  dejavu.crm.kind: {type: categorical, choices: [crm_f, crm_r]}
  dejavu.crm.stages: {type: int, low: 1, high: 2, when: {dejavu.crm.kind: [crm_f]}}
  dejavu.crm.steps: {type: categorical, choices: [2, 3], when: {dejavu.crm.kind: [crm_r]}}
search:
  num_samples: 3
  max_concurrent: 2
  baseline_trials: 0
  baseline_seeds: 2
  confirm_top: 1
  max_seeds: 2
"""


def test_the_plan_in_seconds_is_each_runs_setup_and_epochs_over_the_slots():
    baseline = Probe("b", setup_s=2.0, step_s=0.5, eval_s=0.25, steps=4, evals=2)
    dejavu = Probe("d", setup_s=1.0, step_s=1.0, eval_s=0.5, steps=4, evals=2)
    assert (baseline.epoch_s, baseline.run_s(3), dejavu.run_s(3)) == (2.5, 9.5, 16.0)
    estimate = Estimate(baseline, dejavu, baseline_runs=2, dejavu_runs=3, epochs=3, slots=2)
    assert estimate.total_s == (2 * 9.5 + 3 * 16.0) / 2 == 33.5
    assert estimate.line().startswith("time: at most about 34s after the CRM stage, 2 "
                                      "trial(s) at once (baseline 2.5 s/epoch, dearest "
                                      "DejaVu (d) 5 s/epoch (2.00×); 2 baseline + 3 DejaVu")
    # a space without DejaVu: every run costs the baseline's
    assert Estimate(baseline, None, 2, 3, 3, 1).total_s == 5 * 9.5


def test_the_dearest_configurations_are_the_deepest_crm_of_each_kind(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    deepest = time_estimate.dearest(load_space(path))
    assert [(c.dejavu.crm.kind, c.dejavu.crm.stages if c.dejavu.crm.kind == "crm_f"
             else c.dejavu.crm.steps) for c in deepest] == [("crm_f", 2), ("crm_r", 3)]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_probes_measure_the_epoch_a_trial_trains(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    space = load_space(path)
    runs = plan(space)
    estimate = time_estimate.estimate(space, runs, local=False)
    for probe in (estimate.baseline, estimate.dejavu):
        # 12 images in batches of 4; 5 search-split images in batches of 4
        assert (probe.steps, probe.evals) == (3, 2)
        assert all(math.isfinite(v) and v > 0 for v in (probe.step_s, probe.eval_s))
    assert "DejaVu off" in estimate.baseline.what and "crm_" in estimate.dejavu.what
    assert (estimate.baseline_runs, estimate.dejavu_runs) == (runs.baselines,
                                                             3 + runs.confirmation)
    assert estimate.slots == 2 and estimate.epochs == 3


def test_trials_meant_for_a_gpu_are_not_timed_on_a_machine_without_one(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE.replace("device: cpu", "device: auto") + "resources: {gpu: 1}\n")
    space = load_space(path)
    line = time_estimate.dry_run_line(space, plan(space), local=False)
    assert line.startswith("time: not estimated (the trials would train on a GPU and this "
                           "machine has none")


def test_the_benchmark_measures_the_steps_after_the_crm_stage(tmp_path):
    from dejavu_tune.bench.time_estimate import measured

    def trial(step, name, config, rows):
        where = tmp_path / step / name
        where.mkdir(parents=True)
        (where / "params.json").write_text(json.dumps(config))
        (where / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))

    # tuning trial: started at 100 - 5; a search trial stopped after 1 epoch; the last
    # confirmation run ends at 190
    trial("tuning", "t01", {"optim.lr": 0.1}, [
        {"training_iteration": 1, "timestamp": 100, "time_total_s": 5},
        {"training_iteration": 2, "timestamp": 110, "time_total_s": 15}])
    trial("search", "t01", {"dejavu.enabled": False, "seed": 1}, [
        {"training_iteration": 1, "timestamp": 120, "time_total_s": 4}])
    trial("search", "t02", {"dejavu.loss.gamma": 0.1}, [
        {"training_iteration": 1, "timestamp": 130, "time_total_s": 3}])
    trial("confirm-2", "t02_seed3", {"dejavu.loss.gamma": 0.1, "seed": 3}, [
        {"training_iteration": 1, "timestamp": 180, "time_total_s": 3},
        {"training_iteration": 2, "timestamp": 190, "time_total_s": 13}])
    assert measured(tmp_path) == {"span_s": 95, "baseline_runs": 2, "baseline_epochs": 3,
                                  "dejavu_runs": 2, "dejavu_epochs": 3}
