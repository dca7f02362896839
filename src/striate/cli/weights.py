"""``striate convert-weights`` and the pretrained-weights flags of ``striate train image``."""

from __future__ import annotations

import argparse
from typing import Any


def add_weights_args(p: argparse.ArgumentParser) -> None:
    """``--weights SPEC`` and the fine-tuning flags (fields of ``ImageTrainConfig``)."""
    p.add_argument(
        "--weights",
        metavar="SPEC",
        help="start from pretrained weights: torchvision:NAME, hf:OWNER/REPO, FILE.safetensors "
        "or a run (real weights need the network once)",
    )
    p.add_argument(
        "--fine-tune",
        action="store_true",
        default=None,
        help="with --weights: train the new head alone first, then the body more slowly",
    )
    p.add_argument("--freeze-epochs", type=int, help="epochs of head-only training (default 1)")
    p.add_argument("--body-lr-factor", type=float, help="body learning rate / head's (default 0.1)")


def _convert(args: argparse.Namespace) -> int:
    from striate.weights import convert_weights

    out, count = convert_weights(args.source, args.out)
    print(f"{out}: {count} tensors")
    return 0


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    p = commands.add_parser(
        "convert-weights", help="read a .pth state dict once (safely) and save it as safetensors"
    )
    p.add_argument("source", metavar="FILE.pth")
    p.add_argument("out", metavar="OUT.safetensors")
    p.set_defaults(func=_convert)
