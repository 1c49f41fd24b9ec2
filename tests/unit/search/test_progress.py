"""A running search's progress line (``search.progress``): counts, ASHA's savings, the
best single-seed value, and time left from the measured epoch times."""

from dejavu_tune.raytune.trial_results import TrialState
from dejavu_tune.search.progress import Progress, duration
from dejavu_tune.search.step_runner import step_label

BASELINE = {"dejavu.enabled": False, "seed": 1}


def _state(tid, status, epochs, value=None, seconds=0.0, config=None, n=1):
    last = {"training_iteration": epochs, "time_total_s": seconds}
    if value is not None:
        last["val_miou"] = value
    return TrialState(tid, status, config if config is not None else {"x": 1}, last,
                      f"/runs/search/dejavu_trainable_{tid}_{n}_x=1")


def test_the_line_counts_trials_epochs_savings_and_time_left():
    progress = Progress("search", planned=6, max_epochs=4, metric="val_miou", mode="max",
                        slots=2, started=1000.0)
    states = [_state("a1", "TERMINATED", 4, 0.61, 8.0, n=1),       # full budget
              _state("b2", "TERMINATED", 1, 0.40, 2.0, n=2),       # stopped by ASHA
              _state("c3", "RUNNING", 2, 0.70, 4.0, n=3),
              _state("d4", "ERROR", 1, None, 2.0, n=4),            # failed in epoch 2
              _state("e5", "TERMINATED", 4, 0.95, 8.0, BASELINE, n=5)]  # never the best
    line = progress.line(states, now=1252.0)
    # 12 epochs ran in 24 s (2 s each); 24 planned - 12 run - 3 saved - 3 failed = 6 left,
    # 6 x 2 s over 2 slots = 6 s
    assert line == ("search: 4/6 trials done, 1 running (1 failed) · 12/24 trial-epochs "
                    "(3 saved by ASHA) · best val_miou 70.00 mIoU points (t03, single seed, epoch 2) · "
                    "4m12s elapsed, about 6s left")


def test_before_any_epoch_time_left_is_unknown_and_min_metrics_pick_the_lowest():
    progress = Progress("baseline tuning", 2, 3, "val_miou", "min", 1, started=0.0)
    assert progress.line([], now=30.0) == ("baseline tuning: 0/2 trials done, 0 running · "
                                           "0/6 trial-epochs · 30s elapsed, time left unknown "
                                           "until an epoch ends")
    states = [_state("a1", "RUNNING", 1, 0.5, 3.0), _state("b2", "RUNNING", 1, 0.2, 3.0, n=2)]
    assert "best val_miou 20.00 mIoU points (t02" in progress.line(states, now=30.0)


def test_times_and_step_names_read_at_a_glance():
    assert [duration(s) for s in (0, 45.4, 252, 3600 * 3 + 300)] == ["0s", "45s", "4m12s",
                                                                     "3h05m"]
    assert [step_label(s) for s in ("tuning", "search", "confirm", "confirm-3")] == [
        "baseline tuning", "search", "confirmation look 1", "confirmation look 3"]


def test_a_confirmation_run_is_named_after_the_search_trial_it_retrains():
    from dejavu_tune.search.step_runner import TrialNames
    from dejavu_tune.search.trial_context import config_key
    from dejavu_tune.tracking.run_names import trial_name

    config = {"dejavu.loss.gamma": 0.1, "seed": 5, "data.heldout": True}
    names = TrialNames(confirming=True, confirms={config_key(config): "t04"})
    # Tune's directory (and trial name), then what the terminal and MLflow read off it
    assert names(2, config) == "t04_seed5"
    assert trial_name("ab", f"/r/confirm-2/{names(2, config)}") == "confirm of t04 · seed 5"
    baseline = names(3, {"dejavu.enabled": False, "seed": 6})
    assert (baseline, trial_name("cd", baseline)) == (
        "baseline_seed6", "confirm baseline seed 6")
    assert TrialNames()(7, config) == "t07"
    assert trial_name("ab", "/r/search/t07") == "t07"
