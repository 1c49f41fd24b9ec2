"""`python -m dejavu_tune.train`."""

from dejavu_tune.train.trainer import main

raise SystemExit(main())
