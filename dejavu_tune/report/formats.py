"""An ablation grid as ``python -m dejavu_tune.report`` writes it: Markdown, LaTeX or CSV.

``report.ablation`` computes the grid once, as an ``Ablation``; each format is one function
of it, so the three cannot disagree about a number. Markdown and LaTeX round to the
grid's digits and add the notes; CSV keeps every number whole, for a program to read.
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from dejavu_tune.outcome.numbers import num, spread
from dejavu_tune.outcome.paired import Paired

__all__ = ["Cell", "Row", "Ablation", "markdown", "latex", "csv_text", "FORMATS",
           "SUFFIXES"]

_DASH = "—"


@dataclass(frozen=True)
class Cell:
    """One setting in one column: the metric of each run, and its Δ vs the baseline."""

    values: tuple[float, ...]  # as logged, one per run (seed); none: no run here
    # the baseline's values in the same column; None: no Δ (a baseline row, or none matches)
    reference: tuple[float, ...] | None = None
    paired: Paired | None = None  # by seed vs ``reference``, as logged

    @property
    def n(self) -> int:
        return len(self.values)

    def mean(self, scale: float) -> float:
        # scaled before averaging, as the Markdown table always has: the same last digit
        return statistics.fmean(v * scale for v in self.values) if self.values else math.nan

    def std(self, scale: float) -> float | None:
        return statistics.stdev(v * scale for v in self.values) if self.n > 1 else None

    @property
    def pair(self) -> Paired | None:
        """The paired comparison if it has two or more shared seeds (then it has a CI)."""
        return self.paired if self.paired is not None and self.paired.n >= 2 else None

    def delta(self, scale: float) -> float | None:
        """× scale: the paired mean difference, else the difference of the means."""
        if self.pair is not None:
            return self.pair.mean * scale
        if not self.reference or not self.values:
            return None
        return self.mean(scale) - statistics.fmean(r * scale for r in self.reference)

    @property
    def significant(self) -> bool | None:
        """Whether the paired 95% t interval excludes 0; None without a paired Δ."""
        if self.pair is None:
            return None
        low, high = self.pair.ci
        return low > 0 or high < 0


@dataclass(frozen=True)
class Row:
    params: dict[str, str]  # its setting: every param but the seed and the columns key
    method: str  # "baseline", "DejaVu", "redaction as augmentation", ...
    baseline: bool
    cells: tuple[Cell, ...]  # one per column value


@dataclass(frozen=True)
class Ablation:
    """A search's grid: the baseline rows first, one column per value of ``columns``."""

    metric: str
    rows: tuple[Row, ...]
    columns: str | None  # the param whose values are columns; None: one column
    values: tuple[str, ...]  # the columns' values in order; ("",) without ``columns``
    varying: tuple[str, ...]  # the params that tell rows apart, in the labels' order
    common: dict[str, str]  # params every row shares: listed once, above the table
    short: dict[str, str]  # each param's shortest name no other param shares
    scale: float = 100
    digits: int = 1
    title: str | None = None
    has_baseline: bool = False
    seeded: bool = False  # the trials have a seed param (else each run is a replicate)
    excluded: dict[str, int] = field(default_factory=dict)  # status -> runs left out

    def label(self, row: Row) -> list[tuple[str, str]]:
        """(short name, value) of each varying param the row has."""
        return [(self.short[k], row.params[k]) for k in self.varying if k in row.params]

    def heads(self) -> list[str]:
        if self.columns is None:
            return [self.metric]
        return [f"{self.short[self.columns]}={v}" for v in self.values]

    def counts(self) -> list[int]:
        """The distinct numbers of runs per cell, smallest first."""
        return sorted({c.n for row in self.rows for c in row.cells if c.n})

    def notes(self) -> list[str]:
        """What each number is, in sentences under the table."""
        runs = self.counts()
        n = f"{runs[0]}" if runs[0] == runs[-1] else f"{runs[0]}–{runs[-1]}"
        unit = "seed" if self.seeded else "run"
        scaled = f" × {self.scale:g}" if self.scale != 1 else ""
        lines = [f"{self.metric}{scaled} at each run's last epoch: mean ± sample std (ddof=1) "
                 f"over {n} {unit}{'s' if runs[-1] > 1 else ''} per cell"
                 + (" (one value: no std)" if runs[0] == 1 else "") + "."]
        if self.has_baseline:
            lines.append("Δ vs baseline: paired by seed with the baseline in the same column "
                         "and setting: mean ± sample std of the per-seed differences; sig. "
                         "when their 95% t interval excludes 0, else n.s. (not significant). "
                         "Without shared seeds: the difference of the means.")
        else:
            lines.append("No baseline trials (dejavu.enabled=False): no Δ column.")
        if self.excluded:
            lines.append(f"Excluded: {excluded_text(self.excluded)}.")
        return lines


