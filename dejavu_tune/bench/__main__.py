"""`python -m dejavu_tune.bench`."""

from dejavu_tune.bench.cli import main

raise SystemExit(main())
