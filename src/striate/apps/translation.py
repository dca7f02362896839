"""Machine translation end to end: train an encoder-decoder, translate, evaluate with BLEU.

``striate train translate``, ``striate translate`` and ``striate eval-translate`` are these
functions::

    from striate.apps import translation as mt
    result = mt.train(mt.TranslateTrainConfig(data="multi30k", src="en", tgt="de"))
    print(mt.translate(result.run, ["A man is riding a bike."], beam=5))
    print(mt.evaluate(result.run, split="test")["bleu"])

Sentences are split into words and punctuation (:func:`striate.data.words.tokenize`; case is
kept by default, since sacreBLEU's default score is cased), mapped to ids by one
:class:`~striate.data.words.WordVocab` per language, and the model
(:class:`~striate.models.seq2seq.Seq2Seq`) is trained with teacher forcing
(:class:`~striate.engine.seq_steps.TeacherForcedStep`, optionally scheduled). A checkpoint
carries both vocabularies and every preprocessing setting in its JSON metadata, so
translating needs nothing but the run. Output is decoded by beam search with length
normalization (:class:`~striate.apps._translator.Translator`, which this module
re-exports with ``Preprocessing`` and ``DECODE_BATCH``), detokenized, and scored against the raw
references with sacreBLEU's default settings: cased, with its signature (the
case-insensitive figure is reported beside it as ``bleu_lowercase``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from striate.apps import _meta as checked
from striate.apps._runs import TaskConfig, prepare_run, recurrent_engine_defaults
from striate.apps._task import (
    Task,
    placement,
    restored,
    saved_data_settings,
    stamp,
    write_report,
)
from striate.apps._translator import DECODE_BATCH, Preprocessing, Translator
from striate.artifacts.checkpoint import Checkpoint, load_checkpoint
from striate.artifacts.run_dir import DEFAULT_ROOT
from striate.atomic import write_json
from striate.data.sequence_batches import SequenceBatches, pad_sequences
from striate.data.sources.parallel import ParallelText, load_parallel
from striate.data.words import WordVocab, tokenize
from striate.engine.device import resolve_device
from striate.engine.loop import EngineConfig, FitResult, fit
from striate.engine.metrics_text import translation_bleu
from striate.engine.seq_steps import SCHEDULE_KINDS, TeacherForcedStep, TeacherForcingSchedule
from striate.errors import StriateError
from striate.models.seq2seq import ATTENTIONS, Seq2Seq

__all__ = [  # Preprocessing, Translator and DECODE_BATCH live in apps/_translator.py
    "DECODE_BATCH",
    "KIND",
    "TASK",
    "Preprocessing",
    "TranslateTrainConfig",
    "TranslateTrainResult",
    "Translator",
    "column_languages",
    "evaluate",
    "load_translator",
    "resume",
    "train",
    "translate",
    "translate_engine_defaults",
    "translator_from_checkpoint",
]

KIND = "translation"


def translate_engine_defaults() -> EngineConfig:
    """Encoder-decoders train with the recurrent defaults, clipped at norm 1."""
    return recurrent_engine_defaults(epochs=10, warmup_steps=100, clip_grad_norm=1.0, log_every=50)


@dataclass
class TranslateTrainConfig(TaskConfig):
    """A translation run (saved as the run's config.json).

    ``data``: ``multi30k``, ``tsv:PATH`` or a .tsv/.txt file of ``source<TAB>target`` lines
    (``columns="en,de"`` names a file's column languages). ``src``/``tgt``: language codes.
    Preprocessing: ``lowercase`` (off by default: a model trained on lower-cased text misses
    every capital of the cased references), words seen fewer than ``min_freq`` times (or
    beyond ``max_vocab``) become ``<unk>``, training pairs longer than ``max_length`` tokens
    are dropped. Model: see :class:`~striate.models.seq2seq.Seq2Seq`. Teacher forcing: the
    ratio starts at ``teacher_forcing`` and follows ``teacher_forcing_schedule`` (constant,
    linear, inverse_sigmoid, exponential) towards ``teacher_forcing_end`` over
    ``teacher_forcing_steps`` steps (0: the whole run). ``val_bleu_samples``: greedy BLEU on
    that many validation pairs after every epoch (0: off).
    """

    data: str = "multi30k"
    data_dir: str | None = None
    src: str = "en"
    tgt: str = "de"
    columns: str | None = None
    val_fraction: float = 0.05
    limit: int | None = None
    lowercase: bool = False
    min_freq: int = 2
    max_vocab: int | None = None
    max_length: int = 50
    cell: str = "gru"
    layers: int = 1
    hidden: int = 256
    embedding: int = 256
    attention: str = "bahdanau"
    bidirectional: bool = True
    reverse_source: bool = False
    dropout: float = 0.3
    label_smoothing: float = 0.1
    teacher_forcing: float = 1.0
    teacher_forcing_schedule: str = "constant"
    teacher_forcing_end: float = 0.5
    teacher_forcing_steps: int = 0
    teacher_forcing_k: float = 1000.0
    val_bleu_samples: int = 200
    name: str | None = None
    runs_dir: str = str(DEFAULT_ROOT)
    engine: EngineConfig = field(default_factory=translate_engine_defaults)

    def __post_init__(self) -> None:
        self._engine_from_dict()
        checks = [
            (self.attention in ATTENTIONS, f"attention must be one of {', '.join(ATTENTIONS)}"),
            (min(self.layers, self.hidden, self.embedding) >= 1, "sizes must be positive"),
            (self.min_freq >= 1, "the minimum word frequency must be at least 1"),
            (self.max_length >= 1, "the maximum sentence length must be at least 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (0 <= self.teacher_forcing <= 1, "the teacher forcing ratio must be in [0, 1]"),
            (
                self.teacher_forcing_schedule in SCHEDULE_KINDS,
                f"teacher forcing schedule must be one of {', '.join(SCHEDULE_KINDS)}",
            ),
            (self.teacher_forcing_steps >= 0, "teacher forcing steps must be non-negative"),
            (self.val_bleu_samples >= 0, "validation BLEU samples must be non-negative"),
            (self.src != self.tgt, f"source and target language are both {self.src!r}"),
        ]
        self._require(checks)
        column_languages(self.columns)

    def schedule(self, total_steps: int) -> TeacherForcingSchedule | None:
        if self.teacher_forcing_schedule == "constant" and self.teacher_forcing >= 1:
            return None  # always teacher forced: the model's fast path
        return TeacherForcingSchedule(
            self.teacher_forcing_schedule,
            start=self.teacher_forcing,
            end=min(self.teacher_forcing_end, self.teacher_forcing),
            steps=self.teacher_forcing_steps or max(total_steps, 1),
            k=self.teacher_forcing_k,
        )


def column_languages(columns: str | None) -> tuple[str, str] | None:
    """``"en,de"`` → ("en", "de"): the languages of a file's two columns (None: not given)."""
    if not columns:
        return None
    parts = [p.strip() for p in columns.split(",")]
    if len(parts) != 2 or not all(parts):
        raise StriateError(f"columns takes two language codes like en,de, not {columns!r}")
    return parts[0], parts[1]


@dataclass
class TranslateTrainResult:
    run: Path | None
    fit: FitResult
    src_vocab: WordVocab
    tgt_vocab: WordVocab
    val_bleu: list[dict[str, float]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# training pairs: tokens, ids (see Preprocessing for one sentence at translation time), batches


def _tokenized(pairs: ParallelText, lowercase: bool) -> tuple[list[list[str]], list[list[str]]]:
    return (
        [tokenize(s, lowercase) for s in pairs.source],
        [tokenize(t, lowercase) for t in pairs.target],
    )


def _collate(pad_id: int):
    def collate(items: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, ...]:
        src, src_lengths = pad_sequences([s for s, _ in items], pad_id)
        tgt, _ = pad_sequences([t for _, t in items], pad_id)
        return src, src_lengths, tgt

    return collate


def _encode_pairs(
    src_tokens: list[list[str]],
    tgt_tokens: list[list[str]],
    src_vocab: WordVocab,
    tgt_vocab: WordVocab,
    max_length: int | None,
) -> list[tuple[list[int], list[int]]]:
    items = []
    for s, t in zip(src_tokens, tgt_tokens, strict=True):
        if not s or not t:
            continue
        if max_length is not None and (len(s) > max_length or len(t) > max_length):
            continue
        items.append((src_vocab.encode(s, eos=True), tgt_vocab.encode(t, bos=True, eos=True)))
    return items


# ---------------------------------------------------------------------------------------------
# training


def train(config: TranslateTrainConfig, resume: str | Path | None = None) -> TranslateTrainResult:
    """Train an encoder-decoder on ``config.data``; ``resume`` continues a run exactly."""
    dist, _, shard = placement(config.engine.device)
    load = {
        "data_dir": config.data_dir,
        "columns": column_languages(config.columns),
        "val_fraction": config.val_fraction,
    }
    train_pairs = load_parallel(
        config.data, "train", config.src, config.tgt, limit=config.limit, **load
    )
    val_pairs = load_parallel(config.data, "val", config.src, config.tgt, **load)
    src_tokens, tgt_tokens = _tokenized(train_pairs, config.lowercase)
    src_vocab = WordVocab.build(src_tokens, config.min_freq, config.max_vocab)
    tgt_vocab = WordVocab.build(tgt_tokens, config.min_freq, config.max_vocab)
    items = _encode_pairs(src_tokens, tgt_tokens, src_vocab, tgt_vocab, config.max_length)
    if not items:
        raise StriateError(f"no training pairs of at most {config.max_length} tokens")
    val_src, val_tgt = _tokenized(val_pairs, config.lowercase)
    val_items = _encode_pairs(val_src, val_tgt, src_vocab, tgt_vocab, None)
    if not val_items:
        raise StriateError("the validation split holds no non-empty sentence pairs")

    bs, seed = config.engine.batch_size, config.engine.seed
    collate = _collate(src_vocab.pad_id)
    lengths = [len(s) + len(t) for s, t in items]
    train_b = SequenceBatches(items, lengths, collate, bs, seed=seed, **shard)
    val_lengths = [len(s) + len(t) for s, t in val_items]
    val_b = SequenceBatches(val_items, val_lengths, collate, bs, shuffle=False, **shard)

    torch.manual_seed(seed)
    model = Seq2Seq(
        len(src_vocab), len(tgt_vocab), config.cell, config.layers, config.hidden,
        config.embedding, config.attention, config.bidirectional, config.reverse_source,
        config.dropout, src_vocab.pad_id,
    )  # fmt: skip
    prefix = f"seq2seq-{config.cell}-{config.attention}-{config.src}-{config.tgt}"
    run, resume_from = prepare_run(config, KIND, prefix, resume, dist)
    start_step = load_checkpoint(resume_from).meta["step"] if resume_from else 0
    total_steps = config.engine.epochs * len(train_b)
    step = TeacherForcedStep(
        tgt_vocab.pad_id, config.label_smoothing, config.schedule(total_steps), start_step
    )
    preprocessing = Preprocessing(config.src, config.tgt, config.lowercase, config.max_length)
    meta = {
        **stamp(KIND),
        "model": model.config,
        "src_vocab": src_vocab.to_json(),
        "tgt_vocab": tgt_vocab.to_json(),
        "preprocessing": vars(preprocessing),
        "data": config.data,
    }

    val_bleu: list[dict[str, float]] = []
    earlier = run.path / "val-bleu.json" if run is not None and resume_from else None
    if earlier is not None and earlier.is_file():  # a resumed run keeps its earlier epochs
        val_bleu = [
            r
            for r in json.loads(earlier.read_text(encoding="utf-8"))
            if r["epoch"] <= start_step // len(train_b)
        ]
    sample = min(config.val_bleu_samples, len(val_pairs))

    def score_val(epoch: int, metrics: dict[str, float]) -> None:
        if not sample or not dist.is_main:
            return
        translator = Translator(model, src_vocab, tgt_vocab, preprocessing)
        hyps = translator.translate(val_pairs.source[:sample], beam=1)
        refs = [[r] for r in val_pairs.target[:sample]]
        scores = translation_bleu(hyps, refs)
        bleu, lower = scores["bleu"], scores["bleu_lowercase"]
        val_bleu.append({"epoch": epoch, "greedy_bleu": bleu, "greedy_bleu_lowercase": lower})
        metrics["bleu"] = bleu  # cased; logged with the validation pass; --keep-best val.bleu
        tqdm.write(f"epoch {epoch}: greedy BLEU {bleu:.2f} (lower-cased {lower:.2f}) on {sample}"
                   f" validation sentences, sacreBLEU {scores['signature']}")  # fmt: skip

    result = fit(
        model, step, train_b, val_b, config.engine, run=run, meta=meta,
        resume_from=resume_from, dist=dist, on_epoch_end=score_val,
    )  # fmt: skip
    if run is not None and val_bleu:
        write_json(run.path / "val-bleu.json", val_bleu)
    return TranslateTrainResult(run.path if run else None, result, src_vocab, tgt_vocab, val_bleu)


# ---------------------------------------------------------------------------------------------
# load, translate, evaluate


def load_translator(
    run_or_checkpoint: str | Path, runs_dir: str | Path = DEFAULT_ROOT, device: str = "cpu"
) -> Translator:
    """Rebuild a trained translator (eval mode) from a run or checkpoint directory."""
    return TASK.load(run_or_checkpoint, runs_dir)[0].to(resolve_device(device))


def translator_from_checkpoint(ckpt: Checkpoint) -> Translator:
    """The translator (eval mode, CPU) a loaded translation checkpoint holds."""
    meta = ckpt.meta
    cfg = checked.section(ckpt, "model")
    model = restored(checked.built(ckpt, "model", lambda: Seq2Seq(**cfg)), ckpt)
    src_vocab = checked.vocabulary(ckpt, "src_vocab", WordVocab.from_json, int(cfg["src_vocab"]))
    tgt_vocab = checked.vocabulary(ckpt, "tgt_vocab", WordVocab.from_json, int(cfg["tgt_vocab"]))
    pre = checked.section(ckpt, "preprocessing")
    preprocessing = checked.built(ckpt, "preprocessing", lambda: Preprocessing(**pre))
    return Translator(model, src_vocab, tgt_vocab, preprocessing, meta)


def translate(
    run: str | Path,
    sentences: Sequence[str],
    beam: int = 5,
    length_penalty: float = 0.6,
    max_len: int | None = None,
    device: str = "cpu",
    runs_dir: str | Path = DEFAULT_ROOT,
) -> list[str]:
    """Translate ``sentences`` with a trained run: beam search (``beam`` 1: greedy) with
    Wu et al.'s length normalization ``length_penalty``; one output line per sentence (see
    :class:`striate.predict.translation.TranslationPredictor`, which this calls)."""
    items = [sentences] if isinstance(sentences, str) else list(sentences)
    rows = TASK.predictor(run, device, runs_dir).predict(
        items, beam=beam, length_penalty=length_penalty, max_length=max_len, attention=False
    )
    return [row["translation"] for row in rows]


def evaluate(
    run: str | Path,
    split: str = "test",
    beam: int = 5,
    length_penalty: float = 0.6,
    data: str | None = None,
    data_dir: str | None = None,
    limit: int | None = None,
    device: str = "auto",
    runs_dir: str | Path = DEFAULT_ROOT,
    write: bool = True,
) -> dict[str, Any]:
    """Corpus BLEU of the run's translations of a split against its raw references.

    ``data`` defaults to the source the run was trained on. Writes ``eval-SPLIT.json``
    (atomically) into the run.
    """
    run_path, translator, meta = TASK.for_evaluation(run, runs_dir)
    translator.to(resolve_device(device))
    prep = translator.preprocessing
    saved = saved_data_settings(run_path, "data_dir", "columns", "val_fraction")
    source = data or meta.get("data", "multi30k")
    pairs = load_parallel(
        source, split, prep.src_lang, prep.tgt_lang, data_dir or saved.get("data_dir"),
        columns=column_languages(saved.get("columns")),
        val_fraction=saved.get("val_fraction", 0.05), limit=limit,
    )  # fmt: skip
    start = time.perf_counter()
    hyps = translator.translate(pairs.source, beam, length_penalty)
    seconds = time.perf_counter() - start
    scores = translation_bleu(hyps, [[r] for r in pairs.target])  # cased, + bleu_lowercase
    report = {
        "split": split,
        "data": source,
        "src": prep.src_lang,
        "tgt": prep.tgt_lang,
        "sentences": len(pairs),
        "beam": beam,
        "length_penalty": length_penalty,
        **scores,
        "translate_seconds": seconds,
        "examples": [
            {"source": s, "reference": r, "translation": h}
            for s, r, h in list(zip(pairs.source, pairs.target, hyps, strict=True))[:5]
        ],
    }
    return write_report(run_path, split, report, write)


TASK = Task(
    KIND, "a translation model", TranslateTrainConfig, train, translator_from_checkpoint, evaluate
)
resume = TASK.resume
