"""The search's Optuna analysis computes parameter importances once per study."""

import optuna
import pytest

from dejavu_tune.search import optuna_layout, optuna_plots
from dejavu_tune.tracking.mlflow_views import NOTE_IMAGE_PX


def _study():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    dists = {"x": optuna.distributions.FloatDistribution(0, 1),
             "y": optuna.distributions.FloatDistribution(0, 1)}
    for i in range(40):
        x, y = (i * 7 % 40) / 40, (i * 13 % 40) / 40
        study.add_trial(optuna.trial.create_trial(params={"x": x, "y": y}, distributions=dists,
                                                  value=x))  # only x matters
    return study


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_the_ranking_and_both_importance_plots_share_one_computation(monkeypatch):
    calls = []
    evaluate = optuna.importance.PedAnovaImportanceEvaluator.evaluate

    def counted(self, *args, **kwargs):
        calls.append(1)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(optuna.importance.PedAnovaImportanceEvaluator, "evaluate", counted)
    study = _study()
    once = optuna_plots._importances_once()
    assert optuna_plots._most_important(study, once) == ["x", "y"]
    optuna.visualization.plot_param_importances(study, evaluator=once)
    optuna.visualization.matplotlib.plot_param_importances(study, evaluator=once)
    assert len(calls) == 1
    # the same numbers as Optuna's own default
    assert (optuna.importance.get_param_importances(study, evaluator=once)
            == optuna.importance.get_param_importances(study))


def test_a_trial_is_numbered_in_the_plots_as_it_is_named_everywhere_else():
    from types import SimpleNamespace

    from dejavu_tune.search.trial_records import TrialRecord

    gamma = SimpleNamespace(name="dejavu.loss.gamma",
                            distribution=lambda: optuna.distributions.FloatDistribution(0, 2))
    space = SimpleNamespace(params=[gamma], search=SimpleNamespace(
        mode="max", algorithm="tpe", grace_period=1, metric="val_miou"))

    def trial(n, status, curve, **config):
        return TrialRecord(trial_id=f"id{n}", phase="search", seed=0, status=status,
                           reason=None, curve=curve, last={}, trial_dir=f"/r/search/t{n:02d}",
                           config={"dejavu.loss.gamma": n / 10, **config})

    records = [trial(1, "completed", (0.5, 0.6), **{"dejavu.enabled": False}),
               trial(2, "completed", (0.5, 0.7)), trial(3, "failed", ()),
               trial(5, "stopped_early", (0.4,))]
    study, epoch = optuna_plots.analysis_study(space, SimpleNamespace(records=records, epochs=2))
    # fewer than MIN_FULL full-budget trials: ASHA's first rung; t02 and t05 only
    assert epoch == 1 and optuna_plots.analysed(study) == 2
    done = {t.number: (t.user_attrs["trial"], t.value) for t in study.trials
            if t.state == optuna.trial.TrialState.COMPLETE}
    # val_miou in mIoU points: the logged 0.5 is 50
    assert done == {2: ("t02", 50.0), 5: ("t05", 40.0)}
    assert len(study.trials) == 6  # 0, 1, 3 and 4 hold the places of what is not analysed


def test_importances_rest_on_a_stated_number_of_trials_and_few_are_called_rough():
    few = optuna_plots.importance_caveat(8, "8 trials at the full budget (12 epochs)")
    assert "from 8 trials at the full budget (12 epochs), one seed each" in few
    assert "PED-ANOVA" in few and "fewer than 20 trials they are rough" in few
    assert "without an interval" in few
    enough = optuna_plots.importance_caveat(20, "20 trials at the full budget (12 epochs)")
    assert "rough" not in enough and "without an interval" in enough


def test_short_names_drop_the_dejavu_prefix_unless_two_would_read_alike():
    assert optuna_layout.short_names(["dejavu.loss.gamma", "optim.lr"]) == {
        "dejavu.loss.gamma": "loss.gamma", "optim.lr": "optim.lr"}
    assert optuna_layout.short_names(["dejavu.optim.lr", "optim.lr"]) == {
        "dejavu.optim.lr": "dejavu.optim.lr", "optim.lr": "optim.lr"}


def test_thinning_drops_a_tick_label_that_would_touch_the_one_below():
    import matplotlib

    matplotlib.use("Agg")
    fig, ax = matplotlib.pyplot.subplots(figsize=(2, 2))
    ax.set_ylim(0, 100)
    ax.set_yticks([0, 1, 50, 100], ["0", "1", "50", "100"])  # 1 is 0.01 in of 0's label
    optuna_layout._thin(ax.yaxis)
    assert list(ax.get_yticks()) == [0, 50, 100]
    matplotlib.pyplot.close(fig)


