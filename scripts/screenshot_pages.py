"""Screenshots of every ``striate serve`` page, each used as a person would use it.

    python scripts/screenshot_pages.py runs/demo runs/char-lstm ... --out docs/serve

Serves the runs (in this process, on a free loopback port), opens each run's page in
headless Chromium (Debian's ``chromium`` package, through Playwright), acts on it (draws a
digit and asks what the network saw, streams text, types a sentence and draws its
attention, uploads an image or a zip of frames: ``--image`` and ``--clip`` choose the
files, else small generated ones) and saves ``OUT/KIND.png``, plus ``OUT/index.png``. Not a
dependency of striate: a tool for checking the pages by eye.
"""

from __future__ import annotations

import argparse
import io
import itertools
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import uvicorn
from PIL import Image, ImageDraw
from playwright.sync_api import sync_playwright

from striate.serve.app import PAGES, create_app

ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip


def _png(mode: str = "RGB", size: int = 96) -> bytes:
    image = Image.new(mode, (size, size), "black")
    draw = ImageDraw.Draw(image)
    draw.rectangle([20, 30, 60, 70], fill="red" if mode == "RGB" else 255)
    draw.ellipse([50, 10, 85, 45], fill="blue" if mode == "RGB" else 160)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _zip(frames: int = 12) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for i in range(frames):
            image = Image.new("L", (32, 32), 0)
            ImageDraw.Draw(image).text((4 + i, 8), str(i % 10), fill=255)
            buf = io.BytesIO()
            image.save(buf, "PNG")
            archive.writestr(f"{i:03d}.png", buf.getvalue())
    return out.getvalue()


def _act(page, kind: str, image: bytes, clip: bytes, sentences: str) -> None:
    """Use the page like a person would, and wait until it shows the answer."""
    if kind == "image-classification":
        box = page.locator("#draw").bounding_box()
        points = [(80, 60), (200, 60), (130, 230)]  # a "7"
        page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
        page.mouse.down()
        for (xa, ya), (xb, yb) in itertools.pairwise(points):
            for t in range(1, 13):
                page.mouse.move(
                    box["x"] + xa + (xb - xa) * t / 12, box["y"] + ya + (yb - ya) * t / 12
                )
                page.wait_for_timeout(15)
        page.mouse.up()
        page.wait_for_function("document.querySelectorAll('#bars .bar').length === 5")
        page.click("#explain")  # the first layer's maps and the saliency of the top class
        page.wait_for_selector("#explained", state="visible")
    elif kind == "text-generation":
        page.fill("#prime", "the ")  # lower case: small corpora may have no capitals
        page.fill("#length", "600")
        page.click("#generate")
        page.wait_for_function(  # generous: the machine may be busy with other work
            "document.querySelector('#status').textContent.startsWith('done')", timeout=180_000
        )
    elif kind == "sentiment":
        page.fill("#text", "a gripping, beautifully shot film")
        page.click("#go")
        page.wait_for_function("document.querySelector('#label').textContent !== ''")
    elif kind == "translation":
        page.fill("#text", sentences)
        page.click("#go")
        page.wait_for_function("document.querySelectorAll('.result').length > 0")
        page.wait_for_timeout(200)  # the attention matrices are drawn with the results
    elif kind == "image-captioning":
        page.set_input_files("#file", files=[{"name": "scene.png", "mimeType": "image/png",
                                              "buffer": image}])  # fmt: skip
        page.wait_for_function("document.querySelector('#attention-hint').textContent !== ''")
        if page.locator("#words button").count():
            page.hover("#words button >> nth=0")
    elif kind == "video-classification":
        page.set_input_files("#file", files=[{"name": "clip.zip", "mimeType": "application/zip",
                                              "buffer": clip}])  # fmt: skip
        page.wait_for_function("document.querySelectorAll('#strip .frame').length > 0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default="docs/serve")
    parser.add_argument("--browser", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--image", help="the image to caption (default: generated shapes)")
    parser.add_argument("--clip", help="a zip of frames to label (default: generated digits)")
    parser.add_argument(
        "--sentences",
        default="A man is riding a bike.\nTwo dogs play in the snow.",
        help="what the translation page translates (lines)",
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image = Path(args.image).read_bytes() if args.image else _png()
    clip = Path(args.clip).read_bytes() if args.clip else _zip()
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
            page = browser.new_page(viewport={"width": 1100, "height": 720})
            page.goto(base + "/")
            page.screenshot(path=out / "index.png")
            for name in app.state.names:
                kind = app.state.predictors[name].kind
                page.goto(f"{base}/run/{name}")
                page.wait_for_load_state("networkidle")
                _act(page, kind, image, clip, args.sentences)
                page.screenshot(path=out / f"{PAGES[kind]}.png", full_page=True)
                print(f"wrote {out / (PAGES[kind] + '.png')}")
            browser.close()
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
