"""The search's four figures, read back from their artists: which line has which colour
and data, where ASHA's rungs are, the knob intervals, the budget's numbers."""

import math
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dejavu_tune.raytune.trial_results import TrialResult  # noqa: E402
from dejavu_tune.search import (  # noqa: E402
    figures_budget,
    figures_crm,
    figures_curves,
    figures_knobs,
)
from dejavu_tune.search.figures_common import (  # noqa: E402
    COMPLETED,
    FAILED,
    INERT,
    OUTCOME_COLOURS,
    STOPPED,
    FigureInputs,
    FigureTrial,
    asha_rungs,
)
from dejavu_tune.search.search_figures import (  # noqa: E402
    FIGURE_FILES,
    figures_of,
    search_figures,
)
from dejavu_tune.search.space import Param, SearchSettings  # noqa: E402
from dejavu_tune.search.trial_records import from_result  # noqa: E402
from dejavu_tune.train.diagnostics import INERT_GRAD_RATIO, INERT_RELIANCE  # noqa: E402

EPOCHS = 12
KIND = Param("dejavu.crm.kind", "categorical", choices=("crm_r", "crm_f"))
GAMMA = Param("dejavu.loss.gamma", "float", low=0.01, high=10.0, log=True)
LIVE = {"crm_reliance": 0.5, "regen_grad_ratio": 0.2}  # a CRM that acts


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _trial(number, curve, *, step="search", config=None, error=None, t0=None, **extra):
    """A trial whose rows hold ``curve`` as val_miou (task_loss = 1 - it), ``extra``
    in every row, and Tune's times when ``t0`` says when it started (100 s an epoch)."""
    rows = []
    for e, value in enumerate(curve, start=1):
        row = {"training_iteration": e, "val_miou": value, "task_loss": 1 - value, **extra}
        if t0 is not None:
            row.update(timestamp=t0 + 100 * e, time_total_s=100.0 * e, time_this_iter_s=100.0)
        rows.append(row)
    result = TrialResult(config=config if config is not None else {"dejavu.crm.kind": "crm_r"},
                         rows=tuple(rows), error=error, path=f"/x/{step}/t{number:02d}",
                         last={**(rows[-1] if rows else {}), "trial_id": f"id{number}"})
    return FigureTrial(step, from_result(result, step, "val_miou", EPOCHS, 0), tuple(rows))


def _baseline(number, seed, value=0.5, **kw):
    config = {"dejavu.enabled": False, **({"seed": seed} if seed else {})}
    return _trial(number, [value] * EPOCHS, config=config, **kw)


def _inputs(trials, **kw):
    return FigureInputs(**{"metric": "val_miou", "mode": "max", "epochs": EPOCHS,
                           "trials": tuple(trials), "rungs": asha_rungs(1, 2, EPOCHS),
                           "replicate_seeds": (1, 2, 3), **kw})


def _by_gid(ax, gid):
    return next(line for line in ax.lines if line.get_gid() == gid)


# -- what the figures read ---------------------------------------------------------------
def test_asha_rungs_are_grace_times_factor_powers_below_the_budget():
    assert asha_rungs(1, 2, 12) == (1, 2, 4, 8)
    assert asha_rungs(2, 3, 20) == (2, 6, 18)
    assert asha_rungs(1, 2, 8) == (1, 2, 4)  # a rung at the budget stops nothing
    assert asha_rungs(5, 2, 4) == ()  # the grace period is capped at the budget


def test_asha_saved_counts_the_epochs_stopped_trials_did_not_train():
    trials = [_trial(1, [0.5] * 12, **LIVE), _trial(2, [0.4], **LIVE),
              _trial(3, [0.4] * 4, **LIVE),
              _trial(4, [0.4] * 3, error="RuntimeError: boom"),  # a failure saves nothing
              _baseline(5, 1)]
    assert [t.record.status for t in trials] == [
        "completed", "stopped_early", "stopped_early", "failed", "completed"]
    assert figures_budget.asha_saved(_inputs(trials)) == (11 + 8, 5 * 12)


