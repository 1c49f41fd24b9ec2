"""The search's Optuna analysis computes parameter importances once per study."""

import optuna
import pytest

from dejavu_tune.search import optuna_plots


def _study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    dists = {"x": optuna.distributions.FloatDistribution(0, 1),
             "y": optuna.distributions.FloatDistribution(0, 1)}
    for i in range(40):
        x, y = (i * 7 % 40) / 40, (i * 13 % 40) / 40
        study.add_trial(optuna.trial.create_trial(params={"x": x, "y": y}, distributions=dists,
                                                  value=x))  # only x matters
    return study


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_the_ranking_and_both_importance_plots_share_one_computation(monkeypatch):
    calls = []
    evaluate = optuna.importance.PedAnovaImportanceEvaluator.evaluate

    def counted(self, *args, **kwargs):
        calls.append(1)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(optuna.importance.PedAnovaImportanceEvaluator, "evaluate", counted)
    study = _study()
    once = optuna_plots._importances_once()
    assert optuna_plots._most_important(study, once) == ["x", "y"]
    optuna.visualization.plot_param_importances(study, evaluator=once)
    optuna.visualization.matplotlib.plot_param_importances(study, evaluator=once)
    assert len(calls) == 1
    # the same numbers as Optuna's own default
    assert (optuna.importance.get_param_importances(study, evaluator=once)
            == optuna.importance.get_param_importances(study))


def test_a_trial_is_numbered_in_the_plots_as_it_is_named_everywhere_else():
    from types import SimpleNamespace

    from dejavu_tune.search.trial_records import TrialRecord

    gamma = SimpleNamespace(name="dejavu.loss.gamma",
                            distribution=lambda: optuna.distributions.FloatDistribution(0, 2))
    space = SimpleNamespace(params=[gamma], search=SimpleNamespace(
        mode="max", algorithm="tpe", grace_period=1, metric="val_miou"))

    def trial(n, status, curve, **config):
        return TrialRecord(trial_id=f"id{n}", phase="search", seed=0, status=status,
                           reason=None, curve=curve, last={}, trial_dir=f"/r/search/t{n:02d}",
                           config={"dejavu.loss.gamma": n / 10, **config})

    records = [trial(1, "completed", (0.5, 0.6), **{"dejavu.enabled": False}),
               trial(2, "completed", (0.5, 0.7)), trial(3, "failed", ()),
               trial(5, "stopped_early", (0.4,))]
    study, epoch = optuna_plots.analysis_study(space, SimpleNamespace(records=records, epochs=2))
    # fewer than MIN_FULL full-budget trials: ASHA's first rung; t02 and t05 only
    assert epoch == 1 and optuna_plots.analysed(study) == 2
    done = {t.number: (t.user_attrs["trial"], t.value) for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE}
    assert done == {2: ("t02", 0.5), 5: ("t05", 0.4)}
    assert len(study.trials) == 6  # 0, 1, 3 and 4 hold the places of what is not analysed
