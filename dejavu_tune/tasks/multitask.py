"""Several tasks from one network (seed C.5: NYUD-v2 segmentation + depth + normals).

The CRM is conditioned on all predicted tasks concatenated; the task loss is the
weighted sum of the tasks' losses; every task's metrics are reported.
"""

from __future__ import annotations

import torch

from dejavu_tune.tasks.base import Batch, Meter, Task

__all__ = ["MultiTask"]


class _Meter:
    def __init__(self, meters: list[Meter]) -> None:
        self._meters = meters

    def update(self, preds: Batch, batch: Batch) -> None:
        for meter in self._meters:
            meter.update(preds, batch)

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for meter in self._meters:
            out.update(meter.compute())
        return out


class MultiTask(Task):
    def __init__(self, tasks: list[Task], weights: list[float]) -> None:
        if len(tasks) != len(weights) or not tasks:
            raise ValueError("MultiTask needs one weight per task")
        self.tasks, self.weights = tasks, weights
        self.targets = tuple(t for task in tasks for t in task.targets)
        self.metrics = {k: v for task in tasks for k, v in task.metrics.items()}
        self.primary = tasks[0].primary
        self.min_effects = {k: v for task in tasks for k, v in task.min_effects.items()}

    def heads(self) -> dict[str, int]:
        return {k: v for task in self.tasks for k, v in task.heads().items()}

    def loss(self, preds: Batch, batch: Batch) -> dict[str, torch.Tensor]:
        parts: dict[str, torch.Tensor] = {}
        total = None
        for task, weight in zip(self.tasks, self.weights, strict=True):
            value = task.loss(preds, batch)["task_loss"]
            parts[f"{task.targets[0]}_loss"] = value
            total = weight * value if total is None else total + weight * value
        parts["task_loss"] = total  # type: ignore[assignment]
        return parts

    def condition(self, preds: Batch) -> torch.Tensor:
        return torch.cat([task.condition(preds) for task in self.tasks], 1)

    def condition_as(self, preds: Batch, style: str = "soft",
                     temperature: float = 1.0) -> torch.Tensor:
        return torch.cat([task.condition_as(preds, style, temperature) for task in self.tasks],
                         1)

    def target_condition(self, batch: Batch) -> torch.Tensor:
        return torch.cat([task.target_condition(batch) for task in self.tasks], 1)

    def consistency(self, preds_regenerated: Batch, preds: Batch) -> torch.Tensor:
        terms = [w * t.consistency(preds_regenerated, preds)
                 for t, w in zip(self.tasks, self.weights, strict=True)]
        return torch.stack(terms).sum()

    def meter(self) -> _Meter:
        return _Meter([task.meter() for task in self.tasks])

    def decode(self, preds: Batch) -> Batch:
        return {k: v for task in self.tasks for k, v in task.decode(preds).items()}

    def visualise(self, values: Batch) -> dict[str, torch.Tensor]:
        return {k: v for task in self.tasks for k, v in task.visualise(values).items()}

    def legend(self) -> list[tuple[str, tuple[int, int, int]]]:
        return [entry for task in self.tasks for entry in task.legend()]
