"""Char-LSTM on tiny-shakespeare for equal training time: striate's default recipe vs a plain
PyTorch script, in one process (CPU).

Task: tiny-shakespeare, the last 10 % held out (``split_text(text, 0.1)``), a 2x512 LSTM.
Validation for both: mean cross-entropy (nats/char) over the whole held-out text read as 64
contiguous streams of 100-character windows with the state carried, in fp32.

* ``striate``: ``striate train text --data shakespeare --val-fraction 0.1 --time-budget M``,
  i.e. the default ``train text`` recipe (``TextTrainConfig`` and ``text_engine_defaults``)
  with ``EngineConfig.time_budget = M``. The schedule spans the budget, so every budget
  M in ``--budgets`` is its own run.
* ``plain``: the script a PyTorch user writes: ``nn.Embedding(65, 64)`` -> ``nn.LSTM(64, 512,
  2)`` -> ``nn.Linear``, Adam 2e-3 constant, gradient norm clipped at 5, fp32, batch 64 x 100
  characters as contiguous streams with the state carried (detached) between windows. One run
  for the longest budget, validated when its training clock passes each budget (validation
  time is not counted as training time).

Prints one JSON line: both validation losses at each budget (default 1, 5 and 10 minutes;
about 35 minutes in all). ``--quick``: a 0.05-minute budget at 2x128 for both, to check that
it runs.
``--max-steps N`` replaces the budgets by N steps for both, to compare recipes at equal steps
on a loaded machine (a quiet 2-core machine did about 630 striate steps in 5 minutes at 2x512
in bf16). striate then trains ceil(N / steps per epoch) epochs, stopped at step N: its cosine
spans those epochs, so it ends a little above 0 (pessimistic for striate).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from _common import data_dir, emit, environment, row
from striate.apps import text_generation as tg
from striate.data.sources.text import load_text, split_text
from striate.data.text_batches import TokenStream
from striate.data.vocab import CharVocab
from striate.engine.loop import EngineConfig

VAL_FRACTION, STREAMS, WINDOW = 0.1, 64, 100
PLAIN = {"embedding": 64, "hidden": 512, "layers": 2, "lr": 2e-3, "clip": 5.0, "batch": 64}
TARGET_5_MIN = 1.50  # issue 9: striate's recipe within 5 minutes
QUICK_BUDGET, QUICK_HIDDEN = 0.05, 128  # --quick: a smoke run of both contenders


class PlainCharLSTM(nn.Module):
    def __init__(self, vocab: int, hidden: int = PLAIN["hidden"]) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, PLAIN["embedding"])
        self.rnn = nn.LSTM(PLAIN["embedding"], hidden, PLAIN["layers"], batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        out, state = self.rnn(self.embed(x), state)
        return self.head(out), state


@torch.no_grad()
def validation_loss(model: nn.Module, val_ids: torch.Tensor) -> float:
    """Nats/char over the held-out text: 64 carried-state streams, fp32."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    for x, y in TokenStream(val_ids, STREAMS, WINDOW, random_offset=False).epoch(0):
        logits, state = model(x, state)
        total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
        count += y.numel()
    model.train(was_training)
    return total / count


def plain_run(
    train_ids: torch.Tensor, val_ids: torch.Tensor, vocab: int, budgets: list[float],
    max_steps: int | None, hidden: int = PLAIN["hidden"],
) -> dict[str, dict[str, float]]:  # fmt: skip
    """The plain script, validated as its training clock passes each budget (minutes)."""
    torch.manual_seed(0)
    model = PlainCharLSTM(vocab, hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=PLAIN["lr"])
    stream = TokenStream(train_ids, PLAIN["batch"], WINDOW, seed=0)
    points = sorted(budgets)
    results: dict[str, dict[str, float]] = {}
    trained, steps, epoch, state = 0.0, 0, 0, None
    while points:
        for x, y in stream.epoch(epoch):
            start = time.perf_counter()
            logits, state = model(x, state)
            state = tuple(s.detach() for s in state)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), PLAIN["clip"])
            optimizer.step()
            trained += time.perf_counter() - start
            steps += 1
            while points and (
                steps >= (max_steps or 0) if max_steps else trained >= points[0] * 60
            ):
                key = f"{points.pop(0):g}"
                results[key] = {
                    "val_loss": validation_loss(model, val_ids),
                    "steps": steps,
                    "train_s": trained,
                }
            if not points:
                break
        epoch, state = epoch + 1, None
    return results


