"""Words: tokenization, the word vocabulary, padding and length-bucketed batches."""

from __future__ import annotations

from itertools import chain

import pytest
import torch

from striate.data.sequence_batches import SequenceBatches, pad_sequences
from striate.data.vocab import vocab_from_json
from striate.data.words import WordVocab, detokenize, tokenize
from striate.errors import StriateError


def test_tokenize_splits_words_and_punctuation_unicode_aware():
    assert tokenize("Zwei junge, weiße Männer sind im Freien.") == [
        "zwei", "junge", ",", "weiße", "männer", "sind", "im", "freien", ".",
    ]  # fmt: skip
    assert tokenize("Don't stop: a T-shirt costs 3.5 €!", lowercase=False) == [
        "Don't", "stop", ":", "a", "T-shirt", "costs", "3.5", "€", "!",
    ]  # fmt: skip
    assert tokenize("Muž s dítětem (na kole)") == ["muž", "s", "dítětem", "(", "na", "kole", ")"]
    assert tokenize("   ") == []


def test_detokenize_inverts_tokenize_on_plain_sentences():
    for text in [
        "Ein Mann fährt Fahrrad.",
        "Two dogs (one black), and a cat!",
        'He said "hi" now.',
    ]:
        assert detokenize(tokenize(text, lowercase=False)) == text


def test_vocab_order_specials_encode_decode_and_json_round_trip():
    sentences = [["b", "a", "c"], ["a", "b"], ["a", "d"]]
    vocab = WordVocab.build(sentences)
    assert vocab.tokens == ["<pad>", "<unk>", "<bos>", "<eos>", "a", "b", "c", "d"]
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    assert WordVocab.build(sentences, min_freq=2).words == ["a", "b"]
    assert WordVocab.build(sentences, max_size=6).words == ["a", "b"]
    assert vocab.encode(["a", "zebra"], bos=True, eos=True) == [2, 4, 1, 3]
    assert vocab.decode([2, 4, 0, 5, 3, 6]) == ["a", "b"]
    assert vocab.decode(torch.tensor([7, 6])) == ["d", "c"]
    again = vocab_from_json(vocab.to_json())
    assert isinstance(again, WordVocab) and again == vocab
    with pytest.raises(StriateError):
        WordVocab(["a", "b"])
    with pytest.raises(StriateError):
        WordVocab.build(sentences, min_freq=0)


def test_pad_sequences():
    padded, lengths = pad_sequences([[5, 6, 7], [8], []], pad_id=0)
    assert padded.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]]
    assert lengths.tolist() == [3, 1, 0] and padded.dtype == lengths.dtype == torch.int64


def _collate(items):
    ids, lengths = pad_sequences([list(range(1, n + 1)) for _, n in items])
    return torch.tensor([i for i, _ in items]), ids, lengths


def _make(n=103, **kw):
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 40, (n,), generator=gen).tolist()
    items = list(enumerate(lengths))
    return SequenceBatches(items, lengths, _collate, 8, **{"pool_batches": 4, **kw})


def _ids(batches, epoch=0, start=0):
    return [b[0].tolist() for b in batches.epoch(epoch, start)]


def test_sequence_batches_cover_all_items_in_a_seeded_resumable_order():
    batches = _make(seed=3)
    first = _ids(batches)
    assert len(first) == len(batches) == 13
    assert sorted(chain(*first)) == list(range(103))
    assert _ids(batches) == first and _ids(batches, 1) != first
    assert _ids(_make(seed=4)) != first
    assert _ids(batches, 0, 5) == first[5:]
    assert len(_make(drop_last=True)) == 12 and len(_ids(_make(drop_last=True))) == 12
    plain = _ids(_make(shuffle=False, bucket=False))
    assert list(chain(*plain)) == list(range(103))


def test_bucketing_reduces_padding():
    def padding(batches):
        return sum(int((b[1] == 0).sum()) for b in batches.epoch(0))

    assert padding(_make(bucket=True)) < 0.5 * padding(_make(bucket=False))


def test_sequence_batches_shard_by_rank_like_one_process():
    one = _ids(_make(n=96))
    shards = [_ids(_make(n=96, rank=r, world_size=2)) for r in range(2)]
    for whole, a, b in zip(one, *shards, strict=True):
        assert a + b == whole
    with pytest.raises(StriateError):
        _make(world_size=3)
