"""Screenshots of every ``striate serve`` page, each used as a person would use it.

    scripts/train_demo_runs.sh       # the six runs behind docs/serve (make demo-runs)
    python scripts/screenshot_pages.py \\
        runs/demo-{mnist,shakespeare,sst2,de-en,shapes,moving-digits} --out docs/serve

Serves the runs (in this process, on a free loopback port), opens each run's page in
headless Chromium (Debian's ``chromium`` package, through Playwright), uses it with
realistic inputs and waits until the page shows the whole answer:

* image classifier: draws a digit with the mouse (``--digit``), then asks what the network
  saw (the first layer's feature maps and the saliency of the top class);
* text generator: samples from a prime (``--prime``, ``--length``, ``--seed``) until the
  stream is done;
* sentiment: classifies a review sentence of the SST-2 test set (``--review``);
* translation: translates real Multi30k test2016 sentences in the run's source language
  (``--sentences`` lines instead) and draws their attention matrices;
* captioner: captions an image of the generated ``shapes`` test set (``--image``: your
  file) and points at one of its words (``--word``) to show the attention;
* video: labels a generated moving-digits test clip (``--clip``: your zip of frames).

It prints what each page should show (the references, the true labels) beside where it
saved ``OUT/KIND.png`` (plus ``OUT/index.png``), each cropped to the page's content. Not a
dependency of striate: a tool for checking the pages by eye.
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import uvicorn
from PIL import Image
from playwright.sync_api import sync_playwright

from striate.data.sources.parallel import load_parallel
from striate.data.sources.shapes import SHAPES, load_shapes
from striate.data.sources.video import load_video_data
from striate.errors import StriateError
from striate.serve.app import PAGES, create_app

ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
# where the page's content ends: its last shown element (an empty error line is not shown)
CONTENT_BOTTOM = """Math.max(...[...document.querySelectorAll("main > *")]
  .filter((e) => e.offsetHeight > 0 && (e.id !== "error" || e.textContent))
  .map((e) => e.getBoundingClientRect().bottom)) + window.scrollY"""
WAIT_MS = 300_000  # generous: the machine may be busy with other work


def _arc(cx: float, cy: float, r: float, start: float, end: float, n: int = 14) -> list:
    """Points of a circular arc (degrees, canvas coordinates: y points down)."""
    return [
        (cx + r * math.cos(math.radians(start + (end - start) * i / n)),
         cy + r * math.sin(math.radians(start + (end - start) * i / n)))
        for i in range(n + 1)
    ]  # fmt: skip


# the pen strokes of each digit, on the page's 280x280 canvas, written like a person would
DIGITS = {
    "2": [[*_arc(140, 100, 55, 200, 380), (90, 225), (195, 225)]],
    "3": [_arc(138, 95, 50, 210, 450) + _arc(138, 185, 55, 270, 510)[1:]],
    "4": [[(150, 50), (80, 170), (205, 170)], [(165, 95), (165, 240)]],
    "7": [[(85, 60), (200, 60), (130, 235)]],
}


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _shapes_image(index: int) -> tuple[bytes, list[str]]:
    """A test image of the generated shapes set (upscaled 8x, pixels kept sharp: the model
    sees it at 32 px again) and its five reference captions."""
    images, captions = load_shapes("test")
    image = Image.fromarray(images[index].permute(1, 2, 0).numpy())
    return _png(image.resize((256, 256), Image.NEAREST)), captions[index]


def _moving_digits_zip(index: int) -> tuple[bytes, list[str]]:
    """A test clip of the generated moving digits as a zip of PNG frames, and its labels."""
    data = load_video_data("moving-digits", "test")
    frames, labels = data.frames[index], data.labels[index]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for t in range(int(data.lengths[index])):
            image = Image.fromarray(frames[t, 0].numpy())
            archive.writestr(f"frame-{t:03d}.png", _png(image.resize((64, 64), Image.NEAREST)))
    names = [data.classes[int(c)] + ("*" if data.memory[index, t] else "") for t, c in
             enumerate(labels[: int(data.lengths[index])])]  # fmt: skip
    return out.getvalue(), names


def _test_sentences(describe: dict, lines: list[int]) -> list[str] | None:
    """Multi30k test2016 sentences in the run's source language (None if absent)."""
    spec = describe["input"]
    try:
        pairs = load_parallel(
            "multi30k", "test", spec["source_language"], spec["target_language"], download=False
        )
    except StriateError:
        print("  no Multi30k test set in the data directory (STRIATE_DATA): a made-up sentence")
        return None
    for i in lines:
        print(f"  reference: {pairs.target[i]}")
    return [pairs.source[i] for i in lines]


def _draw(page, selector: str, strokes: list) -> None:
    box = page.locator(selector).bounding_box()
    for points in strokes:
        page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
        page.mouse.down()
        for (xa, ya), (xb, yb) in itertools.pairwise(points):
            steps = max(2, int(math.hypot(xb - xa, yb - ya) / 10))
            for t in range(1, steps + 1):
                x, y = xa + (xb - xa) * t / steps, ya + (yb - ya) * t / steps
                page.mouse.move(box["x"] + x, box["y"] + y)
                page.wait_for_timeout(10)
        page.mouse.up()


