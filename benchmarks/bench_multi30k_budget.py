"""Multi30k de→en cased sacreBLEU after the same minutes of training: striate's `train
translate` recipe vs a plain PyTorch script of the same attentional encoder-decoder, in one
process (CPU).

Task: the 29,000 Multi30k training pairs, German to English, with striate's preprocessing
for both (cased words and punctuation, the default; words seen at least twice, training pairs
of at most 50 tokens; built once and shared); scored on the 1,000 sentences of
``test_2016_flickr`` by sacreBLEU's default, cased, against the raw references, with its
signature (``striate.engine.metrics_text.translation_bleu``; the case-insensitive figure is
in the JSON line too, labelled).

* ``striate``: ``striate train translate --data multi30k --src de --tgt en --time-budget M``,
  i.e. ``TranslateTrainConfig`` and ``translate_engine_defaults()``: the lecture's GRU,
  bidirectional encoder, Bahdanau attention, embedding and hidden 256, dropout 0.3, label
  smoothing 0.1, Adam 2e-3 with 100 warm-up steps and a cosine schedule spanning the budget,
  gradient norm clipped at 1, fp32, batch 64; its greedy BLEU on 200 validation sentences
  after each epoch is part of the recipe and of the budget. Scored with greedy decoding and,
  labelled, with beam 5 (what ``striate eval-translate`` does by default).
* ``plain``: the script a PyTorch user writes for that model: ``nn.GRU`` bidirectional
  encoder over packed sequences, bridge ``tanh(W [h_fwd; h_bwd])``, additive attention
  ``vᵀ tanh(W_q s + W_k h)``, an ``nn.GRUCell`` decoder fed ``[e(y); c]``, output
  ``W_o tanh(W_c [s; c; e(y)])``; the same sizes and dropout. torch's GRU places the reset
  gate after the recurrent product (striate's lecture GRU before it); the same parameter
  count. Adam 2e-3 constant, cross-entropy without label smoothing, gradient norm clipped at
  1, fp32, fed the very same batches (striate's ``SequenceBatches``, same seed) for the same
  wall-clock minutes of its training loop; greedy decoding with the same rule (pad, bos and
  unk never produced, at most 1.5 x the source length + 10 tokens).

Both are timed from their first step, one after the other (plain first, after 5 untimed
warm-up steps of a throwaway plain model, so that neither pays the process's first calls),
on a machine that may be shared: the JSON line gives the steps each reached.

No published figure is set beside it: none for this model at this budget was found.

Usage: ``python benchmarks/bench_multi30k_budget.py [--budget 10] [--quick]``
(``--quick``: 500 training pairs, a 0.02-minute budget each, 20 validation and 20 test
sentences, to check that it runs). One JSON line.
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
from striate.apps import translation as mt
from striate.data.sequence_batches import SequenceBatches, pad_sequences
from striate.data.sources.parallel import load_parallel
from striate.data.words import WordVocab, detokenize, tokenize
from striate.engine.metrics_text import translation_bleu

SRC, TGT, TEST = "de", "en", "test_2016_flickr"
BEAM = 5


class PlainSeq2Seq(nn.Module):
    """Bidirectional GRU encoder, additive attention, GRU-cell decoder (Bahdanau et al.)."""

    def __init__(
        self, src_vocab: int, tgt_vocab: int, pad_id: int, config: mt.TranslateTrainConfig
    ):
        super().__init__()
        E, H = config.embedding, config.hidden
        self.src_embed = nn.Embedding(src_vocab, E, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, E, padding_idx=pad_id)
        self.encoder = nn.GRU(E, H, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * H, H)
        self.attn_q = nn.Linear(H, H, bias=False)
        self.attn_k = nn.Linear(2 * H, H)
        self.attn_v = nn.Linear(H, 1, bias=False)
        self.decoder = nn.GRUCell(E + 2 * H, H)
        self.combine = nn.Linear(H + 2 * H + E, H)
        self.out = nn.Linear(H, tgt_vocab)
        self.drop = nn.Dropout(config.dropout)

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        embedded = self.drop(self.src_embed(src))
        packed = pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, h = self.encoder(packed)
        keys, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        mask = torch.arange(src.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
        s = torch.tanh(self.bridge(torch.cat([h[0], h[1]], -1)))
        return keys, self.attn_k(keys), mask, s

    def step(self, emb: torch.Tensor, s: torch.Tensor, memory: tuple) -> tuple[torch.Tensor, ...]:
        keys, proj, mask = memory
        scores = self.attn_v(torch.tanh(self.attn_q(s).unsqueeze(1) + proj)).squeeze(-1)
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)
        return self.decoder(torch.cat([emb, context], -1), s), context

    def logits(self, s: torch.Tensor, context: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(torch.tanh(self.combine(torch.cat([s, context, emb], -1)))))

    def forward(
        self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor
    ) -> torch.Tensor:
        keys, proj, mask, s = self.encode(src, lengths)
        embedded = self.drop(self.tgt_embed(tgt_in))
        states, contexts = [], []
        for t in range(tgt_in.shape[1]):
            s, context = self.step(embedded[:, t], s, (keys, proj, mask))
            states.append(s)
            contexts.append(context)
        return self.logits(torch.stack(states, 1), torch.stack(contexts, 1), embedded)

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, lengths: torch.Tensor, vocab: WordVocab) -> list[list[int]]:
        keys, proj, mask, s = self.encode(src, lengths)
        token = torch.full((len(src),), vocab.bos_id)
        done = torch.zeros(len(src), dtype=torch.bool)
        out: list[torch.Tensor] = []
        for _ in range(min(int(1.5 * int(lengths.max())) + 10, 250)):
            emb = self.tgt_embed(token)
            s, context = self.step(emb, s, (keys, proj, mask))
            logits = self.logits(s, context, emb)
            logits[:, [vocab.pad_id, vocab.bos_id, vocab.unk_id]] = float("-inf")
            token = logits.argmax(-1)
            out.append(token)
            done |= token == vocab.eos_id
            if bool(done.all()):
                break
        return torch.stack(out, 1).tolist()


def _collate(items: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, ...]:
    src, lengths = pad_sequences([s for s, _ in items])
    tgt, _ = pad_sequences([t for _, t in items])
    return src, lengths, tgt


def prepare(config: mt.TranslateTrainConfig) -> dict:
    """striate's preprocessing (as ``translation.train`` does it), for the plain script."""
    pairs = load_parallel("multi30k", "train", SRC, TGT, data_dir(), limit=config.limit)
    src_tokens = [tokenize(s, config.lowercase) for s in pairs.source]
    tgt_tokens = [tokenize(t, config.lowercase) for t in pairs.target]
    src_vocab = WordVocab.build(src_tokens, config.min_freq)
    tgt_vocab = WordVocab.build(tgt_tokens, config.min_freq)
    items = [
        (src_vocab.encode(s, eos=True), tgt_vocab.encode(t, bos=True, eos=True))
        for s, t in zip(src_tokens, tgt_tokens, strict=True)
        if s and t and len(s) <= config.max_length and len(t) <= config.max_length
    ]
    return {"src_vocab": src_vocab, "tgt_vocab": tgt_vocab, "items": items}


