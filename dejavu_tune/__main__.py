"""``dejavu-tune COMMAND ...`` (the console command ``pip install`` puts on the PATH) and
``python -m dejavu_tune COMMAND ...``: one entry over the package's commands, each with
the same options and one-line errors as its ``python -m`` form.

    dejavu-tune search --dry-run
    dejavu-tune train --set optim.epochs=2
    dejavu-tune report --storage-path runs
    dejavu-tune bench overhead --preset small
    dejavu-tune --version
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from dejavu_tune import __version__

__all__ = ["main", "COMMANDS"]


def _search(argv: list[str]) -> int:
    from dejavu_tune.raytune.ray_adapter import join_abandoned
    from dejavu_tune.search.cli import main

    code = main(argv)
    if join_abandoned():  # as `python -m dejavu_tune.search` ends
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _train(argv: list[str]) -> int:
    from dejavu_tune.train.command import main

    return main(argv)


def _report(argv: list[str]) -> int:
    from dejavu_tune.report import main

    return main(argv)


def _bench(argv: list[str]) -> int:
    from dejavu_tune.bench.cli import main

    return main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "search": (_search, "run a search (python -m dejavu_tune.search)"),
    "train": (_train, "train one configuration (python -m dejavu_tune.train)"),
    "report": (_report, "ablation tables of a finished search (python -m dejavu_tune.report)"),
    "bench": (_bench, "benchmarks (python -m dejavu_tune.bench)"),
}


def _usage() -> str:
    return ("usage: dejavu-tune {" + ",".join(COMMANDS) + "} ... | --version\n\n"
            + "\n".join(f"  {name:<8}{text}" for name, (_, text) in COMMANDS.items())
            + "\n\n`dejavu-tune COMMAND --help` lists a command's options.\n")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(), end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        print(f"dejavu-tune {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(f"error: {args[0]!r} is not a dejavu-tune command: expected one of "
              f"{', '.join(COMMANDS)} (dejavu-tune --help lists them)", file=sys.stderr)
        return 2
    run, _ = COMMANDS[args[0]]
    try:
        return run(args[1:])
    except SystemExit as exc:  # argparse ends --help and a usage error so: a code here too
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 2


if __name__ == "__main__":
    raise SystemExit(main())
