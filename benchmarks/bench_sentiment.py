"""SST-2 accuracy of a recurrent sentence classifier after a fixed budget of epochs, on CPU.

The run is ``striate.apps.sentiment.train`` -- what ``striate train sentiment --data sst2
--bidirectional --pooling max ...`` does -- on all 67,349 training phrases, with word vectors
learned from scratch (no pretrained embeddings), validating on the 872 dev sentences after
every epoch; the 1,821 test sentences are scored once at the end. One JSON line: dev
accuracy per epoch, final dev and test accuracy, test macro F1, training seconds, and the
published figures it sits beside:

* Tai et al. 2015 (Table 2, SST binary, test accuracy, GloVe vectors fine-tuned): LSTM 84.9,
  bidirectional LSTM 87.5, 2-layer LSTM 86.3, 2-layer BiLSTM 87.2;
* Kim 2014 (Table 2, SST-2 test accuracy): CNN-rand 82.7 -- randomly initialised word
  vectors like here -- and CNN-non-static 87.2 with word2vec vectors.

Those models trained on the treebank's phrases too, as the shared train.tsv holds them.

Usage: ``python benchmarks/bench_sentiment.py [--epochs 3] [--cell lstm] [--hidden 128]
[--embedding 128] [--layers 1] [--pooling max] [--no-bidirectional] [--seed 0] [--quick]``
(``--quick``: 1,000 training phrases, 1 epoch, to check that it runs).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import data_dir, emit, environment, quiet_engine, row
from striate.apps import sentiment as sa

PUBLISHED_TEST_ACCURACY = {
    "tai2015_lstm": 0.849,
    "tai2015_bilstm": 0.875,
    "tai2015_2layer_lstm": 0.863,
    "tai2015_2layer_bilstm": 0.872,
    "kim2014_cnn_rand": 0.827,
    "kim2014_cnn_non_static_word2vec": 0.872,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--cell", default="lstm")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--embedding", type=int, default=128)
    p.add_argument("--pooling", default="max")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    epochs, limit = (1, 1000) if args.quick else (args.epochs, None)

    with tempfile.TemporaryDirectory() as runs:
        config = sa.SentimentTrainConfig(
            data="sst2",
            data_dir=str(data_dir()),
            limit=limit,
            min_freq=1,
            cell=args.cell,
            layers=args.layers,
            hidden=args.hidden,
            embedding=args.embedding,
            bidirectional=args.bidirectional,
            pooling=args.pooling,
            dropout=args.dropout,
            runs_dir=runs,
            name="bench",
            engine=quiet_engine(
                sa.sentiment_engine_defaults(),
                epochs=epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                seed=args.seed,
            ),
        )
        start = time.perf_counter()
        result = sa.train(config)
        seconds = time.perf_counter() - start
        test = sa.evaluate(result.run, "test", device="cpu", write=False)
    dev = [r["accuracy"] for r in result.fit.history if r["phase"] == "val"]
    kind = f"{'Bi' if args.bidirectional else ''}{args.cell.upper()}"
    rows = [
        row(
            f"SST-2 sentiment, {kind} from scratch (no pretrained vectors), {epochs} epochs "
            f"({seconds:.0f} s): test accuracy",
            100 * test["accuracy"],
            unit="%",
            reference="Kim 2014 CNN-rand (no pretrained vectors): 82.7 %; Tai et al. 2015 "
            "BiLSTM with GloVe vectors: 87.5 %",
        )
    ]
    emit(
        {
            "bench": "sst2_sentiment",
            "rows": rows,
            "model": {
                "cell": args.cell,
                "layers": args.layers,
                "hidden": args.hidden,
                "embedding": args.embedding,
                "bidirectional": args.bidirectional,
                "pooling": args.pooling,
                "dropout": args.dropout,
                "pretrained_vectors": False,
            },
            "epochs": epochs,
            "train_texts": limit or 67_349,
            "vocab": len(result.vocab),
            "steps": result.fit.step,
            "train_seconds": seconds,
            "dev_accuracy_per_epoch": dev,
            "dev_accuracy": dev[-1],
            "test_accuracy": test["accuracy"],
            "test_macro_f1": test["macro_f1"],
            "published_test_accuracy": PUBLISHED_TEST_ACCURACY,
            **environment(),
            "quick": args.quick,
        }
    )


if __name__ == "__main__":
    main()
