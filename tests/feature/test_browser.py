"""What a person sees: a finished search opened in MLflow's UI exactly as the search
prints it, in headless Chromium (Debian's package, driven by Playwright: no browser
download). Set ``DEJAVU_SCREENSHOTS=docs`` to write the README's screenshots into
docs/; otherwise they go to the test's temporary directory."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cluster import BIN, free_port, kill, search_meta, wait_until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--num-samples", "3", "--set", "optim.epochs=3", "--set", "data.num_train=32",
        "--set", "data.num_val=16", "--set", "data.image_size=32", "--set", "model.width=8",
        "--set", "dejavu.crm.width=8", "--set", "search.grace_period=1",
        "--set", "search.baseline_trials=0", "--set", "search.baseline_seeds=2",
        "--set", "search.confirm_top=1", "--set", "search.max_seeds=2",
        "--set", "crm_pretrain.iterations=5",
         "--set", "crm_pretrain.min_reliance=0",
        # the CPU's system metrics, sampled often enough for 3-epoch trials
        "--set", "search.system_metrics=on", "--set", "search.system_metrics_interval=0.5"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _browser_or_skip() -> str:
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install '.[test]')")
    if CHROMIUM is None:
        if os.environ.get("DEJAVU_REQUIRE_BROWSER"):
            pytest.fail("DEJAVU_REQUIRE_BROWSER is set but no chromium is on PATH")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    return CHROMIUM


def test_the_printed_address_opens_the_search_in_mlflow(tmp_path):
    chromium = _browser_or_skip()
    from playwright.sync_api import sync_playwright

    work = tmp_path / "work"  # the directory the user ran the search from
    work.mkdir()
    proc = subprocess.run([sys.executable, "-m", "dejavu_tune.search", "--storage-path",
                           str(tmp_path / "runs"), "--name", "look", *ARGS], cwd=work,
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (work / "mlruns").exists()  # artifacts live beside the store
    assert (tmp_path / "runs" / "artifacts").is_dir()
    # the command stands on its own line, nothing glued to it
    command = re.search(r"start its UI first:\n  (mlflow ui .+)\nthen open\n",
                        proc.stdout).group(1)
    assert command.endswith("/mlflow.db"), command
    runs_url = re.search(r"the trials, ranked: +(\S+)", proc.stdout).group(1)
    outcome_url = re.search(r"the outcome: +(\S+)", proc.stdout).group(1)
    port = free_port()
    argv = shlex.split(command)
    ui = subprocess.Popen([str(BIN / argv[0]), *argv[1:], "--host", "127.0.0.1", "--port",
                           str(port)], cwd=work, stdout=subprocess.DEVNULL,
                          stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert ui.poll() is None, "mlflow ui exited"
        try:
            import urllib.request
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    shots = Path(os.environ["DEJAVU_SCREENSHOTS"]) if os.environ.get(
        "DEJAVU_SCREENSHOTS") else tmp_path
    try:
        wait_until(answers, 120, "mlflow ui")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(runs_url.replace("http://127.0.0.1:5000", base))
            # The runs table, straight away: this search's trials with their readable names
            page.get_by_text(re.compile(r"t\d\d crm_[fr] [SK]=\d")).first.wait_for(timeout=60000)
            page.get_by_text("baseline seed 1").first.wait_for()
            assert page.get_by_text("You're viewing a shared view").count() == 1
            # gains in points beside the baseline they are measured against, in view
            for column in ("metrics.`final_gain_pts`", "metrics.`val_miou_pts`",
                           "metrics.`baseline_pts`"):
                assert page.locator(f"[col-id='{column}']").count() >= 1, column
            _close_assistant(page)
            page.screenshot(path=str(shots / "mlflow_runs_table.png"))
            # further right (the table draws only the columns in view): the metric ASHA
            # decided on, how each trial ended and why it stopped, what it trained
            stopped = "Why ASHA stopped them" in proc.stdout  # 3 trials: usually 1 or 2
            for column in ("metrics.`task_loss`", "tags.`dejavu.status`",
                           *(["tags.`dejavu.stopped_by`"] if stopped else []),
                           "attributes.`Dataset`"):
                for _ in range(20):
                    if page.locator(f"[col-id='{column}']").count():
                        break
                    page.evaluate("() => { const e = document.querySelector("
                                  "'.ag-body-horizontal-scroll-viewport'); "
                                  "if (e) e.scrollLeft += 300; }")
                    page.wait_for_timeout(300)
                assert page.locator(f"[col-id='{column}']").count() >= 1, column
            if stopped:
                page.get_by_text(re.compile(r"^ASHA at epoch \d")).first.wait_for(timeout=30000)
            # every trial says what it trained: its datasets in the Datasets column
            page.get_by_text("synthetic train").first.wait_for(timeout=30000)
            _close_assistant(page)
            page.screenshot(path=str(shots / "mlflow_runs_table_right.png"))
            # The parent run's page: the verdict and the ranked trials in its description
            page.goto(outcome_url.replace("http://127.0.0.1:5000", base))
            verdict = page.get_by_text(re.compile(r"^(No gain found|Not confirmed|"
                                                  r"Significant gain)$"))
            verdict.first.wait_for(timeout=60000)
            more = page.get_by_text("Show more")
            if more.count():
                more.first.click()
            page.get_by_text("Search trials (3-epoch budget)").first.wait_for()
            _close_assistant(page)
            page.screenshot(path=str(shots / "mlflow_parent_run.png"))
            # the search's figures load in its description (relative artifact links), no
            # wider than the description's column: the run's side panel stays in view
            for name in ("learning_curves", "budget", "knob_effects", "crm_diagnostics"):
                page.wait_for_function(
                    f"() => [...document.images].some(i => i.src.includes('{name}.png') "
                    "&& i.naturalWidth === 1000)", timeout=60000)
            assert page.get_by_text("About this run").first.is_visible()
            page.locator("img[src*='learning_curves.png']").scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "mlflow_parent_figures.png"))
            # A trial's page: how it ended and its last regeneration figure, whole
            figure = _first_figure(tmp_path / "runs")
            page.goto(f"{base}/#/experiments/{figure[0]}/runs/{figure[1]}"
                      "?workflowType=machine_learning")
            page.get_by_text(re.compile("Its last epoch's regeneration figure")).first.wait_for(
                timeout=60000)
            more = page.get_by_text("Show more")
            if more.count():
                more.first.click()
            page.wait_for_function(
                "() => [...document.images].some(i => i.src.includes('regeneration.png') "
                "&& i.naturalWidth > 300)", timeout=60000)
            _close_assistant(page)
            page.screenshot(path=str(shots / "mlflow_trial.png"))
            # its system metrics: the CPU's, on a machine without a GPU
            page.get_by_text("System metrics", exact=True).first.click()
            page.get_by_text(re.compile("cpu_utilization_percentage")).first.wait_for(
                timeout=60000)
            # A child's figure, as the run's artifact browser shows it
            page.goto(f"{base}/#/experiments/{figure[0]}/runs/{figure[1]}/artifactPath/"
                      f"{figure[2]}?workflowType=machine_learning")
            page.wait_for_function(
                "() => [...document.images].some(i => i.src.startsWith('blob:') "
                "&& i.naturalWidth > 300)", timeout=60000)
            # and its whole configuration beside the figures, opened from the tree
            page.get_by_text("config.json", exact=True).first.click()
            page.get_by_text('"image_size"').first.wait_for(timeout=60000)
            page.screenshot(path=str(shots / "mlflow_trial_config.png"))
            browser.close()
    finally:
        kill(ui)
    assert not (work / "mlruns").exists()


def _close_assistant(page) -> None:
    """MLflow 3 opens its assistant panel in a fresh browser; it hides half the page."""
    close = page.locator("button[aria-label='Close']")
    if close.count():
        close.first.click()
        page.wait_for_timeout(500)


def _first_figure(storage: Path) -> tuple[str, str, str]:
    """(experiment id, run id, path) of a DejaVu trial's first regeneration image."""
    from mlflow.tracking import MlflowClient

    meta = search_meta(storage, "look")
    client = MlflowClient(meta["tracking_uri"])
    for run in client.search_runs([meta["experiment_id"]],
                                  filter_string="tags.`dejavu.kind` = 'trial'"):
        images = [a.path for a in client.list_artifacts(run.info.run_id, "images")
                  if a.path.endswith(".png")]
        if images:
            return meta["experiment_id"], run.info.run_id, images[0]
    raise AssertionError("no trial logged a figure")
