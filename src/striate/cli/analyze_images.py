"""``striate analyze ...`` for convolutional networks: pictures of what a CNN computes.

Each command calls one function of :mod:`striate.apps.analysis` and prints where it wrote
its PNG (by default into ``RUN/analysis/``, or the current directory for a model name)::

    striate analyze toeplitz lenet5 --layer features.c3 --input-size 14,14
    striate analyze filters RUN
    striate analyze features RUN digit.png --layer features.c1
    striate analyze saliency RUN digit.png --class 3
    striate analyze worst-errors RUN --split test --count 16
    striate analyze rf-picture RUN --layer features.s4 --image digit.png
"""

from __future__ import annotations

import argparse
from typing import Any


def _input_size(text: str) -> tuple[int, int]:
    """ "H,W" or a single side "S"."""
    parts = text.replace("x", ",").split(",")
    try:
        sides = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size {text!r} is not H,W") from None
    if len(sides) == 1:
        sides = sides * 2
    if len(sides) != 2 or min(sides) < 1:
        raise argparse.ArgumentTypeError(f"input size {text!r} is not two positive sides H,W")
    return sides  # type: ignore[return-value]


def _wrote(path: Any) -> int:
    print(f"wrote {path}")
    return 0


def _toeplitz(args: argparse.Namespace) -> int:
    from striate.apps import analysis

    path = analysis.toeplitz_picture(
        args.model, args.layer, args.input_size, args.out, args.runs_dir
    )
    shape = analysis.toeplitz_shape(args.model, args.layer, args.input_size, args.runs_dir)
    (c_out, c_in), (rows, cols) = shape["blocks"], shape["block"]
    print(f"matrix {shape['rows']} x {shape['cols']}: {c_out} x {c_in} blocks of {rows} x {cols}")
    return _wrote(path)


def _filters(args: argparse.Namespace) -> int:
    from striate.apps import analysis

    return _wrote(analysis.filters(args.run, args.out, args.runs_dir))


def _features(args: argparse.Namespace) -> int:
    from striate.apps import analysis

    return _wrote(analysis.feature_maps(args.run, args.image, args.layer, args.out, args.runs_dir))


def _saliency(args: argparse.Namespace) -> int:
    from striate.apps import analysis

    path = analysis.saliency(
        args.run, args.image, args.target_class, args.out, args.runs_dir, layer=args.layer
    )
    return _wrote(path)


def _worst_errors(args: argparse.Namespace) -> int:
    from striate.apps import analysis

    path = analysis.worst_errors(
        args.run, args.split, args.count, args.out, args.runs_dir, args.data, args.data_dir
    )
    return _wrote(path)


def _rf_picture(args: argparse.Namespace) -> int:
    from striate.apps import analysis

    path = analysis.receptive_field_picture(
        args.model, args.layer, args.image, args.out, args.image_size, args.runs_dir
    )
    return _wrote(path)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="PNG file to write (default: RUN/analysis/NAME.png)")
    p.add_argument("--runs-dir", default="runs")


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    """Add ``toeplitz``, ``filters``, ``features``, ``saliency``, ``worst-errors`` and
    ``rf-picture`` under ``striate analyze``."""
    p = analyses.add_parser("toeplitz", help="a conv layer as its (block) Toeplitz matrix")
    p.add_argument("model", metavar="MODEL|RUN", help="a registered model or a trained run")
    p.add_argument("--layer", required=True, help="a convolution, e.g. features.c1")
    p.add_argument("--input-size", required=True, type=_input_size, help="H,W at that layer")
    _common(p)
    p.set_defaults(func=_toeplitz)

    p = analyses.add_parser("filters", help="first-layer filters of a run as image tiles")
    p.add_argument("run")
    _common(p)
    p.set_defaults(func=_filters)

    p = analyses.add_parser("features", help="the feature maps of one layer for an image")
    p.add_argument("run")
    p.add_argument("image")
    p.add_argument("--layer", required=True, help="a layer name, e.g. features.c1")
    _common(p)
    p.set_defaults(func=_features)

    p = analyses.add_parser("saliency", help="saliency and Grad-CAM for an image")
    p.add_argument("run")
    p.add_argument("image")
    p.add_argument("--class", dest="target_class", help="class name or index (default: predicted)")
    p.add_argument("--layer", help="Grad-CAM's layer (default: the last with spatial maps)")
    _common(p)
    p.set_defaults(func=_saliency)

    p = analyses.add_parser("worst-errors", help="the most confidently wrong images, with top-5")
    p.add_argument("run")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--data", help="another source with the same classes")
    p.add_argument("--data-dir")
    _common(p)
    p.set_defaults(func=_worst_errors)

    p = analyses.add_parser("rf-picture", help="a layer's receptive field drawn over an image")
    p.add_argument("model", metavar="MODEL|RUN", help="a registered model or a trained run")
    p.add_argument("--layer", help="default: the deepest layer whose field is inside the image")
    p.add_argument("--image", help="image to draw on (default: plain grey)")
    p.add_argument("--image-size", type=int, help="input side (default: the model's or run's)")
    _common(p)
    p.set_defaults(func=_rf_picture)
