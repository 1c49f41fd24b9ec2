"""What a finished search says, and how sure it is: the printed summary, ``summary.md``
and ``best_config.json``.

It leads with the verdict (``outcome.sequential``): the confirmed winner with its paired
Δ on the held-out split and its sequential interval, or "no gain of δ or more", "a
significant loss", "inconclusive" (with the seeds a decision would take), or "not
confirmed"; then its forest plot. Then the noise floor (the baseline's
seed-to-seed spread), how the baseline was tuned, the confirmation table, and the
search's trials ranked at equal budget: full-budget trials by their final metric
first, then trials ASHA stopped (by their value where they stopped, which is not
comparable with the full budget), then failed ones. Before them, whether ASHA's early
decisions held (``outcome.early_stopping``): how well its first rung ranked the
full-budget trials, and whether it stopped one within δ of the winner.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dejavu_tune.outcome import direction, power, sequential
from dejavu_tune.outcome import early_stopping as early
from dejavu_tune.outcome.limits import Limit, broken
from dejavu_tune.outcome.numbers import num
from dejavu_tune.outcome.paired import Paired, noise_floor
from dejavu_tune.outcome.units import Unit, unit_of
from dejavu_tune.search import pareto
from dejavu_tune.search.confirm import Confirmation, Confirmed
from dejavu_tune.search.trial_records import FAILURES, TrialRecord, short_params
from dejavu_tune.tracking.run_names import trial_name
from dejavu_tune.train.memory import ADVICE, OUT_OF_MEMORY

SUMMARY_FILE = "summary.md"  # in the parent run, and the parent's description

__all__ = ["SUMMARY_FILE", "Outcome", "NO_GAIN", "headline", "report_markdown", "result_payload",
           "short_params"]

NO_GAIN = sequential.NO_GAIN
NOT_CONFIRMED = "not confirmed"


@dataclass
class Outcome:
    metric: str
    mode: str
    epochs: int
    records: list[TrialRecord]
    replicate_seeds: list[int]
    confirmation: Confirmation | None = None
    tuning: dict[str, Any] | None = None  # how the shared params were tuned
    crm: list[str] = field(default_factory=list)  # one line per stored CRM
    # the baseline on the search trials' own seed: their per-epoch gains
    reference: TrialRecord | None = None
    rung: int = 0  # ASHA's first rung (its grace period); 0 without early stopping
    objectives: tuple[tuple[str, str], ...] = ()  # several: the search reports their front
    warm: str | None = None  # what a warm-started search started from
    cuts: list[str] = field(default_factory=list)  # what the time budget cut, step by step
    # the winner's network as an MLflow model (publish.log_winner): where it is, or
    # {"error": why not}; None: nothing confirmed, nothing logged
    model: dict[str, Any] | None = None
    # why ASHA stopped each trial it stopped (trial id -> its rung, metric, value, cut-off)
    stops: dict[str, str] = field(default_factory=dict)
    # what ASHA decided on at its rungs (search.stop_metric / stop_mode); None: the
    # search metric and its mode
    stop_metric: str | None = None
    stop_mode: str | None = None
    # δ (search.min_effect), for a search without a confirmation (one has it in its design)
    min_effect: float | None = None
    # search.constraints (``outcome.limits.Limit``): a trial that breaks one is no candidate
    limits: tuple[Limit, ...] = ()

    @property
    def unit(self) -> Unit:
        """What the metric and its Δs are shown in (mIoU points for val_miou)."""
        return unit_of(self.metric)

    @property
    def confirmed(self) -> list[Confirmed]:
        return self.confirmation.confirmed if self.confirmation else []

    @property
    def winner(self) -> Confirmed | None:
        return self.confirmation.winner if self.confirmation else None

    # -- the baseline -----------------------------------------------------------
    def baselines(self) -> list[TrialRecord]:
        """The baseline on every paired seed: the search's replicates and the
        confirmation's later looks (the noise floor)."""
        return [r for r in self.records if r.is_baseline and r.final is not None and (
            (r.phase == "search" and r.seed in self.replicate_seeds)
            or r.phase.startswith("confirm"))]

    @property
    def noise(self) -> float:
        return noise_floor([r.final for r in self.baselines()])

    def noise_at(self, epoch: int) -> float:
        return noise_floor([r.at(epoch) for r in self.baselines() if r.at(epoch) is not None])

    @property
    def baseline_mean(self) -> float:
        values = [r.final for r in self.baselines()]
        return statistics.fmean(values) if values else math.nan

    def rung_spread(self) -> tuple[int, float, float, float] | None:
        """(ASHA's first rung, lowest and highest trial value there, baseline std there)."""
        if not self.rung:
            return None
        values = [r.at(self.rung) for r in self.records if r.phase == "search"
                  and not r.is_baseline and r.at(self.rung) is not None]
        if len(values) < 2:
            return None
        return self.rung, min(values), max(values), self.noise_at(self.rung)

    def gain_reference(self) -> tuple[str, tuple[float, ...]] | None:
        """(what it is, its value per epoch): what the search trials' gains are measured
        against. The baseline on their own seed when it was not selected (no tuning);
        else the replicates' mean, retrained at the tuned setting, so it carries no
        selection (the tuning's best trial does: it won on that seed and those images,
        and gains against it would lean low)."""
        ref = self.reference
        if ref is not None and ref.phase == "search" and ref.curve:
            return f"the baseline on the same seed ({ref.seed})", ref.curve
        reps = [r for r in self.baselines() if r.phase == "search" and r.curve]
        if reps:
            n = min(len(r.curve) for r in reps)
            seeds = ", ".join(str(r.seed) for r in reps)
            return (f"the mean of the baseline replicates (seeds {seeds}, retrained at the "
                    "tuned setting: no selection)",
                    tuple(statistics.fmean(r.curve[i] for r in reps) for i in range(n)))
        if ref is not None and ref.curve:
            return (f"the baseline tuning's best trial (seed {ref.seed}; selected on the "
                    "same seed and images, so these gains lean low)", ref.curve)
        return None

    def best_candidate(self) -> Confirmed | None:
        """The confirmation's best candidate by its paired mean, among those it judged
        (not dropped after the first look or outrun), None without candidates."""
        if not self.confirmed:
            return None
        judged = [c for c in self.confirmed if c.paired.verdict not in (
            sequential.DROPPED, sequential.OUTRUN)] or self.confirmed
        return max(judged, key=lambda c: direction.sign(self.mode) * (
            c.paired.mean if math.isfinite(c.paired.mean) else -math.inf))

    # -- ASHA's early decisions ------------------------------------------------
    def stop_decided_on(self) -> tuple[str, str] | None:
        """(metric, mode) ASHA compared at its rungs; None when it was another metric
        than the search's that this outcome was not told (its records carry its curve)."""
        if self.stop_metric is None or self.stop_metric == self.metric:
            if any(r.stop_curve for r in self.records if r.phase == "search"):
                return None
            return self.metric, self.mode
        return (self.stop_metric, self.stop_mode) if self.stop_mode else None

    @property
    def delta(self) -> float | None:
        """δ: the confirmation's smallest effect that matters, else ``min_effect``."""
        if self.confirmation is not None:
            return self.confirmation.result.design.min_effect
        return self.min_effect

    def early_stopping(self) -> early.Check | None:
        """Whether ASHA's first rung (``rung``) ranked the search's full-budget DejaVu
        trials as their final metric did, and which trials it stopped within δ of the
        winner (the confirmed one, else the best full-budget trial); None without early
        stopping, or when the metric it decided on is unknown."""
        stop = self.stop_decided_on()
        if not self.rung or stop is None:
            return None
        same = stop[0] == self.metric

        def at_rung(r: TrialRecord) -> float | None:
            if same:
                return r.at(self.rung)
            return r.stop_curve[self.rung - 1] if len(r.stop_curve) >= self.rung else None

        trials = [early.Trial(r.trial_id, r.curve, at_rung(r), r.final is not None,
                              r.status == "stopped_early")
                  for r in self.records if r.phase == "search" and not r.is_baseline]
        # the confirmed winner, else the confirmation's best candidate, else the best
        # non-inert full-budget trial: the configuration the search would name
        best = self.best_single(inert=False) or self.best_single()
        lead = self.winner or self.best_candidate()
        winner = (lead.search_trial if lead is not None else
                  best.trial_id if best is not None else None)
        return early.check(trials, self.rung, stop[0], stop[1], self.metric, self.mode,
                           self.delta, winner)

    # -- quality against cost ---------------------------------------------------
    def front(self) -> list[pareto.Point]:
        """The Pareto front of the search's DejaVu trials; [] with one objective."""
        if len(self.objectives) < 2:
            return []
        return pareto.front(pareto.points(self.records, self.objectives),
                            [m for _, m in self.objectives])

    def front_rows(self) -> list[dict[str, Any]]:
        confirmed = {c.search_trial: c.paired for c in self.confirmed}
        return pareto.front_rows(self.front(), self.objectives, self.baseline_mean, confirmed)

    # -- the verdict ------------------------------------------------------------
    @property
    def verdict(self) -> str:
        """One of ``sequential.VERDICTS``, or "not confirmed" (no confirmation ran)."""
        return self.confirmation.verdict if self.confirmation else NOT_CONFIRMED

    def power(self) -> power.Plan | None:
        """The design's power statement at the paired spread this search's confirmation
        measured (pooled over its candidates), else at its noise floor."""
        if self.confirmation is None:
            return None
        spread = power.pooled_sd([c.paired.deltas for c in self.confirmed])
        if math.isfinite(spread) and spread > 0:
            return power.plan(self.confirmation.result.design, spread, paired=True)
        if not math.isfinite(self.noise) or self.noise <= 0:
            return None
        return power.plan(self.confirmation.result.design, self.noise)

    def best_single(self, inert: bool = True) -> TrialRecord | None:
        """The best full-budget DejaVu trial of the search (``inert``: inert ones too)."""
        sign = direction.sign(self.mode)
        full = [r for r in self.records if r.phase == "search" and not r.is_baseline
                and r.final is not None and (inert or not r.inert)
                and not broken(self.limits, r.last)]
        return max(full, key=lambda r: sign * r.final) if full else None

    def over_limits(self) -> list[tuple[TrialRecord, list[str]]]:
        """The search's DejaVu trials that broke a hard limit, each with what it broke."""
        out = []
        for r in self.records:
            if r.phase == "search" and not r.is_baseline and r.last:
                why = broken(self.limits, r.last)
                if why:
                    out.append((r, why))
        return out


