"""The search space as types: its sampled parameters (``Param``), its ``search:``
settings, and the ``SearchSpace`` that turns them into Optuna's define-by-run function
and each trial's ``TrainConfig``. The file format is read by ``space_file``, which
checks it before anything runs (``preflight``)."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from dejavu_tune.config import ConfigError, TrainConfig, check_int, fail, trial_config
from dejavu_tune.errors import DejavuError
from dejavu_tune.outcome.limits import Limit
from dejavu_tune.outcome.limits import parse as parse_limits
from dejavu_tune.plugins import is_plugin
from dejavu_tune.tracking.system_metrics import MODES as SYSTEM_METRICS_MODES
from dejavu_tune.train.crm_store import PretrainSettings

__all__ = ["budget_seconds", "SpaceError", "Resources", "Param", "SearchSettings", "SearchSpace", "TRAINING_METRICS",
           "COST_METRICS", "space_error", "check_number", "set_dotted"]

# Training metrics every trial reports each epoch (lower is better): its losses, and what
# its step costs next to the baseline's (dejavu_tune.train.cost_probe); each task adds its
# validation metrics (dejavu_tune.tasks: Task.metrics).
TRAINING_METRICS = {"loss": "min", "task_loss": "min", "step_time_ratio": "min",
                    "mem_ratio": "min", "sec_per_iter": "min"}
# Of those, what a step costs: an objective to trade quality for, never the quality itself.
COST_METRICS = ("step_time_ratio", "mem_ratio", "sec_per_iter")
ALGORITHMS = ("tpe", "random", "gp", "grid")
PRIORS = ("none", "seed")  # search.prior: dejavu_tune.search.seed_prior
# the most paired seeds a confirmation may ask for (search.max_seeds)
MAX_SEEDS = 100
# Trials drawn from a space for the checks that need samples (``SearchSpace.samples``)
SAMPLES = 64


class SpaceError(DejavuError, ValueError):
    """A search-space file is malformed or contradictory."""


@dataclass(frozen=True)
class Resources:
    """What one trial (and one CRM pre-training) holds: ``cpu`` and ``gpu`` for the whole
    trial; with ``workers`` above 1 (or ``gpu`` above 1) the trial is that many
    data-parallel ranks (``train.distributed``), each holding its share and one GPU at most,
    placed by Ray anywhere in the cluster (a trial may span nodes)."""

    cpu: float = 1.0
    gpu: float = 0.0  # below 1, trials share a GPU (0.5: two per GPU)
    workers: int = 0  # data-parallel ranks per trial; 0: one per GPU above 1, else one

    @property
    def ranks(self) -> int:
        """How many processes train one trial."""
        if self.workers:
            return self.workers
        return int(self.gpu) if self.gpu > 1 else 1

    @property
    def per_rank(self) -> tuple[float, float]:
        """(CPUs, GPUs) of one rank; of the whole trial when it is one process."""
        return self.cpu / self.ranks, self.gpu / self.ranks

    def one_rank(self) -> Resources:
        """What one process of the trial holds: a CRM pre-training (one process per
        CRM), or the node a rank needs (the ranks of a trial may span nodes)."""
        cpu, gpu = self.per_rank
        return Resources(cpu=cpu, gpu=gpu)

    @classmethod
    def parse(cls, path: str, raw: dict[str, Any]) -> Resources:
        """The ``resources:`` section of the space file at ``path``, checked."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key, value in raw.items():
            where = f"resources.{key}"
            if key not in names:
                raise space_error(path, where, "is not a known key: expected cpu, gpu or "
                                  "workers")
            check_number(path, where, value, integer=key == "workers")
            if value < 0 or (key == "cpu" and value == 0):
                raise space_error(path, where, f"{value!r} is not allowed: expected "
                                  + ("a number > 0" if key == "cpu" else "a number >= 0 (e.g. 0.5)"))
            if key == "gpu" and value > 1 and value != int(value):
                raise space_error(path, where, f"{value!r} is not allowed: Ray shares a GPU "
                                  "between trials only below 1 (e.g. 0.5); above 1 use a whole "
                                  "number")
        resources = cls(**{k: int(v) if k == "workers" else float(v) for k, v in raw.items()})
        if resources.ranks > 1 and resources.gpu not in (0, resources.ranks):
            raise space_error(path, "resources.gpu", f"{resources.gpu:g} is not allowed with "
                              f"{resources.ranks} data-parallel workers: expected 0 (CPU "
                              f"ranks) or {resources.ranks} (one GPU per worker)")
        return resources


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
    # TPE); gp: Optuna's Gaussian-process sampler + ASHA; grid: every combination, full
    # budget. Which is best, measured: docs/search_spaces.md, "Which strategy"
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
    # the confirmation's smallest gain that matters (δ, in the metric's units; null: the
    # task's default for the metric, e.g. 0.005 for val_miou): below it a conclusive
    # "no gain of δ or more"
    min_effect: float | None = None
    # the most paired seeds one candidate may get (the first look is at baseline_seeds,
    # then every 2 more): outcome.sequential
    max_seeds: int = 8
    # the baseline's seed-to-seed std the --dry-run power statement assumes (null: the
    # warm start's measured one, else min_effect)
    noise_floor: float | None = None
    # Several objectives, ((metric, mode), ...), e.g. quality and cost: Optuna samples for
    # all of them (multi-objective TPE), the search reports their Pareto front, the first
    # is ``metric``. Empty: one objective, ``metric``.
    objectives: tuple[tuple[str, str], ...] = ()
    # past it no new trial of the baseline tuning or the search starts (the running ones
    # finish, the confirmation runs on what completed): "90m", "8h", "2d" or seconds;
    # null: no limit
    time_budget: str | float | None = None
    # the confirmed winner's network is logged as an MLflow model; with a name it is also
    # registered in the model registry under that name (--register NAME)
    register_model: str | None = None
    # 'package.module:function' (TrainConfig) -> a trainer; null: dejavu_tune.train.trainer.Trainer.
    # dejavu_tune.train.landscape:trainer skips training (tests and benchmarks of the search)
    trainer: str | None = None
    # MLflow's system metrics (CPU, memory, disk, network; GPU utilisation and memory
    # with nvidia-ml-py) in every trial's run: on, off, or auto (on where psutil is
    # installed; its cost: dejavu_tune.tracking.system_metrics.interval)
    system_metrics: str = "auto"
    system_metrics_interval: float = 10.0  # seconds between samples (MLflow's default)
    # ASHA's brackets: 1 is plain ASHA; more is asynchronous Hyperband (with tpe: BOHB's
    # recipe), each bracket starting at a later first rung (docs/search_spaces.md)
    brackets: int = 1
    # the random trials TPE (and gp) draw before their model acts; null: Optuna's 10
    startup_trials: int | None = None
    # seed: the supplement's settings (C.1-C.5), projected into the space, are the first
    # trials the sampler runs and learns from (dejavu_tune.search.seed_prior)
    prior: str = "none"
    # hard limits on a trial, e.g. ["step_time_ratio <= 1.10", "mem_ratio <= 1.05"]: the
    # sampler proposes violators less (Optuna's constraints_func) and a configuration
    # that breaks one is never the winner (dejavu_tune.outcome.limits)
    constraints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Every setting checked on its own, and the confirmation's against each other;
        what needs the task (the metric and its direction, δ's default) and a plug-in
        trainer's import are checked where the space is read (``space_file``)."""
        if self.algorithm not in ALGORITHMS:
            fail("search.algorithm", self.algorithm, "one of " + ", ".join(ALGORITHMS))
        for key, low in (("num_samples", 1), ("max_concurrent", 1), ("seed", 0),
                         ("grace_period", 1), ("reduction_factor", 2), ("baseline_trials", 0),
                         ("baseline_seeds", 0), ("confirm_top", 0)):
            check_int(f"search.{key}", getattr(self, key), low)
        if not isinstance(self.baseline, bool):
            fail("search.baseline", self.baseline, "true or false")
        for key in ("min_effect", "noise_floor"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))
                                      or not 0 < value < math.inf):
                fail(f"search.{key}", value, "a positive number in the metric's units, or null")
        if self.time_budget is not None:
            budget_seconds(self.time_budget)
        if self.register_model is not None and (
                not isinstance(self.register_model, str) or not self.register_model.strip()
                or len(self.register_model) > 256 or "/" in self.register_model
                or ":" in self.register_model):
            fail("search.register_model", self.register_model,
                 "a model registry name of 1-256 characters without '/' or ':'")
        if self.trainer is not None and not is_plugin(self.trainer):
            fail("search.trainer", self.trainer, "'package.module:function' or null")
        check_int("search.brackets", self.brackets, 1)
        if self.startup_trials is not None:
            check_int("search.startup_trials", self.startup_trials, 1)
        if self.prior not in PRIORS:
            fail("search.prior", self.prior, "one of " + ", ".join(PRIORS))
        try:
            parse_limits(self.constraints)
        except ValueError as exc:
            raise ConfigError(f"search.constraints: {exc}") from None
        if self.system_metrics not in SYSTEM_METRICS_MODES:
            fail("search.system_metrics", self.system_metrics,
                 "one of " + ", ".join(SYSTEM_METRICS_MODES))
        if (isinstance(self.system_metrics_interval, bool)
                or not isinstance(self.system_metrics_interval, (int, float))
                or not 0 < self.system_metrics_interval < math.inf):
            fail("search.system_metrics_interval", self.system_metrics_interval,
                 "a positive number of seconds")
        if not self.confirming:
            return
        if self.baseline_seeds < 2:
            fail("search.baseline_seeds", self.baseline_seeds, "2 or more with a confirmation "
                 "(confirm_top > 0; an interval needs two paired seeds), or 0 for none")
        if (isinstance(self.max_seeds, bool) or not isinstance(self.max_seeds, int)
                or not self.baseline_seeds <= self.max_seeds <= MAX_SEEDS):
            fail("search.max_seeds", self.max_seeds, f"an integer from baseline_seeds "
                 f"({self.baseline_seeds}) to {MAX_SEEDS}")

    @property
    def time_budget_s(self) -> float | None:
        return None if self.time_budget is None else budget_seconds(self.time_budget)

    @property
    def confirming(self) -> bool:
        """Whether the best configurations are confirmed on the baseline's seeds."""
        return self.confirm_top > 0 and self.baseline_seeds > 0 and self.baseline

    @property
    def limits(self) -> tuple[Limit, ...]:
        """``constraints`` parsed (checked in ``__post_init__``)."""
        return parse_limits(self.constraints)

    @property
    def measures_cost(self) -> bool:
        """Whether trials run the step-cost probe (``train.cost_probe``): only where a cost
        it measures is the metric, an objective, a limit or what ASHA compares."""
        from dejavu_tune.train.cost_probe import COST_METRICS as PROBED

        named = {self.metric, self.stop_metric, *(m for m, _ in self.objectives),
                 *(limit.metric for limit in self.limits)}
        return bool(named & set(PROBED))

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """The epochs where ASHA may decide (every bracket's rungs), with the first and
        the last: where a trial's diagnostics are measured."""
        out, rung = {1, epochs}, self.grace_period
        while rung < epochs:
            out.add(rung)
            rung *= self.reduction_factor
        return tuple(sorted(out))

    @property
    def costs(self) -> tuple[tuple[str, str], ...]:
        """The objectives after the first (the search metric): what a front trades it for."""
        return self.objectives[1:]


