"""Tests never write into the checkout: MLflow's default artifact root is ./mlruns of the
working directory, so a search or store set up without a storage path would leave one."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_STRAYS = ("mlruns", "mlartifacts")


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = {name for name in _STRAYS if (ROOT / name).exists()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, set())
    written = [name for name in _STRAYS if (ROOT / name).exists() and name not in before]
    if written:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nerror: the tests wrote {', '.join(written)} into the checkout {ROOT}")


_BEFORE = pytest.StashKey[set]()
