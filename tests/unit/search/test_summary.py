"""The printed summary of a search: its ranked table, cut for the terminal."""

from dejavu_tune.search.summary import Outcome, report_markdown
from dejavu_tune.search.trial_records import TrialRecord


def _trial(n: int, status: str, curve: tuple[float, ...]) -> TrialRecord:
    return TrialRecord(trial_id=f"id{n}", phase="search", config={"dejavu.loss.gamma": n / 10},
                       seed=0, status=status, reason="boom" if status == "failed" else None,
                       curve=curve, last={}, trial_dir=f"/r/search/t{n:02d}")


def test_the_terminal_shows_the_top_trials_and_counts_the_rest():
    records = [_trial(1, "completed", (0.5, 0.6)), _trial(2, "completed", (0.5, 0.7)),
               _trial(3, "stopped_early", (0.4,)), _trial(4, "stopped_early", (0.3,)),
               _trial(5, "failed", ())]
    outcome = Outcome(metric="val_miou", mode="max", epochs=2, records=records,
                      replicate_seeds=[])
    full = report_markdown(outcome)
    rows = [line for line in full.splitlines() if line.startswith("| ") and "trial" not in line]
    # best full-budget trial first, then stopped ones unranked, failed last
    assert [row.split("|")[2].strip() for row in rows] == ["t02", "t01", "t03", "t04", "t05"]
    assert [row.split("|")[1].strip() for row in rows] == ["1", "2", "–", "–", "–"]
    short = report_markdown(outcome, top=2)
    assert "| t02 |" in short and "| t01 |" in short and "| t03 |" not in short
    assert ("… and 3 more trials (1 failed, 2 stopped early): every trial is in the "
            "search's `summary.md`.") in short
    assert "more trials" not in full


def test_runs_out_of_memory_are_counted_apart_from_other_failures():
    records = [_trial(1, "completed", (0.5, 0.6)), _trial(2, "out_of_memory", (0.4,)),
               _trial(3, "out_of_memory", ()), _trial(4, "failed", ())]
    outcome = Outcome(metric="val_miou", mode="max", epochs=2, records=records,
                      replicate_seeds=[])
    text = report_markdown(outcome)
    assert ("- Out of memory: 2 of 4 runs (t02, t03; 1 other failure), status "
            "`out_of_memory`") in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "rank" not in line]
    # ranked below the full-budget trial, among the failures
    assert [row.split("|")[2].strip() for row in rows] == ["t01", "t02", "t03", "t04"]
    assert "Out of memory" not in report_markdown(Outcome(
        metric="val_miou", mode="max", epochs=2, records=records[:1], replicate_seeds=[]))


def _confirmation(decisions, deltas):
    """Two candidates (id1, id2) judged as ``decisions`` on the paired ``deltas``."""
    from dejavu_tune.outcome import sequential as seq
    from dejavu_tune.outcome.paired import Paired
    from dejavu_tune.search.confirm import Confirmation, Confirmed

    design = seq.Design(2, (3, 5), 0.005)
    looks, confirmed = {}, []
    for n, (decision, values) in enumerate(zip(decisions, deltas, strict=True), start=1):
        low, high = design.interval(values)
        looks[f"id{n}"] = seq.Look(tuple(values), low, high, decision)
        paired = Paired("val_miou", "max", tuple(range(1, len(values) + 1)), tuple(values),
                        0.95, (low, high), decision)
        confirmed.append(Confirmed({"dejavu.loss.gamma": n / 10}, f"id{n}", 0.7,
                                   {s: 0.7 for s in paired.seeds}, paired))
    result = seq.Result(design, looks, (looks,), 8, 2)
    best = result.winner()
    return Confirmation(result, confirmed,
                        next((c for c in confirmed if c.search_trial == best), None), {})


def _outcome(confirmation):
    records = [_trial(1, "completed", (0.5, 0.7)), _trial(2, "completed", (0.5, 0.6))]
    return Outcome(metric="val_miou", mode="max", epochs=2, records=records,
                   replicate_seeds=[1, 2, 3], confirmation=confirmation)


def test_an_inconclusive_verdict_says_how_many_seeds_a_decision_would_take():
    from dejavu_tune.outcome import sequential as seq
    from dejavu_tune.search.summary import headline, result_payload

    wide = [0.02, -0.01, 0.03, -0.02, 0.01]  # sd 0.0207
    outcome = _outcome(_confirmation([seq.INCONCLUSIVE, seq.DROPPED], [wide, [0.0, 0.001, 0.0]]))
    assert outcome.verdict == "inconclusive" and outcome.winner is None
    need = seq.seeds_to_decide(outcome.confirmation.result.design, 0.020736)
    assert need is not None and need > 5
    lines = headline(outcome)
    assert lines[0].startswith("inconclusive: the seed budget (search.max_seeds = 5) ran out")
    assert f"about {need} paired seeds would decide" in lines[0]
    assert "held-out val_miou Δ +0.60 ± 2.07 mIoU points" in lines[1]
    # nothing is recommended; the best non-inert trial is named, unconfirmed
    payload = result_payload(outcome, lambda sampled: _Config(sampled))
    assert payload["recommended"] is False and payload["config"] is None
    assert payload["unconfirmed"]["trial"] == "id1"
    assert payload["design"]["looks"] == [3, 5] and payload["design"]["runs"] == 10


