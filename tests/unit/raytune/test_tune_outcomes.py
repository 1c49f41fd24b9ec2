"""The live Optuna study and the searcher Tune restores: trials the study has RUNNING that
the restored searcher never gave to a Tune trial are failed, never left running. Run on
Ray's real OptunaSearch, whose private attributes the search reads."""

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from dejavu_tune.raytune.search_algorithms import study_storage
from dejavu_tune.raytune.tune_outcomes import _fail_orphans, optuna_internals


def _space(trial):
    trial.suggest_float("x", 0.0, 1.0)


# the search's journal file, and an RDB (a study a user points at a database)
@pytest.mark.parametrize("where", ["optuna.log", "sqlite:///{}/optuna.db"])
def test_trials_asked_after_the_last_snapshot_are_failed_the_others_kept(tmp_path, where):
    storage = study_storage(where.format(tmp_path) if "://" in where
                            else str(tmp_path / where))
    searcher = OptunaSearch(space=_space, metric="m", mode="max", study_name="search",
                            storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", {"m": 0.5})
    searcher.suggest("t2")  # running in Tune, held by the searcher
    searcher.save(str(tmp_path / "searcher.pkl"))
    study = optuna.load_study(study_name="search", storage=storage)
    orphan = study.ask()  # asked after the snapshot: its driver died before saving again
    restored = OptunaSearch()
    restored.restore(str(tmp_path / "searcher.pkl"))
    _fail_orphans(restored)
    states = {t.number: t.state for t in optuna_internals(restored)[0].trials}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.RUNNING, 2: TrialState.FAIL}
    assert orphan.number == 2 and set(optuna_internals(restored)[1]) == {"t1", "t2"}


def test_a_ray_without_the_private_attributes_stops_loudly():
    class Renamed:  # what a Ray release that renamed them would hand over
        _study, _trials = None, {}

    with pytest.raises(RuntimeError, match=r"OptunaSearch has no _ot_study / _ot_trials"):
        _fail_orphans(Renamed())
