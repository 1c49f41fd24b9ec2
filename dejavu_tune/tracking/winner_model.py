"""The confirmed winner's trained network as an MLflow model: the base network of one of
its confirmation runs (the CRM is training-time machinery; inference is the network's
alone), with its whole configuration as the model's parameters and its held-out
metrics, optionally registered in the model registry.

It runs where the trials run (a Ray task: the checkpoint's storage and the dataset's
files, which the network's heads are read from, are there), and writes through MLflow
like a trial does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["MODEL_NAME", "log_network"]

MODEL_NAME = "network"  # the logged model's name in its run


@contextlib.contextmanager
def _tracking(uri: str, experiment_id: str) -> Iterator[None]:
    """MLflow's model logging writes to the process's tracking URI and experiment (else
    experiment 0, whose artifacts land in ./mlruns): ``uri`` and the run's experiment for
    the block, then the process as it was (``set_tracking_uri`` also sets and clears the
    environment variable, which a user may have set themselves)."""
    from mlflow.tracking._tracking_service import utils

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID")
    held, env = utils._tracking_uri, {k: os.environ.get(k) for k in keys}
    utils.set_tracking_uri(uri)
    os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
    try:
        yield
    finally:
        utils.set_tracking_uri(held)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def log_network(uri: str, run_id: str, checkpoint_dir: str, fixed: dict[str, Any],
                sampled: dict[str, Any], metrics: dict[str, float],
                register: str | None) -> dict[str, Any]:
    """Log the network of the run ``run_id`` (its trainer state in ``checkpoint_dir``,
    its configuration ``fixed`` + ``sampled``) as the run's model ``MODEL_NAME``; returns
    where it is (``model_uri``, ``model_id``, the registered name and version)."""
    import mlflow
    import mlflow.pytorch
    import torch

    import dejavu_tune
    from dejavu_tune.config import ENABLED_KEY, trial_config
    from dejavu_tune.train import checkpoint_io
    from dejavu_tune.train.trainer import Trainer

    state = checkpoint_io.load(checkpoint_dir)
    if "model" not in state:
        raise ValueError("the run's trainer (search.trainer) keeps no network in its "
                         "checkpoint")
    cfg = trial_config(fixed, sampled)
    # the network alone, on the CPU: no CRM to build, no stored weights to look up
    network_cfg = cfg.replace(**{ENABLED_KEY: False, "device": "cpu", "data.heldout": False})
    trainer = Trainer(network_cfg)
    trainer.model.load_state_dict(state["model"])
    del state
    network = trainer.model.eval()
    from mlflow import MlflowClient

    with _tracking(uri, MlflowClient(uri).get_run(run_id).info.experiment_id):
        info = mlflow.pytorch.log_model(
            network, name=MODEL_NAME, run_id=run_id,
            # pickled with its classes (dejavu_tune.models), as every network here builds:
            # the traced 'pt2' format needs an example input and a graph torch.export
            # accepts, which not every backbone gives
            serialization_format="pickle",
            params={k: str(v) for k, v in _flat(cfg.to_dict()).items()},
            # what loads it; stated, so MLflow does not load the model to infer them
            pip_requirements=[f"dejavu-tune=={dejavu_tune.__version__}",
                              f"torch=={torch.__version__.split('+')[0]}"],
            registered_model_name=register, await_registration_for=60)
        mlflow.log_metrics(metrics, run_id=run_id, model_id=info.model_id)
    return {"model_uri": info.model_uri, "model_id": info.model_id, "run_id": run_id,
            "checkpoint": str(checkpoint_dir), "registered_name": register,
            "registered_version": getattr(info, "registered_model_version", None)}
