"""Words: tokenization of sentences and a word vocabulary with special tokens.

:func:`tokenize` splits a sentence into words and punctuation marks (Unicode-aware, so
German umlauts, French accents and Czech háčeks stay inside their words) and
:func:`detokenize` joins tokens back into readable text. :class:`WordVocab` maps words to ids
with four special tokens in front — padding, unknown word, begin and end of sentence — and
serialises like every other :class:`~striate.data.vocab.Vocab`, so
:func:`~striate.data.vocab.vocab_from_json` rebuilds it from a checkpoint.

Example:
    >>> tokenize("Zwei Männer, drei Hunde.")
    ['zwei', 'männer', ',', 'drei', 'hunde', '.']
    >>> vocab = WordVocab.build([["a", "dog", "."], ["a", "cat", "."]])
    >>> vocab.encode(["a", "bird"], bos=True, eos=True)
    [2, 4, 1, 3]
    >>> vocab.decode([2, 4, 6, 3, 0])
    ['a', 'cat']
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from striate.data.vocab import Vocab
from striate.errors import StriateError

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)

# a word: letters/digits/underscore, with inner apostrophes, hyphens and decimal marks kept
# ("don't", "t-shirt", "3.5"); anything else that is not a space is a token of its own
_TOKEN = re.compile(r"\w+(?:[-'’.,]\w+)*|[^\w\s]", re.UNICODE)
_NO_SPACE_BEFORE = {".", ",", "!", "?", ";", ":", ")", "]", "}", "%", "'", "’", "»"}
_NO_SPACE_AFTER = {"(", "[", "{", "«", "¿", "¡"}


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split ``text`` into words and punctuation marks (lower-cased unless told otherwise)."""
    if lowercase:
        text = text.lower()
    return _TOKEN.findall(text)


def detokenize(tokens: Sequence[str]) -> str:
    """Join tokens into text: a space between words, none before closing punctuation or
    after opening brackets, and straight double quotes attached alternately to the right
    and to the left of the words they enclose."""
    out: list[str] = []
    attach_next = False
    quote_open = False
    for token in tokens:
        space = bool(out) and not attach_next
        if token in _NO_SPACE_BEFORE:
            space = False
        elif token == '"':
            if quote_open:
                space = False
            quote_open = not quote_open
        out.append((" " if space else "") + token)
        attach_next = token in _NO_SPACE_AFTER or (token == '"' and quote_open)
    return "".join(out)


class WordVocab(Vocab):
    """Word vocabulary: ``<pad>``=0, ``<unk>``=1, ``<bos>``=2, ``<eos>``=3, then the words
    (most frequent first when built by :meth:`build`)."""

    kind = "word"

    def __init__(self, tokens: Sequence[str]) -> None:
        super().__init__(tokens)
        if tuple(self.tokens[: len(SPECIALS)]) != SPECIALS:
            raise StriateError(f"a word vocabulary starts with the special tokens {SPECIALS}")

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        min_freq: int = 1,
        max_size: int | None = None,
    ) -> WordVocab:
        """The vocabulary of tokenized ``sentences``: the special tokens, then every word seen
        at least ``min_freq`` times, by frequency (descending) and then alphabetically.

        ``max_size`` caps the total size, special tokens included; the rarest words are cut.
        """
        if min_freq < 1:
            raise StriateError("the minimum word frequency must be at least 1")
        if max_size is not None and max_size <= len(SPECIALS):
            raise StriateError(f"a word vocabulary needs more than {len(SPECIALS)} entries")
        counts = Counter(token for sentence in sentences for token in sentence)
        for special in SPECIALS:
            counts.pop(special, None)
        words = sorted(
            (w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w)
        )
        if max_size is not None:
            words = words[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *words])

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    @property
    def bos_id(self) -> int:
        return 2

    @property
    def eos_id(self) -> int:
        return 3

    @property
    def words(self) -> list[str]:
        """The tokens after the special ones."""
        return self.tokens[len(SPECIALS) :]

    def encode(self, tokens: Iterable[str], bos: bool = False, eos: bool = False) -> list[int]:
        """Ids of ``tokens`` (unknown words → ``unk_id``), optionally framed by bos/eos."""
        unk = self.unk_id
        ids = [self.index.get(t, unk) for t in tokens]
        if bos:
            ids.insert(0, self.bos_id)
        if eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Tokens of ``ids``, stopping at the first ``<eos>`` and dropping pad and bos."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out: list[str] = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            if not 0 <= i < len(self):
                raise StriateError(f"ids must be integers in 0..{len(self) - 1}")
            out.append(self.tokens[i])
        return out
