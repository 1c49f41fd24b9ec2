"""One number formatter (``dejavu_tune.outcome.numbers``) and the paired cells built on it."""

import math

from dejavu_tune.outcome.numbers import interval, num, spread
from dejavu_tune.outcome.paired import Paired


def test_rounding_scale_sign_and_no_negative_zero():
    assert num(0.91234) == "0.9123"
    assert num(0.91236, digits=2) == "0.91"
    assert num(0.0123, digits=1, scale=100, sign=True) == "+1.2"
    # -0.00004 rounds to zero: written as zero, not as a loss
    assert num(-0.00004, sign=True) == "+0.0000" and num(-0.00004) == "0.0000"
    assert num(-0.00006, sign=True) == "-0.0001"


def test_what_has_no_digits_is_written_as_missing():
    assert num(None) == "" and num(math.nan, missing="n/a") == "n/a"
    assert num(math.inf, missing="?") == "?"


def test_a_mean_with_and_without_its_spread():
    assert spread(0.012, 0.0034) == "+0.0120 ± 0.0034"
    assert spread(0.9, 0.01, digits=1, scale=100, sign=False) == "90.0 ± 1.0"
    assert spread(0.012, math.nan) == "+0.0120" and spread(0.012, None) == "+0.0120"
    assert spread(math.nan, math.nan) == "n/a"


def test_an_interval_and_one_without_ends():
    assert interval(-0.00211, 0.013) == "[-0.0021, +0.0130]"
    assert interval(-0.5, 1.25, digits=1, scale=10) == "[-5.0, +12.5]"
    assert interval(-math.inf, math.inf) is None


def test_a_paired_result_reads_the_same_in_every_table():
    # deltas 0.05, 0.06, 0.07: mean 0.06, std 0.01; t(0.975, 2) = 4.3027 -> ±0.0248
    p = Paired("val_miou", "max", (0, 1, 2), (0.05, 0.06, 0.07))
    assert p.cell() == "+0.0600 ± 0.0100"
    assert p.interval_text() == "[+0.0352, +0.0848]"
    assert p.text().startswith("Δ +0.0600 ± 0.0100 (95% CI [+0.0352, +0.0848], 3 seeds)")
    one = Paired("val_miou", "max", (0,), (-0.00001,))
    assert one.cell() == "+0.0000" and one.interval_text() == "no CI from one seed"
