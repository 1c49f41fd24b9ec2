"""Dense-prediction tasks: one explicit name -> builder table (``TASKS``).

A builder takes the task config and the training dataset (which knows its class
count, depth range and which targets it carries). ``task.name`` may also be
``"package.module:function"``: a user's builder with the same signature that
returns a :class:`Task` subclass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dejavu_tune.config import TaskConfig
from dejavu_tune.plugins import call_plugin, check_call, is_plugin
from dejavu_tune.tasks.base import Batch, Meter, Task, TaskError
from dejavu_tune.tasks.depth import DepthTask
from dejavu_tune.tasks.multitask import MultiTask
from dejavu_tune.tasks.normals import NormalsTask
from dejavu_tune.tasks.segmentation import SegmentationTask

__all__ = ["TASKS", "TASK_CLASSES", "build_task", "check_task", "Batch", "Meter", "Task", "TaskError", "SegmentationTask",
           "DepthTask", "NormalsTask", "MultiTask"]


def _segmentation(cfg: TaskConfig, dataset: Any) -> Task:
    return SegmentationTask(int(dataset.num_classes))


def _depth(cfg: TaskConfig, dataset: Any) -> Task:
    return DepthTask(float(dataset.max_depth))


def _normals(cfg: TaskConfig, dataset: Any) -> Task:
    return NormalsTask()


def _multitask(cfg: TaskConfig, dataset: Any) -> Task:
    return MultiTask([_segmentation(cfg, dataset), _depth(cfg, dataset), NormalsTask()],
                     [cfg.seg_weight, cfg.depth_weight, cfg.normals_weight])


# the task classes each built-in task is made of: their targets and metrics, by name
TASK_CLASSES: dict[str, tuple[type[Task], ...]] = {
    "segmentation": (SegmentationTask,), "depth": (DepthTask,), "normals": (NormalsTask,),
    "multitask": (SegmentationTask, DepthTask, NormalsTask)}
_TARGETS = {name: sum((c.targets for c in classes), ()) for name, classes in TASK_CLASSES.items()}
# what a plug-in task's function is (docs/byo.md)
_PLUGIN_CONTRACT = "function(task_config, train_dataset) returning a dejavu_tune.tasks.Task"

TASKS: dict[str, Callable[[TaskConfig, Any], Task]] = {
    "segmentation": _segmentation,
    "depth": _depth,
    "normals": _normals,
    "multitask": _multitask,
}


def check_task(cfg: TaskConfig) -> None:
    """What fails at once: a plug-in task that does not take a task function's arguments."""
    if is_plugin(cfg.name):
        check_call(cfg.name, "task.name", _PLUGIN_CONTRACT, cfg, None)


def build_task(cfg: TaskConfig, dataset: Any, dataset_name: str = "the dataset") -> Task:
    """The task for ``cfg.name``; fails if ``dataset`` lacks a target the task needs."""
    if is_plugin(cfg.name):
        task = call_plugin(cfg.name, "task.name", _PLUGIN_CONTRACT, cfg, dataset)
        if not isinstance(task, Task):
            raise TaskError(f"task.name={cfg.name!r} returned {type(task).__name__}: expected "
                            "an instance of dejavu_tune.tasks.Task")
    elif cfg.name in TASKS:
        _check_targets(cfg.name, _TARGETS[cfg.name], dataset, dataset_name)  # before building
        task = TASKS[cfg.name](cfg, dataset)
    else:
        raise TaskError(f"task.name={cfg.name!r} is not known: expected one of "
                        + ", ".join(TASKS) + " or 'package.module:function'")
    _check_targets(cfg.name, task.targets, dataset, dataset_name)
    return task


def _check_targets(name: str, needs: tuple[str, ...], dataset: Any, dataset_name: str) -> None:
    have = tuple(getattr(dataset, "targets", ()))
    if any(t not in have for t in needs):
        raise TaskError(f"task.name={name!r} needs the targets {', '.join(needs)}, "
                        f"but {dataset_name} provides only {', '.join(have) or 'none'}")
