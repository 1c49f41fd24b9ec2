"""The runner of every ``python -m dejavu_tune...`` command: a ``DejavuError`` is one line
on stderr and exit status 2; ``--debug`` (anywhere on the line) shows its traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from dejavu_tune.errors import DejavuError, one_line

__all__ = ["run"]


def run(main: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    try:
        return main(args)
    except DejavuError as exc:
        if debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
