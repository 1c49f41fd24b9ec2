"""`python -m dejavu_tune.search`."""

from dejavu_tune.cli import run
from dejavu_tune.search.cli import main

raise SystemExit(run(main))
