"""The runs a search will train, step by step: the one plan ``--dry-run`` prints, the
driver follows and the baseline tuning's share of the budget is read from."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from dejavu_tune.search.space import SearchSpace

__all__ = ["RunPlan", "plan"]


@dataclass(frozen=True)
class RunPlan:
    space: SearchSpace = field(repr=False, compare=False)
    # DejaVu is compared with the baseline at the baseline's shared values (tuned, or
    # the fixed ones): a search with a baseline that is not a grid
    paired: bool
    tuning: int  # baseline-tuning trials over the shared parameters
    replicate_seeds: tuple[int, ...]  # the baseline's replicates (the first look's pairs)
    # a baseline on the search's own seed, for per-epoch gains: where no tuning trial
    # already is that baseline (a grid with ``baseline: true`` has one too)
    search_baseline: bool
    trials: int  # DejaVu trials of the search
    confirmation: int  # confirmation runs, at most

    @cached_property
    def crm_pretrainings(self) -> int:
        """The CRM stage's distinct pre-trainings (read from 64 sampled trials, so only
        when asked: the driver's CRM stage counts its own)."""
        from dejavu_tune.search.crm_stage import plan_for, specs

        return len(specs(self.space, plan_for(self.space, ".")))

    @property
    def baselines(self) -> int:
        """Baseline runs of the search step."""
        return len(self.replicate_seeds) + self.search_baseline

    @property
    def full_budget_runs(self) -> int:
        """Every run after the CRM stage, at most (ASHA stops some trials early)."""
        return self.tuning + self.baselines + self.trials + self.confirmation

    def steps(self) -> list[tuple[str, int]]:
        """(step, runs) in the order the search runs them."""
        return [("CRM pre-trainings", self.crm_pretrainings), ("baseline tuning", self.tuning),
                ("baseline runs", self.baselines),
                ("DejaVu search trials", self.trials),
                ("confirmation runs (at most)", self.confirmation)]


def plan(space: SearchSpace) -> RunPlan:
    """``space``'s runs."""
    from dejavu_tune.search.confirm import max_runs_for

    s = space.search
    paired = s.baseline and s.algorithm != "grid"  # a grid's rows are its comparison
    tuning = s.baseline_trials if paired and space.shared_params else 0
    seed = space.base_config().seed
    return RunPlan(
        space, paired=paired, tuning=tuning,
        replicate_seeds=tuple(seed + 1 + i for i in range(s.baseline_seeds if paired else 0)),
        search_baseline=s.baseline and not tuning, trials=s.num_samples,
        confirmation=max_runs_for(s))
