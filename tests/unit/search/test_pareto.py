"""Quality against cost: the front, what early stopping compares with several objectives,
and which trials the paired confirmation re-runs."""

import math

from dejavu_tune.raytune.tune_baseline import BaselineExemptASHA, ParetoASHA
from dejavu_tune.search import confirm, pareto
from dejavu_tune.search.trial_records import TrialRecord

OBJECTIVES = (("val_miou", "max"), ("step_time_ratio", "min"))


def _record(tid, final, cost, *, phase="search", baseline=False, status="completed", **last):
    config = {"dejavu.enabled": False} if baseline else {"dejavu.loss.gamma": final}
    curve = (final / 2, final) if status == "completed" else (final / 2,)
    return TrialRecord(trial_id=tid, phase=phase, config=config, seed=0, status=status,
                       reason=None, curve=curve,
                       last={"step_time_ratio": cost, "crm_reliance": 0.5,
                             "regen_grad_ratio": 0.2, **last})


def test_dominance_counts_each_objective_in_its_own_direction():
    modes = ["max", "min"]
    assert pareto.dominates((0.8, 1.2), (0.7, 1.5), modes)
    assert pareto.dominates((0.8, 1.2), (0.8, 1.5), modes)  # equal quality, cheaper
    assert not pareto.dominates((0.8, 1.2), (0.8, 1.2), modes)  # equal is not better
    assert not pareto.dominates((0.8, 1.6), (0.7, 1.5), modes)  # better, but dearer


def test_the_front_keeps_only_undominated_full_budget_non_inert_dejavu_trials():
    records = [
        _record("a", 0.80, 1.6),  # best quality: on the front
        _record("b", 0.75, 1.2),  # cheaper: on the front
        _record("c", 0.74, 1.3),  # b is better and cheaper: dominated
        _record("d", 0.70, 1.1),  # cheapest: on the front
        _record("e", 0.90, 1.0, status="stopped_early"),  # no full-budget value
        _record("f", 0.95, 1.0, crm_reliance=0.0),  # inert: not DejaVu's quality
        _record("g", 0.99, 1.0, baseline=True),  # the baseline is the reference, not a member
        _record("h", 0.99, 1.0, phase="confirm"),  # a replicate, not a search trial
        _record("i", 0.85, math.nan),  # no cost measured
    ]
    candidates = pareto.points(records, OBJECTIVES)
    assert [p.record.trial_id for p in candidates] == ["a", "b", "c", "d"]
    front = pareto.front(candidates, ["max", "min"])
    assert [p.record.trial_id for p in front] == ["a", "b", "d"]  # best quality first
    assert front[0].values == (0.80, 1.6)


def test_front_rows_say_when_the_baseline_dominates_a_member():
    records = [_record("a", 0.80, 1.6), _record("d", 0.70, 1.1)]
    members = pareto.front(pareto.points(records, OBJECTIVES), ["max", "min"])
    rows = pareto.front_rows(members, OBJECTIVES, baseline_quality=0.75, confirmed={})
    assert [(r["trial_id"], r["dominated_by_baseline"]) for r in rows] == [
        ("a", False), ("d", True)]  # 0.70 at 1.1x is worse and dearer than 0.75 at 1.0x
    assert rows[0]["val_miou"] == 0.80 and rows[0]["step_time_ratio"] == 1.6
    lines = pareto.front_markdown(rows, OBJECTIVES, 0.75, 2, lambda row: row["trial_id"])
    table = [line for line in lines if line.startswith("| a") or line.startswith("| d")]
    assert "| 0.8000 | 1.6000 | not confirmed" in table[0]
    assert "the baseline dominates it" in table[1]


def test_with_several_objectives_only_the_fronts_members_are_confirmed():
    records = [_record("a", 0.80, 1.6), _record("b", 0.79, 1.7), _record("d", 0.70, 1.1)]
    single = confirm.candidates(records, "max", top=3)
    assert [r.trial_id for r in single] == ["a", "b", "d"]
    several = confirm.candidates(records, "max", top=3, objectives=OBJECTIVES)
    assert [r.trial_id for r in several] == ["a", "d"]  # b: dearer and worse than a