def headline(o: Outcome) -> list[str]:
    """The lines that say what the search found."""
    m = f"held-out {o.metric}"  # the confirmation's verdict reads the held-out split
    u = o.unit
    if o.winner is not None:
        return [f"winner: {_trial_label(o, o.winner.search_trial)} "
                f"({short_params(o.winner.config)})",
                f"  {m} {_paired(o.winner.paired, u)}"]
    if o.confirmation is not None and o.confirmed:
        result = o.confirmation.result
        best = o.best_candidate()
        delta = f"δ = {_amount(result.design.min_effect, u)}"
        if o.verdict == sequential.INCONCLUSIVE:
            need = sequential.seeds_to_decide(result.design, best.paired.std)
            why = (f"the seed budget (search.max_seeds = {result.design.max_seeds}) ran out "
                   "before its interval decided" + (
                       f"; at the spread observed, about {need} paired seeds would decide"
                       if need else ""))
        elif o.verdict == sequential.LOSS:
            why = "DejaVu is worse than the baseline beyond noise"
        else:
            why = f"any gain is smaller than {delta}, the smallest that matters"
        return [f"{o.verdict}: {why}; the best candidate, "
                f"{_trial_label(o, best.search_trial)} ({short_params(best.config)}):",
                f"  {m} {_paired(best.paired, u)}"]
    single = o.best_single()
    if single is None:
        return [f"{NOT_CONFIRMED}: no DejaVu trial ran the full budget"]
    trials = [r for r in o.records if r.phase == "search" and not r.is_baseline]
    full = [r for r in trials if r.final is not None]
    why = ("confirmation is off (search.confirm_top: 0, or no baseline replicates)"
           if all(not r.inert for r in full) else
           f"{sum(r.inert for r in full)} of the {len(full)} full-budget trials were inert "
           "and none other qualified")
    return [f"not confirmed: {why}; the best single-seed trial "
            f"{trial_name(single.trial_id, single.trial_dir)} has "
            f"{o.metric} {_amount(single.final, u)} (search split), and one seed says nothing "
            "about noise"]


