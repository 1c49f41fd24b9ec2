"""The summary's "Did ASHA's early decisions hold?" section and its JSON, on hand-made
trials; and the stop metric's curve a trial's record keeps."""

from dejavu_tune.raytune.trial_results import TrialResult
from dejavu_tune.search.summary import Outcome, report_markdown, result_payload
from dejavu_tune.search.trial_records import TrialRecord, from_result

SECTION = "## Did ASHA's early decisions hold?"


def _trial(n, status, curve, losses=()):
    return TrialRecord(trial_id=f"id{n}", phase="search", config={"dejavu.loss.gamma": n / 10},
                       seed=0, status=status, reason=None, curve=curve, last={},
                       trial_dir=f"/r/search/t{n:02d}", stop_curve=losses)


# task_loss at epoch 1 ranks t01..t05 1 2 3 4 5 (lower is better); the final val_miou
# ranks them 2 1 4 3 5: sum d² = 4, rho = +0.80 after the sign adjustment; 95% CI by
# Fisher's z, se sqrt(1.06/2): -0.32 to +0.99 (tests/unit/outcome/test_early_stopping.py)
FULL = [_trial(1, "completed", (0.600, 0.70), (1.0, 0.8)),
        _trial(2, "completed", (0.700, 0.80), (1.1, 0.7)),
        _trial(3, "completed", (0.450, 0.50), (1.2, 0.9)),
        _trial(4, "completed", (0.500, 0.60), (1.3, 1.0)),
        _trial(5, "completed", (0.300, 0.40), (1.4, 1.2))]
BASELINE = TrialRecord(trial_id="b", phase="search", config={"dejavu.enabled": False}, seed=0,
                       status="completed", reason=None, curve=(0.99, 0.99), last={},
                       stop_curve=(9.0, 9.0))


class _Config:
    def __init__(self, sampled):
        self.sampled = sampled

    def to_dict(self):
        return dict(self.sampled)


def _outcome(records, **kw):
    kw = {"rung": 1, "stop_metric": "task_loss", "stop_mode": "min", "min_effect": 0.005, **kw}
    return Outcome(metric="val_miou", mode="max", epochs=2, records=records,
                   replicate_seeds=[], **kw)


def _section(text):
    return text.split(SECTION)[1].split("## Search trials")[0].strip().splitlines()


def test_the_summary_says_how_well_the_rung_ranked_and_who_it_stopped_near_the_winner():
    # the winner (best full-budget trial) is t02: 70.00 at epoch 1. t06 stopped at 69.80
    # (0.20 points below, within δ = 0.50), t07 at 65.00 (not)
    records = [BASELINE, *FULL, _trial(6, "stopped_early", (0.698,), (1.5,)),
               _trial(7, "stopped_early", (0.650,), (1.6,))]
    lines = _section(report_markdown(_outcome(records)))
    assert lines[0] == ("- Rank correlation of task_loss at epoch 1 (ASHA's first rung) with "
                        "the final val_miou over 5 full-budget trials: +0.80 (95% CI -0.32 to "
                        "+0.99, Fisher's z, Fieller et al. 1957; +1: the rung ranked them as "
                        "the end did) — no better than chance at this many trials: its stops "
                        "may have cut configurations that would have ended well.")
    # nothing confirmed: the best full-budget trial is what the search would name
    assert lines[1] == ("- Stopped early within δ = 0.50 mIoU points of the best candidate, "
                        "t02 (val_miou where ASHA stopped them vs t02's at the same epoch, in "
                        "mIoU points): t06 (epoch 1: 69.80 vs 70.00). ASHA may have cut a "
                        "configuration as good as the best candidate.")
    payload = result_payload(_outcome(records), _Config)["early_stopping"]
    assert payload["full_budget_trials"] == 5 and payload["no_better_than_chance"] is True
    assert round(payload["rank_correlation"], 6) == 0.8
    assert payload["winner"] == "id2" and payload["winner_name"] == "t02"
    assert payload["stopped_within_min_effect"] == [
        {"trial": "id6", "trial_name": "t06", "epoch": 1, "value": 0.698, "winner_value": 0.7}]
    assert payload["stop_metric"] == "task_loss" and payload["min_effect"] == 0.005


