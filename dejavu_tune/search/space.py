"""YAML search spaces -> a validated ``SearchSpace`` -> an Optuna define-by-run function.

A space file has these sections (documented in ``docs/search_spaces.md``)::

    fixed:      TrainConfig keys every trial shares (nested, as in dejavu_tune/config.py)
    params:     dotted TrainConfig keys -> {type, low, high, log, step, choices, when, shared}
    search:     algorithm (tpe, random or grid), metric, mode, num_samples, max_concurrent, seed,
                grace_period, reduction_factor, baseline, baseline_trials, baseline_seeds,
                confirm_top
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
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dejavu_tune.config import ConfigError, TrainConfig, trial_config
from dejavu_tune.errors import DejavuError
from dejavu_tune.plugins import PluginError, is_plugin, load_object
from dejavu_tune.train.crm_store import PretrainSettings

__all__ = ["SpaceError", "Param", "SearchSettings", "SearchSpace", "load_space", "parse_space",
           "TRAINING_METRICS"]

_TOP = ("fixed", "params", "search", "crm_pretrain", "resources", "report")
_REPORT_KEYS = ("title", "columns", "metric", "scale", "digits")
_PARAM_KEYS = {"type", "low", "high", "log", "step", "choices", "when", "shared"}
_TYPES = ("float", "int", "categorical")
# Training metrics every trial reports each epoch (lower is better); each task adds its
# validation metrics (dejavu_tune.tasks: Task.metrics).
TRAINING_METRICS = {"loss": "min", "task_loss": "min"}


class SpaceError(DejavuError, ValueError):
    """A search-space file is malformed or contradictory."""


@dataclass(frozen=True)
class Param:
    name: str  # a dotted TrainConfig key, e.g. "dejavu.crm.steps"
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    shared: bool = False  # the baseline has it too: tuned for the baseline first

    def active(self, values: dict[str, Any]) -> bool:
        return all(name in values and values[name] in allowed
                   for name, allowed in self.when.items())

    def suggest(self, trial: Any) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high),
                                   step=self.step, log=self.log)

    def distribution(self) -> Any:
        """The Optuna distribution this parameter samples from."""
        import optuna.distributions as od

        if self.type == "categorical":
            return od.CategoricalDistribution(list(self.choices))
        if self.type == "int":
            return od.IntDistribution(int(self.low), int(self.high), log=self.log,
                                      step=int(self.step or 1))
        return od.FloatDistribution(float(self.low), float(self.high), log=self.log,
                                    step=self.step)

    def describe(self) -> str:
        if self.type == "categorical":
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            text = f"{self.type} in [{self.low}, {self.high}]" + (" log" if self.log else "") + (
                f" step {self.step}" if self.step else "")
        if self.when:
            text += "  when " + ", ".join(f"{k} in {list(v)}" for k, v in self.when.items())
        if self.shared:
            text += "  (shared: tuned for the baseline)"
        return text


@dataclass(frozen=True)
class SearchSettings:
    # tpe: Optuna TPE + ASHA; random: Optuna's random sampler + ASHA (a reference for
    # TPE); grid: every combination, full budget
    algorithm: str = "tpe"
    metric: str | None = None  # null: the task's main metric (val_miou for segmentation)
    mode: str | None = None  # null: the metric's own direction
    num_samples: int = 8  # DejaVu trials; the baseline trial comes on top
    max_concurrent: int = 2  # one trial per core of a 2-core laptop
    seed: int = 0  # seeds the TPE sampler, so a search is repeatable
    grace_period: int = 1  # ASHA: epochs every trial gets before it can be stopped
    reduction_factor: int = 2  # ASHA: keep the best 1/reduction_factor at each rung
    # what ASHA compares at its rungs (null: the search metric). Early epochs of a metric
    # can rank trials differently from the final one: docs/benchmarks.md measures it
    stop_metric: str | None = None
    stop_mode: str | None = None
    baseline: bool = True  # run the same training with DejaVu off, for gains
    # trials that tune the shared params for the baseline, before the DejaVu search (0: the
    # shared params keep their fixed values, for both)
    baseline_trials: int = 4
    # seeds of the baseline replicates (the noise floor) and of the paired confirmation;
    # 3 is the fewest that gives a confidence interval with a spread; 0: neither
    baseline_seeds: int = 3
    confirm_top: int = 3  # configurations re-run on the baseline's seeds before a winner
    # 'package.module:function' (TrainConfig) -> a trainer; null: dejavu_tune.train.trainer.Trainer.
    # dejavu_tune.train.landscape:trainer skips training (tests and benchmarks of the search)
    trainer: str | None = None


@dataclass(frozen=True)
class SearchSpace:
    path: str
    fixed: dict[str, Any]
    params: tuple[Param, ...]
    search: SearchSettings
    resources: dict[str, float]
    report: dict[str, Any] = field(default_factory=dict)
    crm_pretrain: PretrainSettings = field(default_factory=PretrainSettings)

    def base_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.fixed)

    @property
    def shared_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.shared)

    def with_shared(self, values: dict[str, Any]) -> SearchSpace:
        """The DejaVu search: the shared params fixed at ``values`` (the baseline's best)."""
        fixed = self.fixed
        for key, value in values.items():
            fixed = _set_dotted(fixed, key, value)
        return dataclasses.replace(self, fixed=fixed,
                                   params=tuple(p for p in self.params if not p.shared))

    def shared_only(self) -> SearchSpace:
        """The baseline's tuning: only the shared params, DejaVu off."""
        return dataclasses.replace(self, fixed=_set_dotted(self.fixed, "dejavu.enabled", False),
                                   params=self.shared_params)

    def define_by_run(self, trial: Any) -> None:
        """Optuna define-by-run: suggest only the parameters whose conditions hold."""
        values: dict[str, Any] = {}
        for param in self.params:
            if param.active(values):
                values[param.name] = param.suggest(trial)

    def trial_config(self, sampled: dict[str, Any]) -> TrainConfig:
        return trial_config(self.fixed, sampled)

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the (categorical) parameters, inactive ones left out."""
        points: list[dict[str, Any]] = [{}]
        for param in self.params:
            grown = []
            for point in points:
                if param.active(point):
                    grown += [{**point, param.name: v} for v in param.choices]
                else:
                    grown.append(point)
            points = grown
        return points


def _err(path: str, where: str, message: str) -> SpaceError:
    return SpaceError(f"{path}: {where}: {message}")


def _number(path: str, where: str, value: Any, integer: bool) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        raise _err(path, where, f"{value!r} is not allowed: expected "
                   + ("an integer" if integer else "a finite number"))
    return value


def _parse_param(path: str, name: str, raw: Any, earlier: dict[str, Param],
                 base: TrainConfig) -> Param:
    where = f"params.{name}"
    if not isinstance(raw, dict):
        raise _err(path, where, f"{raw!r} is not allowed: expected a mapping with "
                   "type, low/high or choices")
    unknown = sorted(set(raw) - _PARAM_KEYS)
    if unknown:
        raise _err(path, f"{where}.{unknown[0]}", "is not a known key: expected one of "
                   + ", ".join(sorted(_PARAM_KEYS)))
    shared = raw.get("shared", False)
    if not isinstance(shared, bool):
        raise _err(path, f"{where}.shared", f"{shared!r} is not allowed: expected true or false")
    if shared and (name.startswith("dejavu.") or name == "seed" or raw.get("when")):
        raise _err(path, f"{where}.shared", "is only for a setting the baseline has too, "
                   "without conditions (e.g. optim.lr): not a dejavu.* key, the seed, or a "
                   "parameter with when")
    kind = raw.get("type")
    if kind not in _TYPES:
        raise _err(path, f"{where}.type", f"{kind!r} is not allowed: expected one of "
                   + ", ".join(_TYPES))
    when = {}
    if not isinstance(raw.get("when") or {}, dict):
        raise _err(path, f"{where}.when", f"{raw['when']!r} is not allowed: expected a mapping "
                   "{earlier.param: value or [values]}")
    for cond, allowed in (raw.get("when") or {}).items():
        if cond not in earlier:
            raise _err(path, f"{where}.when.{cond}", "is not a parameter defined above: "
                       "expected one of " + (", ".join(earlier) or "(none defined yet)"))
        allowed = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        target = earlier[cond]
        if target.type == "categorical":
            bad = [v for v in allowed if v not in target.choices]
            if bad:
                raise _err(path, f"{where}.when.{cond}", f"{bad[0]!r} is never sampled: "
                           "expected one of " + ", ".join(map(str, target.choices)))
        when[cond] = allowed
    if kind == "categorical":
        extra = sorted({"low", "high", "log", "step"} & set(raw))
        if extra:
            raise _err(path, f"{where}.{extra[0]}", "is not allowed for a categorical: "
                       "use choices")
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _err(path, f"{where}.choices", f"{choices!r} is not allowed: expected a "
                       "non-empty list")
        param = Param(name, kind, choices=tuple(choices), when=when, shared=shared)
        values = list(choices)
    else:
        if "choices" in raw:
            raise _err(path, f"{where}.choices", f"is not allowed for type {kind}: use low/high")
        for key in ("low", "high"):
            if key not in raw:
                raise _err(path, f"{where}.{key}", f"is missing: type {kind} needs low and high")
        low = _number(path, f"{where}.low", raw["low"], kind == "int")
        high = _number(path, f"{where}.high", raw["high"], kind == "int")
        if low > high:
            raise _err(path, f"{where}.low", f"{low} is above high={high}: expected low <= high")
        log = raw.get("log", False)
        if not isinstance(log, bool):
            raise _err(path, f"{where}.log", f"{log!r} is not allowed: expected true or false")
        step = raw.get("step")
        if step is not None:
            step = _number(path, f"{where}.step", step, kind == "int")
            if step <= 0:
                raise _err(path, f"{where}.step", f"{step} is not allowed: expected > 0")
            if log:
                raise _err(path, f"{where}.step", "cannot be combined with log: true")
        if log and low <= 0:
            raise _err(path, f"{where}.low", f"{low} is not allowed with log: true: "
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
            raise _err(path, where, str(exc)) from None
    return param


def parse_space(raw: Any, path: str = "<space>",
                overrides: dict[str, Any] | None = None) -> SearchSpace:
    """Validate a loaded YAML document; ``overrides`` are dotted ``--set`` keys."""
    if not isinstance(raw, dict):
        raise _err(path, "top level", "expected a mapping with sections " + ", ".join(_TOP))
    unknown = sorted(set(raw) - set(_TOP))
    if unknown:
        raise _err(path, unknown[0], "is not a known section: expected one of " + ", ".join(_TOP))
    for section in _TOP:
        if raw.get(section) is not None and not isinstance(raw[section], dict):
            raise _err(path, section, f"{raw[section]!r} is not allowed: expected a mapping")
    raw = {k: dict(raw.get(k) or {}) for k in _TOP}
    for key, value in (overrides or {}).items():
        section, _, rest = key.partition(".")
        if section in ("search", "resources", "crm_pretrain") and rest:
            raw[section][rest] = value
        else:
            raw["fixed"] = _set_dotted(raw["fixed"], key, value)
    try:
        base = TrainConfig.from_dict(raw["fixed"])
    except ConfigError as exc:
        raise _err(path, "fixed", str(exc)) from None
    params: dict[str, Param] = {}
    for name, spec in raw["params"].items():
        params[name] = _parse_param(path, name, spec, params, base)
    weights = base.dejavu.crm.weights
    if weights:
        # Ray runs each trial in its own directory: a relative path must be made absolute here.
        resolved = Path(weights).expanduser().resolve()
        if not resolved.is_file():
            raise _err(path, "fixed.dejavu.crm.weights", f"{weights!r} does not exist: expected "
                       "a file written by python -m dejavu_tune.train.crm_pretrain")
        raw["fixed"] = _set_dotted(raw["fixed"], "dejavu.crm.weights", str(resolved))
    raw["fixed"] = _resolve_paths(path, raw["fixed"], base)
    _check_components(path, base)
    search = _parse_settings(path, raw["search"], _metric_directions(base))
    resources = _parse_resources(path, raw["resources"])
    _check_device(path, base, resources)
    space = SearchSpace(path, raw["fixed"], tuple(params.values()), search, resources,
                        _parse_report(path, raw["report"], params),
                        _parse_pretrain(path, raw["crm_pretrain"]))
    if search.algorithm == "grid":
        space = _as_grid(space)
    _check_combinations(space)
    _check_crm_stage(space)
    return space


def _parse_pretrain(path: str, raw: dict[str, Any]) -> PretrainSettings:
    from dejavu_tune.search.crm_stage import settings_from

    try:
        return settings_from(raw)
    except (ConfigError, ValueError, TypeError) as exc:
        raise _err(path, "crm_pretrain", str(exc)) from None


def _check_crm_stage(space: SearchSpace) -> None:
    """The CRM pre-trainings the trials need are few enough to run before them."""
    from dejavu_tune.search.crm_stage import plan_for, specs

    try:
        specs(space, plan_for(space, "."))
    except ValueError as exc:
        raise _err(space.path, "params", str(exc)) from None


def _resolve_paths(path: str, fixed: dict[str, Any], base: TrainConfig) -> dict[str, Any]:
    """Ray runs each trial in its own directory: relative paths are made absolute here."""
    for key, value, kind in (("data.root", base.data.root, "dir"),
                             ("model.pretrained", base.model.pretrained, "file")):
        if not value:
            continue
        resolved = Path(value).expanduser().resolve()
        exists = resolved.is_dir() if kind == "dir" else resolved.is_file()
        if not exists:
            raise _err(path, f"fixed.{key}", f"{value!r} does not exist: expected a "
                       + ("dataset directory" if kind == "dir" else "weights file"))
        fixed = _set_dotted(fixed, key, str(resolved))
    return fixed


def _check_components(path: str, base: TrainConfig) -> None:
    """Imports bring-your-own components and checks the dataset layout before Ray starts."""
    from dejavu_tune.data import check_data
    from dejavu_tune.data.files import DatasetError

    for key, name in (("model.name", base.model.name), ("task.name", base.task.name)):
        if is_plugin(name):
            try:
                load_object(name, key)
            except PluginError as exc:
                raise _err(path, f"fixed.{key}", str(exc)) from None
    try:
        check_data(base.data)
    except (DatasetError, PluginError) as exc:
        raise _err(path, "fixed.data", str(exc)) from None
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
        raise _err(path, "fixed.task.name", str(exc)) from None


def _metric_directions(base: TrainConfig) -> dict[str, str] | None:
    """metric -> "max"/"min" for the space's task; None when a plugin task decides."""
    from dejavu_tune.tasks import TASK_CLASSES as per_task

    if base.task.name not in per_task:
        return None
    out: dict[str, str] = {}
    for task in per_task[base.task.name]:
        out.update(task.metrics)
    return {"__primary__": per_task[base.task.name][0].primary, **out, **TRAINING_METRICS}


def _as_grid(space: SearchSpace) -> SearchSpace:
    for param in space.params:
        if param.type != "categorical":
            raise _err(space.path, f"params.{param.name}.type", f"{param.type!r} is not "
                       "allowed with search.algorithm: grid: expected categorical (list the "
                       "grid's values as choices)")
    points = space.grid_points()
    return dataclasses.replace(space, search=dataclasses.replace(
        space.search, num_samples=len(points)))


def _parse_report(path: str, raw: dict[str, Any], params: dict[str, Param]) -> dict[str, Any]:
    for key, value in raw.items():
        if key not in _REPORT_KEYS:
            raise _err(path, f"report.{key}", "is not a known key: expected one of "
                       + ", ".join(_REPORT_KEYS))
        if key == "columns" and value not in params:
            raise _err(path, "report.columns", f"{value!r} is not allowed: expected one of "
                       "the params: " + ", ".join(params))
        if key in ("scale", "digits"):
            _number(path, f"report.{key}", value, integer=key == "digits")
    return raw


def _check_combinations(space: SearchSpace, samples: int = 64) -> None:
    """Sample the whole space once before anything runs: parameters that are valid one
    by one can still clash (e.g. bandstop with band_low >= band_high)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(samples):
        trial = study.ask()
        space.define_by_run(trial)
        try:
            space.trial_config(trial.params)
        except ConfigError as exc:
            raise _err(space.path, "params", f"the sampled combination {trial.params} is "
                       f"invalid: {exc}") from None
        study.tell(trial, 0.0)


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    tree = dict(tree)
    head, _, rest = key.partition(".")
    tree[head] = _set_dotted(tree.get(head) or {}, rest, value) if rest else value
    return tree


def _parse_settings(path: str, raw: dict[str, Any],
                    directions: dict[str, str] | None) -> SearchSettings:
    names = list(SearchSettings.__dataclass_fields__)
    for key in raw:
        if key not in names:
            raise _err(path, f"search.{key}", "is not a known key: expected one of "
                       + ", ".join(names))
    settings = SearchSettings(**raw)
    if settings.algorithm not in ("tpe", "random", "grid"):
        raise _err(path, "search.algorithm", f"{settings.algorithm!r} is not allowed: "
                   "expected tpe, random or grid")
    metric, mode = _metric_and_mode(path, "", settings.metric, settings.mode, directions,
                                    None)
    # ASHA compares the search metric unless the space names its own
    stop_metric, stop_mode = _metric_and_mode(path, "stop_", settings.stop_metric,
                                              settings.stop_mode, directions, (metric, mode))
    settings = dataclasses.replace(settings, metric=metric, mode=mode, stop_metric=stop_metric,
                                   stop_mode=stop_mode)
    for key, low in (("num_samples", 1), ("max_concurrent", 1), ("seed", 0),
                     ("grace_period", 1), ("reduction_factor", 2), ("baseline_trials", 0),
                     ("baseline_seeds", 0), ("confirm_top", 0)):
        value = getattr(settings, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise _err(path, f"search.{key}", f"{value!r} is not allowed: expected an "
                       f"integer of {low} or more")
    if not isinstance(settings.baseline, bool):
        raise _err(path, "search.baseline", f"{settings.baseline!r} is not allowed: "
                   "expected true or false")
    if settings.trainer is not None:
        if not is_plugin(settings.trainer):
            raise _err(path, "search.trainer", f"{settings.trainer!r} is not allowed: expected "
                       "'package.module:function' or null")
        try:
            load_object(settings.trainer, "search.trainer")
        except PluginError as exc:
            raise _err(path, "search.trainer", str(exc)) from None
    return settings


def _metric_and_mode(path: str, prefix: str, metric: Any, mode: Any,
                     directions: dict[str, str] | None,
                     default: tuple[str, str] | None) -> tuple[str, str]:
    """``search.{prefix}metric`` and ``{prefix}mode`` resolved against the task's metrics:
    unset, the task's main metric (or ``default``); the mode always the metric's own."""
    where = f"search.{prefix}"
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise _err(path, f"{where}metric", f"{metric!r} is not allowed: "
                   "expected a metric name such as val_miou")
    if mode is not None and mode not in ("max", "min"):
        raise _err(path, f"{where}mode", f"{mode!r} is not allowed: expected max or min")
    if metric is None and default is not None:
        if mode is not None and mode != default[1]:
            raise _err(path, f"{where}mode", f"{mode!r} is not allowed without "
                       f"{where}metric: expected {default[1]}")
        return default
    if directions is None:  # a plugin task: its metrics are known only once it runs
        if metric is None or mode is None:
            raise _err(path, f"{where}metric", f"must be given with {where}mode when "
                       "task.name is a plugin")
        return metric, mode
    metric = metric or directions["__primary__"]
    allowed = [k for k in directions if k != "__primary__"]
    if metric not in allowed:
        raise _err(path, f"{where}metric", f"{metric!r} is not allowed for this task: "
                   "expected one of " + ", ".join(allowed))
    if mode is not None and mode != directions[metric]:
        raise _err(path, f"{where}mode", f"{mode!r} is not allowed for {metric}: expected "
                   f"{directions[metric]} ({'higher' if directions[metric] == 'max' else 'lower'}"
                   " is better)")
    return metric, directions[metric]


def _parse_resources(path: str, raw: dict[str, Any]) -> dict[str, float]:
    out = {"cpu": 1.0, "gpu": 0.0}
    for key, value in raw.items():
        if key not in out:
            raise _err(path, f"resources.{key}", "is not a known key: expected cpu or gpu")
        _number(path, f"resources.{key}", value, integer=False)
        if value < 0 or (key == "cpu" and value == 0):
            raise _err(path, f"resources.{key}", f"{value!r} is not allowed: expected "
                       + ("a number > 0" if key == "cpu" else "a number >= 0 (e.g. 0.5)"))
        if key == "gpu" and value > 1 and value != int(value):
            raise _err(path, "resources.gpu", f"{value!r} is not allowed: Ray shares a GPU "
                       "between trials only below 1 (e.g. 0.5); above 1 use a whole number")
        out[key] = float(value)
    return out


def _check_device(path: str, base: TrainConfig, resources: dict[str, float]) -> None:
    """A trial sees only the GPUs Ray gives it (CUDA_VISIBLE_DEVICES): none when gpu is 0."""
    if base.device.startswith("cuda") and resources["gpu"] == 0:
        raise _err(path, "fixed.device", f"{base.device!r} needs a GPU per trial: set "
                   "resources.gpu (e.g. 1, or 0.5 for two trials per GPU), or device auto")


def load_space(path: str | Path, overrides: dict[str, Any] | None = None) -> SearchSpace:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpaceError(f"{path}: cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SpaceError(f"{path}: is not a text file: expected UTF-8 YAML") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise SpaceError(f"{path}: {line}not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_space(raw, str(path), overrides)
