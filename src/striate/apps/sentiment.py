"""Sentiment classification end to end (many to one): train, evaluate, predict.

``striate train sentiment``, ``striate eval-sentiment`` and ``striate predict-sentiment`` are
these functions::

    from striate.apps import sentiment as sa
    result = sa.train(sa.SentimentTrainConfig(data="sst2", cell="lstm", bidirectional=True))
    sa.evaluate(result.run, split="test")  # accuracy, macro F1, per-class F1, confusion
    sa.predict(result.run, ["a gripping, beautifully shot film"])  # [("positive", 0.97)]

Texts are split into lower-cased words and punctuation (``striate.data.words.tokenize``), cut
to their first ``max_length`` tokens and mapped to ids by a vocabulary of the training texts'
words seen at least ``min_freq`` times (the others become ``<unk>``). Batches hold sentences
of similar length (``SequenceBatches`` buckets them), padded at the end; the model
(:class:`~striate.models.sentiment.SentimentRNN`) ignores the padding. The checkpoint carries
the vocabulary, the class names, the tokenization settings and the split settings, so
prediction and evaluation need nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from striate.apps import _meta as checked
from striate.apps._runs import TaskConfig, prepare_run, recurrent_engine_defaults
from striate.apps._task import (
    Task,
    confusion_matrix,
    length_sorted_chunks,
    placement,
    restored,
    stamp,
    write_report,
)
from striate.artifacts.checkpoint import Checkpoint
from striate.artifacts.run_dir import DEFAULT_ROOT
from striate.data.sequence_batches import SequenceBatches, pad_sequences
from striate.data.sources._split import limit_index
from striate.data.sources.labelled_text import LabelledTexts
from striate.data.sources.sentiment import load_sentiment
from striate.data.vocab import vocab_from_json
from striate.data.words import WordVocab, tokenize
from striate.engine.device import resolve_device
from striate.engine.loop import EngineConfig, FitResult, fit
from striate.engine.steps import ClassificationStep
from striate.errors import StriateError
from striate.models.sentiment import POOLINGS, SentimentRNN

KIND = "sentiment"
EVAL_BATCH = 256


def sentiment_engine_defaults() -> EngineConfig:
    """The ``train sentiment`` recipe: the recurrent defaults (Adam 2e-3, cosine to 0 over the
    run, clipping at 5, batch 64) with ``precision="auto"``, as ``train text`` has it.

    "auto" is bf16 autocast where it is the faster choice (GPUs, CPUs with bf16 matrix
    units) and fp32 elsewhere. On such a CPU the SST-2 BiLSTM of the README (embedding 128,
    hidden 256 per direction, max pooling) ran about 1.45x the fp32 steps per second, so a
    run on a time budget (``--time-budget``) sees about half as much data again. Per step,
    a few 1,000-step runs against fp32 and a plain fp32 PyTorch script of the same model
    (SST-2 test accuracy 77.2-79.5 % in bf16, 78.0 % in fp32, 76.8-82.3 % for the plain
    script) could not tell them apart: the seed alone moved the plain script by 5 points.
    """
    return recurrent_engine_defaults(epochs=5, warmup_steps=0, log_every=50, precision="auto")


@dataclass
class SentimentTrainConfig(TaskConfig):
    """A sentiment-classification run (saved as the run's config.json).

    ``data``: ``sst2``, ``polarity``, ``movie-reviews``, ``uci``, ``imdb``, ``csv:PATH`` or
    ``tsv:PATH`` (see ``striate.data.sources.sentiment``). ``val_fraction`` /
    ``test_fraction`` hold texts out where the source has no official split; ``limit``
    trains on that many (seeded, shuffled) training texts. ``min_freq`` / ``max_vocab``
    shape the vocabulary, ``max_length`` cuts long texts to their first tokens, and
    ``lowercase`` is the tokenizer's setting.
    """

    data: str = "sst2"
    data_dir: str | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    limit: int | None = None
    lowercase: bool = True
    min_freq: int = 2
    max_vocab: int | None = None
    max_length: int = 400
    cell: str = "lstm"
    layers: int = 1
    hidden: int = 256
    embedding: int = 128
    bidirectional: bool = False
    pooling: str = "last"
    dropout: float = 0.3
    impl: str = "auto"
    name: str | None = None
    runs_dir: str = str(DEFAULT_ROOT)
    engine: EngineConfig = field(default_factory=sentiment_engine_defaults)

    def __post_init__(self) -> None:
        self._engine_from_dict()
        if self.pooling not in POOLINGS:
            raise StriateError(f"pooling must be one of {', '.join(POOLINGS)}")
        if self.layers < 1 or self.hidden < 1 or self.embedding < 1:
            raise StriateError("layers, hidden size and embedding size must be positive")
        if not 0 <= self.dropout < 1:
            raise StriateError("dropout must be in [0, 1)")
        if self.min_freq < 1:
            raise StriateError("the minimum word frequency must be at least 1")
        if self.max_length < 1:
            raise StriateError("the maximum length must be at least 1 token")
        if self.limit is not None and self.limit < 2:
            raise StriateError("limit must be at least 2 texts")
        if not 0 < self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise StriateError("the validation fraction must be in (0, 1), the test one in [0, 1)")


@dataclass
class SentimentTrainResult:
    run: Path | None
    fit: FitResult
    classes: list[str]
    vocab: WordVocab


# ---------------------------------------------------------------------------------------------
# text -> ids


def encode_texts(
    texts: Sequence[str],
    vocab: WordVocab,
    lowercase: bool = True,
    max_length: int = 400,
) -> list[list[int]]:
    """Word ids of each text, cut to its first ``max_length`` tokens; a text without any
    token becomes one ``<unk>`` (so it is still classified)."""
    out = []
    for text in texts:
        ids = vocab.encode(tokenize(text, lowercase)[:max_length])
        out.append(ids or [vocab.unk_id])
    return out


def _collate(items: list[tuple[list[int], int]]) -> tuple[torch.Tensor, torch.Tensor]:
    ids, _ = pad_sequences([ids for ids, _ in items])
    return ids, torch.tensor([label for _, label in items], dtype=torch.int64)


def _batches(
    ids: list[list[int]], labels: torch.Tensor, batch_size: int, shuffle: bool, **shard: Any
) -> SequenceBatches:
    items = list(zip(ids, labels.tolist(), strict=True))
    return SequenceBatches(
        items, [len(i) for i in ids], _collate, batch_size, shuffle=shuffle, **shard
    )


def _load_split(config: SentimentTrainConfig, split: str) -> LabelledTexts:
    return load_sentiment(
        config.data,
        split,
        config.data_dir,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        seed=config.engine.seed,
    )


def _data_label(data: str) -> str:
    for prefix in ("csv:", "tsv:"):
        data = data.removeprefix(prefix)
    return Path(data).stem if ("/" in data or "." in data) else data


# ---------------------------------------------------------------------------------------------
# train


def train(config: SentimentTrainConfig, resume: str | Path | None = None) -> SentimentTrainResult:
    """Train a sentence classifier; ``resume`` (a run directory) continues it exactly."""
    dist, _, shard = placement(config.engine.device)
    seed = config.engine.seed
    train_set = _load_split(config, "train")
    chosen = limit_index(len(train_set), config.limit, seed)
    if chosen is not None:
        train_set = train_set.subset(chosen)
    val_set = _load_split(config, "val")
    if len(val_set) == 0:
        raise StriateError(
            f"the validation split of {config.data!r} is empty; give more texts or a larger "
            "validation fraction"
        )
    classes = train_set.classes
    present = int((torch.bincount(train_set.labels, minlength=len(classes)) > 0).sum())
    if present < 2:
        raise StriateError(f"the training texts of {config.data!r} hold only one class")

    tokens = [tokenize(t, config.lowercase)[: config.max_length] for t in train_set.texts]
    keep = [i for i, t in enumerate(tokens) if t]  # texts without any word teach nothing
    if not keep:
        raise StriateError(f"no training text of {config.data!r} holds a word")
    vocab = WordVocab.build(
        (tokens[i] for i in keep), min_freq=config.min_freq, max_size=config.max_vocab
    )
    train_ids = [vocab.encode(tokens[i]) for i in keep]
    train_labels = train_set.labels[keep]
    val_ids = encode_texts(val_set.texts, vocab, config.lowercase, config.max_length)

    bs = config.engine.batch_size
    train_b = _batches(train_ids, train_labels, bs, True, seed=seed, **shard)
    val_b = _batches(val_ids, val_set.labels, EVAL_BATCH, False, **shard)

    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    model = SentimentRNN(
        len(vocab), len(classes), config.cell, config.embedding, config.hidden, config.layers,
        config.dropout, config.bidirectional, config.pooling, vocab.pad_id, config.impl,
    )  # fmt: skip
    prefix = f"{'bi' if config.bidirectional else ''}{config.cell}-{_data_label(config.data)}"
    run, resume_from = prepare_run(config, KIND, prefix, resume, dist)
    meta = {
        **stamp(KIND),
        "model": model.config,
        "vocab": vocab.to_json(),
        "classes": classes,
        "tokenization": {"lowercase": config.lowercase, "max_length": config.max_length},
        "data": config.data,
        "data_dir": config.data_dir,
        "splits": {
            "val_fraction": config.val_fraction,
            "test_fraction": config.test_fraction,
            "seed": seed,
            "limit": config.limit,
        },
        "train_texts": len(train_ids),
    }
    step = ClassificationStep(top_k=None)  # top-5 means nothing for two classes
    result = fit(
        model, step, train_b, val_b, config.engine, run=run, meta=meta,
        resume_from=resume_from, dist=dist,
    )  # fmt: skip
    return SentimentTrainResult(run.path if run else None, result, classes, vocab)


# ---------------------------------------------------------------------------------------------
# load, predict, evaluate


def load_sentiment_model(
    run_or_checkpoint: str | Path, runs_dir: str | Path = DEFAULT_ROOT
) -> tuple[SentimentRNN, WordVocab, dict[str, Any]]:
    """Rebuild a trained sentence classifier (eval mode, CPU), its vocabulary and metadata."""
    (model, vocab), meta = TASK.load(run_or_checkpoint, runs_dir)
    return model, vocab, meta


def sentiment_model_from_checkpoint(ckpt: Checkpoint) -> tuple[SentimentRNN, WordVocab]:
    """The sentence classifier (eval mode, CPU) and vocabulary a loaded checkpoint holds."""
    cfg = checked.section(ckpt, "model")
    model = restored(checked.built(ckpt, "model", lambda: SentimentRNN(**cfg)), ckpt)
    checked.class_names(ckpt, model.head.out_features)
    vocab = checked.vocabulary(ckpt, "vocab", vocab_from_json, model.embed.num_embeddings)
    if not isinstance(vocab, WordVocab):
        raise StriateError(f"checkpoint {ckpt.path} does not hold a word vocabulary")
    return model, vocab


@torch.inference_mode()
def class_probabilities(
    model: SentimentRNN, ids: list[list[int]], device: torch.device
) -> torch.Tensor:
    """(N, classes) softmax probabilities, computed in length-sorted batches."""
    probs = torch.empty(len(ids), model.head.out_features)
    for chunk in length_sorted_chunks([len(i) for i in ids], EVAL_BATCH):
        batch, _ = pad_sequences([ids[i] for i in chunk], model.pad_id)
        probs[chunk] = model(batch.to(device)).float().softmax(-1).cpu()
    return probs


def predict(
    run: str | Path, texts: Sequence[str], runs_dir: str | Path = DEFAULT_ROOT
) -> list[tuple[str, float]]:
    """(label, probability) of the most likely class for each text (see
    :class:`striate.predict.sentiment.SentimentPredictor`, which this calls)."""
    rows = TASK.predictor(run, runs_dir=runs_dir).predict(
        list(texts) if not isinstance(texts, str) else texts
    )
    return [(row["label"], row["probability"]) for row in rows]


def evaluate(
    run: str | Path,
    split: str = "test",
    data: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    runs_dir: str | Path = DEFAULT_ROOT,
    write: bool = True,
) -> dict[str, Any]:
    """Accuracy, macro F1, per-class F1 and the confusion matrix on a split.

    The split is made as in training (same source, fractions and seed) unless ``data`` names
    another source, whose class names must be the model's. Writes ``eval-SPLIT.json`` (and
    ``confusion-SPLIT.png``) into the run.
    """
    from sklearn.metrics import f1_score

    run_path, (model, vocab), meta = TASK.for_evaluation(run, runs_dir)
    classes, splits = meta["classes"], meta["splits"]
    source = data or meta["data"]
    dataset = load_sentiment(
        source,
        split,
        data_dir or meta.get("data_dir"),
        val_fraction=splits["val_fraction"],
        test_fraction=splits["test_fraction"],
        seed=splits["seed"],
    )
    labels = _relabel(dataset, classes, source)
    if len(dataset) == 0:
        raise StriateError(f"the {split} split of {source!r} holds no texts")
    dev = resolve_device(device)
    model.to(dev)
    settings = meta["tokenization"]
    ids = encode_texts(dataset.texts, vocab, settings["lowercase"], settings["max_length"])
    probs = class_probabilities(model, ids, dev)
    predicted = probs.argmax(-1)
    n = len(classes)
    confusion = confusion_matrix(labels, predicted, n)
    per_class = f1_score(labels, predicted, labels=list(range(n)), average=None, zero_division=0)
    report = {
        "split": split,
        "data": source,
        "samples": len(dataset),
        "loss": float(F.nll_loss(probs.clamp_min(1e-12).log(), labels)),
        "accuracy": float(confusion.diag().sum() / len(labels)),
        "macro_f1": float(per_class.mean()),
        "per_class_f1": dict(zip(classes, map(float, per_class), strict=True)),
        "confusion": confusion.tolist(),
    }
    return write_report(run_path, split, report, write, (confusion, classes))


def _relabel(dataset: LabelledTexts, classes: list[str], source: str) -> torch.Tensor:
    """The dataset's labels as indices into the model's ``classes`` (matched by name)."""
    if dataset.classes == classes:
        return dataset.labels
    unknown = sorted(set(dataset.classes) - set(classes))
    if unknown:
        raise StriateError(
            f"data {source!r} has classes the model does not know: {', '.join(unknown[:5])}"
        )
    mapping = torch.tensor([classes.index(name) for name in dataset.classes])
    return mapping[dataset.labels]


TASK = Task(
    KIND, "a sentiment classifier", SentimentTrainConfig, train, sentiment_model_from_checkpoint,
    evaluate,
)  # fmt: skip
resume = TASK.resume
