"""Paired differences, their t interval and the verdict, against values worked by hand."""

import math

import pytest

from dejavu_tune.outcome.paired import GAIN, LOSS, WITHIN_NOISE, compare, noise_floor, spearman

T_975_2 = 4.302652729911275  # Student's t, 97.5th percentile, 2 degrees of freedom


def test_interval_by_hand_within_noise():
    # deltas 0.01, 0.02, 0.03: mean 0.02, sample std 0.01, half-width t * 0.01 / sqrt(3)
    p = compare({1: 0.61, 2: 0.72, 3: 0.83}, {1: 0.60, 2: 0.70, 3: 0.80}, "val_miou", "max")
    assert p.seeds == (1, 2, 3) and p.deltas == pytest.approx((0.01, 0.02, 0.03))
    assert p.mean == pytest.approx(0.02) and p.std == pytest.approx(0.01)
    half = T_975_2 * 0.01 / math.sqrt(3)
    assert p.ci == pytest.approx((0.02 - half, 0.02 + half))
    assert p.ci[0] < 0 < p.ci[1] and p.verdict == WITHIN_NOISE


def test_a_consistent_gain_is_significant_and_its_sign_follows_the_mode():
    base = {1: 0.60, 2: 0.70, 3: 0.80}
    better = {1: 0.65, 2: 0.76, 3: 0.87}  # deltas 0.05, 0.06, 0.07
    half = T_975_2 * 0.01 / math.sqrt(3)
    assert compare(better, base, "val_miou", "max").ci == pytest.approx((0.06 - half,
                                                                           0.06 + half))
    assert compare(better, base, "val_miou", "max").verdict == GAIN
    # for an error metric (lower is better) the same differences are a significant loss
    assert compare(better, base, "val_abs_rel", "min").verdict == LOSS
    assert compare(base, better, "val_abs_rel", "min").verdict == GAIN


def test_only_shared_seeds_are_paired_and_one_seed_is_never_significant():
    p = compare({1: 0.9, 2: 0.95}, {2: 0.5, 3: 0.4}, "m", "max")
    assert p.seeds == (2,) and p.deltas == pytest.approx((0.45,))
    assert math.isnan(p.std) and p.ci == (-math.inf, math.inf) and p.verdict == WITHIN_NOISE
    assert "no CI from one seed" in p.text()


def test_text_and_dict_carry_the_numbers():
    p = compare({1: 0.65, 2: 0.76, 3: 0.87}, {1: 0.60, 2: 0.70, 3: 0.80}, "val_miou", "max")
    assert p.text(scale=100, digits=1).startswith("Δ +6.0 ± 1.0 (95% CI [+3.5, +8.5], 3 seeds)")
    d = p.to_dict()
    assert d["verdict"] == GAIN and d["seeds"] == [1, 2, 3]
    assert d["mean"] == pytest.approx(0.06) and d["ci_low"] == pytest.approx(p.ci[0])


def test_noise_floor_and_rank_correlation_by_hand():
    assert noise_floor([0.6, 0.7, 0.8]) == pytest.approx(0.1)
    assert math.isnan(noise_floor([0.6])) and math.isnan(noise_floor([0.6, math.nan]))
    # ranks (1,2,3,4) vs (1,3,2,4): d^2 sums to 2, rho = 1 - 6*2/(4*15) = 0.8
    assert spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    assert math.isnan(spearman([1, 2], [1, 2]))
