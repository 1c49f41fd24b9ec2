"""`python -m dejavu_tune.train`."""

from dejavu_tune.train.command import main

raise SystemExit(main())
