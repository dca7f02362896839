"""Each page driven as a person would, in headless Chromium (Debian's ``chromium`` package,
through Playwright): draw a digit, stream text and stop it, upload images and a clip, and
check what the page then shows. Skipped, with the reason, only where no browser exists."""

from __future__ import annotations

import io
import json
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from serve_inputs import frames_zip, png_bytes

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip

if CHROMIUM is None:
    pytest.skip(
        "no Chromium here: install Debian's chromium package (apt-get install -y chromium)",
        allow_module_level=True,
    )
playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(tiny_runs):
    from dataclasses import replace

    from striate.predict import SERVE_LIMITS
    from striate.serve.app import create_app

    # samples long enough that none ends before the stop button is pressed, however fast
    limits = replace(SERVE_LIMITS, max_sample_length=10**8)
    app = create_app(list(tiny_runs.values()), device="cpu", limits=limits)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, base_url):
    """A fresh page that records every URL it asks for (all must be the server's own)."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.base = base_url
    yield page
    assert all(url.startswith(base_url) or url.startswith("data:") for url in page.requested)
    context.close()


def _open(page, name: str) -> None:
    page.goto(f"{page.base}/run/{name}")
    page.wait_for_load_state("networkidle")


def test_drawing_a_digit_updates_the_top5_while_drawing(page, tmp_path):
    _open(page, "digits")
    box = page.locator("#draw").bounding_box()
    x, top = box["x"] + box["width"] / 2, box["y"] + 40
    page.mouse.move(x, top)
    page.mouse.down()
    for step in range(1, 21):  # a vertical stroke: a "1"
        page.mouse.move(x, top + step * 10)
        page.wait_for_timeout(20)
    page.wait_for_function("document.querySelectorAll('#bars .bar').length === 5")
    during = int(page.locator("#bars").get_attribute("data-updates"))
    page.mouse.up()
    page.wait_for_function(f"Number(document.querySelector('#bars').dataset.updates) > {during}")
    assert during >= 1  # the bars changed before the mouse was released
    names = page.locator("#bars .bar .name").all_inner_texts()
    assert len(names) == 5 and set(names) <= {str(d) for d in range(10)}
    assert page.locator("#status").inner_text().startswith(f"best: {names[0]}")
    page.screenshot(path=tmp_path / "image.png")
    page.click("#clear")
    assert page.locator("#bars .bar").count() == 0


def test_explain_shows_the_feature_maps_and_the_saliency_of_the_chosen_class(page):
    _open(page, "digits")
    page.click("#explain")  # nothing drawn yet: the page says so
    assert page.locator("#explain-status").inner_text() == "Draw or drop an image first."
    page.set_input_files("#file", files=[{"name": "one.png", "mimeType": "image/png",
                                          "buffer": png_bytes()}])  # fmt: skip
    page.wait_for_function("document.querySelectorAll('#bars .bar').length === 5")
    page.select_option("#target", "4")
    page.click("#explain")
    page.wait_for_selector("#explained", state="visible")
    assert page.locator("#explained").get_attribute("data-target") == "4"
    assert page.locator("#explain-status").inner_text() == "saliency for class 4"
    assert page.locator("#maps img").count() == 6
    page.wait_for_function(
        "[...document.querySelectorAll('#maps img')].every((i) => i.complete && i.naturalWidth)"
    )
    assert page.evaluate("document.querySelector('#maps img').naturalWidth") == 28
    alpha = page.evaluate(
        "() => { const d = document.querySelector('#saliency').getContext('2d')"
        ".getImageData(0, 0, 196, 196).data; let s = 0, n = 0;"
        " for (let i = 3; i < d.length; i += 4) { s += d[i]; n += d[i] > 0; } return [s, n]; }"
    )
    assert alpha[0] > 0 and alpha[1] < 196 * 196  # drawn, and not uniformly everywhere
    page.click("#clear")
    assert page.locator("#explained").is_hidden()


def test_dropping_an_image_file_classifies_it(page, tmp_path):
    _open(page, "digits")
    page.set_input_files("#file", files=[{"name": "one.png", "mimeType": "image/png",
                                          "buffer": png_bytes()}])  # fmt: skip
    page.wait_for_function("document.querySelectorAll('#bars .bar').length === 5")
    assert page.locator("#error").inner_text() == ""


def test_text_streams_in_and_the_stop_button_stops_it(page):
    _open(page, "chars")
    page.fill("#prime", "the ")
    page.fill("#length", "80")
    page.fill("#seed", "3")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('done')")
    assert page.locator("#status").inner_text() == "done: 80 characters"
    output = page.locator("#output").inner_text()
    assert output.startswith("the ") and len(output) == 4 + 80
    page.fill("#length", str(10**8))
    page.click("#generate")
    page.wait_for_function("document.querySelector('#output').textContent.length > 4")
    page.click("#stop")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('stopped')")
    shown = len(page.locator("#output").inner_text()) - 4
    assert 0 < shown < 10**8 and page.locator("#generate").is_enabled()
    page.fill("#temperature", "0")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#error').textContent !== ''")
    assert "temperature must be in" in page.locator("#error").inner_text()


def test_sentiment_and_translation_pages_answer_in_the_page(page):
    _open(page, "moods")
    page.fill("#text", "a glad film")
    page.click("#go")
    page.wait_for_function("document.querySelector('#label').textContent !== ''")
    label = page.locator("#label").inner_text()
    assert label.split(" · ")[0] in ("positive", "negative") and label.endswith("%")
    assert page.locator("#bars .bar").count() == 2
    _open(page, "toy-en-de")
    page.fill("#text", "red cat\nbig dog runs")
    page.fill("#beam", "2")
    page.click("#go")
    page.wait_for_function("document.querySelectorAll('.result').length === 2")
    assert page.locator(".result .src").all_inner_texts() == ["red cat", "big dog runs"]
    assert all(s.startswith("score ") for s in page.locator(".result .status").all_inner_texts())
    # the attention matrix: one row per target word, one column per source word and <eos>
    page.wait_for_selector("svg.attention")
    for n, words in enumerate(page.locator(".result .translation").all_inner_texts()):
        matrix = page.locator(f".result >> nth={n}").locator("svg.attention")
        rows = matrix.locator("text.target").all_text_contents()
        columns = matrix.locator("text.source").all_text_contents()
        assert " ".join(rows) == words and columns == [*["red cat", "big dog runs"][n].split(),
                                                       "<eos>"]  # fmt: skip
        assert matrix.locator("rect.cell").count() == len(rows) * len(columns)


def test_caption_shows_the_words_and_their_attention(page):
    _open(page, "shapes")
    page.set_input_files("#file", files=[{"name": "scene.png", "mimeType": "image/png",
                                          "buffer": png_bytes(mode="RGB")}])  # fmt: skip
    page.wait_for_function(
        "document.querySelector('#attention-hint').textContent + "
        "document.querySelector('#error').textContent !== ''"
    )
    assert page.locator("#error").inner_text() == ""
    words = page.locator("#words button").all_inner_texts()
    assert words and " ".join(words).replace(" ", "") == page.locator(
        "#caption"
    ).inner_text().replace(" ", "")
    page.hover("#words button >> nth=0")
    lit = page.evaluate(
        "() => { const d = document.querySelector('#overlay').getContext('2d')"
        ".getImageData(0, 0, 256, 256).data; let s = 0;"
        " for (let i = 3; i < d.length; i += 4) s += d[i]; return s; }"
    )
    assert lit > 0  # the map of the first word is drawn over the image


def test_a_zipped_clip_gets_a_label_per_frame(page):
    _open(page, "clips")
    page.set_input_files("#file", files=[{"name": "clip.zip", "mimeType": "application/zip",
                                          "buffer": frames_zip(5)}])  # fmt: skip
    page.wait_for_function("document.querySelectorAll('#strip .frame').length === 5")
    assert page.locator("#status").inner_text() == "5 frames of clip.zip"
    labels = page.locator("#strip .frame .label").all_inner_texts()
    assert set(labels) <= {str(d) for d in range(10)}


def test_a_zipped_clip_shows_each_frame_above_its_label_in_name_order(page):
    # deflated entries stored out of order: the page unpacks them itself and shows them in
    # name order, the order the server labels them in; frame i is grey level 20 + 40 i
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in (2, 0, 3, 1):
            picture = io.BytesIO()
            Image.new("L", (16, 16), 20 + 40 * i).save(picture, "PNG")
            archive.writestr(f"frame-{i}.png", picture.getvalue())
    _open(page, "clips")
    page.set_input_files("#file", files=[{"name": "clip.zip", "mimeType": "application/zip",
                                          "buffer": out.getvalue()}])  # fmt: skip
    page.wait_for_function("document.querySelectorAll('#strip .frame').length === 4")
    page.wait_for_function(
        "[...document.querySelectorAll('#strip img')].every((i) => i.complete && i.naturalWidth)"
    )
    greys = page.evaluate(
        "() => [...document.querySelectorAll('#strip .frame img')].map((img) => {"
        " const c = document.createElement('canvas'); c.width = c.height = 16;"
        " const g = c.getContext('2d'); g.drawImage(img, 0, 0);"
        " return g.getImageData(8, 8, 1, 1).data[0]; })"
    )
    assert greys == [20, 60, 100, 140]
    assert page.locator("#player").is_hidden()


def test_every_page_renders(page, tmp_path: Path):
    for path in ["/", "/docs", *(f"/run/{n}" for n in ("digits", "chars", "moods", "toy-en-de",
                                                       "shapes", "clips"))]:  # fmt: skip
        response = page.goto(page.base + path)
        assert response.status == 200
        assert page.locator("h1").inner_text()
        page.screenshot(path=tmp_path / f"{path.strip('/').replace('/', '-') or 'index'}.png")
        assert page.locator("#error").inner_text() == ""


def test_a_task_without_a_page_of_its_own_gets_the_json_page(page, monkeypatch):
    from striate.serve import app

    monkeypatch.setattr(app, "PAGES", {k: v for k, v in app.PAGES.items() if k != "sentiment"})
    _open(page, "moods")
    assert "(sentiment)" in page.locator(".task").inner_text()
    assert '"type":"text"' in page.locator("#spec").inner_text()  # what the run takes
    page.fill("#inputs", '["a glad film", "a sad film"]')
    page.click("#go")
    page.wait_for_function("document.querySelector('#output').textContent !== ''")
    rows = json.loads(page.locator("#output").inner_text())
    assert [r["text"] for r in rows] == ["a glad film", "a sad film"]
    assert all(r["label"] in ("positive", "negative") for r in rows)
    page.fill("#options", "{not json")
    page.click("#go")
    page.wait_for_function("document.querySelector('#error').textContent !== ''")
    assert "options are not JSON" in page.locator("#error").inner_text()
    page.fill("#options", '{"beam": 3}')
    page.click("#go")
    page.wait_for_function("document.querySelector('#error').textContent.includes('unknown')")