class _Trial:
    """What a Tune scheduler reads of a trial."""

    def __init__(self, trial_id):
        self.trial_id, self.config = trial_id, {"dejavu.enabled": True}


def _decide(scheduler):
    decisions = {}
    # two dear trials reach the first rung with high quality, then a cheap weak one
    for tid, quality, cost in [("dear1", 0.8, 2.0), ("dear2", 0.7, 2.0), ("cheap", 0.3, 1.1),
                               ("dear3", 0.3, 2.0)]:
        trial = _Trial(tid)
        scheduler.on_trial_add(None, trial)
        decisions[tid] = scheduler.on_trial_result(None, trial, {
            "training_iteration": 1, "val_miou": quality, "step_time_ratio": cost})
    return decisions


ASHA = dict(time_attr="training_iteration", max_t=4, grace_period=1, reduction_factor=2,
            metric="val_miou", mode="max")


def test_early_stopping_compares_a_trial_only_with_trials_that_cost_no_more():
    # plain ASHA stops the cheap trial: it is below the median of the rung
    assert _decide(BaselineExemptASHA(**ASHA))["cheap"] == "STOP"
    # with cost objectives no trial at the rung costs no more: it continues. dear2 is
    # below dear1 (its only peer then) and dear3 below the median of dear1, dear2 and
    # cheap (all cost no more): both stop, as plain ASHA stops them
    assert _decide(ParetoASHA((("step_time_ratio", "min"),), **ASHA)) == {
        "dear1": "CONTINUE", "dear2": "STOP", "cheap": "CONTINUE", "dear3": "STOP"}


def test_the_reports_front_table_pairs_each_setting_with_the_baseline_by_seed():
    from dejavu_tune.report import Trial
    from dejavu_tune.search.front_table import front_table, parse_objectives

    def trial(seed, miou, cost=1.0, baseline=False, **params):
        params = {"seed": str(seed), **({"dejavu.enabled": "False"} if baseline else params)}
        return Trial(f"r{seed}{miou}", "run", "baseline" if baseline else "trial", params,
                     {"val_miou": miou, "step_time_ratio": cost})

    trials = [trial(0, 0.70, baseline=True), trial(1, 0.72, baseline=True),
              trial(0, 0.74, 1.5, **{"dejavu.crm.steps": "20"}),
              trial(1, 0.78, 1.5, **{"dejavu.crm.steps": "20"}),
              trial(0, 0.71, 1.1, **{"dejavu.crm.steps": "2"}),
              trial(1, 0.71, 1.1, **{"dejavu.crm.steps": "2"}),
              trial(0, 0.70, 1.6, **{"dejavu.crm.steps": "40"}),
              trial(1, 0.70, 1.6, **{"dejavu.crm.steps": "40"})]
    objectives = parse_objectives("val_miou (max), step_time_ratio (min)")
    assert objectives == [("val_miou", "max"), ("step_time_ratio", "min")]
    assert parse_objectives("val_miou mem_ratio") == [
        ("val_miou", "max"), ("mem_ratio", "min")]
    text = front_table(trials, objectives)
    rows = {line.split(" | ")[0]: line for line in text.splitlines()
            if line.startswith("| crm.")}
    # steps 20: mean 0.76 at 1.5x, Δ +0.04 and +0.06 over the baseline's 0.70 and 0.72
    assert "| 2 | 0.7600 | 1.5000 | Δ +0.0500 ± 0.0141" in rows["| crm.steps=20"]
    assert rows["| crm.steps=20"].endswith("| yes |")
    # steps 2: 0.71 at 1.1x is cheaper: on the front, though the baseline (0.71, 1.0) ties
    # it on quality and costs less, so the table says so
    assert rows["| crm.steps=2"].endswith("| yes (the baseline dominates it) |")
    # steps 40: worse and dearer than steps 20
    assert rows["| crm.steps=40"].endswith("| no (the baseline dominates it) |")
    assert "2 of 3 settings on the front" in text and "baseline val_miou 0.7100" in text
