"""Sequential paired confirmation: candidates get paired seeds in rounds and each stops as
soon as its interval decides, at a family-wise error rate that holds however often it is
looked at.

The method (docs/method.md, "Sequential confirmation"):

- **Repeated confidence intervals** (Jennison & Turnbull 1989, "Interim analyses: the
  repeated confidence interval approach", JRSS B 51:305-361): at every look ``k`` the
  interval is ``mean ± q_k · s / √n_k``; all of them hold at once with probability
  1 - α, so any stopping rule read off them keeps that level.
- **The boundary** ``c_k`` on the z scale comes from Lan & DeMets' error spending (1983,
  Biometrika 70:659-663) with the O'Brien-Fleming-type function
  ``α(τ) = 2 - 2Φ(z_{1-α/2} / √τ)``, ``τ = n_k / n_max``: little of α is spent at the
  first looks, where a few seeds say little anyway, so the last look's interval is close
  to a fixed design's. The crossing probabilities are integrated numerically
  (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19).
- **An unknown spread**: ``q_k`` is Student's t quantile with ``n_k - 1`` degrees of
  freedom at the nominal level of ``c_k`` (the significance-level approach, Jennison &
  Turnbull 2000, "Group Sequential Methods with Applications to Clinical Trials",
  ch. 3). It is an approximation; ``python -m dejavu_tune.bench verdicts`` measures the
  error rates it gives.
- **Several candidates**: each at α / k (Bonferroni), so the family holds at α.

A candidate's verdict, in the direction where larger is better:

- **significant gain**: the interval's lower end above 0;
- **significant loss**: its upper end below 0;
- **no gain of δ or more**: its upper end below ``min_effect`` (a conclusive negative:
  whatever DejaVu does here is smaller than the smallest effect that matters);
- **inconclusive**: the seeds ran out first (``max_seeds``), with the number of paired
  seeds the observed spread suggests a decision would take.

A candidate whose interval lies wholly below the leader's (the best mean) can no longer
beat it and stops early, unjudged on δ.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dejavu_tune.outcome.paired import GAIN, LOSS  # one spelling of each verdict

__all__ = ["GAIN", "LOSS", "NO_GAIN", "INCONCLUSIVE", "OUTRUN", "CONTINUE", "VERDICTS",
           "Design", "Look", "Result", "confirm", "judge", "looks_for", "seeds_to_decide",
           "boundaries", "overall"]

NO_GAIN = "no gain of δ or more"
INCONCLUSIVE = "inconclusive"
OUTRUN = "outrun by the leader"  # stopped early: it can no longer beat the best one
DROPPED = "dropped"  # a lower mean than the one(s) kept after the first look
CONTINUE = "continue"
VERDICTS = (GAIN, NO_GAIN, LOSS, INCONCLUSIVE)
DECIDED = (GAIN, NO_GAIN, LOSS)


def looks_for(first: int, max_seeds: int, step: int) -> tuple[int, ...]:
    """The numbers of paired seeds at which the candidates are judged: ``first``, then
    every ``step`` more, always ending at ``max_seeds``."""
    if first < 2:
        raise ValueError(f"first look at {first} seed(s): 2 or more are needed for a spread")
    if max_seeds < first or step < 1:
        raise ValueError(f"max_seeds {max_seeds} below the first look ({first}), or step {step}")
    looks = list(range(first, max_seeds + 1, step))
    if looks[-1] != max_seeds:
        looks.append(max_seeds)
    return tuple(looks)


def _spent(alpha: float, fraction: float) -> float:
    """Lan-DeMets O'Brien-Fleming-type spending: the error spent by information fraction."""
    from scipy.stats import norm

    return float(2 - 2 * norm.cdf(norm.ppf(1 - alpha / 2) / math.sqrt(fraction)))


_GRID = 1201  # points per look of the numerical integration; error well below 1e-5


@functools.lru_cache(maxsize=256)
def boundaries(looks: tuple[int, ...], alpha: float) -> tuple[float, ...]:
    """Two-sided z boundaries ``c_k`` of the spending function at the given looks:
    under no effect, the chance that ``|Z_k| >= c_k`` at some look is ``alpha``."""
    import numpy as np
    from scipy.optimize import brentq

    info = np.asarray(looks, dtype=float)
    out: list[float] = []
    # density of the score S_k = Z_k * sqrt(I_k) on the continuation region so far
    grid, density = None, None
    spent_before = 0.0
    for k, n in enumerate(info):
        target = _spent(alpha, n / info[-1]) - spent_before

        prev = info[k - 1] if k else 0.0

        def excess(c: float, grid=grid, density=density, prev=prev, n=n,
                   target=target) -> float:
            return _exit(grid, density, prev, n, c) - target

        if target <= 1e-12:
            c = 40.0  # nothing to spend here: this look cannot stop
        else:
            c = brentq(excess, 0.01, 40.0, xtol=1e-9)
        out.append(float(c))
        spent_before += _exit(grid, density, prev, n, c)
        grid, density = _continue(grid, density, info[k - 1] if k else 0.0, n, c)
    return tuple(out)


