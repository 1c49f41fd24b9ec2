"""``python -m dejavu_tune.report``: a search's trials as an ablation table.

Reads one search back from MLflow (its parent run and the child run of every trial)
and lays the finished trials out as the DejaVu supplement's Tables B.1/B.3/B.4 do:
the baseline first, one row per setting, each cell the mean ± sample standard
deviation over seeds, optionally one column per value of a parameter (e.g. the input
noise), and a "Δ vs baseline" column beside each. Defaults come from the ``report:``
section of the search's ``space.yaml``; flags override them.

``--format`` picks Markdown (the default), a LaTeX booktabs tabular or CSV (numbers
unrounded, one line per row); ``--plot FILE.png`` draws a grid whose rows form a trend
(the metric against a numeric param with at least three values).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import dejavu_tune.report.plot as report_plot
from dejavu_tune import cli
from dejavu_tune.config import ENABLED_KEY, MAE_EPOCHS_KEY
from dejavu_tune.errors import DejavuError
from dejavu_tune.outcome.paired import compare
from dejavu_tune.report.formats import (
    FORMATS,
    SUFFIXES,
    Ablation,
    Cell,
    Row,
    excluded_text,
    markdown,
)
from dejavu_tune.search.front_table import front_table, parse_objectives
from dejavu_tune.tracking import runs as tracking

__all__ = ["ReportError", "Trial", "Trials", "collect", "ablation", "ablation_table",
           "build_parser", "main"]

SEED = "seed"  # the replicate key: averaged over, never a row or a column
# Keys of the training method itself (Table B.2's rows), never of the setting a row's
# baseline must share with it (the input noise of Table B.1, say).
_METHOD_KEYS = ("dejavu.", "model.mae.")


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
                          + (f" ({excluded_text(excluded)})" if excluded else ""))
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


def ablation(rows: list[Trial], metric: str, columns: str | None = None,
             scale: float = 100, digits: int = 1, title: str | None = None,
             excluded: dict[str, int] | None = None) -> Ablation:
    """The grid: one row per setting (all params but seed and ``columns``), the baseline
    rows first, each cell the runs of one setting at one ``columns`` value."""
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
    # Cells: setting -> column value -> values (one per run), and by seed.
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_seed: dict[tuple, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    baselines: set[tuple] = set()
    for t in rows:
        setting = tuple(sorted((k, v) for k, v in t.params.items() if k not in (SEED, columns)))
        cells[setting][t.params.get(columns, "")].append(t.metrics[metric])
        if SEED in t.params:
            by_seed[setting][t.params.get(columns, "")][t.params[SEED]] = t.metrics[metric]
        if t.is_baseline:
            baselines.add(setting)
    settings = [dict(s) for s in cells]
    shown = {k for s in settings for k in s} - {ENABLED_KEY}  # implied by the row labels
    common = {k: settings[0][k] for k in shown
              if all(k in s and s[k] == settings[0][k] for s in settings)}
    varying = sorted(shown - set(common))
    # The baseline a row compares with shares its non-DejaVu setting (e.g. the noise level).
    context = sorted({k for b in baselines for k, _ in b if not k.startswith(_METHOD_KEYS)})

    def match(setting: tuple) -> tuple | None:
        found = [b for b in baselines
                 if all(dict(b).get(k) == dict(setting).get(k) for k in context)]
        return found[0] if len(found) == 1 else None

    def cell(setting: tuple, value: str) -> Cell:
        runs = tuple(cells[setting].get(value, []))
        ref = match(setting) if baselines and setting not in baselines else None
        if ref is None:
            return Cell(runs)
        ref_runs = tuple(cells[ref].get(value, []))
        paired = (compare(by_seed[setting][value], by_seed[ref][value], metric, "max")
                  if runs and ref_runs else None)
        return Cell(runs, ref_runs, paired)

    order = sorted(cells, key=lambda s: (s not in baselines, [
        (k in dict(s), _order(dict(s).get(k, ""))) for k in varying]))
    values = tuple(sorted({v for c in cells.values() for v in c}, key=_order))
    table_rows = tuple(Row(dict(s), "baseline" if s in baselines else _method(dict(s)),
                           s in baselines, tuple(cell(s, v) for v in values)) for s in order)
    return Ablation(metric, table_rows, columns, values, tuple(varying), common,
                    _short_names(shown | ({columns} if columns else set())), scale, digits,
                    title, bool(baselines), any(SEED in t.params for t in rows),
                    dict(excluded))


def ablation_table(rows: list[Trial], metric: str, columns: str | None = None,
                   scale: float = 100, digits: int = 1, title: str | None = None,
                   excluded: dict[str, int] | None = None) -> str:
    """Markdown: one row per setting (all params but seed and ``columns``), mean ± std."""
    return markdown(ablation(rows, metric, columns, scale, digits, title, excluded))


def _method(params: dict[str, str]) -> str:
    """What a row trains with (seed Table B.2): DejaVu, redaction as augmentation, MAE-style
    pre-training, or DejaVu on an MAE-pre-trained network."""
    parts = [] if params.get(ENABLED_KEY) == "False" else [
        "redaction as augmentation" if params.get("dejavu.mode") == "augment" else "DejaVu"]
    if params.get(MAE_EPOCHS_KEY, "0") != "0":
        parts.append("MAE pre-training")
    return " + ".join(parts) or "DejaVu"


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
    p.add_argument("--format", choices=list(FORMATS),
                   help="markdown, latex (a booktabs tabular, notes as comments) or csv (one "
                        "line per row: mean, std, n, delta and its CI as numbers); default: "
                        "the format --output's suffix names (.md, .tex, .csv), else markdown")
    p.add_argument("--output", help="also write the table, in --format, to this file")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw the metric against the grid's numeric param (the --columns "
                        "key, else the row param with 3+ numeric values), ± std error bars; "
                        ".png, .pdf or .svg")
    return p


_PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _format(given: str | None, output: str | None) -> str:
    """--format, else the format --output's suffix names, else Markdown; a suffix that
    names another format than --format's is refused rather than written mislabelled."""
    suffix = Path(output).suffix.lower() if output else ""
    named = next((f for f, suffixes in SUFFIXES.items() if suffix in suffixes), None)
    if given is None:
        return named or "markdown"
    if named is not None and named != given:
        raise ReportError(f"--output {output} is a {named} file but --format is {given}: "
                          f"expected a {' or '.join(SUFFIXES[given])} file (or a suffix of no "
                          f"format) with --format {given}, or --format {named}")
    return given


