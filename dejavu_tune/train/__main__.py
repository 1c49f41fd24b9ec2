"""`python -m dejavu_tune.train`."""

from dejavu_tune.cli import run
from dejavu_tune.train.trainer import main

raise SystemExit(run(main))
