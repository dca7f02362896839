"""A trained translation model at work: sentences in, sentences out.

:class:`Preprocessing` is how raw sentences become ids (the settings a translation
checkpoint saves in its metadata, so translating needs nothing but the run);
:class:`Translator` holds the model with its two vocabularies and decodes whole lists of
sentences, in length-sorted chunks of :data:`DECODE_BATCH`, by beam search with Wu et al.'s
length normalization (:func:`striate.nn.decoding.decode`; beam 1: greedy). Training
(:mod:`striate.apps.translation`) scores its validation sentences with it, evaluation its
test sentences, and :class:`striate.predict.translation.TranslationPredictor` every request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from striate.apps._task import evaluating, length_sorted_chunks
from striate.data.sequence_batches import pad_sequences
from striate.data.words import WordVocab, detokenize, tokenize
from striate.errors import StriateError
from striate.models.seq2seq import Seq2Seq
from striate.nn.decoding import decode

DECODE_BATCH = 64


@dataclass
class Preprocessing:
    """How raw sentences become ids (saved in the checkpoint's metadata)."""

    src_lang: str
    tgt_lang: str
    lowercase: bool
    max_length: int

    def src_ids(self, vocab: WordVocab, sentence: str) -> list[int]:
        """Source ids: the tokens (capped at 4x max_length) and ``<eos>``."""
        tokens = tokenize(sentence, self.lowercase)[: 4 * self.max_length]
        return vocab.encode(tokens, eos=True)


@dataclass
class Translator:
    """A trained model with its vocabularies and preprocessing: sentences in, sentences out."""

    model: Seq2Seq
    src_vocab: WordVocab
    tgt_vocab: WordVocab
    preprocessing: Preprocessing
    meta: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> Translator:
        self.model.to(device)
        return self

    @torch.no_grad()
    def translate_scored(
        self,
        sentences: Sequence[str],
        beam: int = 5,
        length_penalty: float = 0.6,
        max_len: int | None = None,
        scores: bool = True,
    ) -> list[tuple[list[str], float | None]]:
        """(target tokens, score) for each sentence; the score is the best hypothesis's
        length-normalized log-probability log P(y|x) / lp(y) (None for a blank sentence, or
        without ``scores``: then beam 1 is plain greedy decoding)."""
        if beam < 1:
            raise StriateError("the beam size must be at least 1")
        ids = [self.preprocessing.src_ids(self.src_vocab, s) for s in sentences]
        out: list[tuple[list[str], float | None]] = [([], None) for _ in sentences]
        sizes = [len(i) if s.strip() else None for i, s in zip(ids, sentences, strict=True)]
        device = self.model.out.weight.device
        tgt = self.tgt_vocab
        banned = (tgt.pad_id, tgt.bos_id, tgt.unk_id)
        with evaluating(self.model):
            for chunk in length_sorted_chunks(sizes, DECODE_BATCH):
                src, lengths = pad_sequences([ids[i] for i in chunk], self.src_vocab.pad_id)
                step, state = self.model.decoder(src.to(device), lengths, banned)
                limit = max_len or min(int(1.5 * int(lengths.max())) + 10, 250)
                found, found_scores = decode(
                    step, state, len(chunk), tgt.bos_id, tgt.eos_id, beam, limit,
                    length_penalty, scores,
                )  # fmt: skip
                for i, hyp, score in zip(chunk, found, found_scores, strict=True):
                    out[i] = (tgt.decode(hyp), None if score is None else float(score))
        return out

    def translate(
        self,
        sentences: Sequence[str],
        beam: int = 5,
        length_penalty: float = 0.6,
        max_len: int | None = None,
    ) -> list[str]:
        """Detokenized translations, one per sentence (blank in, blank out)."""
        found = self.translate_scored(sentences, beam, length_penalty, max_len, scores=False)
        return [detokenize(tokens) for tokens, _ in found]
