"""The search split and the held-out split: the verdict is judged on images no selection
read (docs/datasets.md, "Splits").

Baseline tuning, the search and ASHA score every trial on the *search split*; only the
confirmation reads the *held-out split*. Which images they are:

- the built-in synthetic data: the search split is its validation split, the held-out
  split a third one generated from its own seed stream;
- a dataset in its own format, or a plug-in without a held-out split of its own: a
  seeded, deterministic ``SEARCH_FRACTION`` of ``train`` is carved out as the search
  split (the network trains on the rest), and the dataset's ``val`` is the held-out
  split;
- a plug-in whose function returns a dataset for ``split="heldout"``: its ``val`` is the
  search split and that one the held-out split.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["SEARCH_FRACTION", "Carved", "carve"]

SEARCH_FRACTION = 0.1  # of train, at least one image; train keeps at least one


class Carved(torch.utils.data.Dataset):
    """Some of a dataset's images, by index; its other attributes (targets,
    num_classes, class_names, max_depth, ...) are the dataset's own."""

    def __init__(self, dataset: Any, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "indices"):  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)


def carve(train: Any, seed: int, fraction: float = SEARCH_FRACTION) -> tuple[Carved, Carved]:
    """(the training images left, the search split): a seeded permutation of ``train``'s
    indices, the same for the same seed and size on every machine."""
    n = len(train)
    if n < 2:
        raise ValueError(f"the training split has {n} image(s): at least 2 are needed to "
                         "carve out a search split")
    count = min(n - 1, max(1, round(fraction * n)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    search = sorted(order[:count])
    rest = sorted(order[count:])
    return Carved(train, rest), Carved(train, search)
