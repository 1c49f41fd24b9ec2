"""What a person sees first in MLflow's UI: the address that opens a search's runs table,
and the notes on the experiment's and the parent run's pages.

The runs table opens through one of MLflow's shared views (the UI's "Share" button
stores the table's state in an experiment tag ``mlflow.sharedViewState.<key>``, and
``?viewStateShareKey=<key>`` in the address loads it): this search's trials only, so they
are not folded under a collapsed parent run, sorted by the gain at the full budget, with
the columns that say what each trial is and how it did. ``workflowType`` opens the
machine-learning runs table rather than MLflow's GenAI overview.

Notes are MLflow's run and experiment descriptions (the ``mlflow.note.content`` tag),
rendered as Markdown on their pages; images in them are the run's own artifacts, served
by the UI's ``get-artifact`` endpoint.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from mlflow.tracking import MlflowClient

from dejavu_tune.tracking import runs as tracking

__all__ = ["NOTE_TAG", "NOTE_IMAGE_PX", "VIEW_PREFIX", "LOCAL_UI", "share_runs_view", "runs_url", "run_url",
           "run_link", "ui_base", "ui_command", "set_run_note", "trial_note", "describe_experiment", "artifact_image"]

NOTE_TAG = "mlflow.note.content"
VIEW_PREFIX = "mlflow.sharedViewState."
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
_NOTE_LIMIT = 8000  # MLflow's longest run tag value
# An image in a run's description shows at its own width, and the UI's sanitiser drops
# width attributes: one wider than the description's column at a 1600-px window (beside
# the run's side panel) pushes that panel off-screen. Figures are saved this wide.
NOTE_IMAGE_PX = 1000
_WORKFLOW = "workflowType=machine_learning"
_NAME_COLUMN = "attributes.`Run Name`"
# what each trial trained and was scored on (its dataset inputs): after how it did
_DATASET_COLUMN = "attributes.`Dataset`"
_LEADING_COLUMNS = ["0", _NAME_COLUMN, "runDateAndNestInfo", "duration"]  # checkbox first
# a header's width at the table's 13 px font (measured on its screenshots), its sort icon
_CHAR_PX, _HEADER_PAD, _MIN_WIDTH = 7.6, 34, 90
_MAX_WIDTH = 220  # a why-stopped tag's text is cut there; the run's page has it whole


def view_key(parent_run_id: str) -> str:
    return f"dejavu-{parent_run_id}"


def share_runs_view(uri: str, experiment_id: str, parent_run_id: str, sort_metric: str,
                    ascending: bool, metrics: list[str], params: list[str],
                    tags: list[str], later_tags: list[str] = ()) -> str:
    """Store the runs-table view of this search's trials; returns its share key. The
    table groups consecutive columns of a kind: ``tags`` come right after the metrics (in
    view at 1600 px), ``later_tags`` after the parameters."""
    key = view_key(parent_run_id)
    columns = ([f"metrics.`{m}`" for m in metrics] + [f"tags.`{t}`" for t in tags]
               + [_DATASET_COLUMN] + [f"params.`{p}`" for p in params]
               + [f"tags.`{t}`" for t in later_tags])
    state = {
        "searchFilter": f"tags.`{tracking.PARENT_TAG}` = '{parent_run_id}'",
        "orderByKey": f"metrics.`{sort_metric}`", "orderByAsc": ascending,
        "startTime": "ALL", "lifecycleFilter": "Active", "datasetsFilter": [],
        "modelVersionFilter": "All Runs", "selectedColumns": columns,
        # The table applies widths only to columns named in the order (MLflow's own
        # column ids); names like "t07 crm_r K=2 · highpass b16 · γ1.68" fit whole, and
        # the metrics keep the order given, the ranking one first.
        "columnOrder": [*_LEADING_COLUMNS, *columns],
        "columnWidths": {_NAME_COLUMN: 300, **{c: _width(c) for c in columns}},
    }
    MlflowClient(uri).set_experiment_tag(experiment_id, VIEW_PREFIX + key, json.dumps(state))
    return key


def _width(column: str) -> int:
    """Wide enough for the column's header whole (``dejavu.redaction.kind`` and
    ``dejavu.redaction.block`` both cut to "dejavu.redactio" at the default width)."""
    if column == _DATASET_COLUMN:  # "synthetic train (0486c63b…) Training +1"
        return 160
    header = column.split("`")[1] if "`" in column else column
    return min(_MAX_WIDTH, max(_MIN_WIDTH, int(_CHAR_PX * len(header)) + _HEADER_PAD))


def ui_base(uri: str) -> str:
    """The UI's address: the tracking server itself, or `mlflow ui` on this machine."""
    if uri.startswith(("http://", "https://")):
        return tracking.redact(uri).rstrip("/")
    return LOCAL_UI


