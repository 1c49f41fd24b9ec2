"""The search's time budget inside Tune (``raytune.time_budget.Deadline``) and how it is
written (``search.time_budget``): before the deadline the searcher inside answers, after
it no trial starts; a budget a person cannot mean is refused in one line."""

import time

import pytest
from ray.tune.search import Searcher

from dejavu_tune.config import ConfigError
from dejavu_tune.raytune.time_budget import Deadline
from dejavu_tune.raytune.tune_baseline import FixedConfigs
from dejavu_tune.search.space import SearchSettings, budget_seconds

CONFIGS = [{"dejavu.loss.gamma": 0.1}, {"dejavu.loss.gamma": 0.2}]


def test_before_the_deadline_the_inner_searcher_answers_after_it_none():
    open_ = Deadline(FixedConfigs(CONFIGS, metric="val_miou", mode="max"), time.time() + 60)
    assert open_.suggest("a") == CONFIGS[0] and open_.suggest("b") == CONFIGS[1]
    assert open_.suggest("c") == Searcher.FINISHED  # the list is spent
    closed = Deadline(FixedConfigs(CONFIGS, metric="val_miou", mode="max"), time.time() - 1)
    assert closed.suggest("a") == Searcher.FINISHED
    # the deadline survives a restore of the experiment
    again = Deadline(FixedConfigs([], metric="val_miou", mode="max"), 0.0)
    again.set_state(closed.get_state())
    assert again.deadline == closed.deadline


@pytest.mark.parametrize("text, seconds", [("90m", 5400), ("8h", 28800), ("1.5d", 129600),
                                           ("45s", 45), (3600, 3600), ("10", 10)])
def test_a_budget_reads_in_the_units_a_person_writes(text, seconds):
    assert budget_seconds(text) == seconds
    assert SearchSettings(time_budget=text).time_budget_s == seconds


@pytest.mark.parametrize("bad", ["0", -1, "soon", True, "5y", float("inf"), "8 hours"])
def test_a_budget_no_one_can_mean_is_refused_naming_the_forms(bad):
    with pytest.raises(ConfigError, match=r"search\.time_budget=.* is not allowed: expected a "
                                          r"duration above zero such as 90m, 8h, 2d"):
        SearchSettings(time_budget=bad)
