"""The web server's JSON API through an ASGI test client: every task, every error path."""

from __future__ import annotations

import asyncio
import json
import tempfile

import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
import httpx
from fastapi.testclient import TestClient
from serve_inputs import b64, bomb_png, frames_zip, mp4_bytes, png_bytes, same_results

from striate.errors import StriateError
from striate.serve.app import create_app, run_names

NAMES = {
    "image-classification": "digits",
    "text-generation": "chars",
    "sentiment": "moods",
    "translation": "toy-en-de",
    "image-captioning": "shapes",
    "video-classification": "clips",
}


@pytest.fixture(scope="module")
def app(tiny_runs):
    return create_app(list(tiny_runs.values()), device="cpu", max_body_bytes=200_000)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as client:
        yield client


def _predict(client, kind, inputs, **options):
    return client.post(f"/api/{NAMES[kind]}/predict", json={"inputs": inputs, "options": options})


def _error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def test_explain_and_attention_through_the_api(client):
    (image,) = _predict(
        client, "image-classification", b64(png_bytes()), explain=True, target="7"
    ).json()["results"]
    seen = image["explain"]
    assert seen["class"] == "7" and len(seen["feature_maps"]["maps"]) == 6
    assert seen["saliency"]["size"] == [32, 32] and max(map(max, seen["saliency"]["map"])) == 1
    assert "no class 'seven'" in _error(
        _predict(client, "image-classification", b64(png_bytes()), explain=True, target="seven"),
        400,
    )
    (sentence,) = _predict(client, "translation", "big dog", beam=2).json()["results"]
    attention = sentence["attention"]
    assert attention["target"] == sentence["tokens"] and attention["source"][-1] == "<eos>"
    assert [len(row) for row in attention["weights"]] == [3] * len(sentence["tokens"])


def test_pages_list_every_run_and_ship_their_own_scripts(client):
    index = client.get("/")
    assert index.status_code == 200
    for name in NAMES.values():
        assert f'href="/run/{name}"' in index.text
        page = client.get(f"/run/{name}")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        scripts = [part.split('"')[0] for part in page.text.split('src="')[1:]]
        assert scripts and all(s.startswith("/static/") for s in scripts)  # nothing from a CDN
        for script in scripts:
            assert client.get(script).status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/api/NAME/predict" in docs.text
    assert "http://" not in docs.text.replace("http://localhost", "")
    assert "/api/{name}/predict" in client.get("/openapi.json").json()["paths"]
    runs = client.get("/api/runs").json()
    assert {r["name"]: r["kind"] for r in runs} == {v: k for k, v in NAMES.items()}


def test_every_task_predicts_through_the_api(client):
    (image,) = _predict(client, "image-classification", b64(png_bytes()), top_k=3).json()["results"]
    assert len(image["top"]) == 3
    text = _predict(client, "text-generation", "the ", length=25, seed=1).json()["results"]
    assert len(text["text"]) == 25
    (mood,) = _predict(client, "sentiment", "a glad film").json()["results"]
    assert mood["label"] in ("positive", "negative")
    (sentence,) = _predict(client, "translation", ["big dog"], beam=2).json()["results"]
    assert sentence["source"] == "big dog" and isinstance(sentence["score"], float)
    (caption,) = _predict(
        client, "image-captioning", "data:image/png;base64," + b64(png_bytes(mode="RGB"))
    ).json()["results"]
    assert len(caption["attention"]["maps"]) == len(caption["words"])
    clip = _predict(client, "video-classification", {"zip": b64(frames_zip(4))}).json()
    assert [f["frame"] for f in clip["results"]["frames"]] == [0, 1, 2, 3]
    frames = _predict(client, "video-classification", {"frames": [b64(png_bytes())] * 2}).json()
    assert len(frames["results"]["frames"]) == 2


