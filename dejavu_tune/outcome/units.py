"""The unit a person reads each metric in, and its differences.

Metrics are logged as the meters compute them (mIoU as a fraction, abs. rel. as a
ratio, angles in degrees); a researcher reads segmentation in mIoU *points* (the paper's
+1.8 is 0.018 logged), and a logged gain of 2.3e-07 must not read as 2.3. Every place a
person sees a value or a Δ (the summary, the runs table's display columns, the figures,
the report) writes it through ``unit_of(metric)``; the exact values stay logged as they
are.

Fractions (mIoU, pixel accuracy, depth's δ thresholds, normals' within-angle shares) read
as points (× 100); depth's errors and normals' angles read in their own units. A metric
of a task of one's own reads as logged unless its name ends like one of these.
"""

from __future__ import annotations

from dataclasses import dataclass

from dejavu_tune.outcome.numbers import interval, num, spread

__all__ = ["Unit", "AS_LOGGED", "unit_of"]


@dataclass(frozen=True)
class Unit:
    name: str  # what a shown number counts: "mIoU points"
    scale: float  # shown = logged × scale
    digits: int  # decimals shown
    key: str = ""  # a display metric's suffix: val_miou_pts; "" reads as logged

    def value(self, v: float | None, sign: bool = False, missing: str = "") -> str:
        return num(v, self.digits, sign, self.scale, missing)

    def delta(self, v: float | None, missing: str = "") -> str:
        return num(v, self.digits, True, self.scale, missing)

    def spread(self, mean: float, std: float | None, sign: bool = True) -> str:
        return spread(mean, std, self.digits, self.scale, sign)

    def interval(self, low: float, high: float) -> str | None:
        return interval(low, high, self.digits, self.scale)

    def shown(self, v: float) -> float:
        """The number as shown, for a figure's axis or a display column."""
        return v * self.scale

    def display(self, name: str) -> str:
        """The key of ``name``'s display copy in the runs table (``final_gain_pts``):
        a short column header that says the unit."""
        return f"{name}_{self.key or 'rounded'}"

    def rounded(self, v: float) -> float:
        """The display copy's value: as shown, to the digits shown (the table prints a
        metric whole, and a column cuts 2.3e-07 to "2.2545…")."""
        return round(v * self.scale, self.digits) + 0.0

    @property
    def suffix(self) -> str:
        """`` (mIoU points)``: what an axis or a column header adds; empty as logged."""
        return f" ({self.name})" if self.name else ""


AS_LOGGED = Unit("", 1.0, 4)

_POINTS = 100.0
# by the metric's name without its split prefix (val_, heldout_)
_UNITS: dict[str, Unit] = {
    "miou": Unit("mIoU points", _POINTS, 2, "pts"),
    "pixel_acc": Unit("pixel-accuracy points", _POINTS, 2, "pts"),
    "pq": Unit("PQ points", _POINTS, 2, "pts"),
    "abs_rel": Unit("abs. rel.", 1.0, 4),
    "sq_rel": Unit("sq. rel.", 1.0, 4),
    "rmse": Unit("m", 1.0, 3, "m"),
    "rmse_log": Unit("log RMSE", 1.0, 4),
    "delta1": Unit("δ<1.25 points", _POINTS, 2, "pts"),
    "delta2": Unit("δ<1.25² points", _POINTS, 2, "pts"),
    "delta3": Unit("δ<1.25³ points", _POINTS, 2, "pts"),
    "normal_mean": Unit("degrees", 1.0, 2, "deg"),
    "normal_median": Unit("degrees", 1.0, 2, "deg"),
    "normal_rmse": Unit("degrees", 1.0, 2, "deg"),
    "normal_11_25": Unit("points within 11.25°", _POINTS, 2, "pts"),
    "normal_22_5": Unit("points within 22.5°", _POINTS, 2, "pts"),
    "normal_30": Unit("points within 30°", _POINTS, 2, "pts"),
}
_PREFIXES = ("val_", "heldout_", "final_", "best_single_seed_", "baseline_")


def unit_of(metric: str) -> Unit:
    """The unit ``metric`` (or a Δ of it) is shown in: ``val_miou``, ``heldout_miou`` and
    ``baseline_val_miou`` read in mIoU points; an unknown metric as logged."""
    key = metric
    while key.startswith(_PREFIXES):
        key = next(key.removeprefix(p) for p in _PREFIXES if key.startswith(p))
    return _UNITS.get(key, AS_LOGGED)
