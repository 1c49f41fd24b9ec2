import math
import sys
import types

import pytest
import torch

from dejavu_tune.config import TaskConfig
from dejavu_tune.plugins import PluginError
from dejavu_tune.tasks import (
    DepthTask,
    MultiTask,
    NormalsTask,
    SegmentationTask,
    Task,
    TaskError,
    build_task,
)


class _Data:
    def __init__(self, targets=("seg", "depth", "normals"), num_classes=3, max_depth=10.0):
        self.targets, self.num_classes, self.max_depth = targets, num_classes, max_depth


def test_segmentation_condition_and_target_condition():
    task = SegmentationTask(3)
    assert task.heads() == {"seg": 3} and task.condition_channels == 3
    logits = torch.tensor([0.0, math.log(3.0), 0.0]).view(1, 3, 1, 1)
    assert torch.allclose(task.condition({"seg": logits}).flatten(), torch.tensor([0.2, 0.6, 0.2]))
    cond = task.target_condition({"seg": torch.tensor([[[2, 255]]])})
    assert cond[0, :, 0, 0].tolist() == [0, 0, 1] and cond[0, :, 0, 1].tolist() == [0, 0, 0]


def test_depth_decode_loss_and_consistency():
    task = DepthTask(10.0)
    raw = torch.zeros(1, 1, 1, 2)  # sigmoid(0) = 0.5 -> 5 m
    assert task.decode({"depth": raw})["depth"].flatten().tolist() == [5.0, 5.0]
    target = torch.tensor([[[[7.0, 0.0]]]])  # the second pixel has no ground truth
    # |5 - 7| / 10 on the one valid pixel
    assert task.loss({"depth": raw}, {"depth": target})["task_loss"].item() == pytest.approx(0.2)
    assert task.consistency({"depth": raw}, {"depth": raw}).item() == 0.0
    assert task.target_condition({"depth": target}).flatten().tolist() == pytest.approx([0.7, 0])
    with pytest.raises(ValueError, match="max_depth=0"):
        DepthTask(0)


def test_normals_loss_counts_valid_pixels_only():
    task = NormalsTask()
    pred = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    target = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 3)
    # pixel 0: same direction (1 - 1 = 0), pixel 1: perpendicular (1 - 0 = 1), pixel 2 invalid
    assert task.loss({"normals": pred}, {"normals": target})["task_loss"].item() == pytest.approx(0.5)
    assert task.decode({"normals": pred})["normals"][0, 2, 0, 0].item() == pytest.approx(1.0)


def test_multitask_concatenates_conditions_and_weights_losses():
    task = build_task(TaskConfig(name="multitask", seg_weight=1.0, depth_weight=2.0,
                                 normals_weight=0.5), _Data())
    assert isinstance(task, MultiTask)
    assert task.heads() == {"seg": 3, "depth": 1, "normals": 3} and task.condition_channels == 7
    preds = {"seg": torch.zeros(1, 3, 1, 1), "depth": torch.zeros(1, 1, 1, 1),
             "normals": torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)}
    batch = {"seg": torch.tensor([[[0]]]), "depth": torch.tensor([[[[7.0]]]]),
             "normals": torch.tensor([0.0, 0, 1]).view(1, 3, 1, 1)}
    parts = task.loss(preds, batch)
    assert parts["seg_loss"].item() == pytest.approx(math.log(3))
    assert parts["depth_loss"].item() == pytest.approx(0.2)
    assert parts["normals_loss"].item() == pytest.approx(1.0)
    assert parts["task_loss"].item() == pytest.approx(math.log(3) + 2 * 0.2 + 0.5 * 1.0)
    assert task.condition(preds).shape == (1, 7, 1, 1)
    assert set(task.metrics) >= {"val_miou", "val_abs_rel", "val_normal_mean"}


def test_meters_report_task_metrics():
    seg = SegmentationTask(2).meter()
    seg.update({"seg": torch.tensor([[[0, 1]]])}, {"seg": torch.tensor([[[0, 0]]])})
    assert seg.compute() == {"val_miou": pytest.approx(0.25), "val_pixel_acc": 0.5}
    depth = DepthTask(10.0).meter()
    depth.update({"depth": torch.tensor([[[[2.0]]]])}, {"depth": torch.tensor([[[[1.0]]]])})
    assert depth.compute()["val_abs_rel"] == pytest.approx(1.0)


def test_task_needs_its_targets():
    with pytest.raises(TaskError, match="needs the targets depth, but kitti provides only seg"):
        build_task(TaskConfig(name="depth"), _Data(targets=("seg",)), "kitti")


def test_plugin_task(monkeypatch):
    module = types.ModuleType("my_tasks")

    def build(cfg, dataset):
        return SegmentationTask(dataset.num_classes)

    module.build, module.wrong = build, lambda cfg, dataset: object()
    monkeypatch.setitem(sys.modules, "my_tasks", module)
    task = build_task(TaskConfig(name="my_tasks:build"), _Data())
    assert isinstance(task, Task) and task.heads() == {"seg": 3}
    with pytest.raises(TaskError, match="returned object: expected an instance"):
        build_task(TaskConfig(name="my_tasks:wrong"), _Data())
    with pytest.raises(PluginError, match="has no 'missing'"):
        build_task(TaskConfig(name="my_tasks:missing"), _Data())
