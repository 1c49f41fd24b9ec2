"""``python -m dejavu_tune.bench verdicts``: the error rates of the whole decision, by
simulation, through the code the search decides with.

Each repetition is one search: ``--trials`` configurations trained once on the search
split, the best ``--top`` by that value confirmed, and a verdict. The noise model
(docs/benchmarks.md says where its numbers come from):

- a run's value = its configuration's true effect + an image-sample effect of the
  configuration on that split (std ``--image-sd``, drawn once per configuration and
  split: the luck of those particular images) + seed noise (std ``--seed-sd``), of which
  a share ``--pairing`` is common to every run on the same seed (the baseline's too:
  what pairing cancels);
- scenarios: (a) no effect anywhere; (b) one configuration better by δ, or by 2δ, on
  both splits; (c) one configuration better by 2δ on the search split only (a selection
  artefact: nothing to find on new images).

Two designs, each on the same draws: **today's** (the top 3 on the baseline's 3 seeds,
on the split the search selected on, each interval at 1 - 0.05/3: ``outcome.paired``),
and the **sequential** one (on the held-out split, repeated confidence intervals in
rounds up to ``--max-seeds``: ``outcome.sequential``). A false winner is a named winner
whose true effect is 0; a detection is the planted configuration named winner.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from dejavu_tune.outcome import sequential as seq
from dejavu_tune.outcome.numbers import wilson
from dejavu_tune.outcome.paired import GAIN, compare
from dejavu_tune.search.confirm import ROUND_SEEDS
from dejavu_tune.search.space import SearchSettings

_DEFAULTS = SearchSettings()  # the search's own: the design a default search runs

__all__ = ["Model", "Rates", "add_parser", "run", "simulate", "SCENARIOS"]

SCENARIOS = ("a: no effect", "b: δ on one", "b: 2δ on one", "c: 2δ on the search split only")
EVERY = "d: 2δ on every one"  # verdict-check's planted case: whichever is chosen, it gains


@dataclass(frozen=True)
class Model:
    seed_sd: float
    image_sd: float
    pairing: float  # share of the seed noise every run on a seed has in common
    min_effect: float
    trials: int = _DEFAULTS.num_samples
    top: int = _DEFAULTS.confirm_top
    first: int = _DEFAULTS.baseline_seeds  # the baseline's replicates: the first look
    max_seeds: int = _DEFAULTS.max_seeds
    step: int = ROUND_SEEDS

    def design(self) -> seq.Design:
        return seq.Design(self.top, seq.looks_for(self.first, self.max_seeds, self.step),
                          self.min_effect)


@dataclass
class Rates:
    reps: int = 0
    false_winner: int = 0
    detected: int = 0
    no_gain: int = 0  # the verdict "no gain of δ or more"
    inconclusive: int = 0
    runs: list[int] | None = None

    def add(self, winner: int | None, planted: np.ndarray, true_effect: np.ndarray,
            verdict: str, runs: int) -> None:
        """One search's outcome; ``planted``: which configurations carry the planted gain."""
        self.reps += 1
        if winner is not None and true_effect[winner] <= 0:
            self.false_winner += 1
        if winner is not None and planted[winner]:
            self.detected += 1
        self.no_gain += verdict == seq.NO_GAIN
        self.inconclusive += verdict == seq.INCONCLUSIVE
        self.runs = (self.runs or []) + [runs]

    def rate(self, count: int) -> str:
        """A share with its 95% Wilson interval: a simulated rate is itself a sample."""
        p, low, high = wilson(count, self.reps)
        return f"{100 * p:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"