def plain_run(
    data: dict,
    config: mt.TranslateTrainConfig,
    minutes: float,
    test_limit: int | None,
    max_steps: int | None = None,
) -> dict:
    """The plain script on the same batches for ``minutes`` of its loop, then greedy BLEU
    (or ``max_steps`` steps, untimed and unscored: the warm-up)."""
    engine = config.engine
    torch.manual_seed(engine.seed)
    src_vocab, tgt_vocab, items = data["src_vocab"], data["tgt_vocab"], data["items"]
    pad = tgt_vocab.pad_id
    model = PlainSeq2Seq(len(src_vocab), len(tgt_vocab), pad, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=engine.lr)
    lengths = [len(s) + len(t) for s, t in items]
    batches = SequenceBatches(
        items, lengths, _collate, engine.batch_size, seed=engine.seed, device="cpu"
    )
    steps, epoch, start = 0, 0, time.perf_counter()
    model.train()

    def over() -> bool:
        return steps >= max_steps if max_steps else time.perf_counter() - start >= minutes * 60

    while not over():
        for src, src_lengths, tgt in batches.epoch(epoch):
            logits = model(src, src_lengths, tgt[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), ignore_index=pad)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), engine.clip_grad_norm)
            optimizer.step()
            steps += 1
            if over():
                break
        epoch += 1
    seconds = time.perf_counter() - start
    if max_steps:
        return {}

    model.eval()
    test = load_parallel("multi30k", TEST, SRC, TGT, data_dir(), limit=test_limit)
    prep = mt.Preprocessing(SRC, TGT, config.lowercase, config.max_length)
    ids = [prep.src_ids(src_vocab, s) for s in test.source]
    hyps = [""] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    start = time.perf_counter()
    for begin in range(0, len(order), mt.DECODE_BATCH):
        chunk = order[begin : begin + mt.DECODE_BATCH]
        src, src_lengths = pad_sequences([ids[i] for i in chunk], src_vocab.pad_id)
        for i, found in zip(chunk, model.greedy(src, src_lengths, tgt_vocab), strict=True):
            hyps[i] = detokenize(tgt_vocab.decode(found))
    translate_s = time.perf_counter() - start
    scores = translation_bleu(hyps, [[r] for r in test.target])
    return {
        "bleu_greedy": scores["bleu"],
        "bleu_greedy_lowercase": scores["bleu_lowercase"],
        "signature": scores["signature"],
        "steps": steps,
        "epochs": steps / len(batches),
        "train_s": seconds,
        "translate_s": translate_s,
        "example": {"source": test.source[0], "reference": test.target[0], "translation": hyps[0]},
    }


