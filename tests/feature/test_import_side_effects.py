"""Importing the package sets no environment variable of the user's process: what the
search needs is set where it runs (its driver, its workers, its MLflow clients)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Every module of the package imported one by one; the libraries it wraps are imported
# first, so what they set on their own import (MLflow's telemetry id, Ray's client mode)
# is not counted against the package.
SCRIPT = """
import importlib, os, pkgutil
import mlflow, optuna, ray, ray.tune, torch  # noqa: F401
import dejavu_tune, dejavu_tune.trainables as trainables
before = dict(os.environ)
names = [i.name for p in (dejavu_tune, trainables)
         for i in pkgutil.walk_packages(p.__path__, p.__name__ + ".")
         if not i.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
changed = sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k))
print(len(names), changed)
"""


def test_importing_every_module_changes_no_environment_variable():
    bare = subprocess.run([sys.executable, "-c", "import os; b = dict(os.environ); "
                           "import dejavu_tune; print(dict(os.environ) == b)"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bare.stdout.strip() == "True", bare.stderr[-2000:]
    every = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                           timeout=600, cwd=ROOT)
    assert every.returncode == 0, every.stderr[-3000:]
    count, changed = every.stdout.strip().split(" ", 1)
    assert int(count) > 100 and changed == "[]", every.stdout