def test_text_streams_as_server_sent_events(client):
    body = {"inputs": "the ", "options": {"length": 40, "seed": 7}}
    with client.stream("POST", "/api/chars/stream", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        blocks = "".join(response.iter_text()).strip().split("\n\n")
    pieces = [json.loads(b.removeprefix("data: "))["text"] for b in blocks[:-1]]
    assert blocks[-1] == "event: done\ndata: {}"
    whole = _predict(client, "text-generation", "the ", length=40, seed=7).json()["results"]
    assert "".join(pieces) == whole["text"]
    _error(client.post("/api/chars/stream", json={"inputs": "the ", "options": {"top_k": -1}}), 400)
    assert "does not generate" in _error(client.post("/api/moods/stream", json=body), 400)


@pytest.mark.parametrize(
    ("kind", "inputs", "options", "message"),
    [
        ("image-classification", "bm90IGFuIGltYWdl", {}, "not a readable image"),
        ("image-classification", "***", {}, "not valid base64"),
        ("image-classification", 42, {}, "must be a base64 string"),
        ("image-classification", b64(bomb_png(10_000)), {}, "at most 16,000,000 are accepted"),
        ("image-classification", b64(bomb_png(100_000)), {}, "too large to decode safely"),
        ("image-classification", [b64(png_bytes((4, 4)))] * 65, {}, "at most 64"),
        ("text-generation", "the ", {"length": 5001}, "length must be between 1 and 5000"),
        ("text-generation", "the ", {"temperature": "hot"}, "temperature must be a number"),
        ("text-generation", "", {}, "the prime is empty"),
        ("sentiment", "x" * 5001, {}, "at most 5000"),
        ("translation", "red cat", {"beam": 11}, "beam size must be between 1 and 10"),
        ("image-captioning", b64(png_bytes()), {"beam": 0}, "beam size"),
        ("video-classification", {"zip": b64(frames_zip(257, 4))}, {}, "at most 256"),
        ("video-classification", {"zip": b64(b"PK not a zip")}, {}, "not a zip file"),
        ("video-classification", {"video": b64(b"junk"), "name": "a.exe"}, {}, "video file ends"),
        ("video-classification", {"video": b64(b"junk"), "name": "a.mp4"}, {}, "cannot decode"),
        ("video-classification", "clip", {}, "a clip is"),
    ],
)
def test_bad_input_is_a_400_with_one_line(client, kind, inputs, options, message):
    assert message in _error(_predict(client, kind, inputs, **options), 400)


def test_malformed_requests_never_take_the_server_down(client):
    assert "no run named 'nope'" in _error(client.post("/api/nope/predict", json={}), 404)
    assert "no run named" in _error(client.get("/api/nope"), 404)
    _error(client.get("/run/nope"), 404)
    _error(client.get("/no/such/page"), 404)
    _error(client.get("/api/digits/predict"), 405)
    headers = {"Content-Type": "application/json"}
    post = lambda body: client.post("/api/chars/predict", content=body, headers=headers)  # noqa: E731
    assert "not JSON" in _error(post(b"{nope"), 400)
    assert "not JSON" in _error(post(b"\xff\xfe"), 400)
    assert "JSON object" in _error(post(b"[1, 2]"), 400)
    assert "options" in _error(post(b'{"inputs": "a", "options": 3}'), 400)
    assert "unknown field" in _error(post(b'{"inputs": "a", "extra": 1}'), 400)
    assert "finite" in _error(post(b'{"inputs": "a", "options": {"temperature": NaN}}'), 400)
    assert "unknown option 'inputs'" in _error(
        post(b'{"inputs": "a", "options": {"inputs": 1}}'), 400
    )
    assert "larger than 200,000 bytes" in _error(post(b" " * 200_001), 413)
    assert client.get("/api/chars").status_code == 200  # still serving


def test_concurrent_requests_are_all_answered(app):
    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            body = {"inputs": b64(png_bytes()), "options": {"top_k": 1}}
            return await asyncio.gather(
                *[c.post("/api/digits/predict", json=body) for _ in range(12)]
            )

    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [200] * 12
    first = answers[0].json()  # the same image, the same answer (batched: to float32 rounding)
    assert all(same_results(a.json(), first) for a in answers)


def test_a_video_file_is_labelled_and_leaves_no_file_behind(client, tmp_path, monkeypatch):
    pytest.importorskip("av", reason="the video extra (PyAV) is not installed")
    # a temporary folder of this test's own: other tests upload clips at the same time
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    clip = {"video": b64(mp4_bytes(frames=5)), "name": "clip.mp4"}
    frames = _predict(client, "video-classification", clip).json()["results"]["frames"]
    assert [f["frame"] for f in frames] == [0, 1, 2, 3, 4]
    _predict(client, "video-classification", {"video": b64(b"junk"), "name": "a.mp4"})
    assert list(tmp_path.iterdir()) == []


def test_run_names_are_unique_and_url_safe(tmp_path):
    assert run_names(["runs/a b", "other/a b", "x/checkpoints/step-00000001"]) == [
        "a-b", "a-b-2", "x"
    ]  # fmt: skip
    with pytest.raises(StriateError, match="at least one run"):
        create_app([])


def test_the_app_warms_every_run_up_once_before_it_serves(tiny_runs, monkeypatch):
    from striate.predict import Predictor
    from striate.predict.text_generation import TextGeneratorPredictor

    warmed = []
    monkeypatch.setattr(Predictor, "warm_up", lambda self: warmed.append(self.kind))
    monkeypatch.setattr(TextGeneratorPredictor, "warm_up", Predictor.warm_up)  # its own one too
    create_app(list(tiny_runs.values()), device="cpu")
    assert sorted(warmed) == sorted(tiny_runs)
