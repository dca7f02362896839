"""Sentiment sources: the shared files parse to the counts their READMEs state, the held-out
splits are disjoint and reproducible, IMDB reads from its archive, and your own CSV/TSV."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
import torch

from striate.data.download import RemoteFile
from striate.data.sources import sentiment as src
from striate.data.sources.labelled_text import held_out_index, read_labelled_table
from striate.data.sources.sentiment import (
    describe_sentiment_sources,
    load_sentiment,
    read_imdb_archive,
)
from striate.errors import StriateError


def _load(shared_data, source, split, **kw):
    return load_sentiment(source, split, shared_data, download=False, **kw)


def test_sst2_official_splits_match_the_readme(shared_data):
    expected = {
        "train": {"negative": 29_780, "positive": 37_569},
        "val": {"negative": 428, "positive": 444},  # the dev set
        "test": {"negative": 912, "positive": 909},
    }
    for split, counts in expected.items():
        data = _load(shared_data, "sst2", split)
        assert data.class_counts() == counts, split
    dev = _load(shared_data, "sst2", "val")
    assert dev.texts[0] == "one long string of cliches ." and dev.labels[0] == 0


@pytest.mark.parametrize(
    ("source", "per_class"), [("polarity", 5_331), ("movie-reviews", 1_000), ("uci", 1_500)]
)
def test_held_out_splits_partition_each_source(shared_data, source, per_class):
    parts = {s: _load(shared_data, source, s) for s in ("train", "val", "test")}
    assert sum(len(p) for p in parts.values()) == 2 * per_class
    total = {c: sum(p.class_counts()[c] for p in parts.values()) for c in ("negative", "positive")}
    assert total == {"negative": per_class, "positive": per_class}
    for name, part in parts.items():  # 10 % / 10 % / 80 %, class by class
        share = {"train": 0.8, "val": 0.1, "test": 0.1}[name]
        assert abs(len(part) - share * 2 * per_class) <= 2
    texts = [set(p.texts) for p in parts.values()]
    assert all(t for t in texts)
    if source != "uci":  # (UCI repeats a few short sentences across its three sites)
        assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])


def test_the_test_split_does_not_depend_on_the_seed(shared_data):
    a = {s: _load(shared_data, "uci", s, seed=0).texts for s in ("val", "test")}
    b = {s: _load(shared_data, "uci", s, seed=5).texts for s in ("val", "test")}
    assert a["test"] == b["test"]
    assert a["val"] != b["val"]
    assert _load(shared_data, "uci", "val", seed=5).texts == b["val"]  # and it is reproducible


def test_sources_keep_what_their_formats_hold(shared_data):
    uci = _load(shared_data, "uci", "train", val_fraction=0.05, test_fraction=0.05)
    assert any("\x85" in t for t in uci.texts)  # NEL inside a sentence is not a line break
    reviews = _load(shared_data, "movie-reviews", "test")
    assert min(len(t) for t in reviews.texts) > 500  # whole reviews, not single lines
    assert all("\n" not in t for t in reviews.texts)


def test_describe_lists_every_source_and_what_is_present(shared_data):
    rows = {r["name"]: r for r in describe_sentiment_sources(shared_data)}
    assert set(rows) == {"sst2", "polarity", "movie-reviews", "uci", "imdb", "csv:PATH"}
    assert all(rows[n]["present"] for n in ("sst2", "polarity", "movie-reviews", "uci"))
    assert rows["imdb"]["where"].endswith("aclImdb_v1.tar.gz")


# -- IMDB --------------------------------------------------------------------------------------


def _fake_imdb(path):
    """A miniature aclImdb_v1.tar.gz: 3 train and 2 test reviews, plus what must be skipped."""
    members = {
        "aclImdb/README": "the readme",
        "aclImdb/train/pos/10_9.txt": "Great.<br /><br />Loved it",
        "aclImdb/train/pos/2_8.txt": "Fine film",
        "aclImdb/train/neg/5_1.txt": "Awful",
        "aclImdb/train/unsup/0_0.txt": "no label",
        "aclImdb/train/labeledBow.feat": "0:1 1:2",
        "aclImdb/test/neg/1_2.txt": "Dull",
        "aclImdb/test/pos/3_10.txt": "Superb",
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_imdb_reads_the_labelled_reviews_from_the_archive(tmp_path):
    found = read_imdb_archive(_fake_imdb(tmp_path / "a.tar.gz"))
    assert found["train"].texts == ["Awful", "Fine film", "Great.  Loved it"]  # by label, id
    assert found["train"].labels.tolist() == [0, 1, 1]
    assert found["test"].texts == ["Dull", "Superb"]


def test_imdb_source_is_offline_when_present_and_says_what_is_missing(tmp_path, monkeypatch):
    with pytest.raises(StriateError, match=r"aclImdb_v1\.tar\.gz not found"):
        load_sentiment("imdb", "train", tmp_path, download=False)
    folder = tmp_path / "sentiment" / "imdb"
    folder.mkdir(parents=True)
    archive = _fake_imdb(folder / "aclImdb_v1.tar.gz")
    with pytest.raises(StriateError, match="corrupt or incomplete"):  # not the real checksum
        load_sentiment("imdb", "test", tmp_path, download=False)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(src, "IMDB", RemoteFile(src.IMDB.filename, src.IMDB.urls, sha256=sha))
    assert load_sentiment("imdb", "test", tmp_path, download=False).texts == ["Dull", "Superb"]
    train = load_sentiment("imdb", "train", tmp_path, download=False, val_fraction=0.34)
    val = load_sentiment("imdb", "val", tmp_path, download=False, val_fraction=0.34)
    assert len(train) + len(val) == 3 and len(val) >= 1  # val is carved out of train


def test_the_imdb_download_is_the_official_archive():
    assert src.IMDB.urls[0] == "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    assert src.IMDB.sha256 == "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"


# -- your own CSV / TSV ------------------------------------------------------------------------


def test_csv_without_header_and_with_quoted_commas(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('great film,pos\n"slow, long, dull",neg\n\nfine,pos\n')
    data = load_sentiment(f"csv:{path}", "train", val_fraction=0.0, test_fraction=0.0)
    assert data.classes == ["neg", "pos"]
    assert data.texts == ["great film", "slow, long, dull", "fine"]
    assert data.labels.tolist() == [1, 0, 1]


def test_csv_header_names_the_columns_in_any_order(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("id,Label,review\n1,10,so good\n2,2,bad\n3,10,nice\n")
    data = read_labelled_table(path)
    assert data.classes == ["2", "10"]  # integer labels sort as integers
    assert data.texts == ["so good", "bad", "nice"] and data.labels.tolist() == [1, 0, 1]


def test_tsv_by_suffix_with_held_out_splits(tmp_path):
    path = tmp_path / "r.tsv"
    rows = [f"text number {i}\t{'up' if i % 2 else 'down'}" for i in range(40)]
    path.write_text("\n".join(rows))
    parts = [load_sentiment(str(path), s, seed=1) for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [32, 4, 4]
    assert len({t for p in parts for t in p.texts}) == 40


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("good,pos\nbad,pos\n", "only one class"),
        ("good,pos\n,neg\n", "line 2: empty text"),
        ("good,pos,extra\n", "expected 2 comma-separated fields"),
        ("text,label\n", "header but no rows"),
        ("\n\n", "is empty"),
    ],
)
def test_bad_tables_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(StriateError, match=message):
        load_sentiment(f"csv:{path}", "train")


def test_unknown_and_missing_sources(tmp_path):
    with pytest.raises(StriateError, match="not found"):
        load_sentiment(f"csv:{tmp_path / 'nope.csv'}", "train")
    with pytest.raises(StriateError, match="unknown sentiment source"):
        load_sentiment("tweets", "train")
    with pytest.raises(StriateError, match="unknown split"):
        load_sentiment("uci", "dev", tmp_path)
    assert torch.equal(
        held_out_index(torch.tensor([0, 1] * 10), "test", 0.1, 0.2, 3),
        held_out_index(torch.tensor([0, 1] * 10), "test", 0.3, 0.2, 4),
    )
