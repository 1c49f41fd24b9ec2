"""The printed summary of a search: its ranked table, cut for the terminal."""

from dejavu_tune.search.summary import Outcome, report_markdown
from dejavu_tune.search.trial_records import TrialRecord


def _trial(n: int, status: str, curve: tuple[float, ...]) -> TrialRecord:
    return TrialRecord(trial_id=f"id{n}", phase="search", config={"dejavu.loss.gamma": n / 10},
                       seed=0, status=status, reason="boom" if status == "failed" else None,
                       curve=curve, last={}, trial_dir=f"dejavu_trainable_id{n}_{n}_x")


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
