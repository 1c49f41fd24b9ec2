"""The report's LaTeX, CSV and trend plot of hand-made grids (no MLflow: test_report.py
runs the command on a store)."""

import csv
import io

import matplotlib.image
import pytest

from dejavu_tune.report import Trial, ablation
from dejavu_tune.report import plot as report_plot
from dejavu_tune.report.formats import csv_text, latex, tex


def _runs(params, values, kind="trial"):
    return [Trial(f"id{s}", "run", kind, {**params, "seed": str(s)}, {"val_miou": v})
            for s, v in enumerate(values)]


# The baseline and two redactions, two seeds each. By hand (× 100):
#   baseline 60, 70: 65.0 ± 7.07
#   mask_50%       58, 66: 62.0 ± 5.66, Δ per seed -2, -4: -3.0 ± 1.41
#   random_blocks  65, 76: 70.5 ± 7.78, Δ per seed +5, +6: +5.5 ± 0.71
# 95% t intervals, t(0.975, 1 dof) = 12.706: -3.0 ± 12.706 * 1.414 / √2 = [-15.71, +9.71]
# and 5.5 ± 12.706 * 0.707 / √2 = [-0.85, +11.85]: both contain 0, n.s.
REDACTIONS = [*_runs({"dejavu.enabled": "False"}, (0.60, 0.70), "baseline"),
              *_runs({"dejavu.enabled": "True", "dejavu.redaction.kind": "random_blocks"},
                     (0.65, 0.76)),
              *_runs({"dejavu.enabled": "True", "dejavu.redaction.kind": "mask_50%"},
                     (0.58, 0.66))]
T_975_1 = 12.706204736174707


def test_latex_is_a_booktabs_tabular_with_the_baseline_first():
    text = latex(ablation(REDACTIONS, "val_miou", title="Table B.4: 50% masks"))
    assert text.splitlines() == [
        "% Table B.4: 50% masks",
        r"\begin{tabular}{lcrr}",
        r"\toprule",
        r"method   & kind           & val\_miou      & $\Delta$ vs baseline \\",
        r"\midrule",
        r"baseline & ---            & 65.0 $\pm$ 7.1 & --- \\",
        r"DejaVu   & mask\_50\%     & 62.0 $\pm$ 5.7 & $-$3.0 $\pm$ 1.4 n.s. \\",
        r"DejaVu   & random\_blocks & 70.5 $\pm$ 7.8 & +5.5 $\pm$ 0.7 n.s. \\",
        r"\bottomrule",
        r"\end{tabular}",
        "% val_miou × 100 at each run's last epoch: mean ± sample std (ddof=1) over 2 seeds "
        "per cell.",
        "% Δ vs baseline: paired by seed with the baseline in the same column and setting: "
        "mean ± sample std of the per-seed differences; sig. when their 95% t interval "
        "excludes 0, else n.s. (not significant). Without shared seeds: the difference of "
        "the means."]


def test_latex_columns_head_each_value_over_its_metric_and_delta():
    rows = [*_runs({"dejavu.enabled": "False", "data.input_noise": "0.1"}, (0.5, 0.6),
                   "baseline"),
            *_runs({"dejavu.enabled": "True", "data.input_noise": "0.1"}, (0.6, 0.8))]
    lines = latex(ablation(rows, "val_miou", columns="data.input_noise")).splitlines()
    assert lines[:6] == [
        r"\begin{tabular}{lrr}",
        r"\toprule",
        r" & \multicolumn{2}{c}{input\_noise=0.1} \\",
        r"\cmidrule(lr){2-3}",
        r"method   & val\_miou       & $\Delta$ vs baseline \\",
        r"\midrule"]
    assert lines[7] == r"DejaVu   & 70.0 $\pm$ 14.1 & +15.0 $\pm$ 7.1 n.s. \\"


@pytest.mark.parametrize("text, expected", [
    ("crop_50% & #1 {a} $5", r"crop\_50\% \& \#1 \{a\} \$5"),
    ("a\\b ~ ^", r"a\textbackslash{}b \textasciitilde{} \textasciicircum{}"),
    ("-2.0 ± 1.4 —", r"$-$2.0 $\pm$ 1.4 ---"),
    ("lr=1e-05, [-0.5, +1]", r"lr=1e-05, [$-$0.5, +1]"),  # the e-05 is no minus sign
    ("σ=0.1, Δ vs δ<1.25², 30°", r"$\sigma$=0.1, $\Delta$ vs $\delta$$<$1.25$^2$, 30$^\circ$"),
    ("λ × 2", r"$\lambda$ $\times$ 2"),
])
def test_tex_escapes_specials_and_writes_symbols_as_math(text, expected):
    assert tex(text) == expected


def test_csv_reads_back_as_unrounded_numbers():
    rows = list(csv.DictReader(io.StringIO(csv_text(ablation(REDACTIONS, "val_miou")))))
    assert [r["setting"] for r in rows] == ["baseline", "DejaVu, kind=mask_50%",
                                            "DejaVu, kind=random_blocks"]
    assert [r["dejavu.redaction.kind"] for r in rows] == ["", "mask_50%", "random_blocks"]
    base, mask, blocks = rows
    assert base["baseline"] == "True" and base["metric"] == "val_miou" and base["scale"] == "100"
    assert float(base["mean"]) == pytest.approx(65.0)
    assert float(base["std"]) == pytest.approx(50 ** 0.5)  # 60, 70: √((25 + 25) / 1)
    assert base["n"] == "2" and base["delta"] == base["delta_ci_low"] == base["significant"] == ""
    assert float(mask["mean"]) == pytest.approx(62.0)
    assert float(mask["delta"]) == pytest.approx(-3.0)
    assert float(mask["delta_std"]) == pytest.approx(2 ** 0.5)
    assert mask["delta_n"] == "2" and mask["significant"] == "False"
    assert float(mask["delta_ci_low"]) == pytest.approx(-3.0 - T_975_1, abs=1e-6)
    assert float(mask["delta_ci_high"]) == pytest.approx(-3.0 + T_975_1, abs=1e-6)
    assert float(blocks["delta"]) == pytest.approx(5.5)
    assert float(blocks["delta_ci_low"]) == pytest.approx(5.5 - T_975_1 / 2, abs=1e-6)


