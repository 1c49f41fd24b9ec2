"""``python -m dejavu_tune.report``: a search's trials as an ablation table in Markdown.

Reads one search back from MLflow (its parent run and the child run of every trial)
and lays the finished trials out as the DejaVu supplement's Tables B.1/B.3/B.4 do:
the baseline first, one row per setting, each cell the mean ± sample standard
deviation over seeds, optionally one column per value of a parameter (e.g. the input
noise), and a "Δ vs baseline" column beside each. Defaults come from the ``report:``
section of the search's ``space.yaml``; flags override them.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dejavu_tune import cli
from dejavu_tune.config import ENABLED_KEY, MAE_EPOCHS_KEY
from dejavu_tune.errors import DejavuError
from dejavu_tune.outcome.numbers import num, spread
from dejavu_tune.outcome.paired import Paired, compare
from dejavu_tune.search.front_table import front_table, parse_objectives
from dejavu_tune.tracking import runs as tracking

__all__ = ["ReportError", "Trial", "Trials", "collect", "ablation_table", "build_parser",
           "main"]

SEED = "seed"  # the replicate key: averaged over, never a row or a column
# Keys of the training method itself (Table B.2's rows), never of the setting a row's
# baseline must share with it (the input noise of Table B.1, say).
_METHOD_KEYS = ("dejavu.", "model.mae.")
_DASH = "—"


class ReportError(DejavuError, ValueError):
    """Bad input: an unknown experiment or search, a metric or key the trials lack."""


@dataclass(frozen=True)
class Trial:
    run_id: str
    name: str
    kind: str  # "baseline" or "trial"
    params: dict[str, str]
    metrics: dict[str, float]  # each metric's value at the run's last logged epoch

    @property
    def is_baseline(self) -> bool:
        # A grid ablation has no baseline trial of its own: its DejaVu-off cells are one,
        # unless they pre-train MAE-style first (Table B.2's MAE row, compared with it).
        if self.params.get(MAE_EPOCHS_KEY, "0") != "0":
            return False
        return self.kind == "baseline" or self.params.get(ENABLED_KEY) == "False"


class Trials(list[Trial]):
    """The completed trials of one search, plus what a table needs to say about the rest."""

    def __init__(self, items: list[Trial], *, search: str, excluded: dict[str, int],
                 report: dict[str, Any], objectives: str = "") -> None:
        super().__init__(items)
        self.objectives = objectives  # the search's search.objectives, as its parent logged them
        self.search = search
        self.excluded = excluded  # status -> count of runs left out
        self.report = report  # the space's report: section, metric resolved


def _check_store(uri: str) -> None:
    # MLflow would silently create an empty store at a mistyped SQLite path.
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise ReportError(f"no MLflow store at {uri}: run a search first, or pass "
                          "--tracking-uri/--storage-path of the search")


def collect(uri: str, experiment: str, search: str | None = None) -> Trials:
    """The completed child runs of the search named ``search`` (default: the latest)."""
    _check_store(uri)
    exp_id = tracking.experiment_id(uri, experiment)
    if exp_id is None:
        known = tracking.experiment_names(uri)
        raise ReportError(f"experiment {experiment!r} not found at {uri}: expected one of "
                          + (", ".join(known) or "(none)"))
    parents = tracking.all_runs(uri, [exp_id], f"tags.`{tracking.KIND_TAG}` = 'search'",
                                order_by=["attributes.start_time DESC"])
    if not parents:
        raise ReportError(f"experiment {experiment!r} has no search runs "
                          f"(tag {tracking.KIND_TAG}=search)")
    names = [p.name for p in parents]
    if search is not None and search not in names:
        raise ReportError(f"no search {search!r} in experiment {experiment!r}: expected one "
                          "of " + ", ".join(sorted(set(names))))
    parent = parents[names.index(search) if search is not None else 0]
    trials, excluded = [], Counter()
    for run in tracking.child_runs(uri, exp_id, parent.run_id):
        if run.tags.get(tracking.PHASE_TAG, "search") != "search":
            continue  # CRM pre-trainings, baseline tuning and confirmation are not cells
        status = run.tags.get(tracking.STATUS_TAG, "unfinished")
        if status != "completed":
            excluded[status] += 1
            continue
        trials.append(Trial(run.run_id, run.name, run.tags.get(tracking.KIND_TAG, "trial"),
                            dict(run.params), dict(run.metrics)))
    if not trials:
        raise ReportError(f"search {parent.name!r} has no completed trials"
                          + (f" ({_excluded_text(excluded)})" if excluded else ""))
    space = _space(uri, parent.run_id, parent.name)
    report = dict(space.get("report") or {})
    search_metric = (space.get("search") or {}).get("metric") or parent.params.get("metric")
    report.setdefault("metric", search_metric if search_metric not in (None, "None")
                      else "val_miou")
    return Trials(trials, search=parent.name, excluded=dict(excluded), report=report,
                  objectives=parent.params.get("objectives", ""))


def _space(uri: str, run_id: str, name: str) -> dict[str, Any]:
    text = tracking.read_artifact_text(uri, run_id, "space.yaml")
    if text is None:
        return {}  # an interrupted search: the table then needs its settings as flags
    try:
        space = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ReportError(f"space.yaml of search {name!r} is not valid YAML: "
                          f"{str(exc).splitlines()[0]}") from None
    if not isinstance(space, dict) or not isinstance(space.get("report") or {}, dict):
        raise ReportError(f"space.yaml of search {name!r}: expected a mapping with an "
                          "optional report: mapping")
    return space


def _excluded_text(excluded: dict[str, int]) -> str:
    return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(excluded.items()))


def _order(value: str) -> tuple[int, float, str]:
    # Numbers sort by value (0.1 before 0.3 before 1), everything else alphabetically.
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def _short_names(keys: set[str]) -> dict[str, str]:
    """The shortest dotted suffix of each key that no other key shares."""
    short = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            name = ".".join(parts[-n:])
            if not any(o != key and o.split(".")[-n:] == parts[-n:] for o in keys):
                break
        short[key] = name
    return short


def _cell(key: str, value: str) -> str:
    return f"{key}={value}".replace("|", "\\|")


def ablation_table(rows: list[Trial], metric: str, columns: str | None = None,
                   scale: float = 100, digits: int = 1, title: str | None = None,
                   excluded: dict[str, int] | None = None) -> str:
    """Markdown: one row per setting (all params but seed and ``columns``), mean ± std."""
    if not rows:
        raise ReportError("no completed trials to tabulate")
    missing = [t.name for t in rows if metric not in t.metrics]
    if missing:
        logged = sorted(set.intersection(*(set(t.metrics) for t in rows)))
        raise ReportError(f"metric {metric!r} is not logged by {len(missing)} of {len(rows)} "
                          f"trials (e.g. {missing[0]}): expected one of " + ", ".join(logged))
    if columns is not None:
        keys = sorted({k for t in rows for k in t.params} - {SEED})
        if columns not in keys or any(columns not in t.params for t in rows):
            raise ReportError(f"columns key {columns!r} is not a param of every trial: "
                              "expected one of " + ", ".join(
                                  k for k in keys if all(k in t.params for t in rows)))
    excluded = getattr(rows, "excluded", {}) if excluded is None else excluded
    # Cells: setting -> column value -> scaled values (one per seed), and by seed.
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_seed: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    baselines: set[tuple] = set()
    for t in rows:
        setting = tuple(sorted((k, v) for k, v in t.params.items() if k not in (SEED, columns)))
        cells[setting][t.params.get(columns, "")].append(t.metrics[metric] * scale)
        if SEED in t.params:
            by_seed[setting][t.params.get(columns, "")][t.params[SEED]] = t.metrics[metric]
        if t.is_baseline:
            baselines.add(setting)
    settings = [dict(s) for s in cells]
    shown = {k for s in settings for k in s} - {ENABLED_KEY}  # implied by the row labels
    common = {k: settings[0][k] for k in shown
              if all(k in s and s[k] == settings[0][k] for s in settings)}
    varying = sorted(shown - set(common))
    short = _short_names(shown | ({columns} if columns else set()))
    # The baseline a row compares with shares its non-DejaVu setting (e.g. the noise level).
    context = sorted({k for b in baselines for k, _ in b if not k.startswith(_METHOD_KEYS)})

    def match(setting: tuple) -> tuple | None:
        found = [b for b in baselines
                 if all(dict(b).get(k) == dict(setting).get(k) for k in context)]
        return found[0] if len(found) == 1 else None

    order = sorted(cells, key=lambda s: (s not in baselines, [
        (k in dict(s), _order(dict(s).get(k, ""))) for k in varying]))
    values = sorted({v for c in cells.values() for v in c}, key=_order)
    heads = [_cell(short[columns], v) for v in values] if columns else [metric]
    header = ["setting"]
    for head in heads:
        header += [head] + (["Δ vs baseline"] if baselines else [])
    table, counts = [header], set()
    for setting in order:
        params = dict(setting)
        label = ["baseline" if setting in baselines else _method(params)]
        label += [_cell(short[k], params[k]) for k in varying if k in params]
        line = [", ".join(label)]
        for value in values:
            runs = cells[setting].get(value, [])
            counts.add(len(runs))
            mean = statistics.fmean(runs) if runs else math.nan
            std = statistics.stdev(runs) if len(runs) > 1 else None
            line.append(spread(mean, std, digits, sign=False) if runs else _DASH)
            if not baselines:
                continue
            ref = match(setting)
            ref_runs = cells[ref].get(value, []) if ref is not None else []
            if setting in baselines or not runs or not ref_runs:
                line.append(_DASH)
                continue
            pairs = compare(by_seed[setting][value], by_seed[ref][value], metric, "max")
            if pairs.n >= 2:
                line.append(_paired_cell(pairs, scale, digits))
            else:
                line.append(num(mean - statistics.fmean(ref_runs), digits, sign=True))
        table.append(line)
    return "\n".join(_render(table, title, common, short, metric, scale, counts, excluded,
                             bool(baselines), any(SEED in t.params for t in rows)))


def _method(params: dict[str, str]) -> str:
    """What a row trains with (seed Table B.2): DejaVu, redaction as augmentation, MAE-style
    pre-training, or DejaVu on an MAE-pre-trained network."""
    parts = [] if params.get(ENABLED_KEY) == "False" else [
        "redaction as augmentation" if params.get("dejavu.mode") == "augment" else "DejaVu"]
    if params.get(MAE_EPOCHS_KEY, "0") != "0":
        parts.append("MAE pre-training")
    return " + ".join(parts) or "DejaVu"


def _paired_cell(pairs: Paired, scale: float, digits: int) -> str:
    """``+2.0 ± 1.4 n.s.``: the per-seed differences' mean and std, and whether their 95%
    t interval excludes 0 (the sign of a metric's better direction is the reader's)."""
    low, high = pairs.ci
    significant = low > 0 or high < 0
    return f"{pairs.cell(scale, digits)} {'sig.' if significant else 'n.s.'}"


def _render(table: list[list[str]], title: str | None, common: dict[str, str],
            short: dict[str, str], metric: str, scale: float, counts: set[int],
            excluded: dict[str, int], has_baseline: bool, seeded: bool) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [f"### {title}", ""] if title else []
    if common:
        lines += ["All rows: " + ", ".join(_cell(short[k], common[k]) for k in sorted(common)),
                  ""]
    rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
    for row in [table[0], rule, *table[1:]]:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=False)]
        lines.append("| " + " | ".join(cells) + " |")
    runs = sorted(c for c in counts if c)
    n = f"{runs[0]}" if runs[0] == runs[-1] else f"{runs[0]}–{runs[-1]}"
    unit = "seed" if seeded else "run"
    lines += ["", f"{metric}{f' × {scale:g}' if scale != 1 else ''} at each run's last epoch: "
              f"mean ± sample std (ddof=1) over {n} {unit}{'s' if runs[-1] > 1 else ''} per cell"
              + (" (one value: no std)" if runs[0] == 1 else "") + "."]
    if has_baseline:
        lines.append("Δ vs baseline: paired by seed with the baseline in the same column and "
                     "setting: mean ± sample std of the per-seed differences; sig. when their "
                     "95% t interval excludes 0, else n.s. (not significant). Without shared "
                     "seeds: the difference of the means.")
    else:
        lines.append("No baseline trials (dejavu.enabled=False): no Δ column.")
    if excluded:
        lines.append(f"Excluded: {_excluded_text(excluded)}.")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = cli.command_parser("python -m dejavu_tune.report", __doc__)
    p.add_argument("--experiment", default="dejavu-tune", help="MLflow experiment name")
    p.add_argument("--search", help="name of the search (default: the latest)")
    p.add_argument("--storage-path", default="runs",
                   help="the search's storage path: its default store is mlflow.db in it")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (overrides --storage-path)")
    p.add_argument("--metric", help="metric to tabulate (default: the space's report.metric, "
                                    "else its search.metric)")
    p.add_argument("--columns", help="dotted param whose values become columns, e.g. "
                                     "data.input_noise")
    p.add_argument("--scale", type=float, help="multiply values by this (default 100)")
    p.add_argument("--digits", type=int, help="decimals (default 1)")
    p.add_argument("--title", help="heading above the table")
    p.add_argument("--objectives", nargs="+", metavar="METRIC",
                   help="also lay out the Pareto front of these metrics, quality first, then "
                        "costs, e.g. val_miou step_time_ratio mem_ratio (METRIC:min or :max "
                        "for another direction; default: the search's search.objectives, if "
                        "it had several)")
    p.add_argument("--output", help="also write the table to this Markdown file")
    return p


def _settings(report: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    merged = {"scale": 100, "digits": 1, **report}
    merged.update({k: getattr(args, k) for k in ("metric", "columns", "scale", "digits", "title")
                   if getattr(args, k) is not None})
    scale, digits = merged["scale"], merged["digits"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ReportError(f"scale {scale!r} is not allowed: expected a finite number")
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 10:
        raise ReportError(f"digits {digits!r} is not allowed: expected an integer 0..10")
    return {k: merged.get(k) for k in ("metric", "columns", "scale", "digits", "title")}


def _objectives(trials: Trials, given: list[str] | None) -> list[tuple[str, str]]:
    """The objectives of the front: ``--objectives``, else the search's own."""
    text = " ".join(given) if given else trials.objectives
    if not text:
        return []
    try:
        objectives = parse_objectives(text)
    except ValueError as exc:
        raise ReportError(f"--objectives: {exc}") from None
    if len(objectives) < 2:
        raise ReportError(f"--objectives {text!r}: expected a quality metric and at least one "
                          "cost, e.g. val_miou step_time_ratio")
    return objectives


