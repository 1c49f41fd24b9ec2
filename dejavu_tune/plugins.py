"""Bring-your-own components: ``"package.module:function"`` strings from the YAML.

A user's network, dataset or task plugs in by naming a callable in their own
importable module, so a codebase like mmsegmentation or monodepth2 can be tuned
without forking dejavu-tune. The import happens when the configuration is
loaded, so a typo fails before Ray starts, with the name and the reason.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from dejavu_tune.errors import DejavuError

__all__ = ["PluginError", "is_plugin", "load_object", "check_call", "call_plugin",
           "wrong_return"]


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


def check_call(spec: str, what: str, contract: str, *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """The function ``spec`` names, checked to take the arguments its ``contract`` (e.g.
    ``function(split, data_config) -> Dataset``) gives it, without calling it: a name that
    imports but is of something else is a wrong setting, found before any work."""
    fn = load_object(spec, what)
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as exc:
        raise _uncallable(spec, what, contract, exc) from None
    except ValueError:  # a builtin without a signature: only calling it tells
        pass
    return fn


def call_plugin(spec: str, what: str, contract: str, *args: Any, **kwargs: Any) -> Any:
    """``check_call``, then the call itself."""
    fn = check_call(spec, what, contract, *args, **kwargs)
    try:
        return fn(*args, **kwargs)
    except TypeError as exc:
        if _has_signature(fn):
            raise  # the arguments fit: a TypeError is a defect inside the plug-in
        # a builtin without a signature is never a user's own plug-in: the name is wrong
        raise _uncallable(spec, what, contract, exc) from None


def _has_signature(fn: Callable[..., Any]) -> bool:
    try:
        inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return True


def _uncallable(spec: str, what: str, contract: str, exc: TypeError) -> PluginError:
    return PluginError(f"{what}={spec!r} does not take the arguments it is called with "
                       f"({exc}): expected a {contract}")


def wrong_return(spec: str, what: str, value: Any, contract: str) -> PluginError:
    """The error of a plug-in that returned something its contract does not allow."""
    return PluginError(f"{what}={spec!r} returned a {type(value).__name__}: expected a "
                       f"{contract}")
