"""`python -m dejavu_tune.report`."""

from dejavu_tune.report.ablation import main

raise SystemExit(main())
