"""One notion of which way a metric is better (``dejavu_tune.outcome.direction``)."""

import pytest

from dejavu_tune.outcome import direction


def test_the_sign_and_the_worst_value_either_way():
    assert direction.sign("max") == 1 and direction.sign("min") == -1
    assert direction.worst([0.91, 0.84, 0.93], "max") == 0.84  # mIoU: the lowest
    assert direction.worst([0.12, 0.19, 0.10], "min") == 0.19  # abs rel: the highest


def test_a_mode_that_is_neither_is_named():
    with pytest.raises(ValueError, match=r"mode 'maximize' is not allowed: expected one of "
                                         r"\('max', 'min'\)"):
        direction.sign("maximize")
