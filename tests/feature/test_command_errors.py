"""Every command but the search answers a user's error the way the search does: one line
on stderr, ``error: ...``, exit status 2, no traceback, nothing written; ``--debug``
shows the traceback. Each bad input runs the real command in a fresh process; they run a
few at a time (each imports torch), once per module, and each test reads its result."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from PIL import Image

from dejavu_tune.models.weights import WeightsError, read_weights

BOUND_S = 60  # every bad input is refused before any expensive work starts
GPU = torch.cuda.is_available()


class Opaque:
    """A class that a weights-only unpickler must refuse to build."""


# id -> the command line after ``python -m``; {d} is the directory of the files below.
CASES = {
    "train: --set through a scalar": ["dejavu_tune.train", "--set", "optim.epochs.x=1"],
    "train: network that is no function of the contract":
        ["dejavu_tune.train", "--set", "model.name=os:getcwd"],
    "train: pretrained holds an object": ["dejavu_tune.train", "--set", "model.pretrained={d}/object.pt"],
    "train: crm store is a file": ["dejavu_tune.train", "--crm-store", "{d}/text.txt"],
    "train: usage": ["dejavu_tune.train", "--epochs", "3"],
    "crm_pretrain: out is a directory": ["dejavu_tune.train.crm_pretrain", "--out", "{d}"],
    "crm_pretrain: dataset that is no function of the contract":
        ["dejavu_tune.train.crm_pretrain", "--out", "crm.pt", "--set", "data.name=os:getcwd"],
    "report: no store": ["dejavu_tune.report", "--storage-path", "{d}/nowhere"],
    "report: store is a text file": ["dejavu_tune.report", "--tracking-uri", "sqlite:///{d}/text.txt"],
    "lpips: missing image": ["dejavu_tune.method.lpips", "{d}/a.png", "{d}/missing.png"],
    "lpips: sizes differ": ["dejavu_tune.method.lpips", "{d}/a.png", "{d}/b.png"],
    "lpips: weights hold an object": ["dejavu_tune.method.lpips", "{d}/a.png", "{d}/a.png",
                                      "--weights", "{d}/object.pt"],
    "lpips: no such device": ["dejavu_tune.method.lpips", "{d}/a.png", "{d}/a.png",
                              "--device", "meta"],
    "bench: unfinished search": ["dejavu_tune.bench", "search", "{d}/unfinished"],
    "bench: search without results": ["dejavu_tune.bench", "search", "{d}/no_results"],
    "bench: search whose store is gone": ["dejavu_tune.bench", "search", "{d}/store_gone"],
    "bench: storage path under a file": ["dejavu_tune.bench", "scale", "--storage-path",
                                         "{d}/text.txt/runs"],
    "bench: negative count": ["dejavu_tune.bench", "scale", "--trials", "10", "-5"],
    "bench: usage": ["dejavu_tune.bench"],
}
if GPU:  # cuda is good input here; a GPU the machine lacks is not
    CASES["lpips: no such GPU"] = ["dejavu_tune.method.lpips", "{d}/a.png", "{d}/a.png",
                                   "--device", "cuda:99"]
else:
    CASES["train: cuda without a GPU"] = ["dejavu_tune.train", "--set", "device=cuda"]
    CASES["lpips: cuda without a GPU"] = ["dejavu_tune.method.lpips", "{d}/a.png", "{d}/a.png",
                                          "--device", "cuda"]
# one user error of each command, with --debug: its traceback instead of the line
DEBUG = {
    "train": ["dejavu_tune.train", "--debug", "--set", "model.pretrained={d}/set.pkl"],
    "crm_pretrain": ["dejavu_tune.train.crm_pretrain", "--out", "{d}", "--debug"],
    "report": ["dejavu_tune.report", "--storage-path", "{d}/nowhere", "--debug"],
    "lpips": ["dejavu_tune.method.lpips", "--debug", "{d}/a.png", "{d}/b.png"],
    "bench": ["dejavu_tune.bench", "search", "{d}/unfinished", "--debug"],
}


def _files(d: Path) -> None:
    """The bad inputs' files: what a hostile user hands the commands."""
    (d / "text.txt").write_text("not weights, not an image\n")
    with open(d / "set.pkl", "wb") as f:
        pickle.dump({1, 2}, f)
    torch.save(Opaque(), d / "object.pt")
    Image.new("RGB", (64, 64)).save(d / "a.png")
    Image.new("RGB", (48, 64)).save(d / "b.png")
    for name, finished in (("unfinished", False), ("no_results", True), ("store_gone", True)):
        (d / name).mkdir()
        (d / name / "search.json").write_text(json.dumps(
            {"name": name, "space_file": "space.yaml", "finished": finished,
             "parent_run_id": "0" * 32, "tracking_uri": f"sqlite:///{d}/gone/mlflow.db"}))
    (d / "store_gone" / "best_config.json").write_text("{}")


def _tree(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_size for p in sorted(d.rglob("*"))}


