"""``search.constraints``: hard limits on what a trial may cost."""

import math
from types import SimpleNamespace

import pytest

from dejavu_tune.outcome.limits import Limit, OptunaConstraints, broken, parse


def test_limits_parse_and_say_by_how_much_they_are_broken():
    upper, lower = parse(["step_time_ratio <= 1.10", " val_miou>=0.5 "])
    assert upper == Limit("step_time_ratio", "<=", 1.10)
    assert lower == Limit("val_miou", ">=", 0.5)
    # Optuna's convention: <= 0 feasible
    assert upper.excess(1.0) == pytest.approx(-0.10) and upper.excess(1.30) == pytest.approx(0.20)
    assert lower.excess(0.6) == pytest.approx(-0.1) and lower.holds(0.5)
    assert upper.excess(None) == math.inf and not upper.holds(math.nan)
    assert parse(None) == () and parse([]) == ()


@pytest.mark.parametrize("raw, where", [
    ("step_time_ratio <= 1.1", "expected a list"),  # one string, not a list
    (["step_time_ratio < 1.1"], "[0] 'step_time_ratio < 1.1'"),
    (["step_time_ratio <= fast"], "[0]"),
    (["<= 1"], "[0]"),
    (["mem_ratio <= inf"], "[0]"),
    ([3], "[0] 3"),
])
def test_a_malformed_limit_names_itself_and_the_form(raw, where):
    with pytest.raises(ValueError, match="METRIC <= NUMBER") as err:
        parse(raw)
    assert where in str(err.value)


def test_broken_lists_each_broken_limit_with_its_value():
    limits = parse(["step_time_ratio <= 1.10", "mem_ratio <= 1.05"])
    assert broken(limits, {"step_time_ratio": 1.25, "mem_ratio": 1.0}) == [
        "step_time_ratio <= 1.1 (1.25)"]
    assert broken(limits, {"mem_ratio": 1.0}) == ["step_time_ratio <= 1.1 (not reported)"]
    assert broken(limits, {"step_time_ratio": 1.1, "mem_ratio": 1.05}) == []


def test_optuna_reads_the_values_from_the_trials_user_attributes():
    constraints = OptunaConstraints(parse(["step_time_ratio <= 1.10", "mem_ratio <= 1.05"]))
    trial = SimpleNamespace(user_attrs={"step_time_ratio": 1.5, "mem_ratio": 1.0})
    assert constraints(trial) == pytest.approx([0.4, -0.05])
    # never reported: infeasible, but a finite number Optuna can add up
    assert constraints(SimpleNamespace(user_attrs={})) == [1e12, 1e12]
