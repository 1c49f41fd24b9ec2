import csv
import io

import matplotlib.image
import pytest
from mlflow.tracking import MlflowClient

from dejavu_tune import report
from dejavu_tune.report import ReportError, Trial, ablation_table, collect
from dejavu_tune.tracking import runs as tracking

SPACE = """\
params:
  dejavu.enabled: {type: categorical, choices: [false, true]}
  dejavu.loss.cl_weight: {type: categorical, choices: [0.0, 0.1], when: {dejavu.enabled: true}}
  data.input_noise: {type: categorical, choices: [0.0, 0.1]}
  seed: {type: categorical, choices: [0, 1]}
search: {algorithm: grid, metric: val_miou}
report:
  title: "Table B.1: noise"
  columns: data.input_noise
"""
# (cl_weight or None for the baseline, input noise) -> val_miou of seeds 0 and 1.
GRID = {(None, 0.0): (0.75, 0.77), (None, 0.1): (0.70, 0.70),
        (0.0, 0.0): (0.78, 0.78), (0.0, 0.1): (0.72, 0.74),
        (0.1, 0.0): (0.79, 0.80), (0.1, 0.1): (0.75, 0.76)}

B1 = """\
### Table B.1: noise

| setting               | input_noise=0.0 |   Δ vs baseline | input_noise=0.1 |   Δ vs baseline |
| --------------------- | --------------: | --------------: | --------------: | --------------: |
| baseline              |      76.0 ± 1.4 |               — |      70.0 ± 0.0 |               — |
| DejaVu, cl_weight=0.0 |      78.0 ± 0.0 | +2.0 ± 1.4 n.s. |      73.0 ± 1.4 | +3.0 ± 1.4 n.s. |
| DejaVu, cl_weight=0.1 |      79.5 ± 0.7 | +3.5 ± 0.7 n.s. |      75.5 ± 0.7 | +5.5 ± 0.7 n.s. |

val_miou × 100 at each run's last epoch: mean ± sample std (ddof=1) over 2 seeds per cell.
Δ vs baseline: paired by seed with the baseline in the same column and setting: mean ± sample std of the per-seed differences; sig. when their 95% t interval excludes 0, else n.s. (not significant). Without shared seeds: the difference of the means.
Excluded: 1 failed, 1 stopped early."""


