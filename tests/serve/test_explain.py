"""What the image and translation pages explain: the saliency map is the input gradient of
the chosen class's score (against central finite differences), the feature maps are the
first convolution's output, and the translation's attention matrix holds the weights the
attention module computed while decoding (greedy and beam search)."""

from __future__ import annotations

import base64
import copy
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from serve_inputs import png_bytes

from striate.apps.translation import translator_from_checkpoint
from striate.artifacts.checkpoint import Checkpoint, load_checkpoint
from striate.data.transforms.functional import to_square
from striate.errors import StriateError
from striate.models import create_model
from striate.models.classifier import ImageClassifier
from striate.models.seq2seq import Seq2Seq
from striate.nn.decoding import beam_search, greedy_decode
from striate.predict import load
from striate.predict.image_classification import ImageClassifierPredictor
from striate.predict.translation import TranslationPredictor


def _smooth_rgb_classifier() -> ImageClassifierPredictor:
    """A predictor over an untrained LeNet-5 of the paper (tanh, summing subsampling: smooth,
    so finite differences are exact to O(h^2)) on 3 channels, built in memory."""
    torch.manual_seed(0)
    net = create_model("lenet5_classic", 3, 3, 32)
    model = ImageClassifier(net, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    meta = {
        "kind": "image-classification",
        "model": dict(net.striate_config),
        "classes": ["cat", "dog", "fox"],
        "input": {"channels": 3, "image_size": 32},
        "normalization": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]},
    }
    return ImageClassifierPredictor(Checkpoint(Path("memory"), model.state_dict(), meta), "cpu")


def test_saliency_is_the_input_gradient_of_the_chosen_class_score():
    clf = _smooth_rgb_classifier()
    torch.manual_seed(1)
    image = torch.rand(3, 32, 32)
    for target in ("dog", 2):
        (row,) = clf.predict(image, explain=True, target=target)
        assert row["explain"]["class"] == ("dog" if target == "dog" else "fox")
        got = torch.tensor(row["explain"]["saliency"]["map"], dtype=torch.float64)
        # reference: central differences of the logit S_c in float64, pixel by pixel
        net = copy.deepcopy(clf.model).double().eval()
        c = clf.class_index(target)
        x = image.double().flatten()
        h = 1e-5
        steps = torch.eye(x.numel(), dtype=torch.float64) * h
        with torch.no_grad():
            diffs = [
                (net((x + s).view(-1, 3, 32, 32))[:, c] - net((x - s).view(-1, 3, 32, 32))[:, c])
                / (2 * h)
                for s in (steps[i : i + 512] for i in range(0, x.numel(), 512))
            ]
        grad = torch.cat(diffs).view(3, 32, 32)
        want = grad.abs().amax(0)
        assert torch.allclose(got, want / want.max(), atol=2e-4)
        assert got.max() == 1.0
    dog = clf.predict(image, explain=True, target="dog")[0]["explain"]["saliency"]["map"]
    fox = clf.predict(image, explain=True, target="fox")[0]["explain"]["saliency"]["map"]
    assert dog != fox  # the map is for the chosen class


def test_feature_maps_are_the_first_convolution_output(tiny_runs):
    clf = load(tiny_runs["image-classification"], "cpu")
    (row,) = clf.predict(png_bytes(), top_k=3, explain=True)
    seen = row["explain"]
    assert seen["class"] == row["top"][0]["class"]  # default: the top class
    maps = seen["feature_maps"]
    assert maps["layer"] == "features.c1" and maps["count"] == 6 and maps["size"] == [28, 28]
    # reference: the image as the model sees it, standardized, through C1's weights
    pixels = torch.from_numpy(np.array(Image.open(io.BytesIO(png_bytes())))).float()[None] / 255
    model_input = to_square(pixels, 32)[None]
    conv = clf.model.net.get_submodule("features.c1")
    out = F.conv2d(clf.model.standardize(model_input), conv.weight, conv.bias)[0].detach()
    for url, want in zip(maps["maps"], out, strict=True):
        assert url.startswith("data:image/png;base64,")
        tile = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2])))
        assert tile.size == (28, 28) and tile.mode == "L"
        got = torch.from_numpy(np.array(tile)).float()
        scaled = (want - want.min()) / (want.max() - want.min()) * 255
        assert (got - scaled).abs().max() <= 1.0  # rounding to 8 bits only
    assert len(seen["saliency"]["map"]) == 32 and len(seen["saliency"]["map"][0]) == 32


def test_explain_options_are_checked(tiny_runs):
    clf = load(tiny_runs["image-classification"], "cpu")
    assert "explain" not in clf.predict(png_bytes())[0]  # only on request
    with pytest.raises(StriateError, match="no class 'cat'"):
        clf.predict(png_bytes(), explain=True, target="cat")
    with pytest.raises(StriateError, match="between 0 and 9"):
        clf.predict(png_bytes(), explain=True, target=10)
    with pytest.raises(StriateError, match="explain=true"):
        clf.predict(png_bytes(), target="3")
    with pytest.raises(StriateError, match="true or false"):
        clf.predict(png_bytes(), explain="yes")


