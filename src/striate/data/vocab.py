"""Vocabularies: text ↔ integer ids, saved with a checkpoint as JSON.

:class:`CharVocab` maps each distinct character of a corpus to an id (characters sorted, so
the same corpus always gives the same ids). Every vocabulary serialises to a small
JSON-compatible dict tagged with its ``kind`` (:meth:`Vocab.to_json`), and
:func:`vocab_from_json` rebuilds whichever kind it finds, so a word-level vocabulary can be
added beside this one without changing how checkpoints store it.

Example:
    >>> vocab = CharVocab.from_text("hello")
    >>> vocab.chars, vocab.encode("hole").tolist()
    (['e', 'h', 'l', 'o'], [1, 3, 2, 0])
    >>> vocab.decode(vocab.encode("hole"))
    'hole'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from striate.errors import StriateError

MAX_SHOWN = 8  # unknown characters named in an error message


class Vocab:
    """Base of all vocabularies: an ordered list of distinct tokens; id = position."""

    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[Vocab]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Vocab._kinds[cls.kind] = cls

    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if not tokens:
            raise StriateError(f"a {self.kind or 'token'} vocabulary needs at least one token")
        if not all(isinstance(t, str) for t in tokens):
            raise StriateError("vocabulary tokens must be strings")
        if len(set(tokens)) != len(tokens):
            raise StriateError("vocabulary tokens must be distinct")
        self.tokens: list[str] = tokens
        self.index: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: object) -> bool:
        return token in self.index

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.tokens == self.tokens  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.kind, tuple(self.tokens)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} tokens)"

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict ``{"kind": ..., "tokens": [...]}`` (:func:`vocab_from_json`)."""
        return {"kind": self.kind, "tokens": list(self.tokens)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | list[str] | str) -> Vocab:
        """Rebuild from :meth:`to_json`'s dict, its JSON string, or a plain list of tokens."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise StriateError("the saved vocabulary is not valid JSON") from None
        if isinstance(data, list):
            return cls(data)
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise StriateError("the saved vocabulary has no token list")
        kind = data.get("kind", cls.kind)
        if cls.kind and kind != cls.kind:
            raise StriateError(f"the saved vocabulary is {kind!r}-level, not {cls.kind!r}-level")
        if kind not in Vocab._kinds:
            raise StriateError(f"unknown vocabulary kind {kind!r}")
        return Vocab._kinds[kind](data["tokens"])

    def unknown_error(self, unknown: Iterable[str], what: str = "text") -> StriateError:
        """The error for tokens outside the vocabulary: names the first few of them."""
        unknown = sorted(set(unknown))
        shown = ", ".join(repr(u) for u in unknown[:MAX_SHOWN])
        more = f" and {len(unknown) - MAX_SHOWN} more" if len(unknown) > MAX_SHOWN else ""
        return StriateError(
            f"{what} has {len(unknown)} {self.kind or 'token'}(s) that are not in the "
            f"vocabulary of {len(self)}: {shown}{more}"
        )


class CharVocab(Vocab):
    """Character vocabulary: the sorted distinct characters of a corpus."""

    kind = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        super().__init__(chars)
        if any(len(c) != 1 for c in self.tokens):
            raise StriateError("a character vocabulary holds single characters only")
        # characters sorted by code point, for a vectorised lookup in encode()
        points = np.array([ord(c) for c in self.tokens], dtype=np.int64)
        self._order = np.argsort(points, kind="stable")
        self._points = points[self._order]
        self._by_id = points.astype(np.uint32)

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of every distinct character in ``text``, sorted."""
        if not text:
            raise StriateError("cannot build a vocabulary from empty text")
        return cls(sorted(set(text)))

    @property
    def chars(self) -> list[str]:
        return self.tokens

    def encode(self, text: str, what: str = "text") -> torch.Tensor:
        """Ids of ``text`` as an int64 tensor of shape ``(len(text),)``.

        Raises a :class:`StriateError` naming the characters that are not in the vocabulary
        (``what`` says what the text is in that message, e.g. "the prime").
        """
        # surrogatepass: a lone surrogate (undecodable bytes of argv, "\ud800" in JSON) is
        # one more code point no vocabulary holds, named in the error like any other
        raw = text.encode("utf-32-le", "surrogatepass")
        points = np.frombuffer(raw, dtype=np.uint32).astype(np.int64)
        where = np.searchsorted(self._points, points).clip(0, len(self._points) - 1)
        bad = self._points[where] != points
        if bad.any():
            raise self.unknown_error({chr(p) for p in np.unique(points[bad])}, what)
        return torch.from_numpy(self._order[where])

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """The text of ``ids`` (any 1-D sequence or tensor of valid ids)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        array = np.asarray(ids).reshape(-1)
        if array.size == 0:
            return ""
        if array.dtype.kind not in "iu" or array.min() < 0 or array.max() >= len(self):
            raise StriateError(f"ids must be integers in 0..{len(self) - 1}")
        return self._by_id[array].tobytes().decode("utf-32-le")


def vocab_from_json(data: dict[str, Any] | list[str] | str) -> Vocab:
    """Rebuild any vocabulary from :meth:`Vocab.to_json` (a plain list means characters)."""
    if isinstance(data, list):
        return CharVocab(data)
    return Vocab.from_json(data)
