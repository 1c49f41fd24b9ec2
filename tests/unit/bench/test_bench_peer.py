"""``python -m dejavu_tune.bench peer``: our framework cost per trial next to a hand-wired
Ray Tune + Optuna + ASHA + MLflow script, on the same configurations."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dejavu_tune.bench import cli as bench
from dejavu_tune.bench import peer
from dejavu_tune.bench.inputs import BenchError
from dejavu_tune.search.cli import DEFAULT_SPACE
from dejavu_tune.search.space_file import load_space
from dejavu_tune.tracking.runs import RunRow

ROOT = Path(__file__).resolve().parents[3]


def _args(**changed):
    parser = argparse.ArgumentParser()
    peer.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["peer"])
    for key, value in changed.items():
        setattr(args, key, value)
    return args


def test_framework_cost_is_slot_time_beyond_compute_per_trial():
    # 2 slots x 100 s = 200 slot seconds, 40 of them compute, over 40 trials
    assert peer.framework_cost(100.0, 40.0, 40, 2) == 4.0
    assert peer.framework_cost(60.5, 1.0, 3, 2) == 40.0
    assert peer.framework_cost(10.0, 4.0, 2, 1) == 3.0


def test_configuration_keys_ignore_key_order_and_float_noise_past_ten_digits():
    a = {"dejavu.loss.gamma": 0.1 + 0.2, "dejavu.crm.kind": "crm_f", "dejavu.crm.stages": 2}
    b = {"dejavu.crm.stages": 2, "dejavu.crm.kind": "crm_f", "dejavu.loss.gamma": 0.3}
    assert peer.config_key(a) == peer.config_key(b)
    # what JSON makes of it and back
    assert peer.config_key(json.loads(json.dumps(a))) == peer.config_key(b)
    assert peer.config_key({**b, "dejavu.loss.gamma": 0.3000001}) != peer.config_key(b)
    assert peer.config_key({**b, "dejavu.crm.stages": 3}) != peer.config_key(b)


def test_the_same_configurations_in_any_order_match():
    ours = [{"x": 0.5, "k": "a"}, {"x": 0.25, "k": "b"}, {"x": 1 / 3, "k": "a"}]
    theirs = [{"k": "a", "x": 0.3333333333333333}, {"k": "a", "x": 0.5}, {"k": "b", "x": 0.25}]
    assert peer.compare_configs(ours, theirs, 3) == 3


def test_a_configuration_on_one_side_only_is_an_error():
    ours = [{"x": 0.5}, {"x": 0.25}]
    with pytest.raises(BenchError, match=r"ours 2, the peer 2, expected 2 each; 1 only in "
                                         r'ours \(first: \{"x": 0.25\}\), 1 only in the '
                                         r'peer\'s \(first: \{"x": 0.75\}\)'):
        peer.compare_configs(ours, [{"x": 0.5}, {"x": 0.75}], 2)


def test_fewer_configurations_than_trials_is_an_error():
    # a trial that never reported, or the sampler proposing one configuration twice
    with pytest.raises(BenchError, match="ours 1, the peer 1, expected 2 each"):
        peer.compare_configs([{"x": 0.5}, {"x": 0.5}], [{"x": 0.5}], 2)


def test_pairs_run_in_the_chosen_order():
    assert [peer.sides(i, "ours-peer") for i in range(2)] == [("ours", "peer")] * 2
    assert [peer.sides(i, "peer-ours") for i in range(2)] == [("peer", "ours")] * 2
    assert [peer.sides(i, "alternate") for i in range(3)] == [
        ("ours", "peer"), ("peer", "ours"), ("ours", "peer")]


def _run(start_s, end_s):
    return RunRow("id", "name", "FINISHED", int(start_s * 1000), int(end_s * 1000), {}, {}, {})


def test_where_the_time_goes_from_the_runs():
    # process 1000-1050 s; runs 1010-1020, 1012-1030, 1021-1040 (durations 10, 18, 19)
    # with 27 s of compute in all
    runs = [_run(1012, 1030), _run(1010, 1020), _run(1021, 1040)]
    parts = peer.breakdown(runs, 27.0, 1000.0, 1050.0)
    assert parts == pytest.approx({"to_first_s": 10.0, "span_s": 30.0, "after_last_s": 10.0,
                                   "in_run_s": (47 - 27) / 3})
    # a run still open (no end) is left out
    still = RunRow("id", "name", "RUNNING", 1_001_000, None, {}, {}, {})
    assert peer.breakdown([*runs, still], 27.0, 1000.0, 1050.0) == parts
    with pytest.raises(BenchError, match="no finished MLflow run"):
        peer.breakdown([still], 0.0, 1000.0, 1050.0)


def test_mean_ratio_and_its_spread():
    assert peer.summarize([1.0, 2.0, 3.0]) == {"mean": 2.0, "min": 1.0, "max": 3.0,
                                               "stdev": 1.0}
    assert peer.summarize([1.5]) == {"mean": 1.5, "min": 1.5, "max": 1.5, "stdev": 0.0}


def test_the_peer_loads_the_space_as_the_search_does():
    args = _args(trials=40, concurrent=2, seed=0)
    assert peer.set_flags(args)[:2] == ["search.algorithm=random", "search.baseline_trials=0"]
    overrides = peer.overrides(args)
    assert overrides["optim.lr"] == 0.035 and overrides["data.num_train"] == 16
    assert overrides["search.num_samples"] == 40 and overrides["search.seed"] == 0
    space = peer.search_space(load_space(DEFAULT_SPACE, overrides))
    # the learning rate is shared: held at the fixed value, not sampled (as the driver
    # does without baseline tuning)
    assert "optim.lr" not in [p.name for p in space.params]
    assert space.base_config().optim.lr == 0.035 and space.base_config().optim.epochs == 2
    assert space.search.algorithm == "random" and space.search.grace_period == 1
    assert space.base_config().dejavu.crm.init == "scratch"


@pytest.mark.parametrize("argv, message", [
    (["--pairs", "0"], "--pairs=0 is not allowed: expected 1 or more"),
    (["--trials", "-3"], "--trials=-3 is not allowed: expected 1 or more"),
    (["--lr", "0"], "--lr=0.0 is not allowed: expected a positive number"),
    (["--epochs", "0"], "--epochs=0 is not allowed"),
    (["--json", "{d}"], "is a directory: expected a file to write"),
    (["--storage-path", "{d}/file.txt/runs"], "cannot be made"),
])
def test_bad_flags_are_refused_before_any_search(tmp_path, capsys, argv, message):
    (tmp_path / "file.txt").write_text("x")
    argv = [a.replace("{d}", str(tmp_path)) for a in argv]
    assert bench.main(["peer", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


@pytest.mark.integration
@pytest.mark.slow
def test_both_sides_train_the_same_configurations_and_are_costed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    out = tmp_path / "peer.json"
    proc = subprocess.run(
        [sys.executable, "-m", "dejavu_tune.bench", "peer", "--pairs", "1", "--trials", "3",
         "--epochs", "1", "--storage-path", str(tmp_path / "runs"), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "the same 3 configurations" in proc.stdout
    (pair,) = json.loads(out.read_text())["pairs"]
    assert pair["matched"] == 3
    # ours: the 3 trials and its baseline run; the peer: the 3 trials, 1 epoch each
    assert pair["ours"]["runs"] == 4 and pair["peer"]["runs"] == 3
    for side in ("ours", "peer"):
        r = pair[side]
        assert r["wall_s"] > r["to_first_s"] > 0 and r["compute_s"] > 0
        assert r["cost_per_trial_s"] == pytest.approx((2 * r["wall_s"] - r["compute_s"]) / 3)
    assert pair["ratio"] == pytest.approx(pair["ours"]["cost_per_trial_s"]
                                          / pair["peer"]["cost_per_trial_s"])