def _weights(grid):
    """Trapezoid weights of an even grid."""
    import numpy as np

    w = np.full(len(grid), grid[1] - grid[0])
    w[0] = w[-1] = w[0] / 2
    return w


def _exit(grid, density, prev: float, n: float, c: float) -> float:
    """Probability of still going before this look and crossing ``±c`` at it: the paths
    still going, less those that land inside ``±c√n`` (a normal step from each)."""
    from scipy.stats import norm

    half = c * math.sqrt(n)
    if grid is None:
        return float(2 * norm.sf(c))
    scale = math.sqrt(n - prev)
    mass = density * _weights(grid)
    inside = norm.cdf((half - grid) / scale) - norm.cdf((-half - grid) / scale)
    return max(0.0, float(mass.sum() - (mass * inside).sum()))


def _continue(grid, density, prev: float, n: float, c: float):
    """The sub-density of the paths still going after this look, on its own grid."""
    import numpy as np
    from scipy.stats import norm

    half = c * math.sqrt(n)
    inner = np.linspace(-half, half, _GRID)
    if grid is None:
        return inner, norm.pdf(inner, scale=math.sqrt(n))
    scale = math.sqrt(n - prev)
    kernel = norm.pdf((inner[:, None] - grid[None, :]) / scale) / scale
    return inner, kernel @ (density * _weights(grid))