def _trial(uri, exp_id, parent, n, params, values, status="completed"):
    kind = "baseline" if params.get("dejavu.enabled") is False else "trial"
    run, _ = tracking.open_trial_run(uri, exp_id, parent, f"t{n:03d}", f"{kind}-{n}", kind)
    tracking.log_params(uri, run, params)
    for epoch, value in enumerate(values, start=1):
        tracking.log_epoch(uri, run, {"val_miou": value, "train_loss": 1.0 / epoch}, step=epoch)
    tracking.set_trial_status(uri, run, status, None if status == "completed" else "boom")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A B.1-like grid search written the way the search writes it; built once (MLflow is slow)."""
    root = tmp_path_factory.mktemp("store")
    uri = tracking.default_tracking_uri(root)
    # An explicit artifact root keeps space.yaml out of the working directory.
    MlflowClient(uri).create_experiment("abl", artifact_location=(root / "art").as_uri())
    tracking.open_parent_run(uri, "abl", "older")  # an earlier search, not the latest
    exp_id, parent = tracking.open_parent_run(uri, "abl", "b1")
    tracking.log_artifact_text(uri, parent, "space.yaml", SPACE)
    n = 0
    for (cl, noise), values in GRID.items():
        for seed, value in enumerate(values):
            params = {"dejavu.enabled": cl is not None, "data.input_noise": noise, "seed": seed}
            if cl is not None:
                params["dejavu.loss.cl_weight"] = cl
            n += 1
            _trial(uri, exp_id, parent, n, params, (0.1, value))  # the last epoch counts
    bad = {"dejavu.enabled": True, "dejavu.loss.cl_weight": 0.1, "data.input_noise": 0.0}
    _trial(uri, exp_id, parent, 98, {**bad, "seed": 2}, (0.01,), "failed")
    _trial(uri, exp_id, parent, 99, {**bad, "seed": 3}, (0.02,), "stopped_early")
    return uri


def test_collect_reads_completed_trials_and_space(store):
    trials = collect(store, "abl")
    assert trials.search == "b1"
    assert len(trials) == 12 and trials.excluded == {"failed": 1, "stopped_early": 1}
    assert trials.report == {"title": "Table B.1: noise", "columns": "data.input_noise",
                             "metric": "val_miou"}
    first = next(t for t in trials if t.params == {"dejavu.enabled": "False", "seed": "0",
                                                   "data.input_noise": "0.0"})
    assert first.is_baseline and first.metrics["val_miou"] == 0.75


def test_older_search_without_trials_is_an_error(store):
    with pytest.raises(ReportError, match="search 'older' has no completed trials"):
        collect(store, "abl", "older")
    with pytest.raises(ReportError, match="no search 'b9' in experiment 'abl': expected one "
                                          "of b1, older"):
        collect(store, "abl", "b9")


def test_b1_table_exact(store):
    trials = collect(store, "abl")
    assert ablation_table(trials, "val_miou", columns="data.input_noise",
                          title="Table B.1: noise") == B1


def test_without_columns_delta_matches_the_noise_level(store):
    lines = ablation_table(collect(store, "abl"), "val_miou", digits=2).splitlines()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]]
            for line in lines if line.startswith("| ") and "setting" not in line
            and "---" not in line}
    assert rows == {
        "baseline, input_noise=0.0": ["76.00 ± 1.41", "—"],
        "baseline, input_noise=0.1": ["70.00 ± 0.00", "—"],
        "DejaVu, input_noise=0.0, cl_weight=0.0": ["78.00 ± 0.00", "+2.00 ± 1.41 n.s."],
        "DejaVu, input_noise=0.0, cl_weight=0.1": ["79.50 ± 0.71", "+3.50 ± 0.71 n.s."],
        "DejaVu, input_noise=0.1, cl_weight=0.0": ["73.00 ± 1.41", "+3.00 ± 1.41 n.s."],
        "DejaVu, input_noise=0.1, cl_weight=0.1": ["75.50 ± 0.71", "+5.50 ± 0.71 n.s."]}
    assert "| setting" in lines[0] and "val_miou" in lines[0]


def _t(params, value, kind="trial"):
    return Trial("id", "run", kind, params, {"val_miou": value})


def test_a_consistent_paired_gain_is_significant():
    # per-seed differences 5, 6, 7 (x100): mean 6.0, std 1.0, 95% t interval
    # 6.0 ± 4.303 * 1.0 / sqrt(3) = [3.5, 8.5]: excludes 0
    rows = [_t({"dejavu.enabled": "False", "seed": str(s)}, v, "baseline")
            for s, v in enumerate((0.60, 0.70, 0.80))]
    rows += [_t({"dejavu.enabled": "True", "seed": str(s)}, v)
             for s, v in enumerate((0.65, 0.76, 0.87))]
    table = ablation_table(rows, "val_miou")
    assert "| DejaVu   | 76.0 ± 11.0 | +6.0 ± 1.0 sig. |" in table, table


def test_short_names_common_params_and_single_seed():
    rows = [_t({"dejavu.enabled": "False"}, 0.70, "baseline"),
            *[_t({"dejavu.enabled": "True", "dejavu.crm.kind": crm, "dejavu.crm.stages": "2",
                  "dejavu.redaction.kind": red}, value)
              for crm, red, value in [("crm_r", "random_blocks", 0.74),
                                      ("crm_f", "checkerboard", 0.725)]]]
    text = ablation_table(rows, "val_miou", scale=1, digits=3)
    assert "All rows: stages=2" not in text  # the baseline has no stages: it varies
    lines = text.splitlines()
    assert lines[2].split("|")[1].strip() == "baseline"
    assert [c.strip() for c in lines[3].split("|")[1:4]] == [
        "DejaVu, crm.kind=crm_f, stages=2, redaction.kind=checkerboard", "0.725", "+0.025"]
    assert "over 1 seed per cell (one value: no std)" not in text  # no seed param
    assert "over 1 run per cell (one value: no std)." in text


def test_common_params_listed_once_and_no_baseline():
    rows = [_t({"dejavu.crm.kind": "crm_f", "dejavu.crm.stages": s, "seed": seed}, v)
            for s, seed, v in [("1", "0", 0.5), ("1", "1", 0.6), ("10", "0", 0.7)]]
    text = ablation_table(rows, "val_miou")
    assert text.startswith("All rows: kind=crm_f\n\n| setting")
    assert "| DejaVu, stages=1  | 55.0 ± 7.1 |" in text and "| DejaVu, stages=10 |       70.0 |" in text
    assert "Δ" not in text.split("\n\n")[1] and "over 1–2 seeds per cell" in text


def test_bad_metric_and_columns_name_what_is_allowed(store):
    trials = collect(store, "abl")
    with pytest.raises(ReportError, match="metric 'val_acc' is not logged by 12 of 12 trials "
                                          r"\(e.g. .*\): expected one of train_loss, val_miou"):
        ablation_table(trials, "val_acc")
    with pytest.raises(ReportError, match="columns key 'optim.lr' is not a param of every "
                                          "trial: expected one of data.input_noise, "
                                          "dejavu.enabled$"):
        ablation_table(trials, "val_miou", columns="optim.lr")


def test_cli_prints_and_writes_output(store, tmp_path, capsys):
    out = tmp_path / "b1.md"
    assert report.main(["--experiment", "abl", "--tracking-uri", store,
                        "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == B1 + "\n" == out.read_text()  # title and columns from space.yaml


def test_cli_flags_override_the_space(store, capsys):
    assert report.main(["--experiment", "abl", "--tracking-uri", store, "--search", "b1",
                        "--metric", "train_loss", "--scale", "1", "--digits", "2",
                        "--title", "Loss"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("### Loss\n") and " 0.50 ± 0.00 |" in printed
    assert "train_loss at each run's last epoch" in printed


@pytest.mark.parametrize("argv, message", [
    (["--experiment", "nope"], "error: experiment 'nope' not found at {uri}: expected one of "
                               "Default, abl\n"),
    (["--experiment", "abl", "--columns", "seed"],
     "error: columns key 'seed' is not a param of every trial: expected one of "
     "data.input_noise, dejavu.enabled\n"),
    (["--experiment", "abl", "--digits", "-1"],
     "error: digits -1 is not allowed: expected an integer 0..10\n"),
])
def test_cli_bad_input_is_one_line_exit_2(store, capsys, argv, message):
    assert report.main([*argv, "--tracking-uri", store]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == message.format(uri=store)


def test_cli_missing_store_is_not_created(tmp_path, capsys):
    assert report.main(["--storage-path", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no MLflow store at sqlite:///") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_cli_output_suffix_picks_latex(store, tmp_path, capsys):
    out = tmp_path / "b1.tex"
    assert report.main(["--experiment", "abl", "--tracking-uri", store,
                        "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed == out.read_text()
    lines = printed.splitlines()
    assert lines[:4] == ["% Table B.1: noise", r"\begin{tabular}{lcrrrr}", r"\toprule",
                         r" &  & \multicolumn{2}{c}{input\_noise=0.0} & "
                         r"\multicolumn{2}{c}{input\_noise=0.1} \\"]
    assert (r"DejaVu   & 0.1        & 79.5 $\pm$ 0.7 & +3.5 $\pm$ 0.7 n.s.  & "
            r"75.5 $\pm$ 0.7 & +5.5 $\pm$ 0.7 n.s. \\") in lines
    assert lines[-1] == "% Excluded: 1 failed, 1 stopped early."


def test_cli_csv_has_the_numbers_of_the_markdown(store, capsys):
    assert report.main(["--experiment", "abl", "--tracking-uri", store, "--format", "csv"]) == 0
    rows = {r["setting"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert list(rows) == ["baseline", "DejaVu, cl_weight=0.0", "DejaVu, cl_weight=0.1"]
    row = rows["DejaVu, cl_weight=0.1"]  # | 75.5 ± 0.7 | +5.5 ± 0.7 n.s. | at noise 0.1
    assert float(row["input_noise=0.1 mean"]) == pytest.approx(75.5)
    assert float(row["input_noise=0.1 std"]) == pytest.approx(0.5 ** 0.5)
    assert float(row["input_noise=0.1 delta"]) == pytest.approx(5.5)
    assert row["input_noise=0.1 n"] == row["input_noise=0.1 delta_n"] == "2"
    assert row["dejavu.loss.cl_weight"] == "0.1" and row["baseline"] == "False"


@pytest.mark.parametrize("argv, message", [
    (["--format", "latex", "--output", "{d}/t.csv"],
     "error: --output {d}/t.csv is a csv file but --format is latex: expected a .tex file "
     "(or a suffix of no format) with --format latex, or --format csv\n"),
    (["--plot", "{d}/t.jpg"], "error: --plot {d}/t.jpg: expected a file ending in .png, "
                              ".pdf, .svg\n"),
    (["--format", "csv", "--objectives", "val_miou", "train_loss"],
     "error: --objectives lays out a Markdown table: expected --format markdown with it, "
     "not csv\n"),
])
def test_cli_contradictions_are_refused_before_reading_the_store(tmp_path, capsys, argv,
                                                                 message):
    # the store does not exist: an error about the flags came first
    argv = [a.format(d=tmp_path) for a in argv]
    assert report.main([*argv, "--storage-path", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == message.format(d=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_plot_of_two_noise_levels_is_refused_with_why(store, tmp_path, capsys):
    png = tmp_path / "b1.png"
    assert report.main(["--experiment", "abl", "--tracking-uri", store, "--plot", str(png)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not png.exists()
    assert captured.err == ("error: --plot: the columns key data.input_noise has 2 distinct "
                            "values (0.0, 0.1): a trend needs a numeric param with at least 3 "
                            "distinct values\n")


def test_cli_plots_table_b3s_stages(tmp_path, capsys):
    uri = tracking.default_tracking_uri(tmp_path)
    MlflowClient(uri).create_experiment("b3", artifact_location=(tmp_path / "art").as_uri())
    exp_id, parent = tracking.open_parent_run(uri, "b3", "stages")
    grid = {None: (0.750, 0.754), 1: (0.760, 0.770), 2: (0.770, 0.770), 3: (0.760, 0.766)}
    cells = [(stages, seed, value) for stages, values in grid.items()
             for seed, value in enumerate(values)]
    for n, (stages, seed, value) in enumerate(cells):
        params = {"dejavu.enabled": stages is not None, "seed": seed}
        if stages is not None:
            params["dejavu.crm.stages"] = stages
        _trial(uri, exp_id, parent, n, params, (value,))
    png = tmp_path / "plots" / "b3.png"
    assert report.main(["--experiment", "b3", "--tracking-uri", uri, "--plot", str(png)]) == 0
    assert "| DejaVu, stages=2 | 77.0 ± 0.0 | +1.8 ± 0.3 n.s. |" in capsys.readouterr().out
    assert matplotlib.image.imread(png).shape == (450, 800, 4)