def _amount(value: float, u: Unit) -> str:
    """``0.50 mIoU points``: a value or a difference with its unit."""
    return f"{u.value(value)}{' ' + u.name if u.name else ''}"


def _paired(p: Paired, u: Unit) -> str:
    return p.text(u.scale, u.digits, u.name)


def _ranked(o: Outcome, top: int | None = None) -> list[str]:
    sign = direction.sign(o.mode)
    trials = [r for r in o.records if r.phase == "search" and not r.is_baseline]
    full = sorted((r for r in trials if r.final is not None), key=lambda r: -sign * r.final)
    stopped = sorted((r for r in trials if r.status == "stopped_early" and r.curve),
                     key=lambda r: (-r.epochs, -sign * r.curve[-1]))
    failed = [r for r in trials if r.status in FAILURES or (r.status != "completed"
                                                            and not r.curve)]
    reference = o.gain_reference()
    curve = reference[1] if reference else ()
    u = o.unit
    lines = ([f"Δ: each trial's {o.metric} minus {reference[0]}, at the same epoch"
              f"{'; values in ' + u.name if u.name else ''}.", ""] if reference else [])
    lines += [f"| rank | trial | status | epochs | {o.metric}{u.suffix} | Δ vs baseline (same "
              "epoch) | CRM reliance | regeneration / task gradient | parameters |",
              "|---|---|---|---|---|---|---|---|---|"]
    rows = full + stopped + failed
    for rank, r in enumerate(rows[:top], start=1):
        value = r.curve[-1] if r.curve else None
        gain = (value - curve[r.epochs - 1] if value is not None and 0 < r.epochs <= len(curve)
                else None)
        reliance, ratio = r.last.get("crm_reliance"), r.last.get("regen_grad_ratio")
        status = r.status + (" (inert)" if r.inert else "")
        label = str(rank) if r.final is not None else "–"
        lines.append(f"| {label} | {trial_name(r.trial_id, r.trial_dir) if r.trial_id else '?'} | {status} | {r.epochs} | {u.value(value)} | "
                     f"{u.delta(gain)} | {num(reliance, 2)} | {num(ratio, 3)} | "
                     f"{r.reason or short_params(r.config)} |")
    shown = rows[:top]
    why = [f"- {trial_name(r.trial_id, r.trial_dir)}: {o.stops[r.trial_id]}" for r in shown
           if r.status == "stopped_early" and r.trial_id in o.stops]
    if why:
        lines += ["", "Why ASHA stopped them (its rule: at each rung, a trial worse than the "
                  "cut-off, the 1 − 1/reduction_factor quantile of the trials recorded there "
                  "before it, stops):", "", *why]
    if top is not None and len(rows) > top:
        rest = rows[top:]
        counts = Counter(r.status for r in rest)
        lines += ["", f"… and {len(rest)} more trials (" + ", ".join(
            f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items()))
            + f"): every trial is in the search's `{SUMMARY_FILE}`."]
    return lines