def test_csv_without_shared_seeds_gives_the_difference_of_means_and_no_ci():
    rows = [Trial("a", "r", "baseline", {"dejavu.enabled": "False"}, {"val_miou": 0.5}),
            Trial("b", "r", "trial", {"dejavu.enabled": "True"}, {"val_miou": 0.56})]
    line = list(csv.DictReader(io.StringIO(csv_text(ablation(rows, "val_miou", scale=1)))))[1]
    assert float(line["delta"]) == pytest.approx(0.06) and line["std"] == ""
    assert line["delta_n"] == line["delta_ci_low"] == line["significant"] == ""


def test_csv_with_columns_prefixes_each_value_stats():
    rows = [r for n in ("0.0", "0.3")
            for r in _runs({"dejavu.enabled": "True", "data.input_noise": n}, (0.5, 0.7))]
    table = list(csv.reader(io.StringIO(csv_text(ablation(rows, "val_miou",
                                                          columns="data.input_noise")))))
    assert table[0][:5] == ["setting", "baseline", "metric", "scale", "input_noise=0.0 mean"]
    assert "input_noise=0.3 std" in table[0] and "delta" not in table[0]
    assert len(table) == 2 and float(table[1][4]) == pytest.approx(60.0)


def test_plot_refuses_a_grid_of_words_naming_the_key_and_its_values():
    with pytest.raises(ValueError, match=r"^--plot: dejavu.redaction.kind has non-numeric "
                                         r"values \(mask_50%, random_blocks\): a trend needs "
                                         "a numeric param with at least 3 distinct values$"):
        report_plot.trend(ablation(REDACTIONS, "val_miou"))


# Table B.3's form: the baseline has no stages; DejaVu with 1, 2 and 3 (× 100, by hand):
#   baseline 75.0, 75.4: 75.2 ± 0.28;  stages 1: 76.0, 77.0: 76.5 ± 0.71
#   stages 2: 77.0, 77.0: 77.0 ± 0;    stages 3: 76.0, 76.6: 76.3 ± 0.42
STAGES = [*_runs({"dejavu.enabled": "False"}, (0.750, 0.754), "baseline"),
          *(r for stages, values in (("3", (0.760, 0.766)), ("1", (0.760, 0.770)),
                                     ("2", (0.770, 0.770)))
            for r in _runs({"dejavu.enabled": "True", "dejavu.crm.stages": stages}, values))]


def test_plot_draws_the_metric_against_the_numeric_row_param(tmp_path):
    path = tmp_path / "b3.png"
    fig = report_plot.plot(ablation(STAGES, "val_miou", title="Table B.3"), path)
    assert matplotlib.image.imread(path).shape == (450, 800, 4)  # 8 × 4.5 in at 100 dpi
    ax, = fig.axes
    bars, = ax.containers  # one line: DejaVu over its stages
    assert list(bars.lines[0].get_xdata()) == [1.0, 2.0, 3.0]
    assert list(bars.lines[0].get_ydata()) == pytest.approx([76.5, 77.0, 76.3])
    level = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(level) == 1 and list(level[0].get_ydata()) == pytest.approx([75.2, 75.2])
    assert ax.get_ylabel() == "val_miou (mIoU points)"
    assert ax.get_xlabel() == "dejavu.crm.stages"
    assert ax.get_title().startswith("Table B.3\nmean ± sample std over 2 seeds")
    legend, = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "baseline (no stages), ± std band", "DejaVu"]


def test_plot_of_columns_draws_one_line_per_row_beside_each_other(tmp_path):
    rows = [r for noise, base, dv in (("0.0", (0.76, 0.76), (0.78, 0.78)),
                                       ("0.1", (0.70, 0.72), (0.74, 0.74)),
                                       ("0.3", (0.60, 0.62), (0.66, 0.68)))
            for r in (*_runs({"dejavu.enabled": "False", "data.input_noise": noise}, base,
                             "baseline"),
                      *_runs({"dejavu.enabled": "True", "data.input_noise": noise}, dv))]
    fig = report_plot.plot(ablation(rows, "val_miou", columns="data.input_noise"),
                           tmp_path / "b1.png")
    base, dejavu = fig.axes[0].containers
    # two series, 1% of the 0..0.3 axis apart, centred on the noise levels
    assert list(base.lines[0].get_xdata()) == pytest.approx([-0.0015, 0.0985, 0.2985])
    assert list(dejavu.lines[0].get_xdata()) == pytest.approx([0.0015, 0.1015, 0.3015])
    assert list(dejavu.lines[0].get_ydata()) == pytest.approx([78.0, 74.0, 67.0])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["baseline", "DejaVu"]
    assert fig.axes[0].get_xlabel() == "data.input_noise"


def test_plot_with_two_candidate_axes_asks_for_columns():
    rows = [r for lr in ("0.1", "0.2", "0.3") for wd in ("1", "2", "3")
            for r in _runs({"optim.lr": lr, "optim.wd": wd}, (0.5,))]
    with pytest.raises(ValueError, match="optim.lr, optim.wd could each be the x axis: "
                                         "pass --columns"):
        report_plot.trend(ablation(rows, "val_miou"))
