"""Labelled texts: the container, your own CSV/TSV table of them, and held-out splits.

A classifier of texts needs texts with one class each, whatever they are about. This module
holds what does not depend on a named dataset:

* :class:`LabelledTexts`: texts, their class indices and the class names.
* :func:`read_labelled_table`: a CSV/TSV file of ``text,label`` rows, named by a source
  string ``csv:PATH`` / ``tsv:PATH`` or a path ending in ``.csv`` / ``.tsv``
  (:func:`labelled_table_path`). The first row is a header when it names a text column
  (``text``, ``sentence``, ``review``...) and a label column (``label``, ``sentiment``,
  ``class``...), which may then come in either order among other columns; labels are any
  strings and become the class names (sorted; numerically when they are all integers).
* :func:`held_out_index`: where a source has no official test (or validation) split, one is
  held out class by class: the test part with a fixed seed (so every run of any seed is
  tested on the same texts), the validation part from the rest with the run's seed.

Example:
    >>> data = read_labelled_table("reviews.csv")  # doctest: +SKIP
    >>> data.classes, data.class_counts()  # doctest: +SKIP
    (['neg', 'pos'], {'neg': 120, 'pos': 131})
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from striate.data.sources._split import stratified_split
from striate.errors import StriateError

__all__ = [
    "SPLITS",
    "LabelledTexts",
    "decode_text",
    "held_out_index",
    "labelled_table_path",
    "read_labelled_table",
]

SPLITS = ("train", "val", "test")
TEST_SPLIT_SEED = 0  # held-out test parts do not depend on the run's seed
TABLE_PREFIXES = ("csv:", "tsv:")
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "comment", "tweet")
LABEL_COLUMNS = ("label", "sentiment", "class", "polarity", "target", "category", "y")


@dataclass
class LabelledTexts:
    """Texts with one class index each; ``classes[labels[i]]`` names the class of text i."""

    texts: list[str]
    labels: torch.Tensor  # (N,) int64
    classes: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, index: torch.Tensor) -> LabelledTexts:
        return LabelledTexts(
            [self.texts[i] for i in index.tolist()], self.labels[index], list(self.classes)
        )

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))


def decode_text(data: bytes, where: str) -> str:
    """UTF-8 (with or without a byte-order mark), else Latin-1: older corpora (the 2004/2005
    Pang & Lee files among them) predate UTF-8 in some copies."""
    if b"\x00" in data:
        raise StriateError(f"{where} looks like a binary file (it holds NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# -- your own table ------------------------------------------------------------------------


def labelled_table_path(source: str) -> tuple[Path, str] | None:
    """(path, delimiter) when ``source`` names a CSV/TSV table, else None."""
    for prefix in TABLE_PREFIXES:
        if source.startswith(prefix):
            path = source[len(prefix) :]
            if not path:
                raise StriateError(f"{prefix} needs a path, as in {prefix}reviews.{prefix[:3]}")
            return Path(path).expanduser(), "," if prefix == "csv:" else "\t"
    suffix = Path(source).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return Path(source).expanduser(), "," if suffix == ".csv" else "\t"
    return None


def _header_columns(row: Sequence[str]) -> tuple[int, int] | None:
    """(text column, label column) if ``row`` is a header naming both, else None."""
    names = [cell.strip().lower() for cell in row]
    text = next((names.index(n) for n in TEXT_COLUMNS if n in names), None)
    label = next((names.index(n) for n in LABEL_COLUMNS if n in names), None)
    return (text, label) if text is not None and label is not None else None


def _class_order(labels: set[str]) -> list[str]:
    """Class names sorted: as integers when they all are (so "2" < "10"), else as text."""
    try:
        return sorted(labels, key=int)
    except ValueError:
        return sorted(labels)


def read_labelled_table(path: str | Path, delimiter: str = ",") -> LabelledTexts:
    """A CSV (or, with ``delimiter="\\t"``, TSV) file of ``text,label`` rows.

    Header optional (see the module docstring); quoted fields may hold the delimiter and line
    breaks. Every row must have a non-empty text and label, and there must be at least two
    classes. Blank lines are skipped.
    """
    path = Path(path).expanduser()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StriateError(f"data file {path} not found") from None
    except IsADirectoryError:
        raise StriateError(f"{path} is a directory, not a CSV/TSV file") from None
    except OSError as exc:
        raise StriateError(f"cannot read {path}: {exc.strerror or exc}") from None
    text = decode_text(raw, str(path))
    try:
        rows = [
            (number, row)
            for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), 1)
            if any(cell.strip() for cell in row)
        ]
    except csv.Error as exc:
        kind = "CSV" if delimiter == "," else "TSV"
        raise StriateError(f"{path} is not a valid {kind} file: {exc}") from None
    if not rows:
        raise StriateError(f"data file {path} is empty")
    columns = _header_columns(rows[0][1])
    if columns is not None:
        rows = rows[1:]
    text_col, label_col = columns or (0, 1)
    width = max(text_col, label_col) + 1
    texts: list[str] = []
    names: list[str] = []
    for number, row in rows:
        if columns is None and len(row) != 2:
            what = "tab-separated" if delimiter == "\t" else "comma-separated"
            raise StriateError(
                f"{path}, line {number}: expected 2 {what} fields (text, label), got {len(row)}; "
                "quote texts that hold the delimiter"
            )
        if len(row) < width:
            raise StriateError(f"{path}, line {number}: missing the text or the label column")
        body, label = row[text_col].strip(), row[label_col].strip()
        if not body or not label:
            raise StriateError(f"{path}, line {number}: empty {'text' if not body else 'label'}")
        texts.append(body)
        names.append(label)
    if not texts:
        raise StriateError(f"data file {path} holds a header but no rows")
    classes = _class_order(set(names))
    if len(classes) < 2:
        raise StriateError(
            f"{path} has only one class ({classes[0]!r}); a classifier needs at least two"
        )
    index = {name: i for i, name in enumerate(classes)}
    return LabelledTexts(texts, torch.tensor([index[n] for n in names]), classes)


# -- held-out splits -------------------------------------------------------------------------


def held_out_index(
    labels: torch.Tensor, split: str, val_fraction: float, test_fraction: float, seed: int
) -> torch.Tensor:
    """Indices of ``split`` in a source without official splits, class by class.

    ``test`` is ``test_fraction`` of each class chosen with a fixed seed; ``val`` is
    ``val_fraction`` of the whole, taken from what is left with the run's ``seed``;
    ``train`` is the rest. The three parts never overlap.
    """
    _check_fractions(split, val_fraction, test_fraction)
    if test_fraction > 0:
        test, rest = stratified_split(labels, (test_fraction,), TEST_SPLIT_SEED)
    else:
        test, rest = torch.empty(0, dtype=torch.int64), torch.arange(len(labels))
    if split == "test":
        return test
    inner = val_fraction / (1 - test_fraction)
    if inner <= 0:
        return rest if split == "train" else torch.empty(0, dtype=torch.int64)
    val, train = stratified_split(labels[rest], (inner,), seed)
    return rest[val] if split == "val" else rest[train]


def _check_fractions(split: str, val_fraction: float, test_fraction: float) -> None:
    if split not in SPLITS:
        raise StriateError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1:
        raise StriateError("validation and test fractions must be in [0, 1)")
    if val_fraction + test_fraction >= 0.9:
        raise StriateError("validation and test fractions leave too little to train on")
    if split == "val" and val_fraction == 0:
        raise StriateError("split 'val' requested but the validation fraction is 0")
    if split == "test" and test_fraction == 0:
        raise StriateError("split 'test' requested but the test fraction is 0")