# ---------------------------------------------------------------------------------------------
# attention along the decoded hypothesis


def _recorded(model: Seq2Seq) -> tuple[list[torch.Tensor], object]:
    """Every weight matrix the attention module returns, in call order."""
    calls: list[torch.Tensor] = []
    handle = model.attention.register_forward_hook(lambda m, i, out: calls.append(out[1]))
    return calls, handle


def _flip(weights: torch.Tensor, length: int) -> torch.Tensor:
    """Encoder positions -> source order, for a reversed source of ``length`` tokens."""
    out = weights.clone()
    out[..., :length] = weights[..., :length].flip(-1)
    return out


@pytest.mark.parametrize("kind,reverse", [("bahdanau", False), ("luong", True)])
def test_attention_weights_are_those_of_the_decoding_steps(kind, reverse):
    torch.manual_seed(3)
    model = Seq2Seq(12, 9, "gru", hidden=8, embedding=6, attention=kind,
                    reverse_source=reverse, dropout=0.0).eval()  # fmt: skip
    src = torch.tensor([[4, 5, 6, 7, 2], [3, 8, 2, 0, 0]])
    lengths = torch.tensor([5, 3])
    bos, eos = 1, 2
    # greedy: row t of attention_weights == what the module computed at step t
    calls, handle = _recorded(model)
    with torch.no_grad():
        step, state = model.decoder(src, lengths)
        found = greedy_decode(step, state, 2, bos, eos, max_len=6)
    handle.remove()
    for b, hyp in enumerate(found):
        tgt_in = torch.tensor([[bos, *hyp]])[:, : max(len(hyp), 1)]
        weights = model.attention_weights(src[b : b + 1], lengths[b : b + 1], tgt_in)[0]
        assert weights.shape == (tgt_in.shape[1], 5)
        assert torch.allclose(weights.sum(-1), torch.ones(len(weights)), atol=1e-6)
        assert (weights[:, lengths[b] :] == 0).all()  # padding gets no weight
        for t, row in enumerate(weights):
            during = calls[t][b]
            want = _flip(during, int(lengths[b])) if reverse else during
            assert torch.allclose(row, want, atol=1e-6)
    # beam search: each row is one the module computed at that step for some hypothesis
    calls, handle = _recorded(model)
    with torch.no_grad():
        step, state = model.decoder(src[:1], lengths[:1])
        (hyp,) = beam_search(step, state, 1, bos, eos, beam_size=3, max_len=6)
    handle.remove()
    tgt_in = torch.tensor([[bos, *hyp]])[:, : max(len(hyp), 1)]
    weights = model.attention_weights(src[:1], lengths[:1], tgt_in)[0]
    for t, row in enumerate(weights):
        during = _flip(calls[t], 5) if reverse else calls[t]
        assert min(float((row - d).abs().max()) for d in during) < 1e-6


def test_the_translation_predictor_returns_the_matrix(tiny_runs):
    translator = load(tiny_runs["translation"], "cpu")
    rows = translator.predict(["red cat", "big dog runs"], beam=2)
    assert any(r["tokens"] for r in rows)
    for row in rows:
        seen = row["attention"]
        assert seen["kind"] == "luong" and seen["target"] == row["tokens"]
        assert seen["source"][-1] == "<eos>" and seen["source"][:-1] == row["source"].split()
        assert len(seen["weights"]) == len(row["tokens"])
        for weights in seen["weights"]:
            assert len(weights) == len(seen["source"])
            assert math.isclose(sum(weights), 1, abs_tol=1e-4)
    assert translator.predict("red cat", attention=False)[0]["attention"] is None


def test_a_model_without_attention_says_so(tiny_runs):
    ckpt = load_checkpoint(next((tiny_runs["translation"] / "checkpoints").iterdir()))
    meta = {**ckpt.meta, "model": {**ckpt.meta["model"], "attention": "none"}}
    torch.manual_seed(0)
    state = Seq2Seq(**meta["model"]).state_dict()
    predictor = TranslationPredictor(Checkpoint(ckpt.path, state, meta), "cpu")
    (row,) = predictor.predict("red cat", max_length=3)
    assert row["attention"]["kind"] == "none" and row["attention"]["weights"] is None
    assert "no attention" in row["attention"]["note"]
    assert predictor.describe()["input"]["attention"] == "none"
    with pytest.raises(StriateError, match="no attention"):
        translator_from_checkpoint(Checkpoint(ckpt.path, state, meta)).model.attention_weights(
            torch.tensor([[3, 2]]), torch.tensor([2]), torch.tensor([[1]])
        )
