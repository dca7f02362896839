"""Character-level text synthesis end to end: train with truncated BPTT, then sample.

``striate train text`` and ``striate sample`` are these two functions::

    from striate.apps import text_generation as tg
    result = tg.train(tg.TextTrainConfig(data="shakespeare", cell="lstm", tbptt="50,100"))
    for piece in tg.sample(result.run, prime="ROMEO:", temperature=0.8, length=500):
        print(piece, end="")

Metrics are reported in nats per character (``loss``) and bits per character (``bpc`` =
loss / ln 2), on the held-out end of the corpus.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from striate.apps import _meta as checked
from striate.apps._runs import TaskConfig, prepare_run, recurrent_engine_defaults
from striate.apps._task import Task, evaluating, placement, restored, stamp, write_report
from striate.artifacts.checkpoint import Checkpoint
from striate.artifacts.run_dir import DEFAULT_ROOT, RunDir
from striate.data.sources.text import load_text, read_text_file, split_text
from striate.data.text_batches import TokenStream
from striate.data.vocab import CharVocab
from striate.engine.device import resolve_device
from striate.engine.evaluation import evaluate as evaluate_batches
from striate.engine.loop import EngineConfig, FitResult, fit
from striate.engine.tbptt import TBPTTStep, check_window
from striate.errors import StriateError, not_finite_error
from striate.models.char_rnn import CharRNN

KIND = "text-generation"


def text_engine_defaults() -> EngineConfig:
    """The ``train text`` recipe: the recurrent defaults (Adam, cosine to 0 over the run after
    20 warm-up steps, clipping at 5, batch 64) with ``lr=4e-3`` and ``precision="auto"``.

    The learning rate: the cosine takes the rate to 0 by the end of the run, so a short run
    spends much of it at small rates. On tiny-shakespeare (2x512 LSTM, 90/10, a 5-minute
    budget on 2 CPU cores) 2e-3 flattened out at 1.558 nats/char in validation, 4e-3 reached
    1.475 in the same budget (``benchmarks/bench_char_budget.py``).

    "auto" is bf16 autocast where it is the faster choice (GPUs, CPUs with bf16 matrix units)
    and fp32 elsewhere: on such a CPU a 2x512 LSTM trains about 2.1x faster in bf16
    (``benchmarks/bench_rnn.py``) and learns as much per step (1x256 LSTM, 60 steps of
    tiny-shakespeare: validation 2.317 nats/char in bf16, the same as in fp32), so a run on
    a time budget (``--time-budget``) sees about twice the data.
    """
    return recurrent_engine_defaults(
        epochs=1, lr=4e-3, warmup_steps=20, log_every=20, precision="auto"
    )


def parse_tbptt(spec: str | int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"100"`` → (100, 100); ``"50,100"`` → (k1=50, k2=100)."""
    if isinstance(spec, int):
        return spec, spec
    if isinstance(spec, str):
        try:
            parts = [int(p) for p in spec.split(",")]
        except ValueError:
            raise StriateError(f"--tbptt takes K or K1,K2 (integers), not {spec!r}") from None
    else:
        parts = list(spec)
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise StriateError(f"--tbptt takes K or K1,K2, not {spec!r}")
    return check_window(*parts)


@dataclass
class TextTrainConfig(TaskConfig):
    """A character-level language-model run (saved as the run's config.json).

    ``data``: ``python-stdlib`` (embedded, no download), ``shakespeare`` or a text file path.
    ``tbptt``: K, or "K1,K2": update every K1 characters, backpropagating K2 of them.
    """

    data: str = "python-stdlib"
    data_dir: str | None = None
    max_chars: int | None = None
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 512
    dropout: float = 0.0
    embedding: int | None = None
    impl: str = "auto"
    tbptt: str = "100"
    val_fraction: float = 0.05
    sample_every: int = 200  # steps between printed samples; 0: never
    sample_length: int = 200
    name: str | None = None
    runs_dir: str = str(DEFAULT_ROOT)
    engine: EngineConfig = field(default_factory=text_engine_defaults)

    def __post_init__(self) -> None:
        self._engine_from_dict()
        self.tbptt = ",".join(map(str, parse_tbptt(self.tbptt)))
        if self.layers < 1 or self.hidden < 1:
            raise StriateError("layers and hidden size must be positive")
        if not 0 < self.val_fraction < 1:
            raise StriateError("validation fraction must be between 0 and 1")