def _confirmation(o: Outcome) -> list[str]:
    if o.confirmation is None or not o.confirmed:
        return []
    result = o.confirmation.result
    design = result.design
    family = (f"family-wise over {design.candidates} candidates (Bonferroni) and "
              if design.candidates > 1 else "")
    looks = ", ".join(f"{len(h)} at {max(look.n for look in h.values())} seeds"
                      for h in result.history)
    lines = ["", f"Confirmation: the candidates re-trained on seeds the search never used "
             "and scored on the **held-out split** (images no selection read: the search, "
             "ASHA and the baseline's tuning scored the search split), each paired with the "
             "baseline seed by seed, in looks (candidates at paired "
             f"seeds: {looks}); {result.runs} runs ({result.candidate_runs} DejaVu, "
             f"{result.baseline_runs} more baseline). Intervals are repeated confidence "
             f"intervals, 95% {family}every look at once (docs/method.md); "
             f"δ = {_amount(design.min_effect, o.unit)}.", "",
             f"| trial | configuration | {o.metric} where selected (search split, one seed) | "
             f"held-out {o.metric} per seed | held-out Δ mean ± std | sequential 95% CI | "
             "verdict |", "|---|---|---|---|---|---|---|"]
    for c in o.confirmed:
        p = c.paired
        per_seed = ", ".join(f"{s}: {o.unit.value(v)}" for s, v in sorted(c.values.items()))
        mark = " **winner**" if o.winner is not None and c.config == o.winner.config else ""
        lines.append(f"| {_trial_label(o, c.search_trial)} | {short_params(c.config)} | "
                     f"{o.unit.value(c.search_value)} | {per_seed} | "
                     f"{p.cell(o.unit.scale, o.unit.digits)} | "
                     f"{p.interval_text(o.unit.scale, o.unit.digits)} | {p.verdict}{mark} |")
    return lines


