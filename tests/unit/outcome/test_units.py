from dejavu_tune.outcome.power import plan
from dejavu_tune.outcome.sequential import Design
from dejavu_tune.outcome.units import AS_LOGGED, unit_of


def test_segmentation_reads_in_miou_points_whatever_the_split_prefix():
    for metric in ("val_miou", "heldout_miou", "baseline_val_miou", "best_single_seed_val_miou"):
        unit = unit_of(metric)
        assert (unit.name, unit.scale, unit.digits, unit.key) == ("mIoU points", 100.0, 2, "pts")
    u = unit_of("val_miou")
    assert u.value(0.4746332) == "47.46"
    assert u.delta(0.018) == "+1.80"
    assert u.delta(2.3e-07) == "+0.00"  # not "2.2545…" cut from 2.2545e-07
    assert u.spread(0.012, 0.0034) == "+1.20 ± 0.34"
    assert u.interval(-0.0079, 0.0319) == "[-0.79, +3.19]"
    assert u.display("final_gain") == "final_gain_pts" and u.rounded(0.0123456) == 1.23
    assert u.suffix == " (mIoU points)"


def test_errors_and_angles_keep_their_own_units_and_unknown_metrics_read_as_logged():
    assert unit_of("val_normal_mean").name == "degrees"
    assert unit_of("val_normal_mean").value(12.345) == "12.35"
    assert unit_of("val_abs_rel").scale == 1.0 and unit_of("val_abs_rel").value(0.1234) == "0.1234"
    assert unit_of("val_delta1").value(0.8812) == "88.12"
    assert unit_of("my_score") is AS_LOGGED and AS_LOGGED.suffix == ""
    assert AS_LOGGED.display("final_gain") == "final_gain_rounded"


def test_the_power_statement_reads_in_the_metrics_unit():
    design = Design(candidates=1, looks=(3, 5), alpha=0.05, min_effect=0.005)
    text = plan(design, 0.004, reps=200).text("given", unit_of("val_miou"))
    assert "δ = 0.50; at a noise floor of 0.40 (given)" in text
    assert text.endswith("(values in mIoU points)")
