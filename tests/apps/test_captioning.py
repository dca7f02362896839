"""Image captioning: Show and Tell and Show, Attend and Tell learn the shapes set; the
checkpoint round trip through ``striate caption``; a trained classifier as a frozen encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from striate.apps import captioning as cap
from striate.apps import image_classification as ic
from striate.artifacts import plots
from striate.cli.main import main
from striate.data.sources.captions import load_caption_data
from striate.engine.loop import EngineConfig
from striate.engine.metrics_text import bleu_1_to_4
from striate.errors import StriateError
from striate.models import create_model
from striate.models.captioner import Captioner, drop_head
from striate.models.classifier import ImageClassifier
from striate.nn.decoding import greedy_decode

# one object per image: colour, shape, size and place must all be read off the pixels
DATA = "shapes:800,objects=1"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are so small that their ops gain nothing from a second thread, while two
    threads waiting on each other at every tiny op slow down badly on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _engine(**kw) -> EngineConfig:
    settings = {
        "epochs": 1, "batch_size": 32, "optimizer": "adam", "lr": 5e-3, "weight_decay": 0.0,
        "schedule": "cosine", "warmup_steps": 20, "clip_grad_norm": 5.0, "precision": "fp32",
        "progress": False, "log_every": 50,
    }  # fmt: skip
    settings.update(kw)
    return EngineConfig(**settings)


def _blind_bleu4(run, test) -> float:
    """BLEU-4 of captions that ignore the image: every test image captioned like the first."""
    model, vocab, meta = cap.load_captioner(run)
    same = test.images[:1].expand(len(test), -1, -1, -1)
    hypotheses = cap.generate(model, vocab, same, 3, meta["max_len"])
    return bleu_1_to_4(hypotheses, cap.normalized_references(test))["bleu4"]


@pytest.fixture(scope="module")
def show_tell(tmp_path_factory):
    """Show and Tell (LeNet-5 encoder, LSTM decoder) trained through the command line."""
    root = tmp_path_factory.mktemp("caption-runs")
    torch.manual_seed(0)
    code = main([
        "train", "caption", "--data", DATA, "--encoder", "lenet5", "--embedding", "32",
        "--hidden", "64", "--epochs", "2", "--batch-size", "32", "--lr", "5e-3",
        "--warmup-steps", "20", "--beam", "1", "--name", "show-tell", "--runs-dir", str(root),
        "--no-progress", "--log-every", "50",
    ])  # fmt: skip
    assert code == 0
    return root / "show-tell"


def test_show_and_tell_learns_to_caption_held_out_images(show_tell):
    report = cap.evaluate(show_tell, "test", beam=3)
    assert report["images"] == 500 and len(report["examples"]) == 5
    assert report["bleu4"] >= 35.0  # measured 45
    assert report["bleu1"] > report["bleu2"] > report["bleu3"] > report["bleu4"]
    test = load_caption_data(DATA, "test")
    assert report["bleu4"] > _blind_bleu4(show_tell, test) + 15  # it reads the image
    saved = json.loads((show_tell / "eval-test.json").read_text())
    assert saved["bleu4"] == pytest.approx(report["bleu4"])


@pytest.fixture(scope="module")
def attend(tmp_path_factory):
    """Show, Attend and Tell (additive attention over an 8 x 8 map), one epoch."""
    config = cap.CaptionTrainConfig(
        data=DATA, encoder="neocognitron", encoder_options={"widths": [16, 32], "kernel_size": 3},
        attention="additive", embedding=32, hidden=64, beam=1, name="attend",
        runs_dir=str(tmp_path_factory.mktemp("attend-runs")), engine=_engine(),
    )  # fmt: skip
    return cap.train(config)


def test_attention_variant_learns(attend):
    result = attend
    assert result.fit.step == 125 and result.fit.final["accuracy"] > 0.65
    report = cap.evaluate(result.run, "test", beam=3, write=False)
    assert report["bleu4"] >= 35.0  # measured 48 after one epoch
    model, vocab, _ = cap.load_captioner(result.run)
    test = load_caption_data(DATA, "test")
    tokens = torch.tensor([vocab.encode(["a", "small"], bos=True)] * 4)
    maps = model.attention_maps(test.images[:4], tokens)
    assert maps.shape == (4, 3, 64)  # 8 x 8 feature map positions
    assert torch.allclose(maps.sum(-1), torch.ones(4, 3), atol=1e-5)


def test_attention_picture_shows_one_panel_per_word(
    attend, show_tell, tmp_path, capsys, monkeypatch
):
    test = load_caption_data(DATA, "test")
    scene = tmp_path / "scene.png"
    Image.fromarray(test.images[0].permute(1, 2, 0).numpy()).save(scene)
    seen = cap.attention_weights(attend.run, scene)
    words = seen.caption.split()
    assert seen.caption == cap.caption(attend.run, [scene])[0] and seen.words == words
    assert len(words) >= 3 and seen.maps.shape == (len(words), 8, 8)
    assert torch.allclose(seen.maps.sum((1, 2)), torch.ones(len(words)), atol=1e-5)

    panels = []  # the titles of the figure's visible axes when it is saved
    real_save = plots._save

    def counting_save(fig, target):
        panels.append([ax.get_title() for ax in fig.axes if ax.axison])
        return real_save(fig, target)

    monkeypatch.setattr(plots, "_save", counting_save)
    runs = str(attend.run.parent)
    capsys.readouterr()
    assert main(["caption", "attend", str(scene), "--runs-dir", runs, "--attention-map"]) == 0
    out = capsys.readouterr().out.splitlines()
    picture = attend.run / "analysis" / "attention-scene.png"
    assert out == [f"{scene}: {seen.caption}", f"wrote {picture}"]
    assert panels == [["image", *words]]  # the image, then one panel per word, titled by it
    with Image.open(picture) as png:
        pixels = torch.from_numpy(np.array(png.convert("RGB")))
    assert pixels.shape[1] > pixels.shape[0] > 100
    assert len(torch.unique(pixels.reshape(-1, 3), dim=0)) > 50  # not one colour

    capsys.readouterr()
    argv = ["caption", "show-tell", str(scene), "--runs-dir", str(show_tell.parent)]
    assert main([*argv, "--attention-map"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "no attention; train with --attention" in captured.err


@pytest.mark.parametrize("attention", [None, "multiplicative"])
def test_decode_steps_agree_with_teacher_forcing(attention):
    torch.manual_seed(1)
    net = drop_head(create_model("neocognitron", 1, 3, 32, widths=[8, 16]))
    model = Captioner(
        ImageClassifier(net, [0.5] * 3, [0.2] * 3), 20, 32, 16, 24, 2, "lstm", attention
    ).eval()
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    step, state = model.decode_start(images)
    assert all(t.shape[0] == 3 for t in state.values())  # batch-first for beam search
    ids = greedy_decode(step, state, 3, 2, 3, 6)
    length = min(len(row) for row in ids)
    tokens = torch.tensor([[2, *row[:length]] for row in ids])
    logits = model(images, tokens[:, :-1])
    assert torch.equal(logits.argmax(-1), tokens[:, 1:])


def test_caption_command_round_trip(show_tell, tmp_path, capsys):
    test = load_caption_data(DATA, "test")
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"scene{i}.png")
        Image.fromarray(test.images[i].permute(1, 2, 0).numpy()).save(paths[-1])
    runs = str(show_tell.parent)
    capsys.readouterr()
    assert main(["caption", "show-tell", *map(str, paths), "--runs-dir", runs, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    model, vocab, meta = cap.load_captioner(show_tell)
    expected = cap.generate(model, vocab, test.images[:3], 3, meta["max_len"])
    assert [r["caption"] for r in rows] == expected
    assert [r["image"] for r in rows] == list(map(str, paths))
    assert main(["caption", "show-tell", str(paths[0]), "--runs-dir", runs, "--beam", "1"]) == 0
    assert capsys.readouterr().out.startswith(f"{paths[0]}: a ")
    assert main(["eval-caption", "show-tell", "--split", "val", "--runs-dir", runs]) == 0
    out = capsys.readouterr().out
    assert "500 images" in out and "BLEU-4" in out and (show_tell / "eval-val.json").is_file()


def test_bad_input_exits_with_code_2(show_tell, tmp_path, capsys):
    runs = str(show_tell.parent)
    not_png = tmp_path / "notes.png"
    not_png.write_text("not an image")
    cases = [
        ["caption", "show-tell", str(tmp_path / "missing.png"), "--runs-dir", runs],
        ["caption", "show-tell", str(not_png), "--runs-dir", runs],
        ["caption", "show-tell", "x.png", "--runs-dir", runs, "--beam", "0"],
        ["caption", "no-such-run", "x.png", "--runs-dir", runs],
        ["eval-caption", "show-tell", "--runs-dir", runs, "--data", "pictures"],
        ["train", "caption", "--data", "pictures", "--runs-dir", runs],
        ["train", "caption", "--freeze-encoder", "--runs-dir", runs],
        ["train", "caption", "--attention", "sideways", "--runs-dir", runs],
        ["train", "caption", "--encoder", "no-such-net", "--data", "shapes:50", "--runs-dir", runs],
    ]
    for argv in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("striate: error: ") and err.count("\n") == 1, (argv, err)


def test_trained_classifier_as_frozen_encoder_and_resume(tmp_path):
    # a tiny RGB classifier: one object vs two objects
    images = load_caption_data("shapes:60", "train")
    folder = tmp_path / "counts"
    for i, (image, refs) in enumerate(zip(images.images, images.captions, strict=True)):
        label = "one" if " and " not in refs[3] else "many"
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / label / f"{i}.png")
    classifier = ic.train(ic.ImageTrainConfig(
        model="lenet5", data=f"folder:{folder}", name="counter", runs_dir=str(tmp_path),
        engine=EngineConfig(epochs=1, batch_size=8, max_steps=2, progress=False),
    ))  # fmt: skip
    config = cap.CaptionTrainConfig(
        data="shapes:64,objects=1", encoder_run="counter", freeze_encoder=True, embedding=16,
        hidden=32, beam=1, name="frozen", runs_dir=str(tmp_path), engine=_engine(max_steps=3),
    )  # fmt: skip
    result = cap.train(config)
    assert result.fit.step == 3
    trained, _ = ic.load_classifier(classifier.run)
    model, _, cap_meta = cap.load_captioner(result.run)
    assert cap_meta["encoder"]["name"] == "lenet5" and cap_meta["input"]["image_size"] == 32
    assert torch.equal(model.encoder.mean, trained.mean)  # the classifier's standardization
    for name, weight in model.encoder.net.features.state_dict().items():
        assert torch.equal(weight, trained.net.features.state_dict()[name]), name
    resumed = cap.resume(result.run, tmp_path, max_steps=5)
    assert resumed.fit.step == 5
    assert len(cap.caption(result.run, [images.images[0]], beam=2)) == 1

    digits = ic.train(ic.ImageTrainConfig(
        model="lenet5", data="digits", name="digits", runs_dir=str(tmp_path),
        engine=EngineConfig(epochs=1, batch_size=8, max_steps=1, progress=False),
    ))  # fmt: skip
    with pytest.raises(StriateError, match="RGB"):
        cap.train(cap.CaptionTrainConfig(
            data="shapes:64", encoder_run=str(digits.run), runs_dir=str(tmp_path),
            engine=_engine(max_steps=1),
        ))  # fmt: skip