def excluded_text(excluded: dict[str, int]) -> str:
    return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(excluded.items()))


def _value(t: Ablation, cell: Cell) -> str:
    if not cell.values:
        return _DASH
    return spread(cell.mean(t.scale), cell.std(t.scale), t.digits, sign=False)


def _delta(t: Ablation, row: Row, cell: Cell) -> str:
    delta = None if row.baseline else cell.delta(t.scale)
    if delta is None:
        return _DASH
    if cell.pair is not None:
        return f"{cell.pair.cell(t.scale, t.digits)} {'sig.' if cell.significant else 'n.s.'}"
    return num(delta, t.digits, sign=True)


def _numbers(t: Ablation, row: Row) -> list[str]:
    """The row's cells as text: each column's mean ± std, then its Δ if there is a baseline."""
    out = []
    for cell in row.cells:
        out.append(_value(t, cell))
        if t.has_baseline:
            out.append(_delta(t, row, cell))
    return out


# -- Markdown ------------------------------------------------------------------------------

def _md(text: str) -> str:
    return text.replace("|", "\\|")  # a | inside a cell would split it


def markdown(t: Ablation) -> str:
    """A Markdown pipe table under its title and "All rows:" line, with the notes below."""
    header = ["setting"]
    for head in t.heads():
        header += [_md(head)] + (["Δ vs baseline"] if t.has_baseline else [])
    table = [header]
    for row in t.rows:
        label = [row.method] + [_md(f"{k}={v}") for k, v in t.label(row)]
        table.append([", ".join(label), *_numbers(t, row)])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [f"### {t.title}", ""] if t.title else []
    if t.common:
        lines += ["All rows: " + ", ".join(_md(f"{t.short[k]}={t.common[k]}")
                                           for k in sorted(t.common)), ""]
    rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
    for row in [table[0], rule, *table[1:]]:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                          strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", *t.notes()])


# -- LaTeX ---------------------------------------------------------------------------------

_GREEK_LOWER = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi "
                "rho sigma tau upsilon phi chi psi omega").split()
_GREEK_UPPER = "Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split()


def _greek(name: str, case: str) -> str:
    return unicodedata.lookup(f"GREEK {case} LETTER {name.upper().replace('LAMBDA', 'LAMDA')}")


# pdflatex stops at an unknown Unicode character and at a bare special character: every
# one the tables, param values and units can hold becomes its command.
_LATEX = str.maketrans({
    "\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"$<$", ">": r"$>$", "|": r"$|$", "±": r"$\pm$", "×": r"$\times$", "−": r"$-$",
    "—": "---", "–": "--", "°": r"$^\circ$", "²": r"$^2$", "³": r"$^3$",
    **{_greek(g, "SMALL"): f"$\\{g}$" for g in _GREEK_LOWER},
    **{_greek(g, "CAPITAL"): f"$\\{g}$" for g in _GREEK_UPPER},
})
# A - in front of a number is a minus, not a hyphen (the - of 1e-05 stays one).
_MINUS = re.compile(r"(?<![\w.])-(?=[\d.])")


def tex(text: str) -> str:
    """``text`` as LaTeX that typesets it: specials escaped, ± and Greek as math."""
    return "$-$".join(part.translate(_LATEX) for part in _MINUS.split(text))


