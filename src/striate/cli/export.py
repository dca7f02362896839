"""``striate export RUN --format onnx|torchscript|exported-program [--out FILE]``: a trained
model of any task as a file other runtimes load (see :mod:`striate.export`)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def _export(args: argparse.Namespace) -> int:
    from striate.export import export

    info = export(
        args.run,
        args.format,
        args.out,
        runs_dir=args.runs_dir,
        image_dtype=args.image_dtype,
        check=not args.no_check,
    )
    if args.json:
        print(json.dumps(info))
        return 0
    for graph in info["graphs"]:
        parity = graph["parity"]
        checked = (
            f"matches the model to {parity['max_abs_difference']:.1e}"
            if parity
            else info.get("parity_note", "not checked")
        )
        shapes = ", ".join(f"{p['name']} {p['shape']}" for p in graph["inputs"])
        print(f"{graph['name']}: {graph['file']}  ({shapes})  {checked}")
    return 0


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    from striate.export.writers import FORMATS

    p = commands.add_parser(
        "export", help="export a run's model to ONNX, TorchScript or a torch.export program"
    )
    p.add_argument("run", help="RUN (its best checkpoint, else latest), RUN@latest, RUN@step-N")
    p.add_argument("--format", default="onnx", choices=list(FORMATS))
    p.add_argument(
        "--out",
        help="the file to write (default RUN/export/model.EXT); two graphs become "
        "STEM.encoder.EXT and STEM.decoder_step.EXT; a STEM.json describes them",
    )
    p.add_argument(
        "--image-dtype",
        choices=["float32", "uint8"],
        default="float32",
        help="image inputs: float32 pixels in [0, 1] or uint8 0..255",
    )
    p.add_argument("--no-check", action="store_true", help="skip the parity check")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--json", action="store_true", help="print the export's JSON")
    p.set_defaults(func=_export)
