"""Every command through one runner: a user's error is one line and exit 2; --debug shows
the traceback; a wrong data root for the CRM pre-training is such an error."""

import subprocess
import sys
from pathlib import Path

import pytest

from dejavu_tune.cli import run
from dejavu_tune.config import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def _fails(argv):
    raise ConfigError(f"optim.lr={argv[0]!r} is not allowed:\nexpected a positive number")


def test_a_users_error_is_one_line_and_exit_2(capsys):
    assert run(_fails, ["-1"]) == 2
    assert capsys.readouterr().err == (
        "error: optim.lr='-1' is not allowed: expected a positive number\n")


def test_debug_shows_the_traceback_and_never_reaches_the_command():
    seen = []
    assert run(lambda argv: seen.append(argv) or 0, ["--debug", "x"]) == 0
    assert seen == [["x"]]
    with pytest.raises(ConfigError):
        run(_fails, ["-1", "--debug"])


def test_crm_pretrain_with_a_missing_data_root_ends_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dejavu_tune.train.crm_pretrain", "--out",
         str(tmp_path / "crm.pt"), "--iterations", "1", "--set", "data.name=cityscapes",
         "--set", f"data.root={tmp_path / 'nowhere'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "nowhere" in proc.stderr
