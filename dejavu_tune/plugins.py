"""Bring-your-own components: ``"package.module:function"`` strings from the YAML.

A user's network, dataset or task plugs in by naming a callable in their own
importable module, so a codebase like mmsegmentation or monodepth2 can be tuned
without forking dejavu-tune. The import happens when the configuration is
loaded, so a typo fails before Ray starts, with the name and the reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from dejavu_tune.errors import DejavuError

__all__ = ["PluginError", "is_plugin", "load_object"]


class PluginError(DejavuError, ValueError):
    """A ``module:function`` reference cannot be imported or is not callable."""


def is_plugin(name: Any) -> bool:
    return isinstance(name, str) and ":" in name


def load_object(spec: str, what: str) -> Callable[..., Any]:
    """The callable ``spec`` names; ``what`` says which setting it came from, for errors."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or not all(p.isidentifier() for p in
                                              module_name.split(".") + attr.split(".")):
        raise PluginError(f"{what}={spec!r} is not allowed: expected 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"{what}={spec!r}: cannot import {module_name!r} ({exc}); "
                          "is its directory on PYTHONPATH?") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"{what}={spec!r}: module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PluginError(f"{what}={spec!r}: {attr!r} is not callable")
    return obj