def striate_run(config: mt.TranslateTrainConfig, test_limit: int | None) -> dict:
    """striate's ``train translate`` recipe on its time budget, scored greedy and beam 5."""
    start = time.perf_counter()
    result = mt.train(config)
    seconds = time.perf_counter() - start
    scored = {}
    for beam in (1, BEAM):
        scored[beam] = mt.evaluate(
            result.run, TEST, beam=beam, limit=test_limit, device="cpu",
            runs_dir=config.runs_dir, write=False,
        )  # fmt: skip
    return {
        "bleu_greedy": scored[1]["bleu"],
        "bleu_greedy_lowercase": scored[1]["bleu_lowercase"],
        f"bleu_beam{BEAM}": scored[BEAM]["bleu"],
        f"bleu_beam{BEAM}_lowercase": scored[BEAM]["bleu_lowercase"],
        "signature": scored[1]["signature"],
        "steps": result.fit.step,
        "wall_s": seconds,  # data preparation, training, per-epoch validation
        "val_greedy_bleu_per_epoch": [r["greedy_bleu"] for r in result.val_bleu],
        "translate_s": scored[1]["translate_seconds"],
        "example": scored[1]["examples"][0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=10.0, help="minutes of training each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="0.02 minutes, 500 pairs")
    args = parser.parse_args()
    minutes, limit, test_limit = (0.02, 500, 20) if args.quick else (args.budget, None, None)
    wall = time.perf_counter()

    with tempfile.TemporaryDirectory() as runs:
        engine = quiet_engine(mt.translate_engine_defaults(), time_budget=minutes, seed=args.seed)
        config = mt.TranslateTrainConfig(
            data="multi30k", data_dir=str(data_dir()), src=SRC, tgt=TGT, limit=limit,
            runs_dir=runs, name="budget", engine=engine,
            **({"val_bleu_samples": test_limit} if test_limit else {}),
        )  # fmt: skip
        data = prepare(config)
        plain_run(data, config, minutes, test_limit, max_steps=5)  # warm the kernels
        plain = plain_run(data, config, minutes, test_limit)
        ours = striate_run(config, test_limit)

    model = (
        f"the lecture's {config.cell.upper()} + {config.attention} attention, "
        f"embedding {config.embedding}, hidden {config.hidden}"
    )
    test = f"{TEST}{f' (first {test_limit})' if test_limit else ''}"
    contender = (
        f"plain PyTorch script of the same model (nn.GRU, Adam constant, fp32, same batches), "
        f"{minutes:g} min ({plain['steps']} steps), greedy: {plain['bleu_greedy']:.1f}"
    )
    rows = [
        row(
            f"Multi30k de-en {test} cased sacreBLEU after {minutes:g} min of training, {model}, "
            f"default `train translate` recipe ({ours['steps']} steps), greedy",
            ours["bleu_greedy"],
            unit="BLEU",
            contender=contender,
            ratio=ours["bleu_greedy"] / plain["bleu_greedy"] if plain["bleu_greedy"] else None,
            reference=f"sacreBLEU {ours['signature']}",
        ),
        row(
            f"Multi30k de-en {test} cased sacreBLEU after {minutes:g} min of training, {model}, "
            f"default `train translate` recipe, beam {BEAM} (striate eval's default)",
            ours[f"bleu_beam{BEAM}"],
            unit="BLEU",
            contender=contender,
            reference=f"sacreBLEU {ours['signature']}",
        ),
    ]
    emit(
        {
            "bench": "multi30k_budget",
            "quick": args.quick,
            **environment(),
            "budget_min": minutes,
            "direction": f"{SRC}-{TGT}",
            "train_pairs": len(data["items"]),
            "striate_recipe": "train translate defaults (lecture GRU, Adam 2e-3, 100 warm-up "
            "steps, cosine over the budget, clip 1, label smoothing 0.1, fp32, batch 64)",
            "plain_recipe": "nn.GRU / nn.GRUCell, Adam 2e-3 constant, clip 1, no label "
            "smoothing, fp32, the same batches",
            "striate": ours,
            "plain": plain,
            "rows": rows,
            "wall_s": time.perf_counter() - wall,
        }
    )


if __name__ == "__main__":
    main()
