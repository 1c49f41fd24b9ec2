"""The sequential confirmation's rule (``dejavu_tune.outcome.sequential``) and its power
statement (``outcome.power``), on fixed numbers checked by hand."""

import math

import numpy as np
import pytest

from dejavu_tune.outcome import power
from dejavu_tune.outcome import sequential as seq


def test_one_look_is_the_fixed_design_and_the_first_boundary_is_obrien_fleming_shaped():
    assert seq.boundaries((10,), 0.05)[0] == pytest.approx(1.959964, abs=1e-5)
    # Lan-DeMets' O'Brien-Fleming-type spending at information 3/5: z_{0.975} / sqrt(0.6)
    c1, c2 = seq.boundaries((3, 5), 0.05)
    assert c1 == pytest.approx(1.959964 / math.sqrt(0.6), abs=1e-5)
    assert 1.96 < c2 < 2.2  # the last look gives back most of the level


def test_the_boundaries_cross_with_the_level_they_are_computed_for():
    # Brownian paths of 10 unit steps, looked at after 3, 5, 7, 9 and 10 of them
    looks, alpha = (3, 5, 7, 9, 10), 0.05 / 3
    c = np.array(seq.boundaries(looks, alpha))
    steps = np.random.default_rng(0).standard_normal((200_000, 10)).cumsum(axis=1)
    z = np.stack([steps[:, n - 1] / math.sqrt(n) for n in looks], axis=1)
    crossed = (np.abs(z) >= c).any(axis=1).mean()
    # 200,000 paths: the simulated rate's std is 0.00029
    assert crossed == pytest.approx(alpha, abs=0.001)


def test_the_interval_of_three_seeds_uses_t_with_two_degrees_of_freedom():
    d = seq.Design(1, (3, 5), min_effect=0.005)
    # nominal level of c1 = 2.5303: p = Phi(c1) = 0.99430; with 2 degrees of freedom the t
    # quantile is (2p - 1) / sqrt(2 p (1 - p)) = 9.287
    assert d.factor(3) == pytest.approx(9.287, abs=0.005)
    low, high = d.interval([0.04, 0.045, 0.05])  # mean 0.045, sd 0.005
    half = 9.287 * 0.005 / math.sqrt(3)
    assert (low, high) == (pytest.approx(0.045 - half, abs=2e-5),
                           pytest.approx(0.045 + half, abs=2e-5))


def test_a_clear_gain_stops_at_the_first_look():
    d = seq.Design(1, (3, 5), min_effect=0.005)
    looks = seq.judge(d, {"a": [0.04, 0.045, 0.05]})
    assert looks["a"].decision == seq.GAIN and looks["a"].low > 0


def test_a_clear_loss_stops_as_a_loss():
    d = seq.Design(1, (3, 5), min_effect=0.005)
    assert seq.judge(d, {"a": [-0.04, -0.045, -0.05]})["a"].decision == seq.LOSS


def test_a_small_spread_around_zero_goes_on_then_ends_no_gain_of_delta():
    d = seq.Design(1, (3, 5), min_effect=0.005)
    first = seq.judge(d, {"a": [0.001, -0.001, 0.0]})["a"]
    # sd 0.001: half-width 9.287 * 0.001 / sqrt(3) = 0.00536, above δ: not decided
    assert first.decision == seq.CONTINUE and first.high == pytest.approx(0.00536, abs=1e-5)
    second = seq.judge(d, {"a": [0.001, -0.001, 0.0, 0.0005, -0.0005]})["a"]
    # mean 0, sd sqrt(2.5e-6 / 4) = 0.00079; the interval [-0.0010, +0.0010] contains 0
    # (no gain, no loss) and lies below δ: a conclusive negative
    assert second.decision == seq.NO_GAIN
    assert second.low < 0 < second.high < 0.005


def test_seeds_run_out_before_a_wide_spread_decides():
    d = seq.Design(1, (3, 5), min_effect=0.005)
    spread = [0.02, -0.01, 0.03, -0.02, 0.01]  # mean 0.006, sd 0.0207
    assert seq.judge(d, {"a": spread})["a"].decision == seq.INCONCLUSIVE


