"""The base of every error a user can fix (a bad setting, a missing file, a dataset in the
wrong layout): a command prints its message on one line and exits 2 (``dejavu_tune.cli``).
Anything else is a defect and keeps its traceback."""

from __future__ import annotations

__all__ = ["DejavuError", "one_line"]


class DejavuError(Exception):
    """An error whose message says what is wrong and what is allowed."""


def one_line(exc: BaseException) -> str:
    """An error's message on one line (YAML and OS errors span several)."""
    return " ".join(str(exc).split())
