"""The runner of every ``python -m dejavu_tune...`` command: a ``DejavuError`` is one line
on stderr and exit status 2; ``--debug`` (anywhere on the line) shows its traceback.
``OneLineParser`` gives a bad command line the same one line and exit status."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from dejavu_tune.errors import DejavuError, one_line

__all__ = ["run", "OneLineParser", "command_parser", "PathError", "check_output_file",
           "check_output_dir"]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad command line gets one line (``error: ...``), not the usage text.

    Subcommands inherit it: argparse builds a parser's subparsers with its own class."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {' '.join(message.split())} "
                     f"({self.prog} --help lists the options)\n")


def command_parser(prog: str, description: str | None) -> OneLineParser:
    """The parser of one command (every command builds its own with this): one-line
    errors, ``description`` (the module's docstring) kept as written, ``--debug`` named."""
    return OneLineParser(prog=prog, description=description,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog="--debug, anywhere on the line: an error's traceback, "
                                "not its one line")


class PathError(DejavuError, ValueError):
    """A file or directory named on a command line that cannot be used as asked."""


def check_output_file(path: str | os.PathLike, flag: str) -> None:
    """``path`` can be written (its missing directories made): checked before the work
    whose result it will hold, not after it."""
    target = Path(path).absolute()
    if target.is_dir():
        raise PathError(f"{flag}={str(path)!r} is a directory: expected a file to write")
    existing = next(p for p in target.parents if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise PathError(f"{flag}={str(path)!r}: {existing} is not a writable directory: "
                        "expected a file path that can be written")


def check_output_dir(path: str | os.PathLike, flag: str, writable: bool = True) -> None:
    """``path`` is a directory, or can be made one: its nearest existing ancestor is a
    directory; ``writable``: one in which a file can be created, which is tried (and the
    file removed at once), since permissions alone do not tell for root or a read-only
    mount. A store that already holds what is needed may be read-only."""
    target = Path(path).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise PathError(f"{flag} {str(path)!r} is a file: expected a directory (or a path "
                        "that does not exist yet)")
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise PathError(f"{flag} {str(path)!r} cannot be made: {str(existing)!r} is a file, "
                        "not a directory")
    if not writable:
        return
    try:
        fd, probe = tempfile.mkstemp(prefix=".dejavu-write-check-", dir=existing)
    except OSError as exc:
        raise PathError(f"{flag} {str(path)!r} is not writable: {str(existing)!r}: "
                        f"{exc.strerror}: expected a directory this user can write in"
                        ) from None
    os.close(fd)
    os.unlink(probe)


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