def _early_stopping(o: Outcome) -> list[str]:
    """Did ASHA's early decisions hold? Nothing without early stopping."""
    if not o.rung:
        return []
    lines = ["", "## Did ASHA's early decisions hold?", ""]
    c = o.early_stopping()
    if c is None:
        return lines + [f"- Not checked: ASHA decided on another metric than {o.metric}, and "
                        "this summary was not told which (or which way it is better)."]
    at = f"{c.stop_metric} at epoch {c.rung} (ASHA's first rung) with the final {c.metric}"
    if not c.enough:
        lines.append(f"- Rank correlation of {at}: too few full-budget trials ({c.n}) to "
                     f"check (an interval needs {early.MIN_TRIALS}).")
    else:
        head = f"- Rank correlation of {at} over {c.n} full-budget trials: "
        if not math.isfinite(c.rho):
            text = "none, their values tie: the rung could not rank them"
        elif c.ci is not None:
            text = (f"{c.rho:+.2f} (95% CI {c.ci[0]:+.2f} to {c.ci[1]:+.2f}, Fisher's z, "
                    "Fieller et al. 1957; +1: the rung ranked them as the end did)")
        else:
            text = (f"{c.rho:+.2f} (Fisher's z gives no interval at ±1; a ranking this "
                    f"perfect with no relation at all: 2/{c.n}! = {c.exact_p:.2g})")
        verdict = (" — no better than chance at this many trials: its stops may have cut "
                   "configurations that would have ended well" if c.chance else "")
        lines.append(head + text + verdict + ".")
    u = o.unit
    delta = (f"δ = {_amount(c.min_effect, u)}" if c.min_effect else
             "δ (unknown here: counted as 0)")
    # what the search would name: the confirmed winner, else its best candidate
    who = "the winner" if o.winner is not None else "the best candidate"
    winner = _trial_label(o, c.winner)
    if c.winner is None:
        lines.append("- No full-budget trial to measure the stopped ones against.")
    elif not c.stopped:
        lines.append("- ASHA stopped no trial early.")
    elif not c.near:
        lines.append(f"- No trial within {delta} of {who}, {winner}, was stopped early "
                     f"(each of the {c.stopped} stopped trials against {winner}'s {o.metric} "
                     "at the epoch it was stopped).")
    else:
        listed = ", ".join(f"{_trial_label(o, n.trial_id)} (epoch {n.epoch}: "
                           f"{u.value(n.value)} vs {u.value(n.winner_value)})" for n in c.near)
        lines.append(f"- Stopped early within {delta} of {who}, {winner} ({o.metric} "
                     f"where ASHA stopped them vs {winner}'s at the same epoch"
                     f"{', in ' + u.name if u.name else ''}): {listed}. ASHA may have cut a "
                     f"configuration as good as {who}.")
    return lines


def _limits(o: Outcome) -> list[str]:
    """The hard limits (search.constraints) and the trials that broke them."""
    if not o.limits:
        return []
    over = o.over_limits()
    trials = [r for r in o.records if r.phase == "search" and not r.is_baseline and r.last]
    lines = ["", "## Hard limits", "",
             f"- {', '.join(limit.text() for limit in o.limits)}: {len(over)} of "
             f"{len(trials)} trials broke them; none of those can be the winner (the sampler "
             "learned to propose fewer of them, Optuna's constraints_func)."]
    lines += [f"- {_trial_label(o, r.trial_id)}: {'; '.join(why)}" for r, why in over]
    return lines