def test_too_few_full_budget_trials_and_none_stopped_near_the_winner():
    records = [*FULL[:3], _trial(7, "stopped_early", (0.650,), (1.6,))]
    lines = _section(report_markdown(_outcome(records)))
    assert lines[0] == ("- Rank correlation of task_loss at epoch 1 (ASHA's first rung) with "
                        "the final val_miou: too few full-budget trials (3) to check (an "
                        "interval needs 4).")
    assert lines[1].startswith("- No trial within δ = 0.50 mIoU points of the best candidate, t02, "
                               "was stopped early (each of the 1 stopped trials")


def test_the_confirmed_winner_and_its_delta_come_from_the_confirmation():
    from dejavu_tune.outcome import sequential as seq
    from dejavu_tune.outcome.paired import Paired
    from dejavu_tune.search.confirm import Confirmation, Confirmed

    design = seq.Design(1, (3,), 0.02)  # δ = 0.02: 2.00 points
    low, high = design.interval([0.04, 0.045, 0.05])
    look = seq.Look((0.04, 0.045, 0.05), low, high, seq.GAIN)
    paired = Paired("val_miou", "max", (1, 2, 3), (0.04, 0.045, 0.05), 0.95, (low, high),
                    seq.GAIN)
    winner = Confirmed({"dejavu.loss.gamma": 0.1}, "id1", 0.7, {1: 0.7, 2: 0.7, 3: 0.7}, paired)
    confirmation = Confirmation(seq.Result(design, {"id1": look}, ({"id1": look},), 3, 0),
                                [winner], winner, {})
    # t01 (60.00 at epoch 1) is the winner, not t02: t07 at 65.00 is ahead of it, t06 too
    records = [*FULL, _trial(6, "stopped_early", (0.698,), (1.5,)),
               _trial(7, "stopped_early", (0.650,), (1.6,)),
               _trial(8, "stopped_early", (0.570,), (1.7,))]  # -3.00 points: beyond δ
    o = _outcome(records, confirmation=confirmation, min_effect=None)
    assert o.delta == 0.02
    text = report_markdown(o)
    assert ("- Stopped early within δ = 2.00 mIoU points of the winner, t01 (val_miou where "
            "ASHA stopped them vs t01's at the same epoch, in mIoU points): t06 (epoch 1: "
            "69.80 vs 60.00), t07 (epoch 1: 65.00 vs 60.00).") in text


def test_no_section_without_early_stopping_and_a_note_when_its_metric_is_unknown():
    records = [*FULL, _trial(6, "stopped_early", (0.698,), (1.5,))]
    assert SECTION not in report_markdown(_outcome(records, rung=0))
    assert result_payload(_outcome(records, rung=0), _Config)["early_stopping"] is None
    # ASHA decided on another metric (the records keep its curve), the outcome was not
    # told which: no check on the search metric's curve in its place
    unknown = _outcome(records, stop_metric=None, stop_mode=None)
    assert _section(report_markdown(unknown)) == [
        "- Not checked: ASHA decided on another metric than val_miou, and this summary was "
        "not told which (or which way it is better)."]
    assert result_payload(unknown, _Config)["early_stopping"] is None
    # ASHA on the search metric itself: its curve at the rung (60, 70, 45, 50, 30 ranks
    # t02 t01 t04 t03 t05 first, the finals the same: +1.00)
    own = [_trial(n, "completed", r.curve) for n, r in enumerate(FULL, start=1)]
    lines = _section(report_markdown(_outcome(own, stop_metric=None, stop_mode=None)))
    assert lines[0].startswith("- Rank correlation of val_miou at epoch 1 (ASHA's first rung) "
                               "with the final val_miou over 5 full-budget trials: +1.00 "
                               "(Fisher's z gives no interval at ±1; a ranking this perfect "
                               "with no relation at all: 2/5! = 0.017).")


def test_a_record_keeps_the_stop_metrics_curve_when_asha_decided_on_another_metric():
    result = TrialResult(config={"dejavu.loss.gamma": 0.1},
                         rows=({"training_iteration": 1, "val_miou": 0.5, "task_loss": 1.2},
                               {"training_iteration": 2, "val_miou": 0.6, "task_loss": 1.0}),
                         last={"trial_id": "x", "training_iteration": 2, "val_miou": 0.6})
    record = from_result(result, "search", "val_miou", 2, 0, stop_metric="task_loss")
    assert record.curve == (0.5, 0.6) and record.stop_curve == (1.2, 1.0)
    assert from_result(result, "search", "val_miou", 2, 0, stop_metric="val_miou").stop_curve == ()
    assert from_result(result, "search", "val_miou", 2, 0).stop_curve == ()