def test_the_seeds_a_decision_would_take():
    # 2 t(0.975, n - 1) s / sqrt(n) < δ with s = δ = 0.01: t/sqrt(n) is 0.514 at n = 17
    # and 0.497 at n = 18
    assert seq.seeds_to_decide(seq.Design(1, (3,), 0.01), 0.01) == 18
    assert seq.seeds_to_decide(seq.Design(1, (3,), 0.01), math.nan) is None


def test_a_fixed_sequence_of_deltas_gives_its_known_stop_verdict_and_cost():
    d = seq.Design(3, seq.looks_for(3, 7, 2), min_effect=0.005)
    assert d.looks == (3, 5, 7)
    truth = {"a": [0.03, 0.031, 0.029, 0.03, 0.031, 0.03, 0.029],
             "b": [0.01, -0.01, 0.0, 0.0, 0.0, 0.0, 0.0],
             "c": [0.001, 0.0, -0.001, 0.0, 0.0, 0.0, 0.0]}
    calls = []

    def measure(k, names, seeds):
        calls.append((k, sorted(names), list(seeds)))
        return {n: {s: truth[n][s] for s in seeds} for n in names}

    result = seq.confirm(d, ["a", "b", "c"], range(7), measure)
    # look 1: all three on seeds 0-2; only the best mean ("a") goes on; at 5 seeds its
    # interval is above 0
    assert calls == [(0, ["a", "b", "c"], [0, 1, 2]), (1, ["a"], [3, 4])]
    assert [result.final[n].decision for n in "abc"] == [seq.GAIN, seq.DROPPED, seq.DROPPED]
    assert result.winner() == "a" and seq.overall(result) == seq.GAIN
    assert (result.candidate_runs, result.baseline_runs, result.runs) == (11, 2, 13)


def test_the_overall_verdict_reads_the_candidates_that_were_judged():
    d = seq.Design(2, (3,), 0.005)

    def result(*decisions):
        final = {str(i): seq.Look((0.0, 0.0), 0.0, 0.0, x) for i, x in enumerate(decisions)}
        return seq.Result(d, final, (final,), 0, 0)

    assert seq.overall(result(seq.NO_GAIN, seq.DROPPED)) == seq.NO_GAIN
    assert seq.overall(result(seq.LOSS, seq.DROPPED)) == seq.LOSS
    assert seq.overall(result(seq.INCONCLUSIVE, seq.LOSS)) == seq.INCONCLUSIVE
    assert seq.overall(result(seq.LOSS, seq.GAIN)) == seq.GAIN
    assert seq.overall(result()) == seq.INCONCLUSIVE


def test_looks_always_end_at_max_seeds_and_refuse_a_first_look_without_a_spread():
    assert seq.looks_for(3, 8, 2) == (3, 5, 7, 8)
    assert seq.looks_for(3, 3, 2) == (3,)
    with pytest.raises(ValueError, match="2 or more"):
        seq.looks_for(1, 8, 2)


def test_the_power_statement_of_one_look_matches_the_t_test():
    # one look of 10 paired seeds at 5%: 80% power at (t_.975,9 + t_.8,9) sd / sqrt(10)
    # = (2.262 + 0.883) / 3.162 = 0.995 sd (the normal approximation to the non-central t)
    d = seq.Design(1, (10,), min_effect=0.005)
    plan = power.plan(d, 0.01, paired=True, reps=2000)
    assert plan.detectable == pytest.approx(0.995 * 0.01, rel=0.08)
    assert plan.max_runs == 10


def test_the_most_runs_count_the_kept_candidate_and_the_later_baselines():
    d = seq.Design(3, (3, 5, 7, 8), 0.005)
    assert power.max_runs(d) == 3 * 3 + 5 + 5  # 9 on the first look, then 1 + 1 per seed
    assert power.pooled_sd([(1.0, 3.0), (2.0, 2.0, 2.0)]) == pytest.approx(math.sqrt(2 / 3))
