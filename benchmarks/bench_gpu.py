"""GPU benchmarks: striate beside a plain PyTorch script, same recipe, same run, same GPU.

One JSON line per benchmark (each side runs in its own fresh process, so each pays its own
interpreter, import and CUDA start-up, reported separately from training):

* ``lenet5_mnist``: LeNet-5 on MNIST, SGD Nesterov lr 0.15 one-cycle, batch 128, bf16
  autocast, channels-last, 3 epochs, testing after each epoch. ``striate train image``
  (the app, through ``train``) against a plain script that holds the training set on the GPU.
  Reported: seconds from launch to 99 % test accuracy, import and CUDA start-up, training
  images/s, and the striate/plain throughput ratio (target >= 1.2).
* ``char_lstm``: a 2x512 LSTM over characters (embedding 64, batch 64, TBPTT 100, Adam
  2e-3), fp32 and bf16: striate's ``CharRNN`` + ``TBPTTStep`` against ``nn.Embedding`` +
  ``nn.LSTM`` + ``nn.Linear`` (cuDNN) in a plain loop. Characters/s, ratio (target >= 1.0).
* ``airbench``: the airbench CIFAR-10 baseline from PyPI (``airbench.train94``) when the
  package is importable; otherwise a row saying ``skipped: not installed``.

Data: MNIST and tiny-shakespeare from ``$STRIATE_DATA`` or ``../shared/data`` when there;
without MNIST the LeNet-5 row is skipped (saying so); without tiny-shakespeare the LSTM reads
the embedded Python-stdlib corpus. ``--device cpu --quick`` exercises every code path on the
CPU in seconds (numbers meaningless there); ``--quick`` on a GPU keeps it under 2 minutes.

What each side measures is in ``_gpu_sides.py``; this script launches the sides, one child
process each (itself with ``--side``), and writes the rows.
"""

from __future__ import annotations

# first: the sides' module takes the launch clock as its first line (see _gpu_sides.py)
from _gpu_sides import (
    LSTM,
    MNIST_RECIPE,
    TARGET,
    airbench_row,
    lenet_plain,
    lenet_striate,
    lstm_side,
    mnist_dir,
)

# isort: split

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------------------------
# orchestration: each side in its own process


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), *args]
    launched = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - launched
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return {**json.loads(lines[-1]), "process_wall_s": wall}


def _ratio(a: Any, b: Any) -> float | None:
    return a / b if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def _reached(side: dict[str, Any]) -> float | None:
    hit = next((e for e in side.get("epochs", []) if e["test_acc"] >= TARGET), None)
    return hit["t_from_launch_s"] if hit else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    parser.add_argument("--quick", action="store_true", help="fewer steps and epochs")
    parser.add_argument("--only", default="lenet5,lstm,airbench", help="comma-separated")
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: one side, one process
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    dry = not args.device.startswith("cuda")
    epochs = 1 if dry else (2 if args.quick else MNIST_RECIPE["epochs"])
    limit = 512 if dry else None
    lstm_steps = 2 if dry else (20 if args.quick else 60)

    if args.side:  # a child: one JSON line
        name, _, which = args.side.partition(":")
        if name == "lenet5":
            run = lenet_striate if which == "striate" else lenet_plain
            out = run(args.device, epochs, limit)
        elif name == "lstm":
            out = lstm_side(which, args.device, args.precision, lstm_steps)
        else:
            out = airbench_row(args.device)
        print(json.dumps(out), flush=True)
        return

    from _common import emit

    chosen = {s.strip() for s in args.only.split(",")}
    base = ["--device", args.device] + (["--quick"] if args.quick else [])
    common = {"device": args.device, "dry_run": dry}
    if "lenet5" in chosen:
        if mnist_dir() is None:
            emit(
                {
                    "bench": "gpu_lenet5_mnist",
                    **common,
                    "status": "skipped: MNIST not found (set STRIATE_DATA or ../shared/data)",
                }
            )
        else:
            plain = _child(["--side", "lenet5:plain", *base], 240)
            ours = _child(["--side", "lenet5:striate", *base], 240)
            emit(
                {
                    "bench": "gpu_lenet5_mnist",
                    **common,
                    "recipe": MNIST_RECIPE,
                    "target_test_acc": TARGET,
                    "striate": ours,
                    "plain": plain,
                    "time_to_99_s": {"striate": _reached(ours), "plain": _reached(plain)},
                    "throughput_ratio": _ratio(ours.get("images_per_s"), plain.get("images_per_s")),
                    "throughput_target": 1.2,
                }
            )
    if "lstm" in chosen:
        for precision in ("fp32", "bf16"):
            sides = {
                side: _child(["--side", f"lstm:{side}", "--precision", precision, *base], 180)
                for side in ("plain", "striate")
            }
            emit(
                {
                    "bench": f"gpu_char_lstm_{precision}",
                    **common,
                    "config": LSTM,
                    **sides,
                    "ratio": _ratio(
                        sides["striate"].get("chars_per_s"), sides["plain"].get("chars_per_s")
                    ),
                    "target": 1.0,
                }
            )
    if "airbench" in chosen:
        emit(
            {
                "bench": "gpu_airbench_cifar10",
                **common,
                **_child(["--side", "airbench:plain", *base], 240),
            }
        )


if __name__ == "__main__":
    main()