@dataclass
class TextTrainResult:
    run: Path | None
    fit: FitResult
    vocab: CharVocab


def train(config: TextTrainConfig, resume: str | Path | None = None) -> TextTrainResult:
    """Train a character-level RNN language model; ``resume`` continues a run."""
    dist, _, shard = placement(config.engine.device)
    text = load_text(config.data, config.data_dir, max_chars=config.max_chars)
    train_text, val_text = split_text(text, config.val_fraction)
    vocab = CharVocab.from_text(text)
    k1, k2 = parse_tbptt(config.tbptt)
    bs, seed = config.engine.batch_size, config.engine.seed
    train_b = TokenStream(vocab.encode(train_text), bs, k1, seed=seed, **shard)
    val_rows = max(dist.world_size, min(bs, len(val_text) // (k1 + 1)))
    val_b = TokenStream(vocab.encode(val_text), val_rows, k1, random_offset=False, **shard)

    torch.manual_seed(seed)
    model = CharRNN(
        len(vocab), config.cell, config.hidden, config.layers, config.dropout, config.embedding,
        config.impl,
    )  # fmt: skip
    run, resume_from = prepare_run(config, KIND, f"char-{config.cell}", resume, dist)
    meta = {
        **stamp(KIND),
        "model": model.config,
        "vocab": vocab.to_json(),
        "data": config.data,
        "tbptt": [k1, k2],
    }

    def show_sample(record: dict[str, Any]) -> None:
        if config.sample_every and record["step"] % config.sample_every < config.engine.log_every:
            text = "".join(generate(model, vocab, "\n", 0.8, 40, config.sample_length, seed))
            tqdm.write(f"--- sample at step {record['step']} ---\n{text}\n---")

    result = fit(
        model, TBPTTStep(k1, k2), train_b, val_b, config.engine, run=run, meta=meta,
        resume_from=resume_from, dist=dist, on_log=show_sample,
    )  # fmt: skip
    return TextTrainResult(run.path if run else None, result, vocab)


# ---------------------------------------------------------------------------------------------
# evaluation


def evaluate(
    run: str | Path,
    split: str = "val",
    data: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    runs_dir: str | Path = DEFAULT_ROOT,
    write: bool = True,
) -> dict[str, Any]:
    """Loss (nats per character), bits per character, perplexity and next-character accuracy
    of a text run, with the hidden state carried across windows as in training.

    ``split`` "val" (the held-out end of the run's corpus) or "train"; ``data`` a UTF-8
    file to measure instead (its characters must be in the run's vocabulary). Writes
    ``eval-SPLIT.json`` (``eval-file.json`` for ``data``) into the run.
    """
    if split not in ("train", "val"):
        raise StriateError(f"a text run has train and val splits, not {split!r}")
    run_path, (model, vocab), meta = TASK.for_evaluation(run, runs_dir)
    if data is not None:
        text, name, label = read_text_file(data), str(data), "file"
    else:
        config = RunDir(run_path).read_config()
        text = load_text(meta["data"], data_dir or config.get("data_dir"),
                         max_chars=config.get("max_chars"))  # fmt: skip
        train_text, val_text = split_text(text, config.get("val_fraction", 0.05))
        text, name, label = (val_text if split == "val" else train_text), meta["data"], split
    k1, _ = meta.get("tbptt", (100, 100))
    ids = vocab.encode(text, what=f"the {label} text")
    if len(ids) < 2:
        raise StriateError(f"the {label} text is too short to measure (needs 2 characters)")
    dev = resolve_device(device)
    rows = max(1, min(64, (len(ids) - 1) // (k1 + 1)))
    seq_len = min(k1, (len(ids) - 1) // rows)
    batches = TokenStream(ids, rows, seq_len, dev, random_offset=False)
    metrics = evaluate_batches(model.to(dev), TBPTTStep(seq_len), batches)
    report = {
        "split": label,
        "data": name,
        "characters": rows * seq_len * len(batches),
        "loss": metrics["loss"],
        "bpc": metrics["bpc"],
        "perplexity": math.exp(metrics["loss"]),
        "accuracy": metrics["accuracy"],
    }
    return write_report(run_path, label, report, write)


# ---------------------------------------------------------------------------------------------
# sampling


def load_text_model(
    run_or_checkpoint: str | Path, runs_dir: str | Path = DEFAULT_ROOT
) -> tuple[CharRNN, CharVocab, dict[str, Any]]:
    """Rebuild a trained character model (eval mode, CPU) and its vocabulary."""
    (model, vocab), meta = TASK.load(run_or_checkpoint, runs_dir)
    return model, vocab, meta


def text_model_from_checkpoint(ckpt: Checkpoint) -> tuple[CharRNN, CharVocab]:
    """The character model (eval mode, CPU) and vocabulary a loaded checkpoint holds."""
    cfg = checked.section(ckpt, "model")
    model = restored(checked.built(ckpt, "model", lambda: CharRNN(**cfg)), ckpt)
    vocab = checked.vocabulary(ckpt, "vocab", CharVocab.from_json, int(cfg["vocab_size"]))
    return model, vocab


def generate(
    model: CharRNN,
    vocab: CharVocab,
    prime: str,
    temperature: float = 0.8,
    top_k: int | None = 40,
    length: int = 500,
    seed: int | None = None,
) -> Iterator[str]:
    """Yield ``length`` characters, one at a time, continuing ``prime``.

    Each next character is drawn from softmax(logits / temperature), restricted to the
    ``top_k`` most likely ones (None or 0: all).
    """
    if temperature <= 0:
        raise StriateError("temperature must be positive")
    if length < 0:
        raise StriateError("length must be non-negative")
    if not prime:
        raise StriateError("the prime must hold at least one character")
    ids = vocab.encode(prime, what="the prime")  # errors now, not at the first character
    return _stream(model, vocab, ids, temperature, top_k, length, random.Random(seed))


def _stream(
    model: CharRNN,
    vocab: CharVocab,
    ids: torch.Tensor,
    temperature: float,
    top_k: int | None,
    length: int,
    rng: random.Random,
) -> Iterator[str]:
    # At batch 1 every microsecond outside the two weight products counts (the sampling
    # benchmark's target is 3,000 chars/s), so the draw itself is plain Python over the
    # k candidates: their probabilities, a cumulative sum and one uniform number.
    device = model.head.weight.device
    chars = vocab.chars
    k = min(top_k or len(chars), len(chars))
    with evaluating(model), torch.inference_mode():
        logits, state = model(ids.to(device).unsqueeze(0))
        logits = logits[0, -1] / temperature
        advance = model.sampler(state, temperature)  # logits come divided by it
        for _ in range(length):
            values, indices = logits.float().topk(k)
            probs = values.softmax(0).tolist()
            if probs[0] != probs[0]:  # NaN: one NaN or inf logit makes every one NaN
                raise not_finite_error()
            r, total = rng.random(), 0.0
            for choice, p in enumerate(probs):  # noqa: B007 (choice is used below)
                total += p
                if r < total:
                    break
            index = indices.tolist()[choice]
            yield chars[index]
            logits = advance(index)


def sample(
    run: str | Path,
    prime: str = "\n",
    temperature: float = 0.8,
    top_k: int | None = 40,
    length: int = 2000,
    seed: int | None = None,
    runs_dir: str | Path = DEFAULT_ROOT,
) -> Iterator[str]:
    """Stream text from a trained run, one character at a time (see :func:`generate`;
    this calls :class:`striate.predict.text_generation.TextGeneratorPredictor`). ``top_k`` None: all
    characters."""
    predictor = TASK.predictor(run, runs_dir=runs_dir)
    return predictor.stream(prime, temperature=temperature, top_k=top_k,
                            length=length, seed=seed)  # fmt: skip


TASK = Task(
    KIND, "a text model", TextTrainConfig, train, text_model_from_checkpoint, evaluate, "val"
)
resume = TASK.resume
