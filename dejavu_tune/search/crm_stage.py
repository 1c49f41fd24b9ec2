"""A search's CRM stage: stored weights for every CRM its trials can start from, before any
trial starts.

``plan_for`` reads the space: which CRM architectures (and, with ``per_kind``, which
redaction kinds) its trials can sample, and which redactions a ``mixture`` pre-training
learns. ``specs`` lists the distinct pre-trainings; the space check refuses a space
that would need more than ``MAX_SPECS`` of them before Ray starts. ``prepare`` trains
the missing ones as Ray tasks in parallel (on a cluster they spread over the nodes and
write to the shared store), then records each one, trained or found in the store, as
its own MLflow run of the search with its regeneration figure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dejavu_tune.train.crm_store import CRMPlan, PretrainSettings, PretrainSpec, redaction_pool

__all__ = ["MAX_SPECS", "CRM_KIND", "plan_for", "specs", "prepare"]

MAX_SPECS = 24  # pre-trainings one search may need; each costs ~0.1 s per iteration on a CPU
CRM_KIND = "crm_pretrain"  # the MLflow kind tag of a pre-training's run
# Trial keys that decide which pre-training a trial starts from.
_DECIDING = {"dejavu.enabled", "dejavu.mode", "dejavu.crm.kind", "dejavu.crm.stages", "dejavu.crm.steps",
             "dejavu.crm.width", "dejavu.crm.downsample", "dejavu.crm.init",
             "dejavu.crm.weights", "data.name", "data.root", "data.image_size",
             "data.image_width", "data.num_classes", "data.num_train", "data.noise",
             "data.seed"}
_MAX_VALUES = 32  # values of one integer parameter that is enumerated


class _TooMany(ValueError):
    pass


def plan_for(space: Any, store: str | Path, device: str = "cpu") -> CRMPlan:
    """The search's plan: its settings, and the redactions its trials sample (the space's
    draw of ``SearchSpace.samples``)."""
    settings = space.crm_pretrain
    return CRMPlan(store=str(Path(store).resolve()), settings=settings,
                   pool=redaction_pool(list(space.sampled_configs),
                                       seed=settings.seed),
                   device=device,
                   loss={"gamma1": space.base_config().dejavu.loss.gamma1,
                         "gamma2": space.base_config().dejavu.loss.gamma2})


def _values(param: Any) -> list[Any]:
    if param.type == "categorical":
        return list(param.choices)
    if param.type == "int":
        values = list(range(int(param.low), int(param.high) + 1, int(param.step or 1)))
        if len(values) <= _MAX_VALUES:
            return values
    raise _TooMany(f"params.{param.name}: each value needs a CRM pre-trained for it; "
                   f"make it categorical with the values to try")


def _points(space: Any, deciding: set[str]) -> list[dict[str, Any]]:
    """Every combination of the deciding parameters (and of those their conditions name)."""
    keys = {p.name for p in space.params if p.name in deciding}
    grew = True
    while grew:
        before = len(keys)
        for param in space.params:
            if param.name in keys:
                keys |= set(param.when)
        grew = len(keys) > before
    points: list[dict[str, Any]] = [{}]
    for param in space.params:
        if param.name not in keys:
            continue
        values = _values(param)
        points = [new for point in points for new in (
            [{**point, param.name: v} for v in values] if param.active(point) else [point])]
    return points


def specs(space: Any, plan: CRMPlan) -> list[PretrainSpec]:
    """The distinct pre-trainings the space's trials start from, in a stable order.
    Raises ValueError when there are more than ``MAX_SPECS``."""
    deciding = set(_DECIDING)
    if plan.settings.redactions == "per_kind":
        deciding.add("dejavu.redaction.kind")
    found: dict[str, PretrainSpec] = {}
    for point in _points(space, deciding):
        spec = plan.spec(space.trial_config(point))
        if spec is not None:
            found.setdefault(spec.key, spec)
    if len(found) > MAX_SPECS:
        raise _TooMany(f"the space's trials start from {len(found)} differently pre-trained "
                       f"CRMs, each trained before the trials: at most {MAX_SPECS} (sample "
                       "fewer CRM stages or steps, or set dejavu.crm.init: scratch)")
    return sorted(found.values(), key=lambda s: s.describe())


def _pretrain_task(spec: PretrainSpec, directory: str, threads: int) -> dict[str, float]:
    import torch

    from dejavu_tune.train.crm_pretrain import pretrain_into

    torch.set_num_threads(max(1, threads))
    return pretrain_into(spec, directory)


def prepare(plan: CRMPlan, todo: list[PretrainSpec], run_parallel: Callable[..., list[Any]],
            record: Callable[[PretrainSpec, bool], None], resources: Any) -> None:
    """Train the specs the store lacks (``run_parallel``: Ray tasks with ``resources``
    each), then ``record(spec, trained_now)`` every spec."""
    missing = [s for s in todo if not plan.has(s)]
    if missing:
        print(f"CRM stage: pre-training {len(missing)} CRM(s) "
              f"({plan.settings.iterations} iterations each"
              + (f", up to {plan.settings.cap} until a reliance of "
                 f"{plan.settings.min_reliance:g}" if plan.settings.min_reliance else "")
              + "; "
              f"{len(todo) - len(missing)} found in {plan.store})", flush=True)
        calls = [(s, str(plan.directory(s)), int(resources.cpu)) for s in missing]
        run_parallel(_pretrain_task, calls, resources)
    elif todo:
        print(f"CRM stage: all {len(todo)} stored CRM(s) found in {plan.store}", flush=True)
    for spec in todo:
        record(spec, spec in missing)


def settings_from(raw: dict[str, Any]) -> PretrainSettings:
    names = {f.name for f in dataclasses.fields(PretrainSettings)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"crm_pretrain.{unknown[0]} is not a known key: expected one of "
                         + ", ".join(sorted(names)))
    return PretrainSettings(**raw)