def test_a_gain_names_the_winner_and_the_forest_plot_shows_every_candidate():
    from dejavu_tune.outcome import sequential as seq
    from dejavu_tune.search import forest_plot
    from dejavu_tune.search.summary import result_payload

    c = _confirmation([seq.GAIN, seq.DROPPED], [[0.04, 0.045, 0.05], [0.01, -0.3, 0.2]])
    outcome = _outcome(c)
    assert outcome.verdict == "significant gain" and outcome.winner.search_trial == "id1"
    payload = result_payload(outcome, lambda sampled: _Config(sampled))
    assert payload["recommended"] is True and payload["config"] == {"dejavu.loss.gamma": 0.1}
    text = report_markdown(outcome, forest_image="![forest plot](forest_plot.png)")
    assert text.splitlines()[:2] == ["## Significant gain", ""]
    assert "![forest plot](forest_plot.png)" in text.split("## How sure")[0]
    figure = forest_plot.plot(c, "val_miou", 0.01)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["loss.gamma=0.2", "loss.gamma=0.1"]
    low, high = ax.get_xlim()  # the winner's whole interval, the dropped one's seeds
    winner = c.confirmed[0].paired.ci
    assert low < -0.3 and winner[1] < high and low < winner[0]
    assert "significant gain" in ax.get_title()


class _Config:
    def __init__(self, sampled):
        self.sampled = sampled

    def to_dict(self):
        return dict(self.sampled)


def test_search_gains_are_measured_against_a_baseline_that_carries_no_selection():
    tuned = TrialRecord(trial_id="tune", phase="tuning", config={"dejavu.enabled": False},
                        seed=0, status="completed", reason=None, curve=(0.6, 0.9), last={})

    def replicate(seed, curve):
        return TrialRecord(trial_id=f"b{seed}", phase="search",
                           config={"dejavu.enabled": False, "seed": seed}, seed=seed,
                           status="completed", reason=None, curve=curve, last={})

    records = [_trial(1, "completed", (0.5, 0.8)), replicate(1, (0.5, 0.7)),
               replicate(2, (0.6, 0.8))]
    outcome = Outcome(metric="val_miou", mode="max", epochs=2, records=records,
                      replicate_seeds=[1, 2], reference=tuned)
    text, curve = outcome.gain_reference()
    # the replicates' mean per epoch, not the tuning winner (0.9 at epoch 2, selected)
    assert curve == (0.55, 0.75) and "seeds 1, 2" in text
    assert "| t01 | completed | 2 | 80.00 | +5.00 |" in report_markdown(outcome)
    # without tuning the search's own seed-0 baseline is paired by seed
    own = replicate(0, (0.4, 0.7))
    outcome = Outcome(metric="val_miou", mode="max", epochs=2, records=[*records, own],
                      replicate_seeds=[1, 2], reference=own)
    assert outcome.gain_reference() == ("the baseline on the same seed (0)", (0.4, 0.7))


def test_with_every_trial_inert_the_best_is_named_unconfirmed_and_marked_inert():
    from dataclasses import replace

    from dejavu_tune.search.summary import result_payload

    inert = {"crm_reliance": -0.1, "regen_grad_ratio": 0.5}  # its CRM ignores the prediction
    records = [replace(_trial(1, "completed", (0.5, 0.7)), last=inert),
               replace(_trial(2, "completed", (0.5, 0.8)), last=inert)]
    outcome = Outcome(metric="val_miou", mode="max", epochs=2, records=records,
                      replicate_seeds=[])
    payload = result_payload(outcome, lambda sampled: _Config(sampled))
    assert payload["verdict"] == "not confirmed" and payload["config"] is None
    assert payload["trial_name"] == "t02"
    assert payload["unconfirmed"] == {"trial": "id2", "trial_name": "t02", "val_miou": 0.8, "inert": True,
                                      "config": {"dejavu.loss.gamma": 0.2}}


def test_the_ranked_trials_say_why_asha_stopped_each_stopped_one_in_points():
    from dejavu_tune.search.summary import Outcome, report_markdown
    from dejavu_tune.search.trial_records import TrialRecord

    def record(trial_id, curve, status, baseline=False):
        config = {"dejavu.enabled": False} if baseline else {"dejavu.loss.gamma": 0.1}
        return TrialRecord(trial_id, "search", config, 0, status, None, curve, {})

    base = record("b", (0.40, 0.50), "completed", baseline=True)
    outcome = Outcome("val_miou", "max", 2, [base, record("s", (0.385,), "stopped_early")],
                      replicate_seeds=[], reference=base,
                      stops={"s": "ASHA at epoch 1: task_loss 1.7, above the cut-off 1.6"})
    text = report_markdown(outcome)
    assert "| – | s | stopped_early | 1 | 38.50 | -1.50 |" in text
    assert "- s: ASHA at epoch 1: task_loss 1.7, above the cut-off 1.6" in text
    assert "- Units: val_miou and its Δs in mIoU points (val_miou × 100;" in text
