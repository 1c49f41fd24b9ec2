"""The search service. From Python: ``dejavu_tune.search.run(...)`` and
``dejavu_tune.search.load(...)`` (``search.api``), resolved when first used, so that
importing the package stays cheap and the modules under it, which import their siblings
through this package, never import the API with it."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["run", "load", "SearchResult", "SearchFailed"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("dejavu_tune.search.api"), name)
    raise AttributeError(f"module 'dejavu_tune.search' has no attribute {name!r}")
