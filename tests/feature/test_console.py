"""One console command over the package's commands (``dejavu-tune``, the
``[project.scripts]`` entry, and ``python -m dejavu_tune``): the same options and the same
one-line errors as each ``python -m`` form."""

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import dejavu_tune
from dejavu_tune.__main__ import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]


def test_the_entry_point_is_declared_and_installed():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"dejavu-tune": "dejavu_tune.__main__:main"}
    # pip installs it beside the interpreter of the environment that installed the project
    script = Path(sys.executable).parent / "dejavu-tune"
    assert script.is_file(), f"{script}: reinstall the project (pip install -e .)"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout == f"dejavu-tune {dejavu_tune.__version__}\n"


def test_every_command_is_reachable_with_its_own_help(capsys):
    assert set(COMMANDS) == {"search", "train", "report", "bench"}
    assert main(["report", "--help"]) == 0
    assert "python -m dejavu_tune.report" in capsys.readouterr().out
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {name}" in listed for name in COMMANDS)


@pytest.mark.parametrize("argv, says", [
    (["serach"], "error: 'serach' is not a dejavu-tune command: expected one of search, train"),
    (["bench", "overhead", "--iters", "0"], "error: --iters must be at least 1"),
    (["train", "--set", "optim.epochz=2"], "error: "),
])
def test_a_wrong_command_or_option_is_one_line_and_exit_2(capsys, argv, says):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(says) and err.count("\n") == 1, err


def test_no_command_prints_the_usage_and_exits_2(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: dejavu-tune {search,train,report,bench}")
