"""The checks a search space passes before Ray starts, beyond its file's format: paths
exist (made absolute, since each trial runs in its own directory), plug-ins import, the
dataset's layout and the task's targets are there, the device has GPUs, and 64 sampled
combinations each build a ``TrainConfig``."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dejavu_tune.config import ConfigError, TrainConfig
from dejavu_tune.plugins import PluginError, is_plugin
from dejavu_tune.search.space import (
    TRAINING_METRICS,
    Resources,
    SearchSettings,
    SearchSpace,
    set_dotted,
    space_error,
)
from dejavu_tune.tracking import system_metrics

__all__ = ["resolve_paths", "check_components", "metric_directions", "metric_min_effects",
           "check_device", "check_system_metrics", "as_grid",
           "check_combinations", "check_weights", "check_crm_stage", "check_lpips"]


def resolve_paths(path: str, fixed: dict[str, Any], base: TrainConfig) -> dict[str, Any]:
    """Ray runs each trial in its own directory: relative paths are made absolute here."""
    for key, value, kind in (("data.root", base.data.root, "dir"),
                             ("model.pretrained", base.model.pretrained, "file")):
        if not value:
            continue
        resolved = Path(value).expanduser().resolve()
        exists = resolved.is_dir() if kind == "dir" else resolved.is_file()
        if not exists:
            raise space_error(path, f"fixed.{key}", f"{value!r} does not exist: expected a "
                       + ("dataset directory" if kind == "dir" else "weights file"))
        fixed = set_dotted(fixed, key, str(resolved))
    return fixed


def check_components(path: str, base: TrainConfig) -> None:
    """Imports bring-your-own components and checks the dataset layout before Ray starts."""
    from dejavu_tune.data import check_data
    from dejavu_tune.data.files import DatasetError
    from dejavu_tune.method.text_supervision import check_text_encoder
    from dejavu_tune.tasks import check_task

    with _refused_in(path, "fixed.task.name"):
        check_task(base.task)
    if base.dejavu.loss.ts_encoder:
        with _refused_in(path, "fixed.dejavu.loss.ts_encoder"):
            check_text_encoder(base.dejavu.loss.ts_encoder)
    try:
        check_data(base.data)
    except (DatasetError, PluginError) as exc:
        raise space_error(path, "fixed.data", str(exc)) from None
    _check_task_targets(path, base)


def _check_task_targets(path: str, base: TrainConfig) -> None:
    """A built-in task on a built-in dataset must find its targets there (depth on
    Cityscapes has none), which is known without reading a sample."""
    from dejavu_tune.data.registry import DATASETS
    from dejavu_tune.tasks import TaskError, build_task

    dataset = DATASETS.get(base.data.name)
    if dataset is None or is_plugin(base.task.name):
        return
    try:
        build_task(base.task, dataset, f"data.name={base.data.name!r}")
    except TaskError as exc:
        raise space_error(path, "fixed.task.name", str(exc)) from None


def metric_directions(base: TrainConfig) -> dict[str, str] | None:
    """metric -> "max"/"min" for the space's task; None when a plugin task decides."""
    from dejavu_tune.tasks import TASK_CLASSES as per_task

    if base.task.name not in per_task:
        return None
    out: dict[str, str] = {}
    for task in per_task[base.task.name]:
        out.update(task.metrics)
    return {"__primary__": per_task[base.task.name][0].primary, **out, **TRAINING_METRICS}


def metric_min_effects(base: TrainConfig) -> dict[str, float]:
    """metric -> its smallest difference that matters (``search.min_effect``'s default)."""
    from dejavu_tune.tasks import TASK_CLASSES as per_task

    out: dict[str, float] = {}
    for task in per_task.get(base.task.name, ()):
        out.update(task.min_effects)
    return out


def check_device(path: str, base: TrainConfig, resources: Resources) -> None:
    """A trial sees only the GPUs Ray gives it (CUDA_VISIBLE_DEVICES): none when gpu is 0."""
    if base.device.startswith("cuda") and resources.gpu == 0:
        raise space_error(path, "fixed.device", f"{base.device!r} needs a GPU per trial: set "
                   "resources.gpu (e.g. 1, or 0.5 for two trials per GPU), or device auto")


def check_system_metrics(path: str, search: SearchSettings, resources: Resources) -> None:
    """``search.system_metrics: on`` has its monitor installed: psutil, and nvidia-ml-py
    for trials that hold a GPU (``auto`` goes without what is missing)."""
    if search.system_metrics != "on":
        return
    lacking = system_metrics.missing(gpu=resources.gpu > 0)
    if lacking:
        raise space_error(path, "search.system_metrics", f"'on' needs {' and '.join(lacking)}, "
                          f"which {'is' if len(lacking) == 1 else 'are'} not installed: "
                          f"{system_metrics.EXTRA} (or set it to auto or off)")