def test_inputs_of_a_finished_search_read_the_driver_s_results():
    results = [("tuning", TrialResult({"dejavu.enabled": False}, ({"val_miou": 0.5},))),
               ("search", TrialResult({"dejavu.crm.kind": "crm_r"}, ({"val_miou": 0.6},)))]
    outcome = SimpleNamespace(metric="val_miou", mode="max", epochs=12, replicate_seeds=[1],
                              gain_reference=lambda: ("the baseline", (0.5,)))
    space = SimpleNamespace(search=SearchSettings(metric="val_miou", mode="max",
                                                  grace_period=1, reduction_factor=3),
                            params=(KIND,), base_config=lambda: SimpleNamespace(seed=0))
    inputs = FigureInputs.of(results, outcome, space, started_at=5.0)
    assert [t.step for t in inputs.trials] == ["tuning", "search"]
    assert inputs.rungs == (1, 3, 9) and inputs.asha_metric == "val_miou"
    assert inputs.trials[0].record.is_baseline and inputs.reference == ("the baseline", (0.5,))
    grid = SimpleNamespace(**{**vars(space), "search": SearchSettings(
        algorithm="grid", metric="val_miou", mode="max")})
    assert FigureInputs.of(results, outcome, grid).rungs == ()  # a grid stops nothing


# -- learning curves ---------------------------------------------------------------------
def test_learning_curves_colour_each_trial_by_how_it_ended():
    trials = [_trial(1, [0.40, 0.50] + [0.55] * 10, **LIVE),
              _trial(2, [0.38, 0.45], **LIVE),
              _trial(3, [0.30] * 12, crm_reliance=0.0, regen_grad_ratio=0.2),
              _trial(4, [0.35, math.nan], error="FloatingPointError: NaN"),
              _baseline(5, 1, 0.50), _baseline(6, 2, 0.52), _baseline(7, 3, 0.54),
              _baseline(8, 0, 0.51)]
    fig = figures_curves.plot(_inputs(trials, stop_metric="task_loss", stop_mode="min"))
    left, right = fig.axes[:2]
    for gid, ending in (("t01", COMPLETED), ("t02", STOPPED), ("t03", INERT), ("t04", FAILED)):
        assert matplotlib.colors.to_hex(_by_gid(left, gid).get_color()) == \
            matplotlib.colors.to_hex(OUTCOME_COLOURS[ending])
    # the search metric in mIoU points, ASHA's metric as logged
    assert list(_by_gid(left, "t02").get_ydata()) == pytest.approx([38.0, 45.0])
    assert list(_by_gid(right, "t02").get_ydata()) == pytest.approx([0.62, 0.55])
    rungs = sorted(line.get_xdata()[0] for line in left.lines
                   if line.get_linestyle() == ":")
    assert rungs == [1, 2, 4, 8]
    # the replicates' band: seeds 1-3, not the baseline on the search's own seed
    assert list(_by_gid(left, "baseline replicates").get_ydata()) == pytest.approx([52.0] * 12)
    assert "ASHA compared" in right.get_title() and "lower is better" in right.get_title()


def test_learning_curves_are_one_panel_when_asha_reads_the_search_metric():
    fig = figures_curves.plot(_inputs([_trial(1, [0.4, 0.5], **LIVE)]))
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1
    band = figures_curves.replicate_band([_baseline(1, 1, 0.4), _baseline(2, 2, 0.6)],
                                         "val_miou")
    assert band[1][0] == 0.4 and band[2][0] == 0.6 and band[3][0] == pytest.approx(0.5)