def _collect(uri: str, experiment: str, search: str | None) -> Trials:
    try:
        return collect(uri, experiment, search)
    except ReportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the store itself: MLflow, SQLAlchemy and HTTP
        # clients each raise their own kinds for a bad URI or a locked or foreign database
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ReportError(f"cannot read MLflow store {uri}: {type(exc).__name__}: "
                          f"{first}") from exc


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise ReportError(f"cannot write --output {path}: {exc.strerror}: expected a file "
                          "path in a writable directory") from exc


def main(argv: list[str] | None = None) -> int:
    """The command; a user error is one line and exit 2 (``--debug``: its traceback)."""
    return cli.run(_main, argv)


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    # MLflow draws a progress bar on stderr for every download, even of space.yaml.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    tracking.bound_http_waits(retries=1)  # a report has nothing to wait for
    uri = args.tracking_uri or tracking.default_tracking_uri(args.storage_path)
    trials = _collect(uri, args.experiment, args.search)
    text = ablation_table(trials, **_settings(trials.report, args)) + "\n"
    objectives = _objectives(trials, args.objectives)
    if objectives:
        try:
            text += "\n" + front_table(trials, objectives)
        except ValueError as exc:
            raise ReportError(str(exc)) from None
    sys.stdout.write(text)
    if args.output:
        _write(args.output, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