def _run(argv: list[str], files: Path, cwd: Path) -> dict:
    cwd.mkdir()
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", *(a.format(d=files) for a in argv)],
                          cwd=cwd, env=dict(os.environ), capture_output=True, text=True,
                          timeout=4 * BOUND_S)
    return {"code": proc.returncode, "err": proc.stderr, "seconds": time.monotonic() - start,
            "left": sorted(p.name for p in cwd.iterdir())}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    files = tmp_path_factory.mktemp("files")
    _files(files)
    before = _tree(files)
    runs = tmp_path_factory.mktemp("cwd")
    jobs = {**{("case", k): v for k, v in CASES.items()},
            **{("debug", k): v for k, v in DEBUG.items()}}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {key: pool.submit(_run, argv, files, runs / f"run{i}")
                   for i, (key, argv) in enumerate(jobs.items())}
        done = {key: future.result() for key, future in futures.items()}
    done["files_changed"] = _tree(files) != before
    return done


@pytest.mark.slow  # one process per case, each importing torch (about 35 s in all)
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_input_is_one_line_and_exit_2(results, case):
    got = results[("case", case)]
    err = got["err"]
    assert got["code"] == 2, err[-3000:]
    assert err.startswith("error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and "weights_only" not in err, err
    assert got["seconds"] < BOUND_S, got["seconds"]
    assert got["left"] == [], got["left"]


@pytest.mark.slow  # reads the cases' results (their processes: about 35 s)
def test_no_bad_input_wrote_beside_the_files_it_was_given(results):
    assert not results["files_changed"]


@pytest.mark.slow  # one process per case, each importing torch (about 35 s in all)
@pytest.mark.parametrize("command", sorted(DEBUG))
def test_debug_shows_the_traceback_of_a_user_error(results, command):
    got = results[("debug", command)]
    assert got["code"] == 1 and "Traceback (most recent call last)" in got["err"], got["err"]
    # the user's error, raised: its class ends the traceback, no "error: " line replaces it
    assert not got["err"].startswith("error: ") and got["left"] == []
    assert "weights_only" not in got["err"]  # not even the chained PyTorch advice


def test_read_weights_refuses_text_a_pickled_set_and_an_object(tmp_path):
    _files(tmp_path)
    for name, reason in (("text.txt", "is not a PyTorch state dict of tensors"),
                         ("set.pkl", "is not a PyTorch state dict of tensors"),
                         ("object.pt", r"\(it holds a [\w.]*Opaque\)"),
                         ("missing.pt", "does not exist"), (".", "is a directory")):
        with pytest.raises(WeightsError, match=reason) as info:
            read_weights(tmp_path / name, "model.pretrained")
        text = str(info.value)
        assert text.startswith("model.pretrained=") and "weights_only" not in text, text
        # nothing chained: PyTorch's advice is not even in a --debug traceback
        assert info.value.__cause__ is None and (info.value.__context__ is None
                                                 or info.value.__suppress_context__)


def test_read_weights_reads_a_state_dict_of_tensors(tmp_path):
    state = {"conv.weight": torch.randn(2, 3), "nested": {"bias": torch.zeros(2)}}
    torch.save(state, tmp_path / "ok.pt")
    loaded = read_weights(tmp_path / "ok.pt", "model.pretrained")
    assert torch.equal(loaded["conv.weight"], state["conv.weight"])
    assert torch.equal(loaded["nested"]["bias"], state["nested"]["bias"])


def test_a_diverged_run_is_a_users_error(monkeypatch, tmp_path, capsys):
    from dejavu_tune.train import command, trainer

    def diverge(cfg, on_epoch=None):
        raise trainer.NonFiniteLossError("loss became nan at epoch 1, iteration 3")

    monkeypatch.setattr(command, "train", diverge)
    argv = ["--set", "dejavu.enabled=false", "--crm-store", str(tmp_path / "store")]
    assert command.main(argv) == 2  # main runs itself through dejavu_tune.cli.run
    err = capsys.readouterr().err
    assert err.startswith("error: dejavu: loss became nan") and "optim.lr" in err, err
    assert err.count("\n") == 1


@pytest.mark.parametrize("init", ["scratch", "pretrained"])
def test_a_batch_larger_than_the_training_split_is_refused_before_anything_trains(
        tmp_path, capsys, init):
    from dejavu_tune.train import command

    store = tmp_path / "store"
    argv = ["--set", "data.num_train=4", "--set", "optim.batch_size=8", "--set",
            f"dejavu.crm.init={init}", "--crm-store", str(store)]
    assert command.main(argv) == 2  # the same error, the same exit, whatever the CRM's init
    err = capsys.readouterr().err
    assert err == ("error: optim.batch_size=8 is more than the 4 training image(s) of "
                   "data.name=synthetic: expected at most 4, or more training images\n")
    assert not store.exists()  # no CRM was pre-trained first


def test_a_search_whose_sampled_batch_outgrows_the_training_split_stops_before_ray(
        tmp_path, capsys):
    from dejavu_tune.search.cli import main

    path = tmp_path / "space.yaml"
    path.write_text("fixed:\n  data: {num_train: 6, num_val: 4, image_size: 32}\n"
                    "params:\n  optim.batch_size: {type: categorical, choices: [4, 8]}\n")
    argv = ["--space", str(path), "--storage-path", str(tmp_path / "runs"), "--dry-run"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: params.optim.batch_size: optim.batch_size=8 is more than the 6 "
        "training image(s) of data.name=synthetic: expected at most 6, or more training "
        "images\n")
    path.write_text(path.read_text().replace("[4, 8]", "[4, 6]"))
    assert main(argv) == 0