@dataclass(frozen=True)
class SearchSpace:
    path: str
    fixed: dict[str, Any]
    params: tuple[Param, ...]
    search: SearchSettings
    resources: Resources
    report: dict[str, Any] = field(default_factory=dict)
    crm_pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    # the shared params this space holds fixed at the baseline's values (``with_shared``)
    fixed_shared: tuple[str, ...] = ()

    def base_config(self) -> TrainConfig:
        """The fixed keys as a validated configuration, built once per space (a
        ``TrainConfig`` is frozen, so every caller can share it)."""
        return self._base

    @functools.cached_property
    def _base(self) -> TrainConfig:
        return TrainConfig.from_dict(self.fixed)

    @functools.cached_property
    def samples(self) -> tuple[dict[str, Any], ...]:
        """A seeded random draw of ``SAMPLES`` trials' sampled values, the same one for
        every check that needs samples (the combinations' validity, the CRM stage's
        redactions), drawn once per space."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        draws = []
        for _ in range(SAMPLES):
            trial = study.ask()
            self.define_by_run(trial)
            draws.append(dict(trial.params))
            study.tell(trial, 0.0)
        return tuple(draws)

    @functools.cached_property
    def sampled_configs(self) -> tuple[TrainConfig, ...]:
        """The configurations of ``samples``: parameters that are valid one by one can
        still clash (e.g. bandstop with band_low >= band_high), which this names."""
        configs = []
        for params in self.samples:
            try:
                configs.append(self.trial_config(params))
            except ConfigError as exc:
                raise space_error(self.path, "params", f"the sampled combination {params} is "
                                  f"invalid: {exc}") from None
        return tuple(configs)

    @property
    def shared_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.shared)

    def with_shared(self, values: dict[str, Any]) -> SearchSpace:
        """The DejaVu search: the shared params fixed at ``values`` (the baseline's best)."""
        fixed = self.fixed
        for key, value in values.items():
            fixed = set_dotted(fixed, key, value)
        return dataclasses.replace(self, fixed=fixed,
                                   params=tuple(p for p in self.params if not p.shared),
                                   fixed_shared=tuple(p.name for p in self.params if p.shared))

    def shared_only(self) -> SearchSpace:
        """The baseline's tuning: only the shared params, DejaVu off."""
        return dataclasses.replace(self, fixed=set_dotted(self.fixed, "dejavu.enabled", False),
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


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def budget_seconds(value: Any) -> float:
    """``search.time_budget`` in seconds: ``90m``, ``8h``, ``1.5d``, ``45s`` or a number
    of seconds, above zero."""
    text = str(value).strip().lower()
    found = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([smhd]?)", text)
    seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"] if found else 0.0
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        fail("search.time_budget", value, "a duration above zero such as 90m, 8h, 2d or "
             "3600 (seconds), or null")
    return seconds


def space_error(path: str, where: str, message: str) -> SpaceError:
    return SpaceError(f"{path}: {where}: {message}")


def check_number(path: str, where: str, value: Any, integer: bool) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        raise space_error(path, where, f"{value!r} is not allowed: expected "
                   + ("an integer" if integer else "a finite number"))
    return value


def set_dotted(tree: dict[str, Any], key: str, value: Any, _done: str = "") -> dict[str, Any]:
    """``tree`` with the dotted ``key`` set to ``value``; a key through a value that is not
    a section (``optim.epochs.x`` where ``optim.epochs`` is 4) is refused."""
    tree = dict(tree)
    head, _, rest = key.partition(".")
    if not head:
        raise ConfigError(f"{_done + key!r} is not a configuration key: expected dotted names "
                          "such as optim.epochs")
    if not rest:
        tree[head] = value
        return tree
    below = tree.get(head)
    if below is not None and not isinstance(below, dict):
        raise ConfigError(f"{_done + key!r} is not a configuration key: {_done + head} is a "
                          f"value ({below!r}), not a section with keys")
    tree[head] = set_dotted(below or {}, rest, value, f"{_done}{head}.")
    return tree

