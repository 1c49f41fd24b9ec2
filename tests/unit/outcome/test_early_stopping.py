"""Did ASHA's early decisions hold: the rank correlation, its interval, the warning and the
trials stopped within δ of the winner, against values worked by hand."""

import math

import pytest

from dejavu_tune.outcome.early_stopping import Trial, check, fisher_interval

Z_975 = 1.959963984540054  # the normal's 97.5th percentile


def _full(tid, loss, final):
    """A full-budget trial: the stop metric ``loss`` at the rung, ``final`` at the end."""
    return Trial(tid, (final - 0.1, final), loss, full=True, stopped_early=False)


def _stopped(tid, curve):
    return Trial(tid, tuple(curve), None, full=False, stopped_early=True)


# losses rank the trials a, b, c, d, e (lower is better); the finals rank them b, a, d, c, e
# (higher is better): the goodness ranks 1 2 3 4 5 against 2 1 4 3 5, d = -1 1 -1 1 0,
# sum d² = 4, rho = 1 - 6 · 4 / (5 · (25 - 1)) = 1 - 24/120 = 0.8
FIVE = [_full("a", 1.0, 0.70), _full("b", 1.1, 0.80), _full("c", 1.2, 0.50),
        _full("d", 1.3, 0.60), _full("e", 1.4, 0.40)]


def _check(trials, stop_mode="min", mode="max", min_effect=0.005, winner="b", rung=1):
    return check(trials, rung, "task_loss", stop_mode, "val_miou", mode, min_effect, winner)


def test_the_correlation_is_sign_adjusted_so_plus_one_means_the_rung_agreed():
    c = _check(FIVE)
    # raw Spearman of loss against mIoU is -0.8: a lower loss went with a higher mIoU;
    # a minimised loss against a maximised mIoU flips it to +0.8, agreement
    assert c.n == 5 and c.rho == pytest.approx(0.8)
    # both maximised (a metric ASHA maximises): the same numbers disagree, -0.8
    assert _check(FIVE, stop_mode="max").rho == pytest.approx(-0.8)
    # both minimised: disagreement again
    assert _check(FIVE, mode="min").rho == pytest.approx(-0.8)
    # the search metric itself at the rung (max against max): no flip
    same = [Trial(t.trial_id, t.curve, -t.stop_value, True, False) for t in FIVE]
    assert check(same, 1, "val_miou", "max", "val_miou", "max", 0.005, "b").rho == (
        pytest.approx(0.8))


def test_the_interval_is_fisher_z_with_the_fieller_hartley_pearson_error():
    # n = 5, r = 0.8: z = atanh(0.8) = ln(9)/2 = 1.098612; se = sqrt(1.06 / 2) = 0.728011;
    # half-width 1.959964 · 0.728011 = 1.426875; z from -0.328263 to 2.525488; through
    # tanh: -0.316959 to 0.987275. It includes 0: no better than chance at 5 trials
    low, high = fisher_interval(0.8, 5)
    assert (low, high) == pytest.approx((-0.316959, 0.987275), abs=1e-6)
    assert math.sqrt(1.06 / 2) * Z_975 == pytest.approx(1.426875, abs=1e-6)
    c = _check(FIVE)
    assert c.ci == pytest.approx((-0.316959, 0.987275), abs=1e-6)
    assert c.enough and c.chance
    assert c.to_dict()["no_better_than_chance"] is True
    assert "Fieller, Hartley & Pearson (1957)" in c.to_dict()["method"]


def test_a_rung_that_ranks_six_trials_well_is_better_than_chance():
    # six trials, one adjacent swap: sum d² = 2, rho = 1 - 12/210 = 0.942857;
    # z = atanh(0.942857) = 1.763180, se = sqrt(1.06 / 3) = 0.594418, half-width 1.165039:
    # z from 0.598141 to 2.928219, tanh: 0.535726 to 0.994293, above 0
    six = [_full(str(i), 1.0 + i / 10, final) for i, final in
           enumerate((0.80, 0.70, 0.60, 0.50, 0.35, 0.40))]
    c = _check(six, winner="0")
    assert c.rho == pytest.approx(0.942857, abs=1e-6)
    assert c.ci == pytest.approx((0.535726, 0.994293), abs=1e-6)
    assert not c.chance
    # the same ranking read against the final one (a swapped mode): estimate <= 0 warns,
    # though its interval (-0.994, -0.536) excludes 0
    against = _check(six, stop_mode="max", winner="0")
    assert against.rho == pytest.approx(-0.942857, abs=1e-6) and against.ci[1] < 0
    assert against.chance


