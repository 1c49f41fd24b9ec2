from dejavu_tune.search.baseline_tuning import describe
from dejavu_tune.search.trial_records import TrialRecord


def test_the_tuning_line_reads_in_the_metrics_unit():
    def record(lr, final, status="completed"):
        return TrialRecord(f"t{lr}", "tuning", {"optim.lr": lr}, 0, status, None,
                           (0.5, final) if final is not None else (0.5,), {})

    runs = [record(0.01, 0.9351), record(0.1, 0.9427), record(0.3, None, "failed")]
    text = describe(runs, runs[1], "val_miou", 0.12)
    assert text == ("optim.lr tuned on 3 baseline trials (DejaVu off, seed 0, full budget; 12% "
                    "of the search's trial-epochs): optim.lr=0.01 → 93.51, optim.lr=0.1 → "
                    "94.27, optim.lr=0.3 → failed; DejaVu searched and compared at "
                    "optim.lr=0.1 (val_miou 94.27 mIoU points).")
