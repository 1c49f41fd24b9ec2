"""The search strategies' settings: samplers, brackets, start-up trials, the seed's prior,
hard limits and what they switch on in the trials."""

import dataclasses

import optuna
import pytest

from dejavu_tune.raytune.search_algorithms import make_sampler, make_scheduler
from dejavu_tune.raytune.tune_settings import Trials
from dejavu_tune.search import seed_prior
from dejavu_tune.search.confirm import candidates
from dejavu_tune.search.space import SpaceError
from dejavu_tune.search.space_file import load_space
from dejavu_tune.search.trial_records import TrialRecord

SPACE = "search_spaces/default.yaml"


def _trials(**kw):
    return Trials(num_samples=4, metric="val_miou", mode="max", max_epochs=12, **kw)


def test_each_sampler_is_optunas_own_with_its_settings():
    limits = load_space(SPACE, {"search.constraints": ["mem_ratio <= 1.05"]}).search.limits
    tpe = make_sampler(_trials(startup_trials=5, constraints=limits))
    assert isinstance(tpe, optuna.samplers.TPESampler) and tpe._n_startup_trials == 5
    assert tpe._parzen_estimator_parameters is not None and tpe._constraints_func is not None
    assert isinstance(make_sampler(_trials(sampler="random")), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler(_trials(sampler="gp")), optuna.samplers.GPSampler)
    assert make_sampler(_trials())._n_startup_trials == 10  # Optuna's default


def test_brackets_make_asynchronous_hyperband_with_later_first_rungs():
    one = make_scheduler(_trials(grace_period=4, reduction_factor=2), None)
    three = make_scheduler(_trials(grace_period=4, reduction_factor=2, brackets=3), None)
    rungs = [sorted(m for m, _ in b._rungs) for b in three._brackets]
    assert [sorted(m for m, _ in b._rungs) for b in one._brackets] == [[4, 8]]
    assert rungs == [[4, 8], [8], []]  # the last bracket runs every trial to 12 epochs
    assert make_scheduler(_trials(early_stopping=False), None) is None


def test_the_rungs_and_whether_the_cost_probe_runs():
    s = load_space(SPACE).search
    assert s.rungs(12) == (1, 8, 12) and not s.measures_cost  # the default rung: 8
    assert load_space(SPACE, {"search.grace_period": 1}).search.rungs(5) == (1, 2, 4, 5)
    assert load_space(SPACE, {"search.grace_period": 4}).search.rungs(12) == (1, 4, 8, 12)
    assert load_space(SPACE, {"search.constraints": ["step_time_ratio <= 1.1"]}
                      ).search.measures_cost
    assert load_space(SPACE, {"search.objectives": ["val_miou", "mem_ratio"]}
                      ).search.measures_cost
    # sec_per_iter is the epoch's own timing: no probe for it
    assert not load_space(SPACE, {"search.constraints": ["sec_per_iter <= 1"]}
                          ).search.measures_cost


@pytest.mark.parametrize("overrides, message", [
    ({"search.brackets": 0}, "search.brackets=0 is not allowed: expected an integer of 1"),
    ({"search.startup_trials": 0}, "search.startup_trials=0 is not allowed"),
    ({"search.prior": "expert"}, "search.prior='expert' is not allowed: expected one of "
                                 "none, seed"),
    ({"search.constraints": ["speed <= 2"]}, "search.constraints[0]: 'speed' is not a "
                                             "metric the trials report"),
    ({"search.constraints": "mem_ratio <= 1"}, "search.constraints: 'mem_ratio <= 1' is not "
                                               "allowed: expected a list"),
    ({"search.algorithm": "grid", "search.constraints": ["mem_ratio <= 1"]},
     "search.constraints: is not allowed with algorithm: grid"),
    ({"search.algorithm": "grid", "search.prior": "seed"},
     "search.prior: 'seed' is not allowed with algorithm: grid"),
])
def test_bad_strategy_settings_are_refused_by_name(overrides, message):
    with pytest.raises(SpaceError) as err:
        load_space(SPACE, overrides)
    assert message in str(err.value)


def test_the_seeds_settings_projected_into_the_default_space():
    points = seed_prior.points(load_space(SPACE))
    # four distinct settings (Cityscapes and ADE20K share one) for data it was not run on
    assert len(points) == 4
    cityscapes = points[0]
    # b = 32 on 32-pixel images: the nearest choice, 8; CRM-R's 20 steps: the most, 8
    assert cityscapes == {"dejavu.redaction.kind": "random_blocks",
                          "dejavu.redaction.block_size": 8, "dejavu.redaction.threshold": 0.4,
                          "dejavu.crm.kind": "crm_r", "dejavu.crm.steps": 8,
                          "dejavu.loss.gamma": 1.0, "dejavu.loss.gamma1": 1.0,
                          "dejavu.loss.gamma2": 0.3}
    # KITTI: gamma2 0.03 is the range's end; bandstop's bands are not in the seed: sampled
    kitti = points[2]
    assert kitti["dejavu.loss.gamma2"] == 0.03 and "dejavu.redaction.band_low" not in kitti


def test_a_space_on_one_of_the_seeds_datasets_gets_that_setting_only():
    space = load_space(SPACE)
    on_coco = dataclasses.replace(space, fixed={**space.fixed, "data": {"name": "coco_panoptic"}})
    (point,) = seed_prior.points(on_coco)
    assert point["dejavu.redaction.kind"] == "checkerboard"
    assert point["dejavu.crm.stages"] == 2 and "dejavu.crm.steps" not in point


def _record(trial_id, final, cost):
    return TrialRecord(trial_id, "search", {"dejavu.crm.kind": trial_id}, 0, "completed",
                       None, (final,), {"val_miou": final, "step_time_ratio": cost,
                                        "crm_reliance": 0.5, "regen_grad_ratio": 0.2})


def test_a_configuration_that_breaks_a_limit_is_never_a_candidate():
    records = [_record("fast", 0.80, 1.05), _record("slow", 0.95, 1.40),
               _record("unmeasured", 0.99, None)]
    limits = load_space(SPACE, {"search.constraints": ["step_time_ratio <= 1.10"]}
                        ).search.limits
    assert [r.trial_id for r in candidates(records, "max", 3)] == ["unmeasured", "slow", "fast"]
    assert [r.trial_id for r in candidates(records, "max", 3, limits=limits)] == ["fast"]


def test_the_summary_lists_the_trials_over_a_limit_and_never_picks_one():
    from dejavu_tune.search.summary import Outcome, report_markdown

    records = [_record("fast", 0.80, 1.05), _record("slow", 0.95, 1.40)]
    limits = load_space(SPACE, {"search.constraints": ["step_time_ratio <= 1.10"]}
                        ).search.limits
    o = Outcome(metric="val_miou", mode="max", epochs=1, records=records,
                replicate_seeds=[], limits=limits)
    assert o.best_single().trial_id == "fast"
    text = report_markdown(o)
    assert "## Hard limits" in text
    assert "step_time_ratio <= 1.1: 1 of 2 trials broke them" in text
    assert "step_time_ratio <= 1.1 (1.4)" in text
    assert "## Hard limits" not in report_markdown(Outcome(
        metric="val_miou", mode="max", epochs=1, records=records, replicate_seeds=[]))