def test_fewer_than_four_full_budget_trials_give_no_interval_and_no_warning():
    c = _check(FIVE[:3])
    # a, b, c: goodness 1 2 3 against 2 1 3, sum d² = 2, rho = 1 - 12/24 = 0.5
    assert c.n == 3 and c.rho == pytest.approx(0.5)
    assert c.ci is None and not c.enough and not c.chance
    assert fisher_interval(0.5, 3) is None
    # trials ASHA stopped, or without the stop metric at the rung, are not counted
    c = _check([*FIVE[:3], _stopped("s", (0.6,)), Trial("x", (0.5, 0.9), None, True, False),
                Trial("y", (0.5, 0.9), math.nan, True, False)])
    assert c.n == 3 and c.ci is None
    assert _check([]).n == 0 and math.isnan(_check([]).rho)


def test_perfect_agreement_has_no_fisher_interval_and_is_judged_by_its_exact_chance():
    # |rho| = 1: atanh is infinite. The chance of a ranking this perfect (either way)
    # with no relation is 2/n!: 2/24 = 0.083 at 4 trials (chance), 2/120 = 0.017 at 5
    four = [_full(str(i), 1.0 + i, 0.9 - i / 10) for i in range(4)]
    c = _check(four, winner="0")
    assert c.rho == pytest.approx(1.0) and c.ci is None
    assert c.exact_p == pytest.approx(2 / 24) and c.chance
    five = [_full(str(i), 1.0 + i, 0.9 - i / 10) for i in range(5)]
    c = _check(five, winner="0")
    assert c.exact_p == pytest.approx(2 / 120) and not c.chance
    # tied stop values rank nothing: no estimate, a warning
    tied = [_full(str(i), 1.0, 0.9 - i / 10) for i in range(5)]
    c = _check(tied, winner="0")
    assert math.isnan(c.rho) and c.chance and c.to_dict()["rank_correlation"] is None


def test_trials_stopped_within_delta_of_the_winner_when_higher_is_better():
    # the winner's val_miou per epoch; δ = 0.005
    winner = Trial("w", (0.60, 0.70, 0.80, 0.90), 1.0, True, False)
    trials = [winner,
              _stopped("near", (0.58, 0.696)),  # epoch 2: 0.696 - 0.700 = -0.004 >= -0.005
              _stopped("edge", (0.58, 0.695)),  # -0.005 exactly (-0.0050000000000000044)
              _stopped("far", (0.55, 0.69)),  # -0.010: worse than the winner - δ
              _stopped("ahead", (0.605,)),  # epoch 1: above the winner's 0.60
              _stopped("later", (0.5, 0.6, 0.7))]  # epoch 3: 0.70 vs 0.80
    c = _check(trials, winner="w")
    assert [(n.trial_id, n.epoch, n.value, n.winner_value) for n in c.near] == [
        ("ahead", 1, 0.605, 0.60), ("near", 2, 0.696, 0.70), ("edge", 2, 0.695, 0.70)]
    assert c.stopped == 5 and c.winner == "w"
    rows = c.to_dict()["stopped_within_min_effect"]
    assert rows[0] == {"trial": "ahead", "epoch": 1, "value": 0.605, "winner_value": 0.60}
    # without δ only a trial at least as good as the winner counts
    assert [n.trial_id for n in _check(trials, min_effect=None, winner="w").near] == ["ahead"]


def test_trials_stopped_within_delta_of_the_winner_when_lower_is_better():
    # an error metric (val_abs_rel, minimised); δ = 0.01
    winner = Trial("w", (0.30, 0.20, 0.15), 1.0, True, False)
    trials = [winner,
              _stopped("near", (0.31, 0.209)),  # epoch 2: 0.209 - 0.200 = +0.009 <= 0.01
              _stopped("far", (0.31, 0.215)),  # +0.015: worse than the winner + δ
              _stopped("ahead", (0.25,))]  # epoch 1: below (better than) 0.30
    c = check(trials, 1, "task_loss", "min", "val_abs_rel", "min", 0.01, "w")
    assert [n.trial_id for n in c.near] == ["ahead", "near"]
    # the same numbers read as higher-is-better: only "far" (0.215 > 0.20) and "near"
    # (0.209) are at least the winner - δ; "ahead" (0.25 vs 0.30) is 0.05 worse
    c = check(trials, 1, "task_loss", "min", "val_abs_rel", "max", 0.01, "w")
    assert [n.trial_id for n in c.near] == ["far", "near"]


def test_no_check_without_early_stopping_and_no_comparison_without_a_winner():
    assert _check(FIVE, rung=0) is None
    c = _check([*FIVE, _stopped("s", (0.9,))], winner=None)
    assert c.winner is None and c.near == () and c.n == 5
    assert _check([*FIVE, _stopped("s", (0.9,))], winner="gone").winner is None