def as_grid(space: SearchSpace) -> SearchSpace:
    for param in space.params:
        if param.type != "categorical":
            raise space_error(space.path, f"params.{param.name}.type", f"{param.type!r} is not "
                       "allowed with search.algorithm: grid: expected categorical (list the "
                       "grid's values as choices)")
    points = space.grid_points()
    return dataclasses.replace(space, search=dataclasses.replace(
        space.search, num_samples=len(points)))


def check_combinations(space: SearchSpace) -> list[TrainConfig]:
    """Build every sampled configuration of the space once before anything runs (see
    ``SearchSpace.sampled_configs``); returns them."""
    return list(space.sampled_configs)


def check_lpips(space: SearchSpace) -> None:
    """LPIPS's AlexNet weights are on this machine when a trial or a CRM pre-training
    would use them (a CRM trained with ``dejavu.loss.gamma1 > 0``); run by the search
    command before Ray starts (reading them takes a moment, so not at every load)."""
    from dejavu_tune.method.lpips import check_weights

    if any(c.dejavu.uses_crm and c.dejavu.loss.gamma1 > 0 for c in space.sampled_configs):
        check_weights()


def check_batches(space: SearchSpace) -> None:
    """The largest batch the trials can train fits the training split: one that does not
    would train no step, in every trial, after Ray started. Run by the search command,
    not when a space is loaded: a space names its data, whose size only the search's
    machine knows."""
    from dejavu_tune.data import check_batch_fits, training_images

    base = space.base_config()
    images = training_images(base.data)
    if images is None:
        return
    sampled = next((p for p in space.params if p.name == "optim.batch_size"), None)
    largest = base.optim.batch_size if sampled is None else int(
        max(sampled.choices) if sampled.type == "categorical" else sampled.high)
    try:
        check_batch_fits(largest, base.data, images)
    except ConfigError as exc:
        where = "params.optim.batch_size" if sampled else "fixed.optim.batch_size"
        raise space_error(space.path, where, str(exc)) from None

def check_weights(path: str, configs: list[TrainConfig]) -> None:
    """Every weights file the trials would load is read now (tensors only, nothing else is
    ever unpickled), not after the baseline tuning: a network's ``model.pretrained`` must
    hold a state dict, a CRM's ``dejavu.crm.weights`` a stored CRM of the architecture
    every sampled configuration asks for."""
    from dejavu_tune.method.crm import crm_architecture, read_crm_checkpoint
    from dejavu_tune.models import check_network

    networks: set[Any] = set()
    crms: dict[str, dict] = {}
    for cfg in configs:
        if cfg.model not in networks:
            networks.add(cfg.model)
            # the file's form only: its fit is checked when a trial builds the network
            # (and by `python -m dejavu_tune.train` before it trains)
            where = "fixed.model.name" if is_plugin(cfg.model.name) else "fixed.model.pretrained"
            with _refused_in(path, where):
                check_network(cfg.model, fit=False)
        weights = cfg.dejavu.crm.weights if cfg.dejavu.uses_crm else None
        if weights:
            with _refused_in(path, "fixed.dejavu.crm.weights"):
                if weights not in crms:
                    crms[weights] = read_crm_checkpoint(weights)["architecture"]
                _same_crm(weights, crms[weights], crm_architecture(cfg.dejavu.crm))


@contextlib.contextmanager
def _refused_in(path: str, where: str) -> Iterator[None]:
    """A user error inside becomes the space file's error at ``where``."""
    from dejavu_tune.errors import DejavuError

    try:
        yield
    except DejavuError as exc:
        raise space_error(path, where, str(exc)) from None


def _same_crm(path: str, stored: dict, wanted: dict) -> None:
    """The stored CRM's architecture, but for its conditioning channels (the task's,
    checked when the trial builds it), against one configuration's."""
    differ = {k: (stored.get(k), v) for k, v in wanted.items()
              if k != "cond_channels" and stored.get(k) != v}
    if differ:
        raise ConfigError(f"dejavu.crm.weights={path!r} holds a CRM of " + ", ".join(
            f"{k}={a!r}" for k, (a, _) in differ.items()) + ", but a sampled configuration "
            "asks for " + ", ".join(f"{k}={b!r}" for k, (_, b) in differ.items())
            + ": expected weights of the CRM the space samples (or no dejavu.crm.weights: "
            "the search pre-trains one per architecture)")


def check_crm_stage(space: SearchSpace) -> None:
    """The CRM pre-trainings the trials need are few enough to run before them."""
    from dejavu_tune.search.crm_stage import plan_for, specs

    try:
        specs(space, plan_for(space, "."))
    except ValueError as exc:
        raise space_error(space.path, "params", str(exc)) from None

