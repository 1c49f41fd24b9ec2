import math

import pytest
import torch

from dejavu_tune.tasks.geometry_metrics import DepthMeter, NormalsMeter, depth_metrics


def _depth(values):
    return torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1)


def test_depth_metrics_by_hand():
    # pred 2 vs target 1: |err|/t = 1, err^2/t = 1, ratio 2 (not < 1.25, 1.5625, 1.953);
    # pred 4 vs target 4: exact. Invalid target 0 is skipped.
    got = depth_metrics(_depth([2.0, 4.0, 3.0]), _depth([1.0, 4.0, 0.0]))
    assert got == pytest.approx({"abs_rel": 0.5, "sq_rel": 0.5, "rmse": math.sqrt(0.5),
                                 "rmse_log": math.sqrt(math.log(2) ** 2 / 2), "delta1": 0.5,
                                 "delta2": 0.5, "delta3": 0.5})


def test_depth_prediction_clamped_to_range():
    # 200 m is clamped to max_depth 80 before comparison with the 80 m target
    assert depth_metrics(_depth([200.0]), _depth([80.0]))["abs_rel"] == 0.0
    # 1.2 vs 1: ratio 1.2 < 1.25
    assert depth_metrics(_depth([1.2]), _depth([1.0]))["delta1"] == 1.0


def test_depth_meter_does_not_depend_on_batching():
    pred, target = torch.rand(4, 1, 5, 5) * 9 + 0.5, torch.rand(4, 1, 5, 5) * 9 + 0.5
    target[0, 0, 0] = 0  # some pixels without data
    whole, parts = DepthMeter(max_depth=10.0), DepthMeter(max_depth=10.0)
    whole.update(pred, target)
    parts.update(pred[:1], target[:1])
    parts.update(pred[1:], target[1:])
    assert parts.compute() == pytest.approx(whole.compute(), rel=1e-12)


def test_depth_meter_without_valid_pixels_raises():
    meter = DepthMeter()
    meter.update(_depth([1.0]), _depth([0.0]))
    with pytest.raises(ValueError, match="no valid depth pixel"):
        meter.compute()


def _normals(vectors):
    return torch.tensor(vectors, dtype=torch.float32).T.reshape(1, 3, 1, -1)


def test_normals_by_hand():
    meter = NormalsMeter()
    # errors: 0 (same), 90 (perpendicular), 0 (unnormalised but same direction); the last
    # target is all zero and skipped
    meter.update(_normals([[0, 0, 1], [0, 0, 1], [3, 0, 0], [1, 0, 0]]),
                 _normals([[0, 0, 1], [1, 0, 0], [1, 0, 0], [0, 0, 0]]))
    got = meter.compute()
    assert got["mean"] == pytest.approx(30.0)
    assert got["rmse"] == pytest.approx(math.sqrt(90 ** 2 / 3))
    assert got["median"] == pytest.approx(0.005)  # centre of the first 0.01-degree bin
    assert got["within_11_25"] == got["within_22_5"] == got["within_30"] == pytest.approx(2 / 3)


def test_normals_median_and_thresholds():
    meter = NormalsMeter()
    angles = [10.0, 20.0, 25.0, 40.0, 50.0]
    vectors = [[math.sin(math.radians(a)), 0, math.cos(math.radians(a))] for a in angles]
    meter.update(_normals(vectors), _normals([[0, 0, 1]] * 5))
    got = meter.compute()
    assert got["median"] == pytest.approx(25.0, abs=0.01)
    assert (got["within_11_25"], got["within_22_5"], got["within_30"]) == pytest.approx(
        (0.2, 0.4, 0.6))
    with pytest.raises(ValueError, match="no valid normal"):
        NormalsMeter().compute()
