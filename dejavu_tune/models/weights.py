"""Reading a weights file a user names (``model.pretrained``, ``dejavu.crm.weights``, the
LPIPS trunk): tensors in plain containers only, and one clear error for anything else.

Unpickling an object of an arbitrary class can run code, so the file is always read with
``weights_only=True``. When that refuses a file, PyTorch's own message advises retrying
with ``weights_only=False``: advice a user must not follow for a file of unknown origin,
so it is never shown, not even in a ``--debug`` traceback.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from dejavu_tune.errors import DejavuError

__all__ = ["WeightsError", "read_weights"]

# How PyTorch names the class a weights-only unpickler refused: "GLOBAL module.Name"
_REFUSED = re.compile(r"GLOBAL ([\w.]+)")


class WeightsError(DejavuError, ValueError):
    """A weights file that is missing, unreadable or holds more than tensors."""


def read_weights(path: str | os.PathLike, what: str) -> Any:
    """What the PyTorch file ``path`` holds: tensors and plain values in dicts and lists.

    ``what`` names the setting the path came from (e.g. ``model.pretrained``); every
    error is a :class:`WeightsError` that names it and the file."""
    file = Path(path)
    where = f"{what}={str(path)!r}"
    if not file.is_file():
        found = "is a directory" if file.is_dir() else "does not exist"
        raise WeightsError(f"{where} {found}: expected a local weights file (a PyTorch "
                           "state dict; nothing is downloaded)")
    try:
        with warnings.catch_warnings():
            # a pickle that is no torch.save file draws a warning about its protocol, which
            # names weights_only too; the error below says what is wrong in one line
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            return torch.load(file, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise WeightsError(f"{where} cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001 - whatever the content, the same clear error
        # from None: the chained exception would carry PyTorch's weights_only=False advice
        raise WeightsError(f"{where} is not a PyTorch state dict of tensors"
                           f"{_refused(exc)}: expected a file that torch.save wrote from "
                           "tensors in dicts (a module's state_dict()); other objects are "
                           "never unpickled") from None


def _refused(exc: Exception) -> str:
    """`` (it holds a module.Class)`` when the unpickler named the class it refused."""
    match = _REFUSED.search(str(exc)) if isinstance(exc, pickle.UnpicklingError) else None
    return f" (it holds a {match.group(1)})" if match else ""
