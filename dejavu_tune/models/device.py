"""The device a network runs on, checked before anything is built: asking for a GPU on a
machine without one is a setting to change, not a defect."""

from __future__ import annotations

import torch

from dejavu_tune.errors import DejavuError

__all__ = ["DeviceError", "resolve_device"]


class DeviceError(DejavuError, RuntimeError):
    """A device this machine does not have."""


def resolve_device(name: str | torch.device, what: str = "device") -> torch.device:
    """``name`` ("cpu", "cuda", "cuda:N" or "auto": CUDA when there is one) as a device
    this machine has; ``what`` names the setting or flag in errors."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # "cuda:x", "cuda:-1": the config only checks the prefix
        raise DeviceError(f"{what}={name!s} is not a device: expected cpu, cuda, cuda:N or "
                          "auto") from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise DeviceError(f"{what}={name!s}: no CUDA device is available on this machine: "
                          f"{what}=cpu works")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceError(f"{what}={name!s}: this machine has {count} CUDA device(s): "
                          f"expected cuda:0 to cuda:{count - 1}, or {what}=cpu")
    return device
