"""The search from Python (``dejavu_tune.search.run`` / ``load``): a real search on the
landscape trainer in this process, its result object, and the same read back."""

import pytest

from dejavu_tune.tracking.runs import child_runs

TINY = {"search.trainer": "dejavu_tune.train.landscape:planted", "dejavu.crm.init": "scratch",
        "optim.epochs": 2, "search.baseline_trials": 0, "search.max_seeds": 4,
        "device": "cpu"}


@pytest.fixture
def ray_after():
    yield
    import ray

    ray.shutdown()  # the search started a local Ray in this process


@pytest.mark.integration
@pytest.mark.slow
def test_run_returns_the_verdict_and_the_trials_and_load_reads_the_same(tmp_path, ray_after):
    from dejavu_tune import search

    result = search.run(overrides=TINY, num_samples=3, storage_path=str(tmp_path),
                        name="api")
    assert result.name == "api" and result.root == (tmp_path / "api").resolve()
    assert result.verdict and result.verdict == result.result["verdict"]
    assert (result.config is None) == (result.winner is None)  # a config only if confirmed
    # one row per MLflow child run, the same runs MLflow lists
    meta = result.result
    children = child_runs(result.tracking_uri, _experiment(result), result.parent_run_id)
    assert sorted(result.trials["run_id"]) == sorted(r.run_id for r in children)
    search_rows = result.trials[result.trials["phase"] == "search"]
    assert len(search_rows[search_rows["kind"] == "trial"]) == 3
    assert "metrics.val_miou" in result.trials and "params.dejavu.loss.gamma" in result.trials
    assert result.urls["outcome"].endswith(f"/runs/{result.parent_run_id}?"
                                           "workflowType=machine_learning")
    again = search.load("api", storage_path=tmp_path)
    assert again.verdict == result.verdict and again.result == meta
    assert again.trials.sort_values("run_id").reset_index(drop=True).equals(
        result.trials.sort_values("run_id").reset_index(drop=True))


def _experiment(result):
    import json

    return json.loads((result.root / "search.json").read_text())["experiment_id"]
