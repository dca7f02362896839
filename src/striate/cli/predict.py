"""The predict commands: ``classify``, ``sample``, ``predict-sentiment``, ``translate``,
``caption`` and ``label-video``, each a thin layer over :func:`striate.predict.load`::

    striate classify runs/demo digit.png --top-k 3 --json
    striate sample runs/char-lstm --prime "ROMEO:" --temperature 0.8 --top-k 40 --length 500
    striate predict-sentiment runs/bilstm-sst2 "a gripping film" --file reviews.txt
    striate translate runs/seq2seq-en-de "A man is riding a bike." --beam 5 --max-length 40
    striate caption runs/caption-attend-shapes scene.png --beam 3 --attention-map
    striate label-video runs/video-lstm clip-folder

Every one takes ``--device`` (auto | cpu | cuda | cuda:N | mps), ``--json`` (the
predictor's results as one JSON document) and ``--runs-dir``; an option means the same
thing under the same name everywhere (``--top-k``, ``--beam``, ``--max-length``). The
options are checked by the predictors, so the web server refuses the same values.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from striate.cli.common import read_lines
from striate.errors import StriateError, not_finite_error


def _load(args: argparse.Namespace, kind: str) -> Any:
    from striate.predict import load

    return load(args.run, args.device, kind=kind, runs_dir=args.runs_dir)


def _print_json(value: Any) -> int:
    """Print ``value`` as strict JSON: NaN and Infinity are not JSON, and a consumer would
    choke on them, so a result holding one is an error (the predictors refuse such outputs
    first; this is the last guard)."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise not_finite_error() from None
    print(text)
    return 0


def _bar(probability: float, width: int = 30) -> str:
    return "█" * round(probability * width)


