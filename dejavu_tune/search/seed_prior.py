"""The seed's own settings as a prior (``search.prior: seed``): what the supplement ran
(C.1-C.5), projected into the search space, becomes the first trials the sampler runs
and learns from.

How: the points are enqueued in the Optuna study before anything is sampled (Optuna's
``enqueue_trial``, through OptunaSearch's ``points_to_evaluate``), so they are ordinary
trials that TPE then models, as a warm start from an expert's configurations rather than
from an earlier search. For a space on one of the supplement's datasets the point is
that dataset's setting; for any other (the built-in data) every distinct setting is
enqueued, since none of them was chosen for it. A value outside the space is brought
into it: a number clipped to its range, a categorical number to the nearest choice (the
seed's b = 32 on 32-pixel images is b = 8, its 20 recursion steps the most the space
offers); a key the space does not sample is left to the space's fixed value, and a
parameter the setting does not name is sampled.

The replay benchmark (``bench replay``) measures what this buys against no prior and
against a misleading prior (the worst recorded configurations, enqueued the same way).
"""

from __future__ import annotations

from typing import Any

from dejavu_tune.search.space import Param, SearchSpace

__all__ = ["SEED_SETTINGS", "points", "project"]

# Supplement C.1-C.5, per dataset (../METHOD.md, "Per-dataset settings").
_CITYSCAPES = {"dejavu.redaction.kind": "random_blocks", "dejavu.redaction.block_size": 32,
               "dejavu.redaction.threshold": 0.4, "dejavu.crm.kind": "crm_r",
               "dejavu.crm.steps": 20, "dejavu.loss.gamma": 1.0, "dejavu.loss.gamma1": 1.0,
               "dejavu.loss.gamma2": 0.3}
SEED_SETTINGS: dict[str, dict[str, Any]] = {
    "cityscapes": _CITYSCAPES,
    "ade20k": _CITYSCAPES,
    "coco_panoptic": {"dejavu.redaction.kind": "checkerboard",
                      "dejavu.redaction.block_size": 8, "dejavu.crm.kind": "crm_f",
                      "dejavu.crm.stages": 2, "dejavu.loss.gamma": 1.0,
                      "dejavu.loss.gamma1": 1.0, "dejavu.loss.gamma2": 0.1},
    "kitti": {"dejavu.redaction.kind": "bandstop", "dejavu.redaction.block_size": 32,
              "dejavu.crm.kind": "crm_f", "dejavu.crm.stages": 2, "dejavu.loss.gamma": 1.0,
              "dejavu.loss.gamma1": 0.3, "dejavu.loss.gamma2": 0.03},
    "nyud": {"dejavu.redaction.kind": "bandstop", "dejavu.redaction.block_size": 32,
             "dejavu.crm.kind": "crm_r", "dejavu.crm.steps": 20, "dejavu.loss.gamma": 1.0,
             "dejavu.loss.gamma1": 1.0, "dejavu.loss.gamma2": 0.3},
}


def points(space: SearchSpace) -> list[dict[str, Any]]:
    """The seed's settings for ``space``'s dataset (all of them for another dataset),
    projected into the space, without repeats."""
    dataset = str(space.fixed.get("data", {}).get("name", ""))
    settings = ([SEED_SETTINGS[dataset]] if dataset in SEED_SETTINGS
                else list(SEED_SETTINGS.values()))
    out: list[dict[str, Any]] = []
    for setting in settings:
        point = project(setting, space.params)
        if point and point not in out:
            out.append(point)
    return out


def project(setting: dict[str, Any], params: tuple[Param, ...]) -> dict[str, Any]:
    """``setting`` in the space of ``params``: values brought into range, parameters
    whose conditions fail left out (the sampler would not ask for them)."""
    point: dict[str, Any] = {}
    for param in params:
        if param.name not in setting or not param.active(point):
            continue
        value = _inside(param, setting[param.name])
        if value is not None:
            point[param.name] = value
    return point


def _inside(param: Param, value: Any) -> Any:
    if param.type == "categorical":
        if value in param.choices:
            return value
        numbers = [c for c in param.choices if isinstance(c, (int, float))
                   and not isinstance(c, bool)]
        if isinstance(value, (int, float)) and numbers:
            return min(numbers, key=lambda c: abs(c - value))
        return None  # a kind the space does not offer: sampled instead
    clipped = min(max(float(value), float(param.low)), float(param.high))
    return int(round(clipped)) if param.type == "int" else clipped
