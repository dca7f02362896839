"""``striate.load``: one predictor per task, the same small surface, JSON-serialisable
results, and every option checked with one line (the CLI and the server share these)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from serve_inputs import png_bytes

import striate
from striate.cli.main import main
from striate.errors import StriateError
from striate.predict import Limits, load


@pytest.fixture(scope="module")
def predictors(tiny_runs):
    return {kind: load(run, "cpu") for kind, run in tiny_runs.items()}


def test_every_task_loads_from_its_checkpoint_alone(tiny_runs, predictors):
    assert striate.load is load
    for kind, predictor in predictors.items():
        assert predictor.kind == kind
        info = predictor.describe()
        json.dumps(info)  # plain data only
        assert info["kind"] == kind and info["training"]["step"] > 0
        assert info["options"] == list(predictor.options)
    image = predictors["image-classification"].describe()
    assert image["input"] == {"type": "image", "channels": 1, "image_size": 32}
    assert image["model"]["classes"] == [str(d) for d in range(10)]
    # a checkpoint directory works as well as its run
    ckpt = next((tiny_runs["sentiment"] / "checkpoints").iterdir())
    assert load(ckpt).describe()["checkpoint"] == ckpt.name


def test_image_top_k_is_sorted_and_sums_to_at_most_one(predictors):
    clf = predictors["image-classification"]
    tensor = torch.zeros(1, 28, 28)
    rows = clf.predict([png_bytes(), tensor], top_k=3)
    assert len(rows) == 2 and json.dumps(rows)
    for row in rows:
        probs = [t["probability"] for t in row["top"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    everything = clf.predict(png_bytes(), top_k=50)[0]["top"]  # more than there are: all
    assert len(everything) == 10 and math.isclose(
        sum(t["probability"] for t in everything), 1, rel_tol=1e-5
    )


def test_text_streams_what_predict_returns(predictors):
    gen = predictors["text-generation"]
    streamed = list(gen.stream("the ", length=30, seed=3, temperature=0.7, top_k=5))
    assert all(len(piece) == 1 for piece in streamed) and len(streamed) == 30
    assert gen.predict("the ", length=30, seed=3, temperature=0.7, top_k=5) == {
        "prime": "the ", "text": "".join(streamed)
    }  # fmt: skip
    assert set("".join(streamed)) <= set(gen.describe()["input"]["characters"])
    # top-k 0 (the command line's way to say it) and None: every character is a candidate
    unrestricted = gen.predict("the ", length=30, seed=3, top_k=None)
    assert gen.predict("the ", length=30, seed=3, top_k=0) == unrestricted


def test_text_models_translations_captions_and_clips(predictors):
    rows = predictors["sentiment"].predict(["a glad film", "a sad film"])
    for row in rows:
        assert row["label"] in ("positive", "negative")
        assert row["probability"] == max(row["probabilities"].values())
    out = predictors["translation"].predict(["red cat", "", "big dog runs"], beam=2, max_length=4)
    assert [r["source"] for r in out] == ["red cat", "", "big dog runs"]
    blank = {"source": "", "translation": "", "tokens": [], "score": None, "attention": None}
    assert out[1] == blank
    assert all(len(r["tokens"]) <= 4 and isinstance(r["score"], float) for r in (out[0], out[2]))
    (caption,) = predictors["image-captioning"].predict(png_bytes(mode="RGB"), beam=2, max_length=5)
    maps = caption["attention"]["maps"]
    assert len(caption["words"]) <= 5 and len(maps) == len(caption["words"])
    assert all(math.isclose(sum(map(sum, m)), 1, rel_tol=1e-3) for m in maps)
    clip = predictors["video-classification"].predict([png_bytes((16, 16))] * 5)
    assert [f["frame"] for f in clip["frames"]] == [0, 1, 2, 3, 4]
    json.dumps([rows, out, caption, clip])


@pytest.mark.parametrize(
    ("kind", "inputs", "options", "message"),
    [
        ("text-generation", "the ", {"temperature": float("nan")}, "finite"),
        ("text-generation", "the ", {"temperature": float("inf")}, "finite"),
        ("text-generation", "the ", {"temperature": 0}, "temperature must be in"),
        ("text-generation", "the ", {"top_k": -3}, "top-k must be between"),
        ("text-generation", "the ", {"length": 0}, "length must be between"),
        ("text-generation", "the ", {"length": 10**12}, "length must be between"),
        ("text-generation", "the ", {"length": "ten"}, "must be an integer"),
        ("text-generation", "", {}, "the prime is empty"),
        ("text-generation", "the ", {"temprature": 1}, "unknown option 'temprature'"),
        ("image-classification", [], {}, "no images given"),
        ("image-classification", b"not an image", {}, "not a readable image"),
        ("image-classification", png_bytes(), {"top_k": 0}, "top-k must be between"),
        ("sentiment", ["fine", "  "], {}, "text 2 is empty"),
        ("translation", "red cat", {"beam": 0}, "beam size must be between"),
        ("translation", "red cat", {"beam": 51}, "beam size must be between"),
        ("translation", "red cat", {"max_length": 0}, "max length must be between"),
        ("translation", "red cat", {"length_penalty": float("nan")}, "finite"),
        ("translation", ["", " "], {}, "every sentence is blank"),
        ("image-captioning", png_bytes(), {"beam": 0}, "beam size must be between"),
        ("image-captioning", png_bytes(), {"attention": "yes"}, "true or false"),
        ("video-classification", [], {}, "no frames"),
    ],
)
def test_bad_options_are_one_line_errors(predictors, kind, inputs, options, message):
    with pytest.raises(StriateError, match=message) as caught:
        predictors[kind].predict(inputs, **options)
    assert "\n" not in str(caught.value)


def test_limits_bound_what_one_call_accepts(tiny_runs):
    small = Limits(max_items=2, max_chars=10, max_pixels=100, max_frames=3, max_beam=2,
                   max_sample_length=5)  # fmt: skip
    with pytest.raises(StriateError, match="at most 100 are accepted"):
        load(tiny_runs["image-classification"], limits=small).predict(png_bytes((11, 10)))
    with pytest.raises(StriateError, match="3 images in one call"):
        load(tiny_runs["image-classification"], limits=small).predict([png_bytes((5, 5))] * 3)
    with pytest.raises(StriateError, match="at most 10"):
        load(tiny_runs["sentiment"], limits=small).predict("x" * 11)
    with pytest.raises(StriateError, match="length must be between 1 and 5"):
        load(tiny_runs["text-generation"], limits=small).stream("the ", length=6)
    with pytest.raises(StriateError, match="4 frames; at most 3"):
        load(tiny_runs["video-classification"], limits=small).predict([png_bytes((4, 4))] * 4)


def test_a_run_of_another_task_is_refused_by_name(tiny_runs):
    with pytest.raises(StriateError, match="holds a text model, not an image classifier"):
        load(tiny_runs["text-generation"], kind="image-classification")


def test_every_predict_command_takes_device_and_json(tiny_runs, tmp_path, capsys):
    image = tmp_path / "one.png"
    image.write_bytes(png_bytes())
    rgb = tmp_path / "rgb.png"
    rgb.write_bytes(png_bytes(mode="RGB"))
    frames = tmp_path / "clip"
    frames.mkdir()
    for i in range(3):
        (frames / f"{i}.png").write_bytes(png_bytes((16, 16)))
    runs = {k: str(v) for k, v in tiny_runs.items()}
    commands = [
        ["classify", runs["image-classification"], str(image), "--top-k", "2"],
        ["sample", runs["text-generation"], "--prime", "the ", "--length", "12", "--top-k", "3"],
        ["predict-sentiment", runs["sentiment"], "a glad film"],
        ["translate", runs["translation"], "red cat", "--beam", "2", "--max-length", "3"],
        ["caption", runs["image-captioning"], str(rgb), "--beam", "1", "--max-length", "4"],
        ["label-video", runs["video-classification"], str(frames)],
    ]
    for argv in commands:
        assert main([*argv, "--device", "cpu", "--json"]) == 0, argv
        parsed = json.loads(capsys.readouterr().out)
        assert parsed, argv
    assert len(parsed) == 3  # label-video: a row per frame
    assert main(["sample", runs["text-generation"], "--temperature", "nan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "temperature" in err and "finite number" in err


def test_every_predictor_warms_up_on_its_own_example_without_changing_an_answer(predictors):
    options = {"text-generation": {"length": 12, "seed": 5}}
    for kind, predictor in predictors.items():
        example = predictor.example()
        before = predictor.predict(example, **options.get(kind, {}))
        json.dumps(before)
        predictor.warm_up()
        assert predictor.predict(example, **options.get(kind, {})) == before, kind
    image = predictors["image-classification"]
    assert tuple(image.example().shape) == (image.channels, image.size, image.size)


def test_a_predictor_without_an_example_starts_cold_instead_of_failing(predictors):
    class Bare(type(predictors["sentiment"])):
        def example(self):
            return None

        def predict(self, inputs, **options):
            raise AssertionError("warm_up must not predict without an example")

    bare = Bare.__new__(Bare)
    bare.warm_up()