def _classify(args: argparse.Namespace) -> int:
    if args.weights:  # no run: every positional argument is an image
        from striate.predict.image_classification import ImageClassifierPredictor

        args.images, args.run = [args.run, *args.images], None
        predictor = ImageClassifierPredictor.from_weights(
            args.weights, args.model, args.device, runs_dir=args.runs_dir
        )
    else:
        predictor = _load(args, "image-classification")
    if not args.images:
        raise StriateError("give images to classify")
    rows = predictor.predict(args.images, top_k=args.top_k)
    if args.json:
        return _print_json([{"image": i, **r} for i, r in zip(args.images, rows, strict=True)])
    for image, row in zip(args.images, rows, strict=True):
        print(image)
        width = max(len(t["class"]) for t in row["top"])
        for rank, t in enumerate(row["top"], 1):
            prob = t["probability"]
            print(f"  {rank}. {t['class']:<{width}}  {prob:7.2%}  {_bar(prob)}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    generator = _load(args, "text-generation")
    options = {
        "temperature": args.temperature,
        "top_k": args.top_k,
        "length": args.length,
        "seed": args.seed,
    }
    if args.json:
        return _print_json(generator.predict(args.prime, **options))
    stream = generator.stream(args.prime, **options)  # bad options fail before any output
    sys.stdout.write(args.prime)
    for piece in stream:
        sys.stdout.write(piece)
        if piece == "\n":
            sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _predict_sentiment(args: argparse.Namespace) -> int:
    texts = list(args.texts) + (read_lines(args.file) if args.file else [])
    if not texts:
        raise StriateError("give texts to classify, or --file FILE (one text per line)")
    rows = _load(args, "sentiment").predict(texts)
    if args.json:
        return _print_json(rows)
    width = max(len(r["label"]) for r in rows)
    for r in rows:
        print(f"{r['label']:<{width}}  {r['probability']:6.2%}  {r['text']}")
    return 0


def _translate(args: argparse.Namespace) -> int:
    from_file = read_lines(args.file, "sentence", keep_blank=True) if args.file else []
    sentences = list(args.sentences) + from_file
    if not sentences:
        raise StriateError("give sentences to translate, or --file FILE (one per line)")
    rows = _load(args, "translation").predict(
        sentences, beam=args.beam, length_penalty=args.length_penalty,
        max_length=args.max_length, attention=bool(args.json),  # the matrix only in JSON
    )  # fmt: skip
    if args.json:
        return _print_json(rows)
    for row in rows:
        print(row["translation"])
    return 0


def _caption(args: argparse.Namespace) -> int:
    from striate.apps import captioning as cap

    options = {"beam": args.beam}
    if args.max_length is not None:
        options["max_length"] = args.max_length
    rows = _load(args, "image-captioning").predict(args.images, attention=False, **options)
    drawn = args.images if args.attention_map else []
    targets = cap.attention_picture_paths(args.run, drawn, args.runs_dir)  # distinct names
    pictures = [
        cap.attention_picture(args.run, image, args.beam, out, args.runs_dir)
        for image, out in zip(drawn, targets, strict=True)
    ]  # drawn before anything is printed, so a run without attention fails with one line
    if args.json:
        out = [
            {"image": i, "caption": r["caption"], "words": r["words"]}
            for i, r in zip(args.images, rows, strict=True)
        ]
        for row, picture in zip(out, pictures, strict=False):
            row["attention_map"] = str(picture)
        return _print_json(out)
    for image, row in zip(args.images, rows, strict=True):
        print(f"{image}: {row['caption']}")
    for picture in pictures:
        print(f"wrote {picture}")
    return 0


def _label_video(args: argparse.Namespace) -> int:
    frames = _load(args, "video-classification").predict(args.clip)["frames"]
    if args.json:
        return _print_json(frames)
    width = max(len(f["label"]) for f in frames)
    for f in frames:
        prob = f["probability"]
        print(f"{f['frame']:5d}  {f['label']:<{width}}  {prob:7.2%}  {_bar(prob, 20)}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--json", action="store_true", help="print the results as JSON")


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    """Add the six predict commands."""
    p = commands.add_parser("classify", help="top-5 classes for each image")
    p.add_argument("run", metavar="RUN", help="a trained run (omit it with --weights)")
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--weights", metavar="SPEC", help="pretrained weights instead of a run")
    p.add_argument("--model", help="the model the --weights are for (e.g. resnet50)")
    p.add_argument("--top-k", type=int, default=5, help="classes shown per image")
    _common(p)
    p.set_defaults(func=_classify)

    p = commands.add_parser("sample", help="stream text from a trained character model")
    p.add_argument("run")
    p.add_argument("--prime", default="\n", help="text to start from")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40, help="sample among the K likeliest (0: all)")
    p.add_argument("--length", type=int, default=2000, help="characters to sample")
    p.add_argument("--seed", type=int)
    _common(p)
    p.set_defaults(func=_sample)

    p = commands.add_parser(
        "predict-sentiment", help="label and probability for each text, from a sentiment run"
    )
    p.add_argument("run")
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.add_argument("--file", help="more texts, one per line (- reads standard input)")
    _common(p)
    p.set_defaults(func=_predict_sentiment)

    p = commands.add_parser("translate", help="translate sentences with a trained run")
    p.add_argument("run")
    p.add_argument("sentences", nargs="*", metavar="SENTENCE")
    p.add_argument("--file", help="one sentence per line (- : standard input)")
    p.add_argument("--beam", type=int, default=5, help="beam size (1: greedy)")
    p.add_argument("--length-penalty", type=float, default=0.6, help="alpha of Wu et al.")
    p.add_argument("--max-length", type=int, help="most tokens per translation")
    _common(p)
    p.set_defaults(func=_translate)

    p = commands.add_parser("caption", help="describe images in words, from a captioning run")
    p.add_argument("run")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--beam", type=int, default=3, help="beam size (1: greedy)")
    p.add_argument("--max-length", type=int, help="most words per caption (default: the run's)")
    p.add_argument(
        "--attention-map",
        action="store_true",
        help="also draw where the model looked for each word (RUN/analysis/attention-IMAGE.png)",
    )
    _common(p)
    p.set_defaults(func=_caption)

    p = commands.add_parser("label-video", help="a label per frame of a clip")
    p.add_argument("run")
    p.add_argument("clip", help="a folder of frame images or a video file")
    _common(p)
    p.set_defaults(func=_label_video)