def _scenario(name: str, trials: int, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true effect on the search split, on the held-out split, which carry a planted gain)."""
    search, heldout = np.zeros(trials), np.zeros(trials)
    if name == EVERY:
        search[:] = heldout[:] = 2 * delta
    elif name.startswith("b: δ"):
        search[0] = heldout[0] = delta
    elif name.startswith("b: 2δ"):
        search[0] = heldout[0] = 2 * delta
    elif name.startswith("c:"):
        search[0] = 2 * delta
    return search, heldout, heldout > 0


def simulate(model: Model, scenario: str, reps: int, seed: int = 0) -> tuple[Rates, Rates]:
    """(today's design, the sequential design) over ``reps`` simulated searches."""
    rng = np.random.default_rng(seed)
    design = model.design()
    old, new = Rates(), Rates()
    mu_search, mu_heldout, planted = _scenario(scenario, model.trials, model.min_effect)
    private = model.seed_sd * math.sqrt(1 - model.pairing)
    old_level = 1 - 0.05 / model.top
    for _ in range(reps):
        # the image-sample luck of every configuration (the baseline's last) on each split
        luck = rng.normal(0, model.image_sd, size=(2, model.trials + 1))
        searched = mu_search + luck[0, :-1] + rng.normal(0, model.seed_sd, model.trials)
        chosen = [int(i) for i in np.argsort(-searched)[:model.top]]

        def delta(split: int, mu: np.ndarray, j: int, noise: float, luck=luck) -> float:
            return float(mu[j] + luck[split, j] - luck[split, -1] + noise)

        # today's: the 3 replicate seeds, on the split the selection read
        base = rng.normal(0, private, model.first)
        paired = {j: compare({s: delta(0, mu_search, j, rng.normal(0, private))
                              for s in range(model.first)},
                             {s: float(base[s]) for s in range(model.first)}, "m", "max",
                             old_level)
                  for j in chosen}
        gains = [j for j, p in paired.items() if p.verdict == GAIN]
        winner = max(gains, key=lambda j: paired[j].mean) if gains else None
        old.add(winner, planted, mu_heldout, seq.GAIN if winner is not None else
                seq.INCONCLUSIVE, model.top * model.first)
        # the sequential design, on the held-out split
        baseline_noise: dict[int, float] = {}

        def measure(k: int, names: list[str], seeds: list[int],
                    baseline_noise=baseline_noise) -> dict[str, dict[int, float]]:
            for s in seeds:
                baseline_noise.setdefault(s, float(rng.normal(0, private)))
            return {n: {s: delta(1, mu_heldout, int(n), rng.normal(0, private))
                        - baseline_noise[s] for s in seeds} for n in names}

        result = seq.confirm(design, [str(j) for j in chosen], range(design.max_seeds),
                             measure)
        champion = result.winner()
        new.add(int(champion) if champion is not None else None, planted, mu_heldout,
                seq.overall(result), result.runs)
    return old, new


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verdicts", help="the decision's error rates, by simulation")
    p.add_argument("--reps", type=int, default=4000, help="simulated searches per scenario")
    p.add_argument("--seed-sd", type=float, default=0.0035,
                   help="seed-to-seed std of a run's metric (default: Cityscapes' 0.35 mIoU "
                        "points, the supplement)")
    p.add_argument("--image-sd", type=float, default=0.0,
                   help="std of a configuration's luck on one split's images, the same on "
                        "every seed (not measured yet: docs/benchmarks.md shows 0 and 0.001)")
    p.add_argument("--pairing", type=float, default=0.5,
                   help="share of the seed noise runs on the same seed have in common")
    p.add_argument("--min-effect", type=float, default=0.005, help="δ (search.min_effect)")
    p.add_argument("--trials", type=int, default=Model.trials,
                   help="configurations the search trains (search.num_samples)")
    p.add_argument("--top", type=int, default=Model.top, help="search.confirm_top")
    p.add_argument("--max-seeds", type=int, default=Model.max_seeds, help="search.max_seeds")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    for name, low in (("reps", 1), ("trials", 1), ("top", 1), ("max_seeds", 3)):
        if getattr(args, name) < low:
            raise SystemExit(f"--{name.replace('_', '-')} must be {low} or more")
    if args.top > args.trials:
        raise SystemExit("--top must be at most --trials")
    model = Model(args.seed_sd, args.image_sd, args.pairing, args.min_effect,
                  trials=args.trials, top=args.top, max_seeds=args.max_seeds)
    looks = ", ".join(map(str, model.design().looks))
    print(f"noise: seed std {model.seed_sd:g} ({100 * model.pairing:.0f}% shared by a seed's "
          f"runs), image-sample std {model.image_sd:g}; δ = {model.min_effect:g}; "
          f"{model.trials} trials, top {model.top}; sequential looks at {looks} seeds; "
          f"{args.reps} searches per scenario\n")
    print("| scenario | design | false winner | detected | no gain of δ | inconclusive "
          "| confirmation runs: mean (max) |")
    print("|---|---|---|---|---|---|---|")
    started = time.perf_counter()
    for i, scenario in enumerate(SCENARIOS):
        old, new = simulate(model, scenario, args.reps, args.seed + i)
        for label, r in (("today: 3 seeds, same split", old),
                         ("sequential, held-out split", new)):
            detected = r.rate(r.detected) if scenario.startswith("b") else "–"
            extra = (r.rate(r.no_gain), r.rate(r.inconclusive)) if r is new else ("–", "–")
            print(f"| {scenario} | {label} | {r.rate(r.false_winner)} | {detected} | "
                  f"{extra[0]} | {extra[1]} | {np.mean(r.runs):.1f} ({max(r.runs)}) |")
    print(f"\n{time.perf_counter() - started:.1f} s; rates with 95% Wilson intervals")
    return 0
