import json

from mlflow.tracking import MlflowClient

from dejavu_tune.tracking import mlflow_views
from dejavu_tune.tracking import runs as tracking


def test_the_shared_view_selects_sorts_and_shows_this_searchs_trials(tmp_path):
    uri = tracking.default_tracking_uri(tmp_path)
    exp_id, parent = tracking.open_parent_run(uri, "exp", "s1")
    key = mlflow_views.share_runs_view(uri, exp_id, parent, "final_gain", False,
                                       ["final_gain", "val_miou"], ["optim.lr"],
                                       ["dejavu.status"], ["dejavu.phase"])
    assert key == f"dejavu-{parent}"
    state = json.loads(MlflowClient(uri).get_experiment(exp_id).tags[
        f"mlflow.sharedViewState.{key}"])
    assert state["searchFilter"] == f"tags.`mlflow.parentRunId` = '{parent}'"
    assert (state["orderByKey"], state["orderByAsc"]) == ("metrics.`final_gain`", False)
    # the table groups consecutive columns of a kind: the status right after the metrics
    assert state["selectedColumns"] == ["metrics.`final_gain`", "metrics.`val_miou`",
                                        "tags.`dejavu.status`", "attributes.`Dataset`",
                                        "params.`optim.lr`", "tags.`dejavu.phase`"]
    assert state["columnOrder"][:2] == ["0", "attributes.`Run Name`"]
    # each header whole: 7.6 px a character and 34 for the sort icon, at least 90
    assert state["columnWidths"] == {"attributes.`Run Name`": 300,
                                     "metrics.`final_gain`": 110, "metrics.`val_miou`": 94,
                                     "attributes.`Dataset`": 160, "params.`optim.lr`": 94,
                                     "tags.`dejavu.status`": 132, "tags.`dejavu.phase`": 125}


def test_a_trial_note_says_how_it_ended_and_links_its_last_figure_relatively():
    note = mlflow_views.trial_note("r1", "t04 crm_f S=3", "stopped_early",
                                   "ASHA at epoch 2: task_loss 0.81, above the cut-off 0.79")
    assert note.startswith("**t04 crm_f S=3**: stopped early.\nStopped by ASHA at epoch 2: ")
    assert ("\n![regeneration, last epoch](get-artifact?path=regeneration.png&run_uuid=r1)\n"
            in note)
    assert "get-artifact" not in mlflow_views.trial_note("r1", "t05", "failed", None,
                                                         figure=False)
    assert mlflow_views.run_link("3", "r1") == (
        "#/experiments/3/runs/r1?workflowType=machine_learning")


def test_addresses_for_a_local_store_and_for_a_server_without_its_password():
    local = "sqlite:////data/runs/mlflow.db"
    assert mlflow_views.ui_command(local) == f"mlflow ui --backend-store-uri {local}"
    assert mlflow_views.runs_url(local, "3", "dejavu-abc") == (
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
        "&viewStateShareKey=dejavu-abc")
    server = "https://me:secret@mlflow.example.org/"
    assert mlflow_views.ui_command(server) is None
    assert mlflow_views.run_url(server, "3", "r1") == (
        "https://me:***@mlflow.example.org/#/experiments/3/runs/r1"
        "?workflowType=machine_learning")


def test_a_long_note_ends_at_a_line_with_a_pointer_to_the_full_summary(tmp_path):
    uri = tracking.default_tracking_uri(tmp_path)
    _, parent = tracking.open_parent_run(uri, "exp", "s1")
    rows = "\n".join(f"| {i} | trial {i} |" for i in range(1000))
    mlflow_views.set_run_note(uri, parent, "## Verdict\n" + rows)
    note = MlflowClient(uri).get_run(parent).data.tags["mlflow.note.content"]
    assert len(note) <= 8000 and note.startswith("## Verdict\n| 0 | trial 0 |")
    assert note.endswith("(shortened: the full summary is the run's `summary.md`)\n")
    assert note.split("\n\n…")[0].endswith("|")  # cut between rows, not inside one
    assert mlflow_views.artifact_image("r1", "slice.png", "slice") == (
        "![slice](get-artifact?path=slice.png&run_uuid=r1)")