# -- the budget --------------------------------------------------------------------------
def test_spans_come_from_tune_s_times_and_share_the_fewest_slots():
    a = _trial(1, [0.5] * 3, t0=1000.0)
    span = figures_budget.span_of(a)
    assert (span.start, span.end) == (1000.0, 1300.0)
    spans = [figures_budget.Span(a, 0, 10), figures_budget.Span(a, 5, 15),
             figures_budget.Span(a, 11, 20), figures_budget.Span(a, 16, 30)]
    assert figures_budget.lanes(spans) == [0, 1, 0, 1]
    assert figures_budget.span_of(_trial(2, [0.5])) is None  # no times reported
    # a data frame's rows hold numpy's numbers
    rows = ({"timestamp": np.int64(500), "time_total_s": np.float64(50.0),
             "val_miou": np.float32(0.25)},)
    framed = FigureTrial("search", a.record, rows)
    span = figures_budget.span_of(framed)
    assert (span.start, span.end) == (450.0, 500.0) and framed.series("val_miou") == (0.25,)


def test_the_budget_figure_draws_every_trial_and_says_what_asha_saved():
    trials = [_trial(1, [0.5] * 4, step="tuning", config={"dejavu.enabled": False}, t0=600),
              _trial(2, [0.5] * 12, t0=1100, **LIVE), _trial(3, [0.4], t0=1100, **LIVE)]
    fig = figures_budget.plot(_inputs(trials, started_at=0.0))
    timeline, per_step = fig.axes[:2]
    bars = {p.get_gid(): p for p in timeline.patches if p.get_gid()}
    assert set(bars) == {"t01", "t02", "t03"}
    assert bars["t02"].get_width() == pytest.approx(1200 / 60)  # minutes: 2300 s in all
    assert bars["t02"].get_x() == pytest.approx(1100 / 60)
    assert "ASHA saved 11 of the search step's 24 trial-epochs (46%" in fig._suptitle.get_text()
    assert [t.get_text() for t in per_step.get_yticklabels()] == [
        "baseline tuning", "search", "before the first trial"]


# -- each knob's effect ------------------------------------------------------------------
def test_a_value_shared_by_two_trials_gets_its_t_interval_and_one_trial_says_so():
    ref = tuple([0.50] * EPOCHS)
    trials = [_trial(1, [0.51] * 12, config={"dejavu.crm.kind": "crm_r"}, **LIVE),
              _trial(2, [0.50, 0.53], config={"dejavu.crm.kind": "crm_r"}, **LIVE),
              _trial(3, [0.49] * 12, config={"dejavu.crm.kind": "crm_f"}, **LIVE)]
    fig = figures_knobs.plot(_inputs(trials, params=(KIND,), reference=("the baseline", ref)))
    ax = fig.axes[0]
    # gains 1 and 3 mIoU points: mean 2, sd √2, half-width t(0.975, 1) · √2 / √2
    half = 12.706204736
    assert _by_gid(ax, "mean crm_r").get_ydata()[0] == pytest.approx(2.0)
    assert list(_by_gid(ax, "interval crm_r").get_ydata()) == pytest.approx(
        [2 - half, 2 + half])
    assert figures_knobs.t_interval([1.0, 3.0]) == pytest.approx((2.0, 2 - half, 2 + half))
    assert _by_gid(ax, "mean crm_f").get_ydata()[0] == pytest.approx(-1.0)
    assert not any(line.get_gid() == "interval crm_f" for line in ax.lines)
    assert [t.get_text() for t in ax.texts] == ["single trial"]
    assert [line.get_ydata()[0] for line in ax.lines if line.get_gid() == "t02"] == \
        pytest.approx([3.0])  # the stopped trial's gain where it stopped, epoch 2


def test_inert_trials_are_drawn_but_not_averaged_and_log_knobs_get_a_log_axis():
    ref = tuple([0.50] * EPOCHS)
    trials = [_trial(1, [0.52] * 12, config={"dejavu.crm.kind": "crm_r",
                                             "dejavu.loss.gamma": 0.1}, **LIVE),
              _trial(2, [0.40] * 12, config={"dejavu.crm.kind": "crm_r",
                                             "dejavu.loss.gamma": 1.0},
                     crm_reliance=0.0, regen_grad_ratio=0.2)]
    fig = figures_knobs.plot(_inputs(trials, params=(KIND, GAMMA),
                                     reference=("the baseline", ref)))
    kind, gamma = fig.axes[:2]
    assert _by_gid(kind, "mean crm_r").get_ydata()[0] == pytest.approx(2.0)
    assert _by_gid(kind, "t02").get_ydata()[0] == pytest.approx(-10.0)
    assert gamma.get_xscale() == "log"
    assert "not the confirmation" in " ".join(t.get_text() for t in fig.texts)


