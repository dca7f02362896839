"""SST-2 test accuracy after the same minutes of training: striate's `train sentiment` recipe
vs a plain PyTorch script of the same BiLSTM, in one process (CPU).

Task: the SST-2 training phrases (67,349, as in ``../shared/data/sentiment/sst2``), lower-cased
words seen at least twice (striate's tokenizer and vocabulary, built once and shared), word
vectors learned from scratch; scored by accuracy on the 1,821 labelled test sentences.

* ``striate``: ``striate train sentiment --data sst2 --bidirectional --pooling max
  --time-budget M``, i.e. ``SentimentTrainConfig`` and ``sentiment_engine_defaults()`` (Adam
  2e-3, cosine schedule spanning the budget, gradient norm clipped at 5, precision "auto":
  bf16 autocast on a CPU with bf16 matrix units, else fp32; batch 64) with the BiLSTM of the
  CLI's example: embedding 128, hidden 256 per direction, one layer, max pooling over the
  words, dropout 0.3. The budget counts the engine's whole loop (its per-epoch validation on
  the 872 dev sentences included).
* ``plain``: the script a PyTorch user writes for the same model: ``nn.Embedding(V, 128)``
  -> dropout -> ``nn.LSTM(128, 256, bidirectional=True)`` over packed sequences -> max over
  the words -> dropout -> ``nn.Linear(512, 2)``; Adam 2e-3 constant, cross-entropy, fp32,
  torch's default initialisation, no clipping; fed the very same batches (striate's
  length-bucketed ``SequenceBatches``, same seed) for the same wall-clock minutes of its
  training loop.

Both are timed from their first step, one after the other (plain first, after 5 untimed
warm-up steps of a throwaway plain model, so that neither pays the process's first calls),
on a machine that may be shared: the JSON line says the steps each reached, which is the
figure to compare per unit of work.

Paper figure, a different setup: Tai et al. 2015 (Table 2, SST binary) report 87.5 % test
accuracy for a BiLSTM with 300-d GloVe vectors (fine-tuned) trained to convergence; the
1-direction LSTM there: 84.9 %.

Usage: ``python benchmarks/bench_sst2_budget.py [--budget 2] [--quick]`` (``--quick``: 1,000
phrases and a 0.02-minute budget each, to check that it runs). One JSON line.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from _common import data_dir, emit, environment, quiet_engine, row
from striate.apps import sentiment as sa
from striate.data.sequence_batches import SequenceBatches, pad_sequences
from striate.data.sources._split import limit_index
from striate.data.sources.sentiment import load_sentiment
from striate.data.words import WordVocab, tokenize
from striate.engine.device import Precision

# the plain script's own settings, written as a user would (striate's defaults are the same)
PLAIN = {"lr": 2e-3, "batch_size": 64}
MODEL = {"embedding": 128, "hidden": 256, "layers": 1, "dropout": 0.3, "pooling": "max"}
PAPER = {
    True: "Tai et al. 2015 BiLSTM, 300-d GloVe vectors, trained to convergence: 87.5 % "
    "(a different setup)",
    False: "Tai et al. 2015 LSTM, 300-d GloVe vectors, trained to convergence: 84.9 % "
    "(a different setup)",
}


class PlainClassifier(nn.Module):
    """Embedding -> (Bi)LSTM over packed sequences -> pooling over the words -> linear."""

    def __init__(self, vocab: int, classes: int, bidirectional: bool, pad_id: int) -> None:
        super().__init__()
        self.pooling = MODEL["pooling"]
        self.embed = nn.Embedding(vocab, MODEL["embedding"], padding_idx=pad_id)
        self.rnn = nn.LSTM(
            MODEL["embedding"], MODEL["hidden"], MODEL["layers"], batch_first=True,
            bidirectional=bidirectional,
        )  # fmt: skip
        self.drop = nn.Dropout(MODEL["dropout"])
        self.head = nn.Linear(MODEL["hidden"] * (2 if bidirectional else 1), classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(
            self.drop(self.embed(ids)), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, (h, _) = self.rnn(packed)
        if self.pooling == "max":
            padded, _ = pad_packed_sequence(out, batch_first=True, padding_value=float("-inf"))
            summary = padded.amax(1)
        else:  # last: forward after the last word (and backward after the first)
            summary = torch.cat([h[-2], h[-1]], 1) if self.rnn.bidirectional else h[-1]
        return self.head(self.drop(summary))


def _collate(items: list[tuple[list[int], int]]) -> tuple[torch.Tensor, ...]:
    ids, lengths = pad_sequences([i for i, _ in items])
    return ids, lengths, torch.tensor([label for _, label in items])


def prepare(limit: int | None, seed: int) -> dict:
    """striate's preprocessing of SST-2, as ``sentiment.train`` does it (the same texts, the
    same vocabulary), for the plain script."""
    config = sa.SentimentTrainConfig()
    train = load_sentiment("sst2", "train", data_dir())
    chosen = limit_index(len(train), limit, seed)
    if chosen is not None:
        train = train.subset(chosen)
    test = load_sentiment("sst2", "test", data_dir())
    tokens = [tokenize(t, config.lowercase)[: config.max_length] for t in train.texts]
    keep = [i for i, t in enumerate(tokens) if t]
    vocab = WordVocab.build((tokens[i] for i in keep), min_freq=config.min_freq)
    items = [(vocab.encode(tokens[i]), int(train.labels[i])) for i in keep]
    test_ids = sa.encode_texts(test.texts, vocab, config.lowercase, config.max_length)
    return {
        "vocab": vocab,
        "classes": len(train.classes),
        "items": items,
        "test_ids": test_ids,
        "test_labels": test.labels,
    }


@torch.no_grad()
def accuracy(model: PlainClassifier, ids: list[list[int]], labels: torch.Tensor) -> float:
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    predicted = torch.empty(len(ids), dtype=torch.int64)
    for begin in range(0, len(order), 256):
        chunk = order[begin : begin + 256]
        batch, lengths = pad_sequences([ids[i] for i in chunk])
        predicted[chunk] = model(batch, lengths).argmax(-1)
    return float((predicted == labels).float().mean())


def plain_run(
    data: dict, minutes: float, bidirectional: bool, seed: int, max_steps: int | None = None
) -> dict:
    """The plain script: the same batches as striate's run, for ``minutes`` of its loop (or
    ``max_steps`` steps, untimed and unscored: the warm-up)."""
    torch.manual_seed(seed)
    vocab = data["vocab"]
    model = PlainClassifier(len(vocab), data["classes"], bidirectional, vocab.pad_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=PLAIN["lr"])
    items = data["items"]
    batches = SequenceBatches(
        items, [len(i) for i, _ in items], _collate, PLAIN["batch_size"],
        seed=seed, device="cpu",
    )  # fmt: skip
    steps, epoch, start = 0, 0, time.perf_counter()
    model.train()

    def over() -> bool:
        return steps >= max_steps if max_steps else time.perf_counter() - start >= minutes * 60

    while not over():
        for ids, lengths, labels in batches.epoch(epoch):
            loss = F.cross_entropy(model(ids, lengths), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            if over():
                break
        epoch += 1
    seconds = time.perf_counter() - start
    if max_steps:
        return {}
    return {
        "test_accuracy": accuracy(model, data["test_ids"], data["test_labels"]),
        "steps": steps,
        "epochs": steps / len(batches),
        "train_s": seconds,
    }


def striate_run(minutes: float, limit: int | None, bidirectional: bool, seed: int) -> dict:
    """striate's ``train sentiment`` recipe with a ``minutes`` time budget."""
    with tempfile.TemporaryDirectory() as runs:
        config = sa.SentimentTrainConfig(
            data="sst2", data_dir=str(data_dir()), limit=limit, bidirectional=bidirectional,
            **{k: MODEL[k] for k in ("embedding", "hidden", "layers", "dropout", "pooling")},
            runs_dir=runs, name="budget",
            engine=quiet_engine(sa.sentiment_engine_defaults(), time_budget=minutes, seed=seed),
        )  # fmt: skip
        start = time.perf_counter()
        result = sa.train(config)
        seconds = time.perf_counter() - start
        test = sa.evaluate(result.run, "test", device="cpu", write=False)
    return {
        "test_accuracy": test["accuracy"],
        "steps": result.fit.step,
        "wall_s": seconds,  # data preparation, training and the final validation
        "vocab": len(result.vocab),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=2.0, help="minutes of training each")
    parser.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="0.02 minutes, 1,000 phrases")
    args = parser.parse_args()
    minutes, limit = (0.02, 1000) if args.quick else (args.budget, None)
    wall = time.perf_counter()

    data = prepare(limit, args.seed)
    plain_run(data, minutes, args.bidirectional, args.seed, max_steps=5)  # warm the kernels
    plain = plain_run(data, minutes, args.bidirectional, args.seed)
    ours = striate_run(minutes, limit, args.bidirectional, args.seed)

    precision = Precision(sa.sentiment_engine_defaults().precision, torch.device("cpu")).name
    kind = "BiLSTM" if args.bidirectional else "LSTM"
    size = f"embedding {MODEL['embedding']}, hidden {MODEL['hidden']}, {MODEL['pooling']} pooling"
    rows = [
        row(
            f"SST-2 test accuracy after {minutes:g} min of training, {kind} ({size}) from "
            f"scratch, default `train sentiment` recipe ({ours['steps']} steps)",
            100 * ours["test_accuracy"],
            unit="%",
            contender=f"plain PyTorch script of the same {kind} (nn.LSTM, Adam constant, fp32, "
            f"same batches), {minutes:g} min ({plain['steps']} steps): "
            f"{100 * plain['test_accuracy']:.1f} %",
            ratio=ours["test_accuracy"] / plain["test_accuracy"],
            precision=precision if precision == "fp32" else f"{precision} (plain: fp32)",
            reference=PAPER[args.bidirectional],
        )
    ]
    emit(
        {
            "bench": "sst2_budget",
            "quick": args.quick,
            **environment(),
            "budget_min": minutes,
            "train_texts": len(data["items"]),
            "model": {**MODEL, "cell": "lstm", "bidirectional": args.bidirectional},
            "striate_recipe": "train sentiment defaults (Adam 2e-3, cosine over the budget, "
            f"clip 5, {precision}, batch 64)",
            "plain_recipe": "Adam 2e-3 constant, no clipping, fp32, the same batches",
            "striate": ours,
            "plain": plain,
            "paper": PAPER[args.bidirectional],
            "rows": rows,
            "wall_s": time.perf_counter() - wall,
        }
    )


if __name__ == "__main__":
    main()
