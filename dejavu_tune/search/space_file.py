"""The search-space file: YAML -> a validated ``SearchSpace`` (``search.space``), checked
before anything runs (``search.preflight``).

A space file has these sections (documented in ``docs/search_spaces.md``)::

    fixed:      TrainConfig keys every trial shares (nested, as in dejavu_tune/config.py)
    params:     dotted TrainConfig keys -> {type, low, high, log, step, choices, when, shared}
    search:     algorithm (tpe, random, gp or grid), metric, mode, num_samples, max_concurrent,
                seed, grace_period, reduction_factor, brackets, startup_trials, prior,
                constraints, baseline, baseline_trials, baseline_seeds, confirm_top,
                objectives (several: a Pareto front of quality and cost), ...
    crm_pretrain: iterations, lr, batch_size, redactions, seed (the CRM stage's stored weights)
    resources:  cpu, gpu per trial (gpu may be fractional)
    report:     title, columns, metric, scale, digits (read by python -m dejavu_tune.report)

``when`` makes the space conditional: ``{dejavu.crm.kind: crm_f}`` (or a list of
values) means the parameter exists only when an *earlier* parameter took one of
those values. ``shared: true`` marks a setting the baseline and DejaVu share (the
learning rate): it is tuned for the baseline first, and DejaVu is searched and
compared at the baseline's best value. Every problem is a :class:`SpaceError`
naming the file, the key path and what is allowed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dejavu_tune.config import ConfigError, TrainConfig, load_yaml
from dejavu_tune.outcome import direction
from dejavu_tune.plugins import PluginError, load_object
from dejavu_tune.search import preflight
from dejavu_tune.search.space import (
    COST_METRICS,
    Param,
    Resources,
    SearchSettings,
    SearchSpace,
    SpaceError,
    check_number,
    set_dotted,
    space_error,
)
from dejavu_tune.train.crm_store import PretrainSettings

__all__ = ["load_space", "parse_space"]

_TOP = ("fixed", "params", "search", "crm_pretrain", "resources", "report")
_REPORT_KEYS = ("title", "columns", "metric", "scale", "digits")
_PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "when", "shared"}
_TYPES = ("float", "int", "categorical")


def load_space(path: str | Path, overrides: dict[str, Any] | None = None) -> SearchSpace:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpaceError(f"{path}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SpaceError(f"{path}: is not a text file: expected UTF-8 YAML") from None
    try:
        raw = load_yaml(text, str(path))
    except ConfigError as exc:
        raise SpaceError(str(exc)) from None
    return parse_space(raw, str(path), overrides)


def parse_space(raw: Any, path: str = "<space>",
                overrides: dict[str, Any] | None = None) -> SearchSpace:
    """Validate a loaded YAML document; ``overrides`` are dotted ``--set`` keys."""
    if not isinstance(raw, dict):
        raise space_error(path, "top level", "expected a mapping with sections " + ", ".join(_TOP))
    unknown = sorted(set(raw) - set(_TOP))
    if unknown:
        raise space_error(path, unknown[0], "is not a known section: expected one of " + ", ".join(_TOP))
    for section in _TOP:
        if raw.get(section) is not None and not isinstance(raw[section], dict):
            raise space_error(path, section, f"{raw[section]!r} is not allowed: expected a mapping")
    raw = {k: dict(raw.get(k) or {}) for k in _TOP}
    for key, value in (overrides or {}).items():
        section, _, rest = key.partition(".")
        if section in ("search", "resources", "crm_pretrain") and rest:
            raw[section][rest] = value
        else:
            raw["fixed"] = set_dotted(raw["fixed"], key, value)
    try:
        base = TrainConfig.from_dict(raw["fixed"])
    except ConfigError as exc:
        raise space_error(path, "fixed", str(exc)) from None
    params: dict[str, Param] = {}
    for name, spec in raw["params"].items():
        params[name] = _parse_param(path, name, spec, params, base)
    weights = base.dejavu.crm.weights
    if weights:
        # Ray runs each trial in its own directory: a relative path must be made absolute here.
        resolved = Path(weights).expanduser().resolve()
        if not resolved.is_file():
            raise space_error(path, "fixed.dejavu.crm.weights", f"{weights!r} does not exist: expected "
                       "a file written by python -m dejavu_tune.train.crm_pretrain")
        raw["fixed"] = set_dotted(raw["fixed"], "dejavu.crm.weights", str(resolved))
    raw["fixed"] = preflight.resolve_paths(path, raw["fixed"], base)
    preflight.check_components(path, base)
    search = _parse_settings(path, raw["search"], preflight.metric_directions(base),
                             preflight.metric_min_effects(base))
    resources = Resources.parse(path, raw["resources"])
    preflight.check_device(path, base, resources)
    preflight.check_system_metrics(path, search, resources)
    if resources.ranks > 1 and search.trainer is not None:
        raise space_error(path, "search.trainer", f"{search.trainer!r} is not allowed with "
                          f"{resources.ranks} data-parallel workers per trial: a trainer of "
                          "one's own runs in one process (expected resources.workers 1)")
    if resources.ranks > 1 and base.optim.batch_size % resources.ranks:
        raise space_error(path, "fixed.optim.batch_size", f"{base.optim.batch_size} is not "
                          f"allowed with {resources.ranks} data-parallel workers per trial: "
                          f"it is the global batch, expected a multiple of {resources.ranks}")
    space = SearchSpace(path, raw["fixed"], tuple(params.values()), search, resources,
                        _parse_report(path, raw["report"], params),
                        _parse_pretrain(path, raw["crm_pretrain"]))
    if search.algorithm == "grid":
        space = preflight.as_grid(space)
    preflight.check_weights(path, preflight.check_combinations(space))
    preflight.check_crm_stage(space)
    return space


def _parse_param(path: str, name: str, raw: Any, earlier: dict[str, Param],
                 base: TrainConfig) -> Param:
    where = f"params.{name}"
    if not isinstance(raw, dict):
        raise space_error(path, where, f"{raw!r} is not allowed: expected a mapping with "
                   "type, low/high or choices")
    unknown = sorted(set(raw) - _PARAM_KEYS)
    if unknown:
        raise space_error(path, f"{where}.{unknown[0]}", "is not a known key: expected one of "
                   + ", ".join(sorted(_PARAM_KEYS)))
    shared = raw.get("shared", False)
    if not isinstance(shared, bool):
        raise space_error(path, f"{where}.shared", f"{shared!r} is not allowed: expected true or false")
    if shared and (name.startswith("dejavu.") or name == "seed" or raw.get("when")):
        raise space_error(path, f"{where}.shared", "is only for a setting the baseline has too, "
                   "without conditions (e.g. optim.lr): not a dejavu.* key, the seed, or a "
                   "parameter with when")
    kind = raw.get("type")
    if kind not in _TYPES:
        raise space_error(path, f"{where}.type", f"{kind!r} is not allowed: expected one of "
                   + ", ".join(_TYPES))
    when = {}
    if not isinstance(raw.get("when") or {}, dict):
        raise space_error(path, f"{where}.when", f"{raw['when']!r} is not allowed: expected a mapping "
                   "{earlier.param: value or [values]}")
    for cond, allowed in (raw.get("when") or {}).items():
        if cond not in earlier:
            raise space_error(path, f"{where}.when.{cond}", "is not a parameter defined above: "
                       "expected one of " + (", ".join(earlier) or "(none defined yet)"))
        when[cond] = _condition(path, f"{where}.when.{cond}", earlier[cond], allowed)
    if kind == "categorical":
        extra = sorted({"low", "high", "log", "step"} & set(raw))
        if extra:
            raise space_error(path, f"{where}.{extra[0]}", "is not allowed for a categorical: "
                       "use choices")
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise space_error(path, f"{where}.choices", f"{choices!r} is not allowed: expected a "
                       "non-empty list")
        param = Param(name, kind, choices=tuple(choices), when=when, shared=shared)
        values = list(choices)
    else:
        if "choices" in raw:
            raise space_error(path, f"{where}.choices", f"is not allowed for type {kind}: use low/high")
        for key in ("low", "high"):
            if key not in raw:
                raise space_error(path, f"{where}.{key}", f"is missing: type {kind} needs low and high")
        low = check_number(path, f"{where}.low", raw["low"], kind == "int")
        high = check_number(path, f"{where}.high", raw["high"], kind == "int")
        if low > high:
            raise space_error(path, f"{where}.low", f"{low} is above high={high}: expected low <= high")
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise space_error(path, f"{where}.log", f"{log!r} is not allowed: expected true or false")
        step = raw.get("step")
        if step is not None:
            step = check_number(path, f"{where}.step", step, kind == "int")
            if step <= 0:
                raise space_error(path, f"{where}.step", f"{step} is not allowed: expected > 0")
            if log:
                raise space_error(path, f"{where}.step", "cannot be combined with log: true")
        if log and low <= 0:
            raise space_error(path, f"{where}.low", f"{low} is not allowed with log: true: "
                       "expected low > 0")
        param = Param(name, kind, low=low, high=high, log=log, step=step, when=when,
                      shared=shared)
        # A float in between catches a float distribution on an integer key.
        values = [low, high] if kind == "int" or low == high else [low, high, (low + high) / 2]
    # Every value the sampler can return must make a valid training config.
    for value in values:
        try:
            base.replace(**{name: value})
        except ConfigError as exc:
            raise space_error(path, where, str(exc)) from None
    return param


def _condition(path: str, where: str, target: Param, allowed: Any) -> tuple[Any, ...]:
    """The values of ``target`` a ``when`` condition holds for; each must be one the sampler
    can return, or the parameter it guards would never be sampled."""
    if target.shared:
        raise space_error(path, where, f"names the shared parameter {target.name!r}, which the "
                          "DejaVu search never samples (it is tuned for the baseline first, "
                          "then fixed): expected a parameter without shared: true")
    allowed = tuple(allowed) if isinstance(allowed, list) else (allowed,)
    if not allowed:
        raise space_error(path, where, "[] never holds: expected a value or a non-empty list of "
                          f"values of {target.name} ({target.describe()})")
    for value in allowed:
        if not _sampled(target, value):
            raise space_error(path, where, f"{value!r} is never sampled: expected "
                              + ("one of " + ", ".join(map(str, target.choices))
                                 if target.type == "categorical" else target.describe()))
    return allowed


def _sampled(param: Param, value: Any) -> bool:
    """Whether Optuna can return ``value`` for ``param``."""
    if param.type == "categorical":
        return value in param.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if not param.low <= value <= param.high:
        return False
    if param.type == "int" and value != int(value):
        return False
    if param.step is not None:
        steps = (value - param.low) / param.step
        return abs(steps - round(steps)) < 1e-9
    # a continuous float takes any one value with probability 0
    return param.type == "int" or param.low == param.high


def _parse_pretrain(path: str, raw: dict[str, Any]) -> PretrainSettings:
    from dejavu_tune.search.crm_stage import settings_from

    try:
        return settings_from(raw)
    except (ConfigError, ValueError, TypeError) as exc:
        raise space_error(path, "crm_pretrain", str(exc)) from None


def _parse_report(path: str, raw: dict[str, Any], params: dict[str, Param]) -> dict[str, Any]:
    for key, value in raw.items():
        if key not in _REPORT_KEYS:
            raise space_error(path, f"report.{key}", "is not a known key: expected one of "
                       + ", ".join(_REPORT_KEYS))
        if key == "columns" and value not in params:
            raise space_error(path, "report.columns", f"{value!r} is not allowed: expected one of "
                       "the params: " + ", ".join(params))
        if key in ("scale", "digits"):
            check_number(path, f"report.{key}", value, integer=key == "digits")
    return raw


def _parse_settings(path: str, raw: dict[str, Any], directions: dict[str, str] | None,
                    min_effects: dict[str, float] | None = None) -> SearchSettings:
    names = list(SearchSettings.__dataclass_fields__)
    for key in raw:
        if key not in names:
            raise space_error(path, f"search.{key}", "is not a known key: expected one of "
                       + ", ".join(names))
    objectives = raw.get("objectives")
    if isinstance(raw.get("system_metrics"), bool):  # YAML reads a bare on/off as true/false
        raw = {**raw, "system_metrics": "on" if raw["system_metrics"] else "off"}
    try:
        settings = SearchSettings(**{k: v for k, v in raw.items() if k != "objectives"})
    except ConfigError as exc:
        raise SpaceError(f"{path}: {exc}") from None
    metric, mode = _metric_and_mode(path, "", settings.metric, settings.mode, directions,
                                    None)
    # ASHA compares the search metric unless the space names its own
    stop_metric, stop_mode = _metric_and_mode(path, "stop_", settings.stop_metric,
                                              settings.stop_mode, directions, (metric, mode))
    settings = dataclasses.replace(settings, metric=metric, mode=mode, stop_metric=stop_metric,
                                   stop_mode=stop_mode)
    if objectives is not None:
        settings = _objectives(path, objectives, settings, directions, raw)
    settings = _sampling_settings(path, settings, directions)
    settings = _confirmation_settings(path, settings, min_effects or {})
    if settings.trainer is not None:
        try:
            load_object(settings.trainer, "search.trainer")
        except PluginError as exc:
            raise space_error(path, "search.trainer", str(exc)) from None
    return settings


def _sampling_settings(path: str, s: SearchSettings,
                       directions: dict[str, str] | None) -> SearchSettings:
    """``search.constraints``: each limit on a metric every trial reports (a cost, a
    loss, or one of the task's metrics; any name with a plug-in task), kept as a tuple;
    neither limits nor a prior with a grid."""
    known = None if directions is None else sorted(k for k in directions if k != "__primary__")
    for i, limit in enumerate(s.limits):
        if known is not None and limit.metric not in known:
            raise space_error(path, f"search.constraints[{i}]", f"{limit.metric!r} is not a "
                              "metric the trials report: expected one of " + ", ".join(known))
    if s.constraints and s.algorithm == "grid":
        raise space_error(path, "search.constraints", "is not allowed with algorithm: grid "
                          "(a grid samples every combination; the limits would only filter "
                          "the winner): expected tpe, random or gp")
    if s.prior != "none" and s.algorithm == "grid":
        raise space_error(path, "search.prior", f"{s.prior!r} is not allowed with algorithm: "
                          "grid (a grid runs every combination in order): expected none, or "
                          "algorithm tpe, random or gp")
    return dataclasses.replace(s, constraints=tuple(s.constraints))


def _confirmation_settings(path: str, s: SearchSettings,
                           min_effects: dict[str, float]) -> SearchSettings:
    """δ's default for the search's metric resolved (the task knows it)."""
    if not s.confirming:
        return s
    min_effect = s.min_effect
    if min_effect is None:
        if s.metric not in min_effects:
            raise space_error(path, "search.min_effect", f"must be given for {s.metric} (no "
                              "default for it): the smallest gain that matters, in its units")
        min_effect = min_effects[s.metric]
    return dataclasses.replace(s, min_effect=float(min_effect),
                               noise_floor=None if s.noise_floor is None
                               else float(s.noise_floor))


_OBJECTIVES_FORM = ("a list of 2 or 3 metric names or {metric: NAME, mode: max|min} entries, "
                    "the first the quality (e.g. val_miou), then costs such as "
                    "step_time_ratio, mem_ratio")


def _objectives(path: str, raw: Any, settings: SearchSettings,
                directions: dict[str, str] | None, given: dict[str, Any]) -> SearchSettings:
    """``search.objectives``: checked, each mode resolved; the first becomes the metric."""
    if not isinstance(raw, list) or not 2 <= len(raw) <= 3:
        raise space_error(path, "search.objectives", f"{raw!r} is not allowed: expected "
                          + _OBJECTIVES_FORM)
    pairs: list[tuple[str, str]] = []
    for i, entry in enumerate(raw):
        where = f"search.objectives[{i}]"
        if isinstance(entry, str):  # a name alone: its mode is the metric's own
            entry = {"metric": entry}
        if not isinstance(entry, dict) or set(entry) - {"metric", "mode"} or "metric" not in entry:
            raise space_error(path, where, f"{entry!r} is not allowed: expected "
                              "{metric: NAME} or {metric: NAME, mode: max|min}")
        pair = _metric_and_mode(path, f"objectives[{i}].", entry["metric"], entry.get("mode"),
                                directions, None)
        if pair[0] in (m for m, _ in pairs):
            raise space_error(path, where, f"{pair[0]!r} is named twice: every objective "
                              "is a different metric")
        pairs.append(pair)
    if pairs[0][0] in COST_METRICS:
        raise space_error(path, "search.objectives[0]", f"{pairs[0][0]!r} is a cost, not "
                          "allowed first: the first objective is the quality the search "
                          "maximises or minimises (e.g. val_miou), the costs come after it")
    if given.get("metric") is not None and settings.metric != pairs[0][0]:
        raise space_error(path, "search.metric", f"{settings.metric!r} is not allowed with "
                          f"objectives: the first objective ({pairs[0][0]}) is the metric")
    if settings.algorithm == "grid":
        raise space_error(path, "search.objectives", "is not allowed with algorithm: grid "
                          "(a grid samples nothing; `python -m dejavu_tune.report "
                          "--objectives` shows any search's front): expected tpe or random")
    # ASHA compares one metric (the first objective unless the space names its own), each
    # trial only with trials that cost no more (raytune.tune_baseline.ParetoASHA)
    stop = ((settings.stop_metric, settings.stop_mode) if given.get("stop_metric") is not None
            else pairs[0])
    return dataclasses.replace(settings, metric=pairs[0][0], mode=pairs[0][1],
                               objectives=tuple(pairs), stop_metric=stop[0], stop_mode=stop[1])


def _metric_and_mode(path: str, prefix: str, metric: Any, mode: Any,
                     directions: dict[str, str] | None,
                     default: tuple[str, str] | None) -> tuple[str, str]:
    """``search.{prefix}metric`` and ``{prefix}mode`` resolved against the task's metrics:
    unset, the task's main metric (or ``default``); the mode always the metric's own."""
    where = f"search.{prefix}"
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise space_error(path, f"{where}metric", f"{metric!r} is not allowed: "
                   "expected a metric name such as val_miou")
    if mode is not None and mode not in direction.MODES:
        raise space_error(path, f"{where}mode", f"{mode!r} is not allowed: expected max or min")
    if metric is None and default is not None:
        if mode is not None and mode != default[1]:
            raise space_error(path, f"{where}mode", f"{mode!r} is not allowed without "
                       f"{where}metric: expected {default[1]}")
        return default
    if directions is None:  # a plugin task: its metrics are known only once it runs
        if metric is None or mode is None:
            raise space_error(path, f"{where}metric", f"must be given with {where}mode when "
                       "task.name is a plugin")
        return metric, mode
    metric = metric or directions["__primary__"]
    allowed = [k for k in directions if k != "__primary__"]
    if metric not in allowed:
        raise space_error(path, f"{where}metric", f"{metric!r} is not allowed for this task: "
                   "expected one of " + ", ".join(allowed))
    if mode is not None and mode != directions[metric]:
        raise space_error(path, f"{where}mode", f"{mode!r} is not allowed for {metric}: expected "
                   f"{directions[metric]} ({'higher' if directions[metric] == 'max' else 'lower'}"
                   " is better)")
    return metric, directions[metric]


