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
