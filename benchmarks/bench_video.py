"""What the RNN's memory adds to frame-level video classification: CNN + LSTM vs CNN alone.

Both models are trained by the video app (``striate.apps.video.train``) on the generated
``moving-digits`` clips with the same budget (same clips, batches, optimizer, epochs), then
evaluated on the 1,000 held-out test clips (digits written by other hands). Reported per
model: per-frame accuracy over all frames, on the hidden "memory" frames (whose label is
the digit shown most recently), on the visible frames, and the training time (``train_s``,
generating the clips included). A per-frame CNN can only guess on hidden frames (chance
~0.1); the recurrent model should be about as good there as on visible frames. One JSON
line. ``--quick``: a smoke run (32 training clips of 8 frames, 1 epoch, 32 test clips), not the
result.

    python benchmarks/bench_video.py            # the figure (default app settings)
    python benchmarks/bench_video.py --quick
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from _common import emit, environment, row
from striate.apps import video


def run(no_rnn: bool, args: argparse.Namespace, runs: str) -> dict[str, float]:
    engine = video.video_engine_defaults()
    engine.epochs, engine.progress, engine.device = args.epochs, False, args.device
    config = video.VideoTrainConfig(
        frames=args.frames, image_size=args.image_size, clips=args.clips,
        val_clips=args.val_clips, test_clips=args.test_clips, cell=args.cell,
        hidden=args.hidden, no_rnn=no_rnn, name="cnn" if no_rnn else f"cnn-{args.cell}",
        runs_dir=runs, engine=engine,
    )  # fmt: skip
    start = time.perf_counter()
    result = video.train(config)
    seconds = time.perf_counter() - start
    report = video.evaluate(result.run, "test", device=args.device, write=False)
    return {
        "accuracy": report["accuracy"],
        "memory_accuracy": report["memory_accuracy"],
        "visible_accuracy": report["visible_accuracy"],
        "steps": result.fit.step,
        "train_s": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--clips", type=int, default=3000)
    parser.add_argument("--val-clips", type=int, default=500)
    parser.add_argument("--test-clips", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.quick:
        args.clips, args.val_clips, args.test_clips, args.epochs, args.frames = 32, 16, 32, 1, 8
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as runs:
        table = {
            f"cnn+{args.cell}": run(False, args, runs),
            "cnn_alone": run(True, args, runs),
        }
    rnn, cnn = table[f"cnn+{args.cell}"], table["cnn_alone"]
    rows = [
        row(
            f"moving digits, {name}, {args.epochs} epochs: per-frame test accuracy "
            f"(on the frames where the digit is hidden: {r['memory_accuracy']:.3f})",
            r["accuracy"],
        )
        for name, r in table.items()
    ]
    emit(
        {
            "bench": "video",
            "rows": rows,
            "quick": args.quick,
            "data": {
                "source": "moving-digits",
                "train_clips": args.clips,
                "test_clips": args.test_clips,
                "frames": args.frames,
                "image_size": args.image_size,
            },
            "config": {
                "epochs": args.epochs,
                "batch": video.video_engine_defaults().batch_size,
                "hidden": args.hidden,
            },
            "table": table,
            "memory_gain": rnn["memory_accuracy"] - cnn["memory_accuracy"],
            "wall_s": time.perf_counter() - wall,
            "env": {**environment(), "device": args.device},
        }
    )


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
