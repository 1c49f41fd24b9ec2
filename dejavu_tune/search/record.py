"""The search record, ``search.json`` in the search's directory: how the search was
started (so ``--resume`` continues it as it was), where it records in MLflow, and
whether it finished. Written atomically: a killed driver never leaves half a file."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dejavu_tune.config import ConfigError

__all__ = ["SearchRecord", "RECORD_FILE", "latest"]

RECORD_FILE = "search.json"


@dataclass
class SearchRecord:
    name: str
    space_file: str
    overrides: dict[str, Any] = field(default_factory=dict)  # --set and flags, dotted keys
    experiment: str = "dejavu-tune"
    tracking_uri: str | None = None  # None until the driver picks the local store
    crm_store: str | None = None
    experiment_id: str | None = None  # set once the parent run is open
    parent_run_id: str | None = None
    finished: bool = False
    warm_start: str | None = None  # the earlier search it was seeded from (--warm-start)

    @staticmethod
    def path(root: Path) -> Path:
        return root / RECORD_FILE

    @classmethod
    def load(cls, root: Path) -> SearchRecord:
        """The record of the search in ``root``; a missing or damaged one is a
        ``ConfigError`` that names the file."""
        path = cls.path(root)
        try:
            data = json.loads(path.read_text())
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path} is unreadable or damaged "
                              f"({type(exc).__name__}: {exc})") from None

    def save(self, root: Path) -> None:
        tmp = root / (RECORD_FILE + ".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2))
        tmp.replace(self.path(root))


def latest(storage: Path) -> Path | None:
    """The directory of the newest search in ``storage``."""
    candidates = sorted(storage.glob(f"*/{RECORD_FILE}"), key=lambda p: p.stat().st_mtime)
    return candidates[-1].parent if candidates else None
