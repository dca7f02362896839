"""Multi30k English→German BLEU of a recurrent encoder-decoder after a fixed training budget.

The run is ``striate.apps.translation.train`` -- what ``striate train translate --data
multi30k --src en --tgt de ...`` does -- on the 29,000 training pairs (lower-cased, words
seen at least twice), for a fixed number of epochs on the CPU; then the 1,000 sentences of
``test_2016_flickr`` are translated with beam search (beam 5, length penalty 0.6) and scored
with sacreBLEU's default (cased, 13a) against the raw references; the model is trained on
lower-cased text, so the case-insensitive figure is in the line too, labelled. One JSON
line: test BLEU, greedy validation BLEU per epoch, training seconds and target tokens per
second. No published figure is set beside it: none with this model and budget was found.

Usage: ``python benchmarks/bench_translate.py [--epochs 2] [--cell gru_cudnn] [--attention
luong] [--hidden 256] [--embedding 256] [--batch-size 64] [--lr 2e-3] [--beam 5] [--seed 0]
[--quick]`` (``--quick``: 500 training pairs, 1 epoch, 20 validation and 20 test sentences,
to check that it runs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from _common import data_dir, emit, environment, quiet_engine, row
from striate.apps import translation as mt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--cell", default="gru_cudnn")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embedding", type=int, default=256)
    p.add_argument("--attention", default="luong", choices=["bahdanau", "luong", "none"])
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    epochs, limit, test_limit = (1, 500, 20) if args.quick else (args.epochs, None, None)

    with tempfile.TemporaryDirectory() as runs:
        config = mt.TranslateTrainConfig(
            data="multi30k",
            data_dir=str(data_dir()),
            src="en",
            tgt="de",
            limit=limit,
            cell=args.cell,
            layers=args.layers,
            hidden=args.hidden,
            embedding=args.embedding,
            attention=args.attention,
            bidirectional=args.bidirectional,
            dropout=args.dropout,
            val_bleu_samples=test_limit or 200,
            runs_dir=runs,
            name="bench",
            engine=quiet_engine(
                mt.translate_engine_defaults(),
                epochs=epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
                device=args.device,
                log_every=50,
            ),
        )
        start = time.perf_counter()
        result = mt.train(config)
        seconds = time.perf_counter() - start
        test = mt.evaluate(
            result.run, "test_2016_flickr", beam=args.beam, limit=test_limit,
            device=args.device, write=False,
        )  # fmt: skip
    train_records = [r for r in result.fit.history if r["phase"] == "train"]
    val = [r for r in result.fit.history if r["phase"] == "val"]
    rows = [
        row(
            f"Multi30k en-de test2016 BLEU, {args.cell} + {args.attention} attention, {epochs} "
            f"epochs ({seconds / 60:.1f} min), beam {args.beam}",
            test["bleu"],
            contender=f"sacreBLEU signature {test['signature']}",
        )
    ]
    emit(
        {
            "bench": "multi30k_en_de_translation",
            "rows": rows,
            "model": {
                "cell": args.cell,
                "layers": args.layers,
                "hidden": args.hidden,
                "embedding": args.embedding,
                "attention": args.attention,
                "bidirectional": args.bidirectional,
                "dropout": args.dropout,
            },
            "epochs": epochs,
            "steps": result.fit.step,
            "src_vocab": len(result.src_vocab),
            "tgt_vocab": len(result.tgt_vocab),
            "train_seconds": seconds,
            "target_tokens_per_s": statistics.mean(r["samples_per_s"] for r in train_records),
            "val_perplexity": val[-1]["perplexity"] if val else None,
            "val_greedy_bleu_per_epoch": [r["greedy_bleu"] for r in result.val_bleu],
            "test2016_bleu": test["bleu"],
            "test2016_bleu_lowercase": test["bleu_lowercase"],
            "test_sentences": test["sentences"],
            "beam": args.beam,
            "bleu_signature": test["signature"],
            "translate_seconds": test["translate_seconds"],
            "example": test["examples"][0],
            **environment(),
            "quick": args.quick,
        }
    )


if __name__ == "__main__":
    main()
