"""Parallel text (sentence pairs) for translation: Multi30k and tab-separated files.

Sources:

* ``multi30k``: the WMT multimodal translation task 1 data (Elliott et al. 2016): English
  descriptions of Flickr30k images with German, French and Czech translations. Raw,
  untokenized, cased sentences, one per line, in gzip files found in (or downloaded,
  checksum-verified, into) ``<data_dir>/multi30k/raw/``. Splits: ``train`` (29,000 pairs),
  ``val`` (1,014), ``test_2016_flickr`` (1,000; also ``test``), ``test_2017_flickr``,
  ``test_2017_mscoco`` and ``test_2018_flickr``. Languages: ``en``, ``de``, ``fr``, ``cs``
  (no Czech for the 2017 test sets).
* ``tsv:PATH``, or a path ending in ``.tsv`` or ``.txt``: one pair per line,
  ``source<TAB>target[<TAB>anything]`` — the Tatoeba / ManyThings.org format. The first
  column is the source language unless ``columns`` names the two columns' languages (e.g.
  ``("en", "de")`` for ManyThings' ``deu.txt``), in which case they are swapped as needed. A
  file has no splits of its own: a fixed seeded permutation assigns ``val_fraction`` of the
  pairs to ``val``, as much to ``test``, and the rest to ``train``.

Example:
    >>> pairs = load_parallel("multi30k", "val", "en", "de", data_dir="../shared/data")
    >>> len(pairs), pairs.source[0][:20]
    (1014, 'A group of men are l')
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import torch

from striate.data.download import RemoteFile, ensure_files
from striate.data.paths import resolve_data_dir
from striate.data.sources.text import read_text_file
from striate.errors import StriateError

TSV_PREFIX = "tsv:"
MULTI30K = "multi30k"
MULTI30K_FOLDER = Path("multi30k") / "raw"
MULTI30K_LANGUAGES = ("en", "de", "fr", "cs")
MULTI30K_SPLITS = (
    "train",
    "val",
    "test_2016_flickr",
    "test_2017_flickr",
    "test_2017_mscoco",
    "test_2018_flickr",
)
SPLIT_ALIASES = {"test": "test_2016_flickr", "valid": "val", "validation": "val"}
_MULTI30K_COMMIT = "a3d2e0d26b56f3846f66a952536ffed4e401d05a"
_MULTI30K_URLS = (
    f"https://raw.githubusercontent.com/multi30k/dataset/{_MULTI30K_COMMIT}/data/task1/raw/",
    "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/",
)
# sha256 of every file of data/task1/raw/ at the commit above
MULTI30K_SHA256 = {
    "test_2016_flickr.cs.gz": "200a4a74cc9560f051924abb9803be008d1908d77f747e9141aeb86dfd2797f1",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
    "test_2017_flickr.de.gz": "a2c89666db00c495cd8513b9d708d5a3acc205d7de312ef2bf5fb7ebc1540aee",
    "test_2017_flickr.en.gz": "76a444ee25172e72695cddb13ae4a3bda59430617be88e0bb46b60504f054074",
    "test_2017_flickr.fr.gz": "3ba671ceb2299f3304ffafefea7a833d08632fbaf0ba18546f8a2ec2391af496",
    "test_2017_mscoco.de.gz": "799e4854c25d601cb6cb6be29eabe5667734c61ace2f495e03e429031a0bc338",
    "test_2017_mscoco.en.gz": "aab300bfb4427697987e02cd0aacd44bfe8aa50456231b6474c08038bbed2b58",
    "test_2017_mscoco.fr.gz": "754f3072ba9f124569ba5258b32730fc1d214bbf8e0c6dfb2b74401676220db0",
    "test_2018_flickr.cs.gz": "7d0a9db904f94c554a8c58049a9f3a5357c27f46cc3d710d70cb0b4a2585b8c2",
    "test_2018_flickr.de.gz": "ddd0130c7d97482dc5197a02141dae8dd79f20f03586c480d675c09a32daf608",
    "test_2018_flickr.en.gz": "ef4f4844037d4c5dea75c9a8ed5fd78905967a26f67c255e230cc9780032654d",
    "test_2018_flickr.fr.gz": "fb2b83fcceb937a4f7e3e93c1c51c22aba92f1e342391e6b5ba392b16a920501",
    "train.cs.gz": "a65adb8b32e3bc664f21ecba7a6e7f6950fd1f405e135f7c312faabdb6255077",
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.cs.gz": "b63226e05c4bd5dd6a42897d74b86a1b9d2c31498252c572b1ea7f7996927fcc",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
}
TSV_SPLITS = ("train", "val", "test")
TSV_SPLIT_SEED = 20140901  # fixed: a file always splits the same way


@dataclass
class ParallelText:
    """Aligned sentences: ``source[i]`` translates to ``target[i]`` (raw text)."""

    source: list[str]
    target: list[str]
    src_lang: str
    tgt_lang: str
    name: str
    split: str

    def __len__(self) -> int:
        return len(self.source)


def multi30k_file(split: str, lang: str) -> RemoteFile:
    """The download description of one Multi30k file."""
    name = f"{split}.{lang}.gz"
    if name not in MULTI30K_SHA256:
        raise StriateError(f"Multi30k has no {lang!r} text for the {split} split")
    return RemoteFile(name, tuple(url + name for url in _MULTI30K_URLS), MULTI30K_SHA256[name])


def _read_gzip_lines(path: Path) -> list[str]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise StriateError(f"cannot read {path}: {exc}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _check_languages(src_lang: str, tgt_lang: str, known: tuple[str, ...] | None) -> None:
    if src_lang == tgt_lang:
        raise StriateError(f"source and target language are both {src_lang!r}")
    for lang in (src_lang, tgt_lang):
        if known is not None and lang not in known:
            raise StriateError(f"unknown language {lang!r}; this source has {', '.join(known)}")


def load_multi30k(
    split: str, src_lang: str, tgt_lang: str, data_dir: str | Path | None, download: bool = True
) -> ParallelText:
    split = SPLIT_ALIASES.get(split, split)
    if split not in MULTI30K_SPLITS:
        raise StriateError(
            f"unknown Multi30k split {split!r}; use test, {', '.join(MULTI30K_SPLITS)}"
        )
    _check_languages(src_lang, tgt_lang, MULTI30K_LANGUAGES)
    files = [multi30k_file(split, src_lang), multi30k_file(split, tgt_lang)]
    found = ensure_files(resolve_data_dir(data_dir) / MULTI30K_FOLDER, files, download)
    source = _read_gzip_lines(found[files[0].filename])
    target = _read_gzip_lines(found[files[1].filename])
    if len(source) != len(target):
        raise StriateError(
            f"Multi30k {split}: {len(source)} {src_lang} lines, {len(target)} {tgt_lang}"
        )
    return ParallelText(source, target, src_lang, tgt_lang, MULTI30K, split)


def _read_tsv(path: Path) -> tuple[list[str], list[str]]:
    text = read_text_file(path)  # one-line errors: missing, binary, not UTF-8, empty
    first, second = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2:
            raise StriateError(
                f"{path} line {number}: expected source<TAB>target, got {line[:60]!r}"
            )
        first.append(columns[0].strip())
        second.append(columns[1].strip())
    if not first:
        raise StriateError(f"{path} holds no sentence pairs")
    return first, second


def tsv_split_indices(n: int, split: str, val_fraction: float) -> list[int]:
    """Which of n pairs belong to ``split`` (train/val/test) of a tab-separated file."""
    if split not in TSV_SPLITS:
        raise StriateError(
            f"unknown split {split!r} of a sentence-pair file; use {', '.join(TSV_SPLITS)}"
        )
    if not 0 <= val_fraction < 0.5:
        raise StriateError("the validation fraction must be in [0, 0.5)")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(TSV_SPLIT_SEED)).tolist()
    held = round(n * val_fraction) if val_fraction else 0
    if val_fraction and n >= 3:
        held = max(held, 1)
    parts = {"val": order[:held], "test": order[held : 2 * held], "train": order[2 * held :]}
    return sorted(parts[split])


def load_tsv_pairs(
    path: str | Path,
    split: str,
    src_lang: str,
    tgt_lang: str,
    columns: tuple[str, str] | None = None,
    val_fraction: float = 0.05,
) -> ParallelText:
    path = Path(path).expanduser()
    _check_languages(src_lang, tgt_lang, None)
    first, second = _read_tsv(path)
    if columns is not None:
        columns = tuple(columns)
        if set(columns) != {src_lang, tgt_lang}:
            raise StriateError(
                f"{path.name} holds {columns[0]}-{columns[1]} pairs, not {src_lang}-{tgt_lang}"
            )
        if columns[0] == tgt_lang:
            first, second = second, first
    keep = tsv_split_indices(len(first), split, val_fraction)
    return ParallelText(
        [first[i] for i in keep], [second[i] for i in keep], src_lang, tgt_lang,
        f"{TSV_PREFIX}{path}", split,
    )  # fmt: skip


def is_tsv_source(source: str) -> bool:
    return source.startswith(TSV_PREFIX) or source.lower().endswith((".tsv", ".txt"))


def load_parallel(
    source: str,
    split: str,
    src_lang: str,
    tgt_lang: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    *,
    columns: tuple[str, str] | None = None,
    val_fraction: float = 0.05,
    limit: int | None = None,
) -> ParallelText:
    """The sentence pairs of one split of a source (see the module docstring).

    Args:
        source: ``multi30k``, ``tsv:PATH`` or a path ending in .tsv/.txt.
        split: ``train``, ``val``, ``test`` or (Multi30k) a named test set.
        src_lang, tgt_lang: language codes (``en``, ``de``, ...).
        data_dir: the data root (see :mod:`striate.data.paths`).
        download: fetch missing Multi30k files; when false they must be present.
        columns: the languages of a file's first two columns.
        val_fraction: share of a file's pairs held out for val (and as much for test).
        limit: keep only the first ``limit`` pairs.
    """
    if limit is not None and limit < 1:
        raise StriateError("limit must be at least 1")
    if source == MULTI30K:
        pairs = load_multi30k(split, src_lang, tgt_lang, data_dir, download)
    elif is_tsv_source(source):
        path = source[len(TSV_PREFIX) :] if source.startswith(TSV_PREFIX) else source
        if not path:
            raise StriateError(f"{TSV_PREFIX} needs a path, as in {TSV_PREFIX}deu.txt")
        pairs = load_tsv_pairs(path, split, src_lang, tgt_lang, columns, val_fraction)
    else:
        raise StriateError(
            f"unknown sentence-pair source {source!r}; use {MULTI30K}, {TSV_PREFIX}PATH "
            "or a .tsv/.txt file"
        )
    if limit is not None:
        pairs.source, pairs.target = pairs.source[:limit], pairs.target[:limit]
    if not pairs.source:
        raise StriateError(f"the {split} split of {source} holds no sentence pairs")
    return pairs


def describe_parallel_sources(data_dir: str | Path | None = None) -> list[dict]:
    """One dict per sentence-pair source (name, description, where, present), in the shape
    of the other sources' ``describe_*`` functions, for ``striate data``."""
    folder = resolve_data_dir(data_dir) / MULTI30K_FOLDER
    return [
        {
            "name": MULTI30K,
            "description": "Multi30k task 1: 29,000 image descriptions in en/de/fr/cs "
            "(+ val and four test sets)",
            "where": str(folder),
            "present": all((folder / name).is_file() for name in MULTI30K_SHA256),
        },
        {
            "name": f"{TSV_PREFIX}PATH",
            "description": "source<TAB>target lines (Tatoeba / ManyThings format); "
            "a .tsv or .txt path works too",
            "where": "PATH",
            "present": None,
        },
    ]
