"""The searchers around Optuna that put the baselines first and replay fixed lists
(raytune.tune_baseline), on Ray's real OptunaSearch: what each hands out, and what the
study behind them is told."""

import optuna
import pytest
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from dejavu_tune.raytune.tune_baseline import BaselineFirst, FixedConfigs
from dejavu_tune.raytune.tune_outcomes import optuna_internals

BASELINES = [{"dejavu.enabled": False, "seed": 1}, {"dejavu.enabled": False, "seed": 2}]


def _optuna():
    def space(trial):
        trial.suggest_float("dejavu.loss.gamma", 0.1, 2.0)

    return OptunaSearch(space=space, metric="val_miou", mode="max",
                        sampler=optuna.samplers.RandomSampler(seed=0))


def test_the_baselines_come_first_and_never_reach_the_study():
    inner = _optuna()
    searcher = BaselineFirst(inner, BASELINES)
    given = [searcher.suggest(f"t{i}") for i in range(4)]
    assert given[:2] == BASELINES and given[0] is not BASELINES[0]  # copies
    assert all(set(g) == {"dejavu.loss.gamma"} for g in given[2:])
    for i in range(4):
        searcher.on_trial_result(f"t{i}", {"val_miou": 0.1 * i, "training_iteration": 1})
        searcher.on_trial_complete(f"t{i}", {"val_miou": 0.1 * i})
    study, trials = optuna_internals(inner)
    # Optuna saw the two DejaVu trials only, with their own values
    assert sorted(trials) == ["t2", "t3"]
    assert [t.value for t in study.trials] == pytest.approx([0.2, 0.3], abs=1e-12)
    assert searcher.baseline_trials == ["t0", "t1"]


def test_the_baselines_handed_out_survive_a_restore():
    searcher = BaselineFirst(_optuna(), BASELINES)
    searcher.suggest("t0")
    state = searcher.get_state()
    again = BaselineFirst(_optuna(), BASELINES)
    again.set_state(state)
    assert again.suggest("t1") == BASELINES[1]  # the first is not handed out twice
    assert set(again.suggest("t2")) == {"dejavu.loss.gamma"}


def test_fixed_configs_are_replayed_in_order_then_the_searcher_is_finished():
    configs = [{"seed": 3}, {"seed": 4}]
    searcher = FixedConfigs(configs, metric="val_miou", mode="max")
    assert [searcher.suggest(f"t{i}") for i in range(3)] == [*configs, Searcher.FINISHED]
    assert searcher.suggest("t3") == Searcher.FINISHED


def test_fixed_configs_resume_where_they_were_from_their_saved_state(tmp_path):
    configs = [{"seed": 3}, {"seed": 4}]
    searcher = FixedConfigs(configs, metric="val_miou", mode="max")
    searcher.suggest("t0")
    searcher.save(str(tmp_path / "fixed.json"))
    again = FixedConfigs([], metric="val_miou", mode="max")
    again.restore(str(tmp_path / "fixed.json"))
    assert again.suggest("t1") == {"seed": 4} and again.suggest("t2") == Searcher.FINISHED


class _DejavuTrial:
    """What a Tune scheduler reads of a trial."""

    def __init__(self, trial_id):
        self.trial_id, self.config = trial_id, {"dejavu.enabled": True}


def test_asha_writes_why_it_stopped_a_trial_with_the_cut_off_it_compared(tmp_path):
    from dejavu_tune.raytune.tune_baseline import BaselineExemptASHA, StopDecision, read_stops

    stops = tmp_path / "asha_stops.jsonl"
    asha = BaselineExemptASHA(stops_file=str(stops), time_attr="training_iteration", max_t=4,
                              grace_period=1, reduction_factor=2, metric="task_loss",
                              mode="min")
    actions = {}
    for tid, loss in [("a", 1.0), ("b", 2.0), ("c", 1.5), ("d", 0.5)]:
        trial = _DejavuTrial(tid)
        asha.on_trial_add(None, trial)
        actions[tid] = asha.on_trial_result(None, trial, {"training_iteration": 1,
                                                          "task_loss": loss})
    # b is above a's 1.0 (the median of one) and stops; c equals the median of a and b
    # (1.5), which ASHA lets go on (it stops only strictly worse); d is below 1.5
    assert actions == {"a": "CONTINUE", "b": "STOP", "c": "CONTINUE", "d": "CONTINUE"}
    decisions = read_stops(tmp_path)
    assert list(decisions) == ["b"]
    b = decisions["b"]
    assert (b.rung, b.metric, b.value, b.cutoff, b.peers) == (1, "task_loss", 2.0, 1.0, 1)
    assert b.text() == ("ASHA at epoch 1: task_loss 2, above the cut-off 1 (only the best "
                        "1/2 of the 1 trial there before it went on)")
    close = StopDecision("x", 2, "task_loss", "min", 1.50512, 1.50498, 3, 2)
    assert close.text().startswith("ASHA at epoch 2: task_loss 1.5051, above the cut-off 1.505 ")
    # the budget's end stops every trial: that is no ASHA decision
    trial = _DejavuTrial("a")
    assert asha.on_trial_result(None, trial, {"training_iteration": 4, "task_loss": 9.0}) == "STOP"
    assert list(read_stops(tmp_path)) == ["b"]
    stops.write_text(stops.read_text() + '{"trial_id": "cut sh')  # a killed driver's last line
    assert list(read_stops(tmp_path)) == ["b"]
