"""`python -m dejavu_tune.bench`."""

from dejavu_tune.bench.cli import main
from dejavu_tune.cli import run

raise SystemExit(run(main))
