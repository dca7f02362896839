"""Recurrent training and sampling speed (CPU): striate's char-RNN path vs plain torch.nn.

(a) 2-layer 512-unit char LSTM (vocab 65, one-hot), batch 64 x 100 steps, forward + backward +
Adam: ``CharRNN`` through ``TBPTTStep(100, 100)`` (the objects ``striate train text`` uses)
vs a hand-written loop over ``torch.nn.LSTM`` + ``Linear``; (b) the lecture GRU (impl fast)
vs ``torch.nn.GRU``, and the reference impls for the record; (c) bf16 autocast: striate's
LSTM vs the same hand-written loop under ``torch.autocast(bf16)`` (and validation loss after
an equal short tiny-shakespeare training, unless ``--quick``); (d) TBPTT(k1, 100) cost per
token relative to TBPTT(100, 100), as measured (no formula beside it: a "minimum" derived
from an assumed backward = 2 x forward lay above the measured cost, so it was none); (e)
batch-1 sampling, characters/s: ``generate`` (T 0.8, top-k 40), raw ``CharRNN.step``,
``torch.nn.LSTM`` one step at a time, and the same with bf16 weights.
Timed as seconds per token over whole calls, warmed up, alternating rounds, medians.
One JSON line. ``--quick``: a smoke run of every contender at 2x64 units, batch 16, one step
per call (the figures are not comparable with the full run's).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from _common import (
    alternating_rounds,
    data_dir,
    emit,
    environment,
    matmul_gflops,
    median,
    row,
)
from striate.apps.text_generation import generate
from striate.data.sources.text import load_text, split_text
from striate.data.text_batches import TokenStream
from striate.data.vocab import CharVocab
from striate.engine.tbptt import TBPTTStep
from striate.models.char_rnn import CharRNN

VOCAB, HIDDEN, LAYERS, BATCH, SEQ, LR = 65, 512, 2, 64, 100, 2e-3
TARGETS = {"lstm_ratio": 0.97, "gru_ratio": 0.95, "sample_chars_per_s": 3000.0}
QUICK_HIDDEN, QUICK_BATCH = 64, 16  # --quick: every contender, at a size that runs in seconds
Runner = Callable[[], float]  # one timed call -> seconds per token


def use_sizes(hidden: int, batch: int) -> None:
    """Set the model width and batch every runner reads (``--quick`` shrinks them)."""
    global HIDDEN, BATCH
    HIDDEN, BATCH = hidden, batch


def corpus() -> tuple[CharVocab, torch.Tensor, torch.Tensor]:
    text = load_text("shakespeare", data_dir(), download=False)
    train_text, val_text = split_text(text, 0.05)
    vocab = CharVocab.from_text(text)
    return vocab, vocab.encode(train_text), vocab.encode(val_text)


def forever(stream: TokenStream) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    epoch = 0
    while True:
        yield from stream.epoch(epoch)
        epoch += 1


def lstm_flops_per_token(vocab: int, hidden: int, layers: int) -> float:
    """Matmul FLOPs of one training token: 2*4H*(I+H) per layer + the head, x3 (fwd+bwd)."""
    forward = sum(2 * 4 * hidden * ((vocab if k == 0 else hidden) + hidden) for k in range(layers))
    return 3 * (forward + 2 * hidden * vocab)


def striate_runner(
    ids: torch.Tensor, cell: str, impl: str, steps: int, k1: int = SEQ, k2: int = SEQ,
    bf16: bool = False,
) -> Runner:  # fmt: skip
    """``steps * SEQ / k1`` updates of CharRNN + TBPTTStep(k1, k2) + Adam per call."""
    torch.manual_seed(0)
    model = CharRNN(VOCAB, cell, HIDDEN, LAYERS, impl=impl)
    opt, step = torch.optim.Adam(model.parameters(), LR), TBPTTStep(k1, k2)
    batches = forever(TokenStream(ids, BATCH, k1, seed=0))
    updates = steps * SEQ // k1

    def run() -> float:
        start = time.perf_counter()
        for _ in range(updates):
            batch = next(batches)
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                out = step.train(model, batch)
            opt.zero_grad(set_to_none=True)
            if out.backward is None:
                out.loss.backward()
            else:
                out.backward(lambda loss: loss)
            opt.step()
        return (time.perf_counter() - start) / (updates * BATCH * k1)

    run.model = model  # type: ignore[attr-defined]  (for the validation-loss experiment)
    return run


def torch_runner(
    ids: torch.Tensor, kind: type[nn.Module], steps: int, bf16: bool = False
) -> Runner:
    """The minimal loop: one-hot -> torch.nn.LSTM/GRU -> Linear -> cross-entropy, Adam
    (the forward under ``torch.autocast(bf16)`` when ``bf16``)."""
    torch.manual_seed(0)
    rnn, head = kind(VOCAB, HIDDEN, LAYERS, batch_first=True), nn.Linear(HIDDEN, VOCAB)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], LR)
    batches = forever(TokenStream(ids, BATCH, SEQ, seed=0))
    state: list = [None]

    def run() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            x, y = next(batches)
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                out, hidden = rnn(F.one_hot(x, VOCAB).float(), state[0])
                logits = head(out)
            state[0] = (
                tuple(h.detach() for h in hidden)
                if isinstance(hidden, tuple)
                else (hidden.detach())
            )
            loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return (time.perf_counter() - start) / (steps * BATCH * SEQ)

    return run


def val_loss_after_training(
    train_ids: torch.Tensor, val_ids: torch.Tensor, steps: int, bf16: bool
) -> float:
    """Validation nats/char (fp32 eval) after ``steps`` equal updates in fp32 or bf16."""
    run = striate_runner(train_ids, "lstm", "fast", steps, bf16=bf16)
    run()
    trained: CharRNN = run.model  # type: ignore[attr-defined]
    step, total, count = TBPTTStep(SEQ), 0.0, 0.0
    trained.eval()
    with torch.no_grad():
        for batch in TokenStream(val_ids, 16, SEQ, random_offset=False).epoch(0):
            sums = step.evaluate(trained, batch)
            total, count = total + float(sums["loss"]), count + float(sums["count"])
    return total / count


def sampling(vocab: CharVocab, chars: int) -> dict[str, float]:
    """Characters per second at batch 1 after a 100-character prime-free warm-up."""
    torch.manual_seed(0)
    model = CharRNN(VOCAB, "lstm", HIDDEN, LAYERS).eval()
    lstm = nn.LSTM(VOCAB, HIDDEN, LAYERS, batch_first=True).eval()
    head = nn.Linear(HIDDEN, VOCAB)
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)

    def via_generate(m: CharRNN) -> Callable[[int], None]:
        return lambda n: sum(1 for _ in generate(m, vocab, "\n", 0.8, 40, n, seed=0)) and None

    def via_step(m: CharRNN) -> Callable[[int], None]:
        def go(n: int) -> None:
            token, state = torch.zeros(1, dtype=torch.long), None
            for _ in range(n):
                logits, state = m.step(token, state)
                token = logits.argmax(-1)

        return go

    def via_torch(n: int) -> None:
        token, state = torch.zeros(1, dtype=torch.long), None
        with torch.inference_mode():
            for _ in range(n):
                out, state = lstm(F.one_hot(token, VOCAB).float()[:, None], state)
                token = head(out[:, 0]).argmax(-1)

    ways = {
        "generate": via_generate(model),
        "charrnn_step": via_step(model),
        "torch_lstm_step": via_torch,
        "generate_bf16_weights": via_generate(bf16_model),
        "charrnn_step_bf16_weights": via_step(bf16_model),
    }
    runners = {name: (lambda fn=fn: time_per_char(fn, chars)) for name, fn in ways.items()}
    times = alternating_rounds(runners, rounds=5)
    return {name: 1.0 / median(t) for name, t in times.items()}


def time_per_char(fn: Callable[[int], None], chars: int) -> float:
    """Seconds per character of ``fn(chars)``, after 50 untimed characters: each round starts
    right after another contender has had the memory bus and caches to itself."""
    fn(50)
    start = time.perf_counter()
    fn(chars)
    return (time.perf_counter() - start) / chars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run at 2x64 units")
    parser.add_argument("--steps", type=int, default=2, help="100-token updates per timed call")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per contender")
    args = parser.parse_args()
    steps, rounds = (1, 1) if args.quick else (args.steps, args.rounds)
    if args.quick:
        use_sizes(QUICK_HIDDEN, QUICK_BATCH)
    wall = time.perf_counter()
    torch.manual_seed(0)
    peak = matmul_gflops(torch.float32, 1024 if args.quick else 4096)
    vocab, train_ids, val_ids = corpus()
    assert len(vocab) == VOCAB, len(vocab)
    flops = lstm_flops_per_token(VOCAB, HIDDEN, LAYERS)

    lstm = alternating_rounds(
        {
            "striate_lstm": striate_runner(train_ids, "lstm", "fast", steps),
            "torch_lstm": torch_runner(train_ids, nn.LSTM, steps),
            "striate_lstm_bf16": striate_runner(train_ids, "lstm", "fast", steps, bf16=True),
            "torch_lstm_bf16": torch_runner(train_ids, nn.LSTM, steps, bf16=True),
            "tbptt_50_100": striate_runner(train_ids, "lstm", "fast", steps, 50, 100),
            "tbptt_25_100": striate_runner(train_ids, "lstm", "fast", steps, 25, 100),
        },
        rounds,
    )
    gru = alternating_rounds(
        {
            "striate_gru": striate_runner(train_ids, "gru", "fast", steps),
            "torch_gru": torch_runner(train_ids, nn.GRU, steps),
        },
        rounds,
    )
    ref = alternating_rounds(
        {
            "striate_lstm_reference": striate_runner(train_ids, "lstm", "reference", 1),
            "striate_gru_reference": striate_runner(train_ids, "gru", "reference", 1),
        },
        1 if args.quick else 2,
    )
    sec = {name: median(v) for d in (lstm, gru, ref) for name, v in d.items()}
    tps = {name: 1.0 / s for name, s in sec.items()}
    loop_gflops = tps["torch_lstm"] * flops / 1e9
    measured = {
        "100_100": 1.0,
        "50_100": sec["tbptt_50_100"] / sec["striate_lstm"],
        "25_100": sec["tbptt_25_100"] / sec["striate_lstm"],
    }
    bf16_val: dict[str, object] = {"measured": False}
    if not args.quick:
        train_steps = 25
        fp32_loss = val_loss_after_training(train_ids, val_ids, train_steps, bf16=False)
        bf16_loss = val_loss_after_training(train_ids, val_ids, train_steps, bf16=True)
        bf16_val = {"train_steps": train_steps, "fp32": fp32_loss, "bf16": bf16_loss}
    chars = sampling(vocab, 200 if args.quick else 600)
    ratios = {
        "lstm": tps["striate_lstm"] / tps["torch_lstm"],
        "lstm_bf16": tps["striate_lstm_bf16"] / tps["torch_lstm_bf16"],
        "gru": tps["striate_gru"] / tps["torch_gru"],
        "lstm_reference": tps["striate_lstm_reference"] / tps["torch_lstm"],
        "gru_reference": tps["striate_gru_reference"] / tps["torch_gru"],
    }
    shape = f"{LAYERS}x{HIDDEN} LSTM, batch {BATCH} x {SEQ}, one-hot, Adam"
    rows = [
        row(
            f"char-LSTM training ({shape}), CharRNN + TBPTTStep",
            tps["striate_lstm"],
            unit="tokens/s",
            contender=f"torch.nn.LSTM loop, fp32: {tps['torch_lstm']:,.0f} tokens/s",
            ratio=ratios["lstm"],
        ),
        row(
            f"char-LSTM training ({shape}), CharRNN + TBPTTStep",
            tps["striate_lstm_bf16"],
            unit="tokens/s",
            contender=f"torch.nn.LSTM loop, autocast bf16: {tps['torch_lstm_bf16']:,.0f} tokens/s",
            ratio=ratios["lstm_bf16"],
            precision="bf16",
        ),
        row(
            f"lecture GRU training ({LAYERS}x{HIDDEN}, same loop), impl fast",
            tps["striate_gru"],
            unit="tokens/s",
            contender=f"torch.nn.GRU loop, fp32: {tps['torch_gru']:,.0f} tokens/s",
            ratio=ratios["gru"],
        ),
        *(
            row(
                f"TBPTT({k.replace('_', ',')}) cost per token, relative to TBPTT(100,100)",
                measured[k],
                unit="x",
            )
            for k in ("50_100", "25_100")
        ),
        row(
            f"sampling, {LAYERS}x{HIDDEN} LSTM, batch 1, `generate` (T 0.8, top-k 40)",
            chars["generate"],
            unit="chars/s",
            contender=f"stepping torch.nn.LSTM: {chars['torch_lstm_step']:,.0f} chars/s",
            ratio=chars["generate"] / chars["torch_lstm_step"],
        ),
    ]
    emit(
        {
            "bench": "rnn",
            "quick": args.quick,
            "config": {
                "hidden": HIDDEN,
                "batch": BATCH,
                "seq": SEQ,
                "steps_per_call": steps,
                "rounds": rounds,
            },
            "tokens_per_s": tps,
            "ratio_vs_torch": ratios,
            "targets_met": {
                "lstm_ge_0.97": ratios["lstm"] >= TARGETS["lstm_ratio"],
                "gru_ge_0.95": ratios["gru"] >= TARGETS["gru_ratio"],
                "sample_ge_3000": chars["generate"] >= TARGETS["sample_chars_per_s"],
            },
            "loop_efficiency": {
                "train_flops_per_token": flops,
                "gflops": loop_gflops,
                "fp32_peak_gflops": peak,
                "of_fp32_peak": loop_gflops / peak,
            },
            "bf16_autocast": {
                "speedup_over_fp32": tps["striate_lstm_bf16"] / tps["striate_lstm"],
                "val_loss_nats": bf16_val,
            },
            "tbptt_cost_per_token_vs_100_100": measured,
            "sampling_chars_per_s": chars,
            "wall_s": time.perf_counter() - wall,
            "env": environment(),
            "rows": rows,
        }
    )


if __name__ == "__main__":
    main()
