"""Helpers shared by the image sources: deterministic splits, ``limit``, lazy decoding."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from striate.errors import StriateError


@dataclass
class LazyImages:
    """Labels known up front, pixels decoded on request (all, or only an index)."""

    labels: torch.Tensor
    classes: list[str]
    fetch: Callable[[torch.Tensor | None], torch.Tensor]

    @classmethod
    def of(cls, images: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> LazyImages:
        return cls(labels, classes, lambda index: images if index is None else images[index])


def class_seed(seed: int, name: str) -> int:
    """A per-class seed that does not change when other classes are added or removed."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def stratified_split(
    labels: torch.Tensor, fractions: tuple[float, ...], seed: int
) -> list[torch.Tensor]:
    """Split indices into ``len(fractions) + 1`` parts, class by class, reproducibly.

    Part ``i`` gets ``round(n_c * fractions[i])`` (at least 1 when the fraction is not 0) of
    each class's ``n_c`` items, chosen by a seeded shuffle; the last part keeps the rest,
    and never less than one item of a class that has any. Parts are sorted (original order).
    """
    y = labels.numpy()
    order = np.argsort(y, kind="stable")
    classes, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c, first, n in zip(classes.tolist(), starts.tolist(), counts.tolist(), strict=True):
        rng = np.random.Generator(np.random.PCG64(class_seed(seed, str(c))))
        idx = order[first : first + n][rng.permutation(n)]
        start = 0
        for i, frac in enumerate(fractions):
            k = max(round(n * frac), 1) if frac > 0 else 0  # small classes: 1 each
            k = min(k, max(n - 1 - start, 0))
            parts[i].append(idx[start : start + k])
            start += k
        parts[-1].append(idx[start:])
    return [
        torch.from_numpy(np.sort(np.concatenate(p)) if p else np.empty(0, np.int64)).long()
        for p in parts
    ]


def check_val_fraction(val_fraction: float, split: str) -> None:
    if not 0 <= val_fraction < 1:
        raise StriateError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if split == "val" and val_fraction == 0:
        raise StriateError("split 'val' requested but val_fraction is 0; use a value like 0.1")


def train_val_index(labels: torch.Tensor, split: str, val_fraction: float, seed: int):
    """Indices of ``split`` ("train" or "val") carved out of an official training set."""
    check_val_fraction(val_fraction, split)
    val, train = stratified_split(labels, (val_fraction,), seed)
    return val if split == "val" else train


def limit_index(n: int, limit: int | None, seed: int) -> torch.Tensor | None:
    """The first ``limit`` of ``range(n)`` after a seeded shuffle (None: no limit)."""
    if limit is None:
        return None
    if limit <= 0:
        raise StriateError(f"limit must be a positive number of images, got {limit}")
    if limit >= n:
        return None
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:limit]


def compose(outer: torch.Tensor | None, inner: torch.Tensor | None) -> torch.Tensor | None:
    """Index ``inner`` applied after ``outer`` (either may be None = everything)."""
    if outer is None:
        return inner
    return outer if inner is None else outer[inner]