def _check_paths(args: argparse.Namespace, fmt: str) -> None:
    """Every file the command will write can be, before a minute of reading MLflow."""
    if args.objectives and fmt != "markdown":
        raise ReportError(f"--objectives lays out a Markdown table: expected --format "
                          f"markdown with it, not {fmt}")
    if args.output:
        cli.check_output_file(args.output, "--output")
    if args.plot:
        if Path(args.plot).suffix.lower() not in _PLOT_SUFFIXES:
            raise ReportError(f"--plot {args.plot}: expected a file ending in "
                              + ", ".join(_PLOT_SUFFIXES))
        cli.check_output_file(args.plot, "--plot")


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
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # as check_output_file allows
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
    fmt = _format(args.format, args.output)
    _check_paths(args, fmt)
    uri = args.tracking_uri or tracking.default_tracking_uri(args.storage_path)
    trials = _collect(uri, args.experiment, args.search)
    grid = ablation(trials, **_settings(trials.report, args))
    text = FORMATS[fmt](grid) + "\n"
    objectives = _objectives(trials, args.objectives)
    if objectives and fmt != "markdown":
        print(f"note: the search's Pareto front of {trials.objectives} is laid out in "
              "Markdown only: --format markdown shows it", file=sys.stderr)
    elif objectives:
        try:
            text += "\n" + front_table(trials, objectives)
        except ValueError as exc:
            raise ReportError(str(exc)) from None
    drawn = None
    if args.plot:
        try:
            drawn = report_plot.trend(grid)  # refused before a line is printed
        except ValueError as exc:
            raise ReportError(str(exc)) from None
    sys.stdout.write(text)
    if args.output:
        _write(args.output, text)
    if drawn is not None:
        report_plot.plot(grid, args.plot, drawn)
    return 0

