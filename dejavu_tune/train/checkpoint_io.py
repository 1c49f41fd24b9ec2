"""Trial checkpoints on disk: written with a SHA-256 digest, read back only when intact.

A checkpoint directory holds ``trainer.pt`` (the trainer state, tensors and plain
values only) and ``trainer.pt.sha256``. Reading verifies the digest before
unpickling anything, and unpickles with ``torch.load(weights_only=True)``, so a
truncated or tampered file is reported by name, never loaded as garbage or run
as code. ``load_first_good`` falls back to older checkpoints of the same trial.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

__all__ = ["CHECKPOINT_FILE", "CheckpointError", "save", "load", "load_first_good"]

CHECKPOINT_FILE = "trainer.pt"
DIGEST_SUFFIX = ".sha256"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used, with the file and the reason."""


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def save(state: dict[str, Any], directory: str | Path) -> Path:
    """Write the state and its digest into ``directory`` (a fresh one per checkpoint)."""
    path = Path(directory) / CHECKPOINT_FILE
    torch.save(state, path)
    # The digest goes last: a directory without one was never completely written.
    Path(str(path) + DIGEST_SUFFIX).write_text(_digest(path) + "\n")
    return path


def load(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CHECKPOINT_FILE
    digest_file = Path(str(path) + DIGEST_SUFFIX)
    try:
        expected = digest_file.read_text().strip()
        actual = _digest(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: incomplete checkpoint ({exc.strerror}: "
                              f"{exc.filename})") from None
    if actual != expected:
        raise CheckpointError(f"{path}: damaged checkpoint (SHA-256 {actual[:12]}... differs "
                              f"from the {expected[:12]}... written with it)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means unusable
        raise CheckpointError(f"{path}: cannot be loaded ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:300]})") from None


def load_first_good(directories: list[Path]) -> tuple[dict[str, Any], Path, list[str]]:
    """The state of the first intact checkpoint: (state, its directory, reasons skipped)."""
    skipped = []
    for directory in directories:
        try:
            return load(directory), directory, skipped
        except CheckpointError as exc:
            skipped.append(str(exc))
    raise CheckpointError("no usable checkpoint: " + "; ".join(skipped))
