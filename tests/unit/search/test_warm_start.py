"""--warm-start: what an earlier search gives a new one, checked before anything runs."""

import json

import pytest

from dejavu_tune.search import warm_start
from dejavu_tune.search.cli import DEFAULT_SPACE
from dejavu_tune.search.space_file import load_space
from dejavu_tune.search.warm_start import WarmStartError

GOOD = {"dejavu.redaction.kind": "checkerboard", "dejavu.redaction.block_size": 8,
        "dejavu.crm.kind": "crm_f", "dejavu.crm.stages": 2, "dejavu.loss.gamma": 0.1,
        "dejavu.loss.gamma1": 1.0, "dejavu.loss.gamma2": 0.3, "dejavu.crm.condition": "soft"}


def _earlier(root, trials, confirmation=(), metric="val_miou"):
    root.mkdir(parents=True)
    (root / "optuna_trials.json").write_text(json.dumps(trials))
    (root / "best_config.json").write_text(json.dumps(
        {"metric": metric, "confirmation": list(confirmation)}))
    return root


def _trial(number, value, state="COMPLETE", **params):
    return {"number": number, "trial_id": f"t{number}", "state": state, "value": value,
            "params": {**GOOD, **params}}


def test_best_configurations_first_and_complete_trials_as_priors(tmp_path):
    space = load_space(DEFAULT_SPACE)
    _earlier(tmp_path / "old", [
        _trial(0, 0.70),
        _trial(1, 0.90, **{"dejavu.loss.gamma": 0.2}),
        _trial(2, None, state="PRUNED", **{"dejavu.loss.gamma": 0.5}),
        _trial(3, 0.80, **{"dejavu.loss.gamma": 5.0}),  # outside the new range [0.03, 1]
        _trial(4, 0.60, **{"dejavu.old_knob": 3}),  # a parameter the space no longer has
    ], confirmation=[{"config": {**GOOD, "dejavu.loss.gamma": 0.05}, "mean": 0.01},
                     {"config": {**GOOD, "dejavu.loss.gamma": 0.07}, "mean": 0.03}])
    warm = warm_start.load("old", tmp_path, space)
    gammas = [p["dejavu.loss.gamma"] for p in warm.points]
    # confirmed by paired gain first, then complete trials by value; three at most
    assert gammas == [0.07, 0.05, 0.2]
    assert all("optim.lr" not in p for p in warm.points)  # shared: tuned for the baseline
    assert [p["values"] for p in warm.priors] == [[0.70], [0.90], [0.60]]
    assert "dejavu.old_knob" not in warm.priors[2]["params"]
    assert warm.notes == ["dropped (not in this space): dejavu.old_knob",
                          "1 of its complete trials left out (outside this space)"]
    trials = warm.optuna_trials(warm_start.searched_params(space))
    assert [t.value for t in trials] == [0.70, 0.90, 0.60]
    assert trials[0].params == GOOD


def test_a_search_on_another_metric_gives_configurations_but_no_priors(tmp_path):
    space = load_space(DEFAULT_SPACE)
    path = _earlier(tmp_path / "old", [_trial(0, 0.7)], metric="val_pixel_acc")
    warm = warm_start.load(str(path / "optuna_trials.json"), tmp_path / "elsewhere", space)
    assert warm.points == [GOOD] and warm.priors == []
    assert "they measured val_pixel_acc, this search val_miou" in warm.notes[0]


def test_two_objective_trials_seed_a_two_objective_search_only(tmp_path):
    path = _earlier(tmp_path / "old", [_trial(0, [0.7, 1.3])])
    single = warm_start.load(str(path), tmp_path, load_space(DEFAULT_SPACE))
    assert single.priors == [] and "2 objective value(s), this search 1" in single.notes[0]
    several = warm_start.load(str(path), tmp_path, load_space(
        DEFAULT_SPACE, {"search.objectives": ["val_miou", "step_time_ratio"]}))
    assert several.priors[0]["values"] == [0.7, 1.3]
    assert several.optuna_trials(warm_start.searched_params(load_space(DEFAULT_SPACE)))[
        0].values == [0.7, 1.3]


def test_bad_sources_are_refused_with_what_is_expected(tmp_path):
    space = load_space(DEFAULT_SPACE)
    with pytest.raises(WarmStartError, match="no search of that name in .* expected a search "
                                             "name, its directory"):
        warm_start.load("nothing", tmp_path, space)
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(WarmStartError, match="has neither best_config.json nor "
                                             "optuna_trials.json"):
        warm_start.load("unfinished", tmp_path, space)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "optuna_trials.json").write_text("{not json")
    with pytest.raises(WarmStartError, match="cannot be read"):
        warm_start.load("bad", tmp_path, space)
    grid = load_space("search_spaces/ablations/b4_redaction_crm.yaml")
    with pytest.raises(WarmStartError, match="not allowed with search.algorithm: grid"):
        warm_start.load("bad", tmp_path, grid)