def striate_run(
    budget: float, max_steps: int | None, runs: str, steps_per_epoch: int, hidden: int | None
) -> dict[str, float]:
    """striate's default ``train text`` recipe for ``budget`` minutes (or ``max_steps``); its
    width ``hidden`` when given (``--quick``)."""
    defaults = tg.text_engine_defaults()
    changes: dict[str, object] = {"device": "cpu", "progress": False, "log_every": 10**9}
    if max_steps:  # enough epochs for N steps (one epoch would end the run early)
        changes["max_steps"] = max_steps
        changes["epochs"] = max(defaults.epochs, -(-max_steps // steps_per_epoch))
    else:
        changes["time_budget"] = budget
    engine = dataclasses.replace(defaults, **changes)
    config = tg.TextTrainConfig(
        data="shakespeare", data_dir=str(data_dir()), val_fraction=VAL_FRACTION, sample_every=0,
        name=f"budget-{budget:g}", runs_dir=runs, engine=engine,
        **({"hidden": hidden} if hidden else {}),
    )  # fmt: skip
    start = time.perf_counter()
    result = tg.train(config)
    wall = time.perf_counter() - start
    model, vocab, _ = tg.load_text_model(result.run, runs)
    text = load_text("shakespeare", data_dir(), download=False)
    _, val_text = split_text(text, VAL_FRACTION)
    return {
        "val_loss": validation_loss(model, vocab.encode(val_text)),
        "steps": result.fit.step,
        "wall_s": wall,  # training and the engine's own validation passes
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", default="1,5,10", help="minutes, comma-separated")
    parser.add_argument("--quick", action="store_true", help="one 0.05-minute budget, 2x128")
    parser.add_argument("--max-steps", type=int, help="steps instead of a time budget")
    args = parser.parse_args()
    budgets = [QUICK_BUDGET] if args.quick else [float(b) for b in args.budgets.split(",")]
    hidden = QUICK_HIDDEN if args.quick else None
    has_budget = "time_budget" in {f.name for f in dataclasses.fields(EngineConfig)}
    max_steps = args.max_steps
    if not has_budget and not max_steps:
        if not args.quick:
            parser.error("this engine has no time_budget; pass --max-steps N to try the script")
        max_steps = 3  # a smoke run on a branch without the budget
    wall = time.perf_counter()

    text = load_text("shakespeare", data_dir(), download=False)
    train_text, val_text = split_text(text, VAL_FRACTION)
    vocab = CharVocab.from_text(text)
    train_ids, val_ids = vocab.encode(train_text), vocab.encode(val_text)
    plain = plain_run(train_ids, val_ids, len(vocab), budgets, max_steps, hidden or PLAIN["hidden"])
    with tempfile.TemporaryDirectory() as runs:
        per_epoch = len(TokenStream(train_ids, PLAIN["batch"], WINDOW))
        ours = {f"{b:g}": striate_run(b, max_steps, runs, per_epoch, hidden) for b in budgets}

    recipe = tg.text_engine_defaults()
    config = tg.TextTrainConfig(**({"hidden": hidden} if hidden else {}))
    precision = recipe.precision
    if precision == "auto":
        from striate.engine.device import Precision

        precision = Precision("auto", torch.device("cpu")).name

    def length(key: str) -> str:
        return f"{max_steps} steps" if max_steps else f"{key} min"

    rows = [
        row(
            f"tiny-shakespeare 90/10, {config.layers}x{config.hidden} LSTM, default "
            f"`train text` recipe, {length(key)}: validation loss",
            ours[key]["val_loss"],
            unit="nats/char",
            contender=f"plain PyTorch script (fp32, Adam 2e-3 constant), {length(key)}: "
            f"{plain[key]['val_loss']:.3f}",
            ratio=plain[key]["val_loss"] / ours[key]["val_loss"],
            precision=precision,
        )
        for key in ours
    ]
    emit(
        {
            "bench": "char_budget",
            "quick": args.quick,
            **environment(),
            "budget": "max_steps" if max_steps else "minutes",
            "budgets": budgets,
            "striate_recipe": {
                "engine": dataclasses.asdict(recipe),
                "cell": config.cell,
                "layers": config.layers,
                "hidden": config.hidden,
                "embedding": config.embedding,
                "tbptt": config.tbptt,
                "precision_resolved": precision,
            },
            "plain_recipe": {**PLAIN, "hidden": hidden or PLAIN["hidden"]},
            "striate": ours,
            "plain": plain,
            "target_5_min": TARGET_5_MIN,
            "rows": rows,
            "wall_s": time.perf_counter() - wall,
        }
    )


if __name__ == "__main__":
    main()