def latex(t: Ablation) -> str:
    """A booktabs ``tabular`` as the supplement's Tables B.1-B.4 lay theirs out: one column
    per varying param, then the metric (and its Δ) per column value; title and notes as
    comments, for the caption to take from."""
    per = 2 if t.has_baseline else 1
    names = ["method", *(t.short[k] for k in t.varying)]
    lines = [f"% {t.title}"] if t.title else []
    if t.common:
        lines.append("% All rows: " + ", ".join(f"{t.short[k]}={t.common[k]}"
                                                 for k in sorted(t.common)))
    lines += [f"\\begin{{tabular}}{{l{'c' * len(t.varying)}{'r' * per * len(t.values)}}}",
              "\\toprule"]
    if t.columns is not None:
        # the column values above their metric and Δ, as Table B.1's noise levels are
        lines.append(" & ".join([""] * len(names) + [f"\\multicolumn{{{per}}}{{c}}{{{tex(h)}}}"
                                                     for h in t.heads()]) + " \\\\")
        first = len(names) + 1
        lines.append(" ".join(f"\\cmidrule(lr){{{first + i * per}-{first + i * per + per - 1}}}"
                              for i in range(len(t.values))))
    per_value = [tex(t.metric)] + (["$\\Delta$ vs baseline"] if t.has_baseline else [])
    table = [[tex(n) for n in names] + per_value * len(t.values)]
    for row in t.rows:
        table.append([tex(row.method)] + [tex(row.params[k]) if k in row.params else "---"
                                          for k in t.varying]
                     + [tex(c) for c in _numbers(t, row)])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    body = [" & ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + " \\\\"
            for r in table]
    lines += [body[0], "\\midrule", *body[1:], "\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines + [f"% {note}" for note in t.notes()])


# -- CSV -----------------------------------------------------------------------------------

_STATS = ("mean", "std", "n", "delta", "delta_std", "delta_n", "delta_ci_low", "delta_ci_high",
          "significant")


def _stats(t: Ablation, row: Row, cell: Cell) -> list[object]:
    delta = None if row.baseline else cell.delta(t.scale)
    paired = cell.pair if delta is not None else None
    low, high = paired.ci if paired is not None else (None, None)
    return [cell.mean(t.scale) if cell.values else None, cell.std(t.scale),
            cell.n, delta,
            paired.std * t.scale if paired is not None else None,
            paired.n if paired is not None else None,
            low * t.scale if low is not None else None,
            high * t.scale if high is not None else None,
            cell.significant if paired is not None else None]


def _csv_value(v: object) -> object:
    # an empty field, not "nan" or "None", is what spreadsheets and pandas read as missing
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v


def csv_text(t: Ablation) -> str:
    """One line per table row: its label, its params (full names) and, per column value,
    the numbers unrounded: mean, std, n, Δ, the Δ's std, shared seeds and 95% CI, and
    whether the CI excludes 0. Values and Δs are × scale, like the tables'."""
    keys = sorted(set(t.varying) | set(t.common))
    prefixes = [f"{h} " if t.columns is not None else "" for h in t.heads()]
    header = ["setting", "baseline", "metric", "scale", *keys,
              *(f"{p}{s}" for p in prefixes for s in _STATS)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in t.rows:
        label = ", ".join([row.method] + [f"{k}={v}" for k, v in t.label(row)])
        params = {**t.common, **row.params}
        line: list[object] = [label, row.baseline, t.metric, t.scale,
                              *(params.get(k, "") for k in keys)]
        for cell in row.cells:
            line += _stats(t, row, cell)
        writer.writerow([_csv_value(v) for v in line])
    return out.getvalue().rstrip("\n")


FORMATS: dict[str, Callable[[Ablation], str]] = {"markdown": markdown, "latex": latex,
                                                 "csv": csv_text}
# The suffixes a file of each format has: --output's suffix picks the format (or must
# agree with --format); one of none of these is any text file.
SUFFIXES: dict[str, tuple[str, ...]] = {"markdown": (".md", ".markdown"), "latex": (".tex",),
                                        "csv": (".csv",)}
