"""What ``pip install`` puts on a user's machine: the project's packages under its own
name (the top-level ``trainables/`` folder installs as ``dejavu_tune.trainables``), and a
torch build the user installed first stays."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
# a torch build other than the suite's (on this machine's disk) and the torchvision built
# for that torch: a user with their own CUDA build installs both from one index
OTHER_TORCH = ("torch==2.13.0+cpu", "torchvision==0.28.0")


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_installs_under_the_projects_name():
    tree = sorted(".".join(p.parent.relative_to(ROOT).parts)
                  for p in (ROOT / "dejavu_tune").rglob("__init__.py"))
    settings = _setuptools()
    assert sorted(settings["packages"]) == sorted([*tree, "dejavu_tune.trainables"])
    assert settings["package-dir"] == {"dejavu_tune.trainables": "trainables"}
    assert all(p.startswith("dejavu_tune") for p in settings["packages"])


def test_the_installed_trainable_is_the_one_the_search_runs():
    from dejavu_tune.plugins import load_object
    from dejavu_tune.search.trial_context import TRAINABLE

    assert TRAINABLE.startswith("dejavu_tune.trainables.")
    trainable = load_object(TRAINABLE, "the trainable")
    assert Path(sys.modules[trainable.__module__].__file__).parent.name == "trainables"


@pytest.mark.slow
def test_installing_the_project_keeps_a_torch_build_already_there(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    first = subprocess.run([*pip, "install", "-q", *OTHER_TORCH], capture_output=True,
                           text=True, timeout=900)
    if first.returncode != 0:
        pytest.skip(f"{OTHER_TORCH} is not on this machine's package index: "
                    f"{first.stderr.strip().splitlines()[-1:]}")
    report = tmp_path / "report.json"
    plan = subprocess.run([*pip, "install", "--dry-run", "--quiet", "--report", str(report),
                           "-e", str(ROOT)], capture_output=True, text=True, timeout=900)
    assert plan.returncode == 0, plan.stderr[-3000:]
    installs = {item["metadata"]["name"].lower(): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    # the builds already there stay
    assert not {"torch", "torchvision"} & set(installs), installs
    assert {"dejavu-tune", "lpips", "ray", "timm"} <= set(installs)