def _search():
    """A search of the default space's shape: 9 DejaVu trials at the full budget (12
    epochs; t04 failed), log-scale, linear, integer and categorical parameters."""
    from types import SimpleNamespace

    from dejavu_tune.search.space import Param
    from dejavu_tune.search.trial_records import TrialRecord

    params = [Param("optim.lr", "float", 0.01, 0.2, log=True),
              Param("dejavu.loss.gamma", "float", 0.03, 1.0, log=True),
              Param("dejavu.loss.gamma1", "float", 0.3, 3.0, log=True),
              Param("dejavu.redaction.cutoff", "float", 0.05, 0.6),
              Param("dejavu.crm.stages", "int", 1, 3),
              Param("dejavu.redaction.kind", "categorical",
                    choices=("random_blocks", "checkerboard", "lowpass", "highpass"))]
    space = SimpleNamespace(params=params, search=SimpleNamespace(
        mode="max", algorithm="tpe", grace_period=4, metric="val_miou"))
    kinds = params[-1].choices
    records = []
    for n in range(10):
        config = {"optim.lr": 0.01 * 1.35 ** (n * 7 % 10), "dejavu.loss.gamma": 0.03 * 1.4 ** n,
                  "dejavu.loss.gamma1": 0.3 * 1.25 ** (n * 3 % 10),
                  "dejavu.redaction.cutoff": 0.05 + 0.05 * (n * 3 % 10),
                  "dejavu.crm.stages": 1 + n % 3, "dejavu.redaction.kind": kinds[n % 4]}
        final = 0.45 + 0.01 * (n * 7 % 10)  # t07 best: 0.54 logged, 54 mIoU points
        status, curve = ("failed", ()) if n == 4 else ("completed", (0.3,) * 11 + (final,))
        records.append(TrialRecord(trial_id=f"id{n}", phase="search", seed=0, status=status,
                                   reason=None, curve=curve, last={},
                                   trial_dir=f"/r/search/t{n:02d}", config=config))
    return space, SimpleNamespace(records=records, epochs=12)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """log_optuna_plots' figures as it saved them (kept open) and its PNGs."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    out = tmp_path_factory.mktemp("plots")
    figures = {}

    class Parent:  # what RunLog does with the plots, into a folder
        def plot(self, name, figure):
            figure.savefig(out / name, dpi=NOTE_IMAGE_PX / figure.get_figwidth())

        def text(self, name, text):
            assert name == optuna_plots.HTML_FILE, f"{name}: {text}"
            (out / name).write_text(text)

    kept = []
    close = matplotlib.pyplot.close
    matplotlib.pyplot.close = kept.append  # the module closes each figure once it is saved
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            names = optuna_plots.log_optuna_plots(Parent(), *_search())
    finally:
        matplotlib.pyplot.close = close
    assert names == ["optimization_history.png", "param_importances.png",
                     "parallel_coordinate.png", "slice.png"]
    for name, fig in zip(names, kept, strict=True):
        fig.canvas.draw()
        figures[name.removesuffix(".png")] = fig
    yield figures, out
    for fig in kept:
        close(fig)


def test_the_pngs_are_as_wide_as_mlflow_shows_them(drawn):
    import matplotlib.image

    _, out = drawn
    for name in ("optimization_history", "param_importances", "parallel_coordinate", "slice"):
        assert matplotlib.image.imread(out / f"{name}.png").shape[1] == NOTE_IMAGE_PX == 1000


def test_the_history_names_the_target_in_mIoU_points(drawn):
    figures, _ = drawn
    ax = figures["optimization_history"].axes[0]
    assert ax.get_ylabel() == "val_miou at epoch 12 (mIoU points)"
    assert ax.get_xlabel() == optuna_plots.NUMBER_AXIS
    # every trial but the failed t04, as points: t07's logged 0.54 is 54, t03's 0.46 is 46
    points = dict(ax.collections[0].get_offsets().tolist())
    assert sorted(points) == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert points[7] == pytest.approx(54.0) and points[3] == pytest.approx(46.0)


def test_the_importances_say_on_the_figure_how_few_trials_they_rest_on(drawn):
    figures, _ = drawn
    text = " ".join(t.get_text() for t in figures["param_importances"].texts)
    assert "from 9 trials at the full budget (12 epochs), one seed each" in text
    assert "fewer than 20 trials they are rough" in text


def _boxes(labels):
    return [t.get_window_extent() for t in labels if t.get_visible() and t.get_text()]


def test_no_tick_label_of_the_parallel_coordinates_touches_another(drawn):
    figures, _ = drawn
    fig = figures["parallel_coordinate"]
    main = fig.axes[0]
    assert [t.get_text() for t in main.get_xticklabels()][:3] == [
        "val_miou\nat epoch 12 (mIoU points)", "crm.stages", "loss.gamma"]
    boxes = _boxes(main.get_xticklabels())
    twins = [a for a in fig.axes if a is not main and a.get_shared_x_axes().joined(a, main)]
    assert len(twins) == 6
    for ax in [main] + twins:
        boxes += _boxes(ax.get_yticklabels())
    assert len(boxes) > 20
    touching = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]
    assert touching == []
    # log axes in plain numbers, no labelled minor ticks (2×10⁻¹ beside 3×10⁻¹)
    logs = [a for a in twins if a.get_yscale() == "log"]
    assert len(logs) == 3
    for ax in logs:
        shown = [t.get_text() for t in ax.get_yticklabels(minor=True) if t.get_text()]
        assert shown == []
        assert all("10^" not in t.get_text() for t in ax.get_yticklabels())


def test_the_slice_colour_bar_stands_beside_the_panels_on_one_scale(drawn):
    figures, _ = drawn
    fig = figures["slice"]
    bars = {c.colorbar.ax for a in fig.axes for c in a.collections if c.colorbar is not None}
    assert len(bars) == 1
    bar = list(bars)
    panels = [a for a in fig.axes if a not in bar]
    assert len(panels) == 4 and len(fig.axes) == 5  # Optuna's own bar is gone
    assert not any(bar[0].get_window_extent().overlaps(p.get_window_extent()) for p in panels)
    assert all(p.get_tightbbox().x1 < bar[0].get_window_extent().x0 for p in panels)
    # one colour scale, the trial numbers t00..t09
    norms = {(c.norm.vmin, c.norm.vmax) for p in panels for c in p.collections
             if c.get_array() is not None}
    assert norms == {(0, 9)}
    assert panels[0].get_ylabel() == "val_miou at epoch 12 (mIoU points)"