@dataclass(frozen=True)
class Design:
    """The plan of one confirmation: ``candidates`` configurations, judged at ``looks``
    paired seeds, ``min_effect`` the smallest gain that matters (in the metric's units,
    > 0), ``alpha`` the family-wise error rate (two-sided)."""

    candidates: int
    looks: tuple[int, ...]
    min_effect: float
    alpha: float = 0.05
    # after the first look only this many undecided candidates go on, the best means
    # first (drop the losers); None: every undecided one
    keep: int | None = 1

    @property
    def max_seeds(self) -> int:
        return self.looks[-1]

    @property
    def level(self) -> float:
        """Each candidate's error rate (Bonferroni over the candidates)."""
        return self.alpha / max(1, self.candidates)

    def z(self) -> tuple[float, ...]:
        return boundaries(self.looks, self.level)

    def factor(self, n: int) -> float:
        """The interval's half-width in units of ``s / √n`` at a look of ``n`` seeds (a
        count between looks is judged at the boundary of the look before it)."""
        k = max((i for i, look in enumerate(self.looks) if look <= n), default=None)
        if k is None:
            return math.inf
        return _t_factor(self.z()[k], n)

    def interval(self, deltas: Sequence[float]) -> tuple[float, float]:
        n = len(deltas)
        if n < 2:
            return -math.inf, math.inf
        mean, sd = mean_sd(deltas)
        half = self.factor(n) * sd / math.sqrt(n)
        return mean - half, mean + half


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1) in floats (``statistics.stdev`` is exact and ~50x
    slower, and the simulations call this millions of times)."""
    n = len(values)
    mean = math.fsum(values) / n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


@functools.lru_cache(maxsize=4096)
def _t_factor(z: float, n: int) -> float:
    from scipy.stats import norm, t

    if z >= 40.0:
        return math.inf
    return float(t.ppf(norm.cdf(z), n - 1))


@dataclass(frozen=True)
class Look:
    """One candidate at one look: its paired differences (better is positive), the
    interval and the decision."""

    deltas: tuple[float, ...]
    low: float
    high: float
    decision: str

    @property
    def n(self) -> int:
        return len(self.deltas)

    @property
    def mean(self) -> float:
        return math.fsum(self.deltas) / len(self.deltas) if self.deltas else math.nan


def _decide(low: float, high: float, min_effect: float) -> str:
    if low > 0:
        return GAIN
    if high < 0:
        return LOSS
    if high < min_effect:
        return NO_GAIN
    return CONTINUE


def judge(design: Design, deltas: Mapping[str, Sequence[float]],
          stopped: Mapping[str, str] | None = None) -> dict[str, Look]:
    """Every candidate's decision at this look. ``deltas``: each candidate's paired
    differences so far, oriented so that positive is better; ``stopped``: decisions taken
    at earlier looks (those candidates keep them). At the last look a candidate still
    going is inconclusive."""
    stopped = dict(stopped or {})
    out: dict[str, Look] = {}
    going = []
    for name, values in deltas.items():
        values = tuple(values)
        low, high = design.interval(values)
        if name in stopped:
            out[name] = Look(values, low, high, stopped[name])
            continue
        decision = _decide(low, high, design.min_effect)
        out[name] = Look(values, low, high, decision)
        if decision == CONTINUE:
            going.append(name)
    # the leader: the best mean among those not judged a loss
    alive = [n for n, look in out.items() if look.decision not in (LOSS, OUTRUN)]
    if alive:
        leader = max(alive, key=lambda n: out[n].mean)
        for name in going:
            look = out[name]
            if name != leader and look.high < out[leader].low:
                out[name] = Look(look.deltas, look.low, look.high, OUTRUN)
    for name in going:
        look = out[name]
        if look.decision == CONTINUE and look.n >= design.max_seeds:
            out[name] = Look(look.deltas, look.low, look.high, INCONCLUSIVE)
    return out


def seeds_to_decide(design: Design, sd: float) -> int | None:
    """Paired seeds with which an interval of spread ``sd`` is narrower than ``min_effect``,
    so that it decides whatever the mean (it then lies above 0 or below δ): a fixed design
    at the same per-candidate level. None when ``sd`` is not finite."""
    if not math.isfinite(sd) or sd <= 0:
        return None
    from scipy.stats import t

    q = 1 - design.level / 2
    n = 2
    while n < 100_000:
        if 2 * float(t.ppf(q, n - 1)) * sd / math.sqrt(n) < design.min_effect:
            return n
        n = n + 1 if n < 200 else int(n * 1.05) + 1
    return None


@dataclass(frozen=True)
class Result:
    """A finished confirmation: each candidate's last look, every look's decisions, and
    what it cost (candidate runs; baseline runs beyond the first look's seeds)."""

    design: Design
    final: dict[str, Look]
    history: tuple[dict[str, Look], ...]
    candidate_runs: int
    baseline_runs: int

    @property
    def runs(self) -> int:
        return self.candidate_runs + self.baseline_runs

    def winner(self) -> str | None:
        """The significant gain with the best mean, or None."""
        gains = [n for n, look in self.final.items() if look.decision == GAIN]
        return max(gains, key=lambda n: self.final[n].mean) if gains else None


Measure = Callable[[int, list[str], list[int]], Mapping[str, Mapping[int, float]]]


def confirm(design: Design, names: Sequence[str], seeds: Sequence[int],
            measure: Measure) -> Result:
    """Run the rounds: at look ``k`` the candidates still going are trained on the look's
    new seeds (``measure(k, names, new_seeds)`` returns each one's paired difference per
    seed, positive better) and judged. ``seeds``: the paired seeds in the order they are
    used, at least ``design.max_seeds``; the first look's are the baseline's replicates,
    so only later looks count baseline runs."""
    if len(seeds) < design.max_seeds:
        raise ValueError(f"{len(seeds)} seeds for a design of up to {design.max_seeds}")
    deltas: dict[str, list[float]] = {n: [] for n in names}
    stopped: dict[str, str] = {}
    history: list[dict[str, Look]] = []
    used, candidate_runs, baseline_runs = 0, 0, 0
    for k, look in enumerate(design.looks):
        going = [n for n in names if n not in stopped]
        if not going:
            break
        new = list(seeds[used:look])
        got = measure(k, going, new)
        for name in going:
            values = got.get(name, {})
            deltas[name] += [values[s] for s in new if s in values]
        candidate_runs += len(going) * len(new)
        baseline_runs += len(new) if k else 0
        used = look
        judged = judge(design, {n: deltas[n] for n in names}, stopped)
        if k == 0 and design.keep is not None:
            going = sorted((n for n, j in judged.items() if j.decision == CONTINUE),
                           key=lambda n: -judged[n].mean)
            for name in going[design.keep:]:
                j = judged[name]
                judged[name] = Look(j.deltas, j.low, j.high, DROPPED)
        if k == len(design.looks) - 1:
            judged = {n: (Look(j.deltas, j.low, j.high, INCONCLUSIVE)
                          if j.decision == CONTINUE else j) for n, j in judged.items()}
        history.append(judged)
        stopped = {n: j.decision for n, j in judged.items() if j.decision != CONTINUE}
    return Result(design, history[-1] if history else {}, tuple(history), candidate_runs,
                  baseline_runs)


def overall(result: Result) -> str:
    """The confirmation's verdict: a significant gain when a candidate has one; else
    inconclusive while any candidate is; a significant loss when every one is; else no
    gain of δ or more (the best is below δ, and those it outran are below it)."""
    decisions = [look.decision for look in result.final.values()
                 if look.decision not in (DROPPED, OUTRUN)]
    if GAIN in decisions:
        return GAIN
    if not decisions or INCONCLUSIVE in decisions or CONTINUE in decisions:
        return INCONCLUSIVE
    if all(d == LOSS for d in decisions):
        return LOSS
    return NO_GAIN