def _out_of_memory(o: Outcome) -> list[str]:
    """Runs too large for where they ran, counted apart from the runs that failed."""
    short = [r for r in o.records if r.status == OUT_OF_MEMORY]
    if not short:
        return []
    failed = sum(r.status == "failed" for r in o.records)
    names = ", ".join(trial_name(r.trial_id, r.trial_dir) if r.trial_id else "?"
                      for r in short[:8])
    return [f"- Out of memory: {len(short)} of {len(o.records)} runs ({names}"
            f"{', …' if len(short) > 8 else ''}; {failed} other failure"
            f"{'s' if failed != 1 else ''}), status "
            f"`{OUT_OF_MEMORY}` with the allocator's numbers in `dejavu.failure_reason`: "
            f"{ADVICE} lets them run."]


def _model_line(o: Outcome) -> str:
    """Where the winner's network is, or why there is none."""
    if o.model is None:
        return ("- Model: none logged; nothing was confirmed, so no network is "
                "recommended.")
    if "error" in o.model:
        return f"- Model: the winner's network could not be logged: {o.model['error']}."
    registered = (f", registered as `{o.model['registered_name']}` version "
                  f"{o.model['registered_version']}" if o.model.get("registered_name") else "")
    return (f"- Model: the winner's network (the base network; the CRM is training-time "
            f"only) from its confirmation run on the lowest seed, `{o.model['model_uri']}`"
            f"{registered}; `mlflow.pytorch.load_model` loads it.")


def _trial_label(o: Outcome, trial_id: str | None) -> str:
    record = next((r for r in o.records if r.trial_id == trial_id), None)
    return trial_name(trial_id, record.trial_dir if record else None) if trial_id else "?"


def report_markdown(o: Outcome, top: int | None = None, front_image: str | None = None,
                    forest_image: str | None = None) -> str:
    """The summary; ``top`` rows of the ranked trials only (for the terminal);
    ``front_image``: Markdown of the Pareto plot, shown under the front's table;
    ``forest_image``: Markdown of the forest plot, shown under the verdict."""
    lines = [f"## {o.verdict.capitalize()}", ""] + [line.strip() for line in headline(o)]
    if forest_image:
        lines += ["", forest_image]
    base = o.baselines()
    u = o.unit
    lines += ["", "## How sure", ""]
    if u.name:
        lines.append(f"- Units: {o.metric} and its Δs in {u.name} ({o.metric} × {u.scale:g}; "
                     "the logged values and `best_config.json` keep the metric's own scale).")
    if base:
        lines.append(f"- Noise floor: the baseline's {o.metric} after {o.epochs} epochs is "
                     f"{u.value(o.baseline_mean)} ± {u.value(o.noise, missing='n/a')} (sample std over seeds "
                     f"{', '.join(str(r.seed) for r in base)}).")
    plan = o.power()
    if plan is not None:
        lines.append(f"- Power: {plan.text('measured by this search', u)}.")
    lines += _out_of_memory(o)
    spread = o.rung_spread()
    if spread is not None:
        epoch, low, high, sigma = spread
        ratio = (high - low) / sigma if sigma and math.isfinite(sigma) else math.nan
        lines.append(f"- At epoch {epoch}, where ASHA first decides, the search's trials span "
                     f"{u.value(low)}–{u.value(high)} ({u.value(high - low)}); the baseline's seed-to-seed std "
                     f"there is {u.value(sigma, missing='n/a')}" + (
                         f": the configurations differ by {ratio:.1f}× the seed's spread."
                         if math.isfinite(ratio) else "."))
    if o.tuning:
        lines.append(f"- Baseline tuned as hard as DejaVu: {o.tuning['text']}")
    for cut in o.cuts:
        lines.append(f"- Time budget: {cut}. The verdict covers the trials that ran: a "
                     "configuration the cut trials would have sampled was never compared.")
    lines.append(_model_line(o))
    if o.warm:
        lines.append(f"- Warm start: {o.warm.removeprefix('warm start ')}. Its trials inform "
                     "the sampler only: every value compared here was trained by this search.")
    if o.crm:
        lines.append(f"- Stored CRM weights ({len(o.crm)}): " + "; ".join(o.crm))
    inert = [r for r in o.records if r.inert and r.phase == "search"]
    if inert:
        lines.append(f"- {len(inert)} trial(s) were inert (their CRM ignored the prediction, "
                     "or its gradient did not reach the network): never counted as a gain.")
    lines += _confirmation(o)
    if len(o.objectives) > 1:
        counted = len(pareto.points(o.records, o.objectives))
        lines += [""] + pareto.front_markdown(
            o.front_rows(), o.objectives, o.baseline_mean, counted,
            lambda row: _trial_label(o, row["trial_id"]))
        if front_image:
            lines += [front_image, ""]
    lines += _limits(o)
    lines += _early_stopping(o)
    lines += ["", f"## Search trials ({o.epochs}-epoch budget)", "",
              "Ranked at equal budget: full-budget trials by their final value; trials ASHA "
              "stopped by their value where they stopped (not comparable with the full "
              "budget, unranked); failed trials last.", ""]
    lines += _ranked(o, top)
    return "\n".join(lines) + "\n"


