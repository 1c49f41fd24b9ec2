import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bash_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_has_exactly_two_setup_commands():
    blocks = _bash_blocks()
    assert len(blocks) == 2, blocks
    assert all("\n" not in b and b.startswith("python3 -m venv .venv") for b in blocks)


def test_ci_runs_the_readme_test_command():
    test_command = _bash_blocks()[1]
    assert "pytest" in test_command
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines
