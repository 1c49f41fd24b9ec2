"""The live Optuna study and the searcher Tune restores: trials the study has RUNNING that
the restored searcher never gave to a Tune trial are failed, never left running."""

import optuna
from optuna.trial import TrialState

from dejavu_tune.raytune.tune_outcomes import _fail_orphans


class _Restored:
    """What Ray's OptunaSearch holds after restore: its study and its Tune trials."""

    def __init__(self, study, held):
        self._ot_study = study
        self._ot_trials = held


def test_trials_asked_after_the_last_snapshot_are_failed_the_others_kept(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                                study_name="search")
    done, running, orphan = study.ask(), study.ask(), study.ask()
    study.tell(done, 0.5)
    _fail_orphans(_Restored(study, {"t1": done, "t2": running}))
    states = {t.number: t.state for t in study.trials}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.RUNNING, 2: TrialState.FAIL}
    assert orphan.number == 2
