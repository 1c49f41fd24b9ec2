"""`python -m dejavu_tune.search`."""

import os
import sys

from dejavu_tune.raytune.ray_adapter import join_abandoned
from dejavu_tune.search.cli import main

code = main()
if join_abandoned():
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
raise SystemExit(code)