def _act(page, kind: str, args: argparse.Namespace, describe: dict) -> None:
    """Use the page like a person would, and wait until it shows the whole answer."""
    if kind == "image-classification":
        _draw(page, "#draw", DIGITS[args.digit])
        page.wait_for_function("document.querySelectorAll('#bars .bar').length === 5")
        page.wait_for_timeout(500)  # the last request, after the pen is lifted
        page.click("#explain")  # the first layer's maps and the saliency of the top class
        page.wait_for_selector("#explained", state="visible")
        print(f"  drew a {args.digit}; {page.text_content('#status')}")
    elif kind == "text-generation":
        page.fill("#prime", args.prime)
        page.fill("#length", str(args.length))
        page.fill("#seed", str(args.seed))
        page.click("#generate")
        page.wait_for_function(
            "document.querySelector('#status').textContent.startsWith('done')", timeout=WAIT_MS
        )
    elif kind == "sentiment":
        page.fill("#text", args.review)
        page.click("#go")
        page.wait_for_function("document.querySelector('#label').textContent !== ''")
    elif kind == "translation":
        sentences = args.sentences or _test_sentences(describe, [0, 6])
        page.fill("#text", "\n".join(sentences or ["A man is riding a bike."]))
        page.click("#go")
        page.wait_for_function("document.querySelectorAll('.result').length > 0", timeout=WAIT_MS)
    elif kind == "image-captioning":
        if args.image:
            image, name = Path(args.image).read_bytes(), Path(args.image).name
        else:
            image, references = _shapes_image(args.shapes_index)
            name = f"shapes-test-{args.shapes_index}.png"
            for reference in references:
                print(f"  reference: {reference}")
        page.set_input_files("#file", files=[{"name": name, "mimeType": "image/png",
                                              "buffer": image}])  # fmt: skip
        page.wait_for_function("document.querySelector('#attention-hint').textContent !== ''")
        words = page.locator("#words button")
        texts = [words.nth(i).text_content() for i in range(words.count())]
        nouns = [w for w in texts if w == args.word or (not args.word and w in SHAPES)]
        if texts:  # the word asked for, else the last shape named, else the last word
            words.nth(texts.index(nouns[-1]) if nouns else len(texts) - 1).hover()
        print(f"  caption: {' '.join(texts)}")
    elif kind == "video-classification":
        if args.clip:
            clip, name = Path(args.clip).read_bytes(), Path(args.clip).name
        else:
            clip, labels = _moving_digits_zip(args.clip_index)
            name = f"moving-digits-test-{args.clip_index}.zip"
            print(f"  true labels (* hidden): {' '.join(labels)}")
        page.set_input_files("#file", files=[{"name": name, "mimeType": "application/zip",
                                              "buffer": clip}])  # fmt: skip
        page.wait_for_function("document.querySelectorAll('#strip .frame').length > 0")
        page.wait_for_timeout(300)  # the thumbnails
        labels = page.locator("#strip .frame .label").all_text_contents()
        print(f"  page labels:            {' '.join(labels)}")


def _shoot(page, path: Path) -> None:
    """The page down to the end of its content (no empty background below it)."""
    bottom = page.evaluate(CONTENT_BOTTOM)
    width = page.viewport_size["width"]
    page.screenshot(path=path, full_page=True, clip={"x": 0, "y": 0, "width": width,
                                                     "height": math.ceil(bottom) + 24})  # fmt: skip
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default="docs/serve")
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--width", type=int, default=1000, help="the browser window's width")
    parser.add_argument("--digit", default="3", choices=sorted(DIGITS), help="the digit drawn")
    parser.add_argument("--prime", default="ROMEO:", help="the text generator's prime")
    parser.add_argument("--length", type=int, default=500, help="characters sampled")
    parser.add_argument("--seed", type=int, default=1, help="the sampling seed")
    parser.add_argument(
        "--review",
        default="An experience so engrossing it is like being buried in a new environment.",
        help="the text the sentiment page classifies (default: an SST-2 test sentence)",
    )
    parser.add_argument(
        "--sentences", nargs="+", help="what to translate (default: Multi30k test2016 lines)"
    )
    parser.add_argument("--image", help="an image to caption (default: a shapes test image)")
    parser.add_argument("--shapes-index", type=int, default=0, help="which shapes test image")
    parser.add_argument("--word", help="the caption word pointed at (default: the last shape)")
    parser.add_argument("--clip", help="a zip of frames to label (default: moving digits)")
    parser.add_argument("--clip-index", type=int, default=1, help="which moving-digits clip")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    app = create_app(args.runs, device="cpu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.browser, args=ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 720})
            page.set_default_timeout(60_000)
            page.goto(base + "/")
            _shoot(page, out / "index.png")
            for name in app.state.names:
                predictor = app.state.predictors[name]
                print(f"{name}: {predictor.kind}")
                page.goto(f"{base}/run/{name}")
                page.wait_for_load_state("networkidle")
                _act(page, predictor.kind, args, predictor.describe())
                _shoot(page, out / f"{PAGES[predictor.kind]}.png")
            browser.close()
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