def test_no_knob_figure_without_a_reference():
    trials = [_trial(1, [0.5] * 12, **LIVE)]
    assert figures_knobs.plot(_inputs(trials, params=(KIND,))) is None


# -- CRM diagnostics ---------------------------------------------------------------------
def test_crm_diagnostics_draw_the_inert_thresholds_and_a_log_ratio():
    trials = [_trial(1, [0.5] * 3, crm_reliance=0.4, regen_grad_ratio=0.0),
              _trial(2, [0.5] * 3, **LIVE), _baseline(3, 1)]
    fig = figures_crm.plot(_inputs(trials))
    reliance, ratio = fig.axes[:2]
    assert _by_gid(reliance, "threshold").get_ydata()[0] == INERT_RELIANCE
    assert _by_gid(ratio, "threshold").get_ydata()[0] == INERT_GRAD_RATIO
    assert ratio.get_yscale() == "log" and reliance.get_yscale() == "linear"
    assert not any(line.get_gid() == "t01" for line in ratio.lines)  # 0: no log place
    assert list(_by_gid(reliance, "t02").get_ydata()) == [0.5] * 3
    assert not any(line.get_gid() == "t03" for line in reliance.lines)  # baseline: no CRM
    assert any("inert below 0.05" in t.get_text() for t in reliance.texts)


def test_crm_diagnostics_measured_at_some_epochs_draw_one_line_through_them():
    # diagnostics at epochs 1 and 3 only (search.diagnose_epochs): one line, no gap
    sparse = _trial(1, [0.5] * 3, **LIVE)
    rows = tuple(r if r["training_iteration"] != 2 else
                 {k: v for k, v in r.items() if k not in LIVE} for r in sparse.rows)
    fig = figures_crm.plot(_inputs([FigureTrial("search", sparse.record, rows)]))
    line = _by_gid(fig.axes[0], "t01")
    assert list(line.get_xdata()) == [1, 3]
    assert list(line.get_ydata()) == [LIVE["crm_reliance"]] * 2


# -- the entry point ---------------------------------------------------------------------
def test_nothing_to_show_gives_no_figure():
    assert figures_of(_inputs([])) == []
    assert search_figures([], SimpleNamespace(
        metric="val_miou", mode="max", epochs=12, replicate_seeds=[],
        gain_reference=lambda: None), SimpleNamespace(
        search=SearchSettings(metric="val_miou", mode="max"), params=(),
        base_config=lambda: SimpleNamespace(seed=0))) == []


def test_nan_rows_missing_keys_and_one_trial_do_not_raise():
    ref = tuple([math.nan] * EPOCHS)
    odd = [_trial(1, [math.nan, math.nan], crm_reliance=math.nan, regen_grad_ratio=math.inf),
           _trial(2, [], error="RuntimeError: died before its first epoch"),
           FigureTrial("search", _trial(3, [0.5]).record, ({"timestamp": "n/a"}, {}))]
    for trials in (odd, odd[:1], [_trial(4, [0.5], t0=0, **LIVE)]):
        figures = figures_of(_inputs(trials, params=(KIND, GAMMA),
                                     reference=("the baseline", ref), started_at=0.0))
        assert {name for name, _ in figures} <= set(FIGURE_FILES)
    names = [name for name, _ in figures_of(_inputs(
        [_trial(4, [0.5], t0=0, **LIVE)], params=(KIND,),
        reference=("the baseline", (0.4,))))]
    assert names == list(FIGURE_FILES)