def ui_command(uri: str) -> str | None:
    """The command that serves a local store's UI; None for a tracking server."""
    if uri.startswith(("http://", "https://")):
        return None
    return f"mlflow ui --backend-store-uri {uri}"


def runs_url(uri: str, experiment_id: str, key: str) -> str:
    return (f"{ui_base(uri)}/#/experiments/{experiment_id}/runs?{_WORKFLOW}"
            f"&viewStateShareKey={quote(key)}")


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    return f"{ui_base(uri)}/{run_link(experiment_id, run_id)}"


def run_link(experiment_id: str, run_id: str) -> str:
    """A run's page as a link inside the UI's own pages (a description's Markdown): no
    host or port, so it works wherever the UI is served, and on the model-training
    pages rather than the GenAI ones."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?{_WORKFLOW}"


def artifact_image(run_id: str, path: str, title: str) -> str:
    """Markdown for an image artifact of ``run_id``, as the UI serves it (a relative
    address: it works on any host the UI runs on)."""
    return f"![{title}](get-artifact?path={quote(path)}&run_uuid={run_id})"


def set_run_note(uri: str, run_id: str, markdown: str) -> None:
    """The run page's description. MLflow caps a tag at 8000 characters: a longer note
    ends with a pointer to the full text instead of being cut mid-table."""
    if len(markdown) > _NOTE_LIMIT:
        tail = "\n\n… (shortened: the full summary is the run's `summary.md`)\n"
        cut = markdown.rfind("\n", 0, _NOTE_LIMIT - len(tail))
        markdown = markdown[:cut] + tail
    tracking.set_tags(uri, run_id, {NOTE_TAG: markdown})


def trial_note(run_id: str, name: str, status: str, stop: str | None,
               figure: bool = True) -> str:
    """A trial run's description: what it is, how it ended (why ASHA stopped it), where
    its configuration is, and (``figure``: it finished an epoch) its newest regeneration
    figure whole."""
    lines = [f"**{name}**: {status.replace('_', ' ')}."]
    if stop:
        lines.append(f"Stopped by {stop}.")
    if figure:
        lines += ["", "Its last epoch's regeneration figure (input, ground truth, prediction, "
                  "redacted input, regenerated image, the CRM's change; every epoch's is under "
                  "*Artifacts*, `images/`):", "",
                  artifact_image(run_id, tracking.LATEST_FIGURE, "regeneration, last epoch")]
    lines += ["", "Its whole configuration: the `config.json` artifact; what it trained and "
              "was scored on: *Datasets*."]
    return "\n".join(lines) + "\n"


def describe_experiment(uri: str, experiment_id: str, latest: str) -> None:
    """The experiment page's description: what its runs are, and the newest search."""
    text = (
        "Searches of **dejavu-tune**: each top-level run is one search (its name is the "
        "search's `--name`), its description holds the verdict, the ranked trials and the "
        "plots. The runs nested under it are its trials: DejaVu trials named "
        "`tNN <CRM> · <redaction> · γ`, baselines (DejaVu off) with their seed, the "
        "baseline-tuning and confirmation runs, and the CRM pre-trainings. Runs a scheduler "
        "stopped early show as *Killed*; sort by `final_gain` to compare trials at the "
        f"full budget.\n\nNewest search: {latest}\n")
    MlflowClient(uri).set_experiment_tag(experiment_id, NOTE_TAG, text)