def result_payload(o: Outcome, full_config: Any) -> dict[str, Any]:
    """``best_config.json``: the verdict first. ``config`` is the full training
    configuration of the confirmed winner only; without one nothing is recommended
    (``config`` null) and ``unconfirmed`` names the best non-inert full-budget trial, as
    unconfirmed (an inert one, marked so, only when every trial was). ``trial`` and the
    metric's key are where the configuration was selected
    (one seed of the search), never the confirmation's verdict."""
    winner = o.winner
    # the best non-inert trial; when every one was inert, the best of those, said so
    single = o.best_single(inert=False) or o.best_single()
    trial = (winner.search_trial if winner is not None else
             single.trial_id if single is not None else None)
    return {
        "verdict": o.verdict,
        "metric": o.metric,
        "recommended": winner is not None,
        "confirmed": winner is not None,
        "note": ("the confirmed winner: a significant gain on seeds the search never used"
                 if winner is not None else
                 "nothing is recommended: no configuration was confirmed"
                 + (" (unconfirmed: the best single-seed trial, for a closer look)"
                    if single is not None else "")),
        "winner": winner.to_dict() if winner is not None else None,
        "config": full_config(winner.config).to_dict() if winner is not None else None,
        "unconfirmed": None if winner is not None or single is None else {
            "trial": single.trial_id, "trial_name": _trial_label(o, single.trial_id), o.metric: single.final,
            "inert": single.inert,
            "config": full_config(single.sampled()).to_dict()},
        "trial": trial,  # Tune's id of the search trial
        "trial_name": _trial_label(o, trial) if trial is not None else None,  # t07
        o.metric: (winner.search_value if winner is not None else
                   single.final if single is not None else None),
        "noise_floor": {"std": o.noise, "mean": o.baseline_mean,
                        "seeds": [r.seed for r in o.baselines()]},
        "baseline_tuning": o.tuning,
        "time_budget_cuts": list(o.cuts),
        "model": o.model,  # the winner's network in MLflow: its run and checkpoint
        "confirmation": [c.to_dict() for c in o.confirmed],
        "early_stopping": _early_dict(o),
        **({"design": _design_dict(o.confirmation)} if o.confirmation else {}),
        **({"objectives": [{"metric": m, "mode": d} for m, d in o.objectives],
            "pareto_front": o.front_rows()} if len(o.objectives) > 1 else {}),
    }


def _early_dict(o: Outcome) -> dict[str, Any] | None:
    """The early-stopping check (``outcome.early_stopping``) with the trials' names;
    None without early stopping or when ASHA's metric is unknown."""
    c = o.early_stopping()
    if c is None:
        return None
    d = c.to_dict()
    d["winner_name"] = _trial_label(o, c.winner) if c.winner is not None else None
    for row in d["stopped_within_min_effect"]:
        row["trial_name"] = _trial_label(o, row["trial"])
    return d


def _design_dict(c: Confirmation) -> dict[str, Any]:
    d, r = c.result.design, c.result
    return {"method": "repeated confidence intervals, O'Brien-Fleming-type error spending, "
                      "Bonferroni over candidates (docs/method.md)",
            "candidates": d.candidates, "looks": list(d.looks), "min_effect": d.min_effect,
            "family_alpha": d.alpha, "runs": r.runs, "candidate_runs": r.candidate_runs,
            "baseline_runs": r.baseline_runs}
