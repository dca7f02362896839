"""Pretrained weights in torchvision's and timm's exact layouts and file formats, made here
(no hub is ever reached): read safely, mapped exactly, fetched with hash checks."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from upstream import TvAlexNet, TvResNet

from striate.cli.main import main
from striate.errors import StriateError
from striate.weights import (
    build_net,
    fetch_weights,
    pretrained_classifier,
    read_state_dict,
    sources,
)
from striate.weights.files import check_torch_for_pickles
from striate.weights.imagenet import imagenet_classes


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tv_resnet18() -> TvResNet:
    torch.manual_seed(0)
    return TvResNet().eval()


@pytest.fixture(scope="module")
def resnet18_pth(tv_resnet18: TvResNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tv") / "resnet18.pth"
    torch.save(tv_resnet18.state_dict(), path)  # torchvision's format: a zip of a state dict
    return path


def _same_outputs(reference: torch.nn.Module, net: torch.nn.Module, side: int) -> None:
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), reference.eval()(x), rtol=1e-4, atol=1e-4)


def test_torchvision_resnet18_pth_computes_the_same_function(tv_resnet18, resnet18_pth):
    weights = fetch_weights(str(resnet18_pth))
    assert weights.model == "resnet18" and weights.layout == "torchvision-resnet"
    net, new_head = build_net(weights, image_size=64)
    assert not new_head
    _same_outputs(tv_resnet18, net, 64)


def test_timm_resnet50_layout_maps_exactly(tmp_path):
    torch.manual_seed(0)
    reference = TvResNet((3, 4, 6, 3), bottleneck=True, num_classes=7).eval()
    path = tmp_path / "model.safetensors"  # timm's Hub file: same names, safetensors
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    weights = fetch_weights(str(path))
    assert weights.model == "resnet50"
    net, _ = build_net(weights, image_size=64)
    _same_outputs(reference, net, 64)


def test_torchvision_alexnet_variant_computes_the_same_function(tmp_path):
    torch.manual_seed(0)
    reference = TvAlexNet(num_classes=10, width=64).eval()
    path = tmp_path / "alexnet.pth"
    torch.save(reference.state_dict(), path)
    weights = fetch_weights(str(path), model="alexnet")
    net, _ = build_net(weights, "alexnet", image_size=96, options={"fc_width": 64})
    _same_outputs(reference, net, 96)


def test_imagenet_head_brings_class_names_normalization_and_preprocessing(resnet18_pth):
    model, meta = pretrained_classifier(str(resnet18_pth))
    assert meta["classes"] == imagenet_classes() and len(set(meta["classes"])) == 1000
    assert meta["classes"][:2] == ["tench", "goldfish"]
    assert meta["preprocess"] == {"resize": 256, "crop": 224}
    assert meta["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert model.std.flatten().tolist() == pytest.approx([0.229, 0.224, 0.225])


def test_new_head_for_other_classes_keeps_the_body(tv_resnet18, resnet18_pth):
    net, new_head = build_net(fetch_weights(str(resnet18_pth)), classes=["a", "b", "c"])
    assert new_head and net.fc.out_features == 3
    torch.testing.assert_close(net.stem[0].conv.weight, tv_resnet18.conv1.weight)


def test_mismatches_name_the_first_offending_key(tv_resnet18, tmp_path):
    state = dict(tv_resnet18.state_dict())
    bad = dict(state, **{"layer1.0.conv1.weight": torch.zeros(64, 64, 5, 5)})
    save_file({k: v.contiguous() for k, v in bad.items()}, str(tmp_path / "shape.safetensors"))
    with pytest.raises(
        StriateError, match=r"'layer1\.0\.conv1\.weight' has shape \(64, 64, 5, 5\)"
    ):
        build_net(fetch_weights(str(tmp_path / "shape.safetensors")))
    missing = {k: v for k, v in state.items() if k != "layer4.1.bn2.running_var"}
    save_file({k: v.contiguous() for k, v in missing.items()}, str(tmp_path / "m.safetensors"))
    with pytest.raises(StriateError, match=r"stages\.3\.1\.residual\.1\.bn\.running_var"):
        build_net(fetch_weights(str(tmp_path / "m.safetensors")))
    with pytest.raises(StriateError, match="resnet18 weights, not resnet34"):
        build_net(fetch_weights(str(tmp_path / "m.safetensors")), "resnet34")


def test_cli_mismatch_is_one_line_exit_2(tv_resnet18, tmp_path, capsys):
    state = dict(tv_resnet18.state_dict(), extra=torch.zeros(1))
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "x.safetensors"))
    image = tmp_path / "a.png"
    Image.new("RGB", (40, 30)).save(image)
    code = main(["classify", "--weights", str(tmp_path / "x.safetensors"), str(image)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'extra'" in err


def test_pickles_are_never_opened_as_safetensors(resnet18_pth, tmp_path, capsys):
    fake = tmp_path / "model.safetensors"
    shutil.copy(resnet18_pth, fake)
    with pytest.raises(StriateError, match="is a pickle"):
        read_state_dict(fake)
    assert main(["convert-weights", str(fake), str(tmp_path / "o.safetensors")]) == 2
    assert not (tmp_path / "o.safetensors").exists()


def test_pth_reading_refuses_torch_with_known_bypasses():
    with pytest.raises(StriateError, match="CVE-2025-32434"):
        check_torch_for_pickles("2.5.1+cpu")
    check_torch_for_pickles("2.6.0")


def test_pth_holding_more_than_tensors_is_refused(tmp_path):
    path = tmp_path / "obj.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, path)
    with pytest.raises(StriateError, match="not a plain state dict"):
        read_state_dict(path)


def test_convert_weights_once_then_only_safetensors(tv_resnet18, resnet18_pth, tmp_path, capsys):
    out = tmp_path / "r18.safetensors"
    assert main(["convert-weights", str(resnet18_pth), str(out)]) == 0
    converted = read_state_dict(out)
    assert converted.keys() == tv_resnet18.state_dict().keys()
    net, _ = build_net(fetch_weights(str(out)), image_size=64)
    _same_outputs(tv_resnet18, net, 64)


def test_classify_with_weights_prints_imagenet_top5(tv_resnet18, resnet18_pth, tmp_path, capsys):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    code = main(["classify", "--model", "resnet18", "--weights", str(resnet18_pth),
                 str(tmp_path / "photo.png"), "--json"])  # fmt: skip
    assert code == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    # reference: resize to 256, centre 224, ImageNet standardization, torchvision-layout net
    x = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255)[None]
    x = F.interpolate(x, size=(256, 256), mode="bilinear", antialias=True, align_corners=False)
    x = x[..., 16:240, 16:240]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = tv_resnet18((x - mean) / std).softmax(-1)[0]
    best = probs.topk(5)
    names = imagenet_classes()
    assert [row["class"] for row in top] == [names[i] for i in best.indices.tolist()]
    assert [row["probability"] for row in top] == pytest.approx(best.values.tolist(), abs=1e-4)


# -- fetching: torchvision's address with its published hash, and the Hub ---------------------


@pytest.fixture
def tv_mirror(server, resnet18_pth, monkeypatch, tmp_path):
    """resnet18 served under a torchvision-style name carrying its own hash prefix."""
    name = f"resnet18-{_sha(resnet18_pth)[:8]}.pth"
    shutil.copy(resnet18_pth, server.root / name)
    monkeypatch.setitem(sources.TORCHVISION, "resnet18", (name, {"small_input": False}))
    monkeypatch.setenv("STRIATE_TORCHVISION_URL", server.base)
    return name


def test_torchvision_download_checks_hash_caches_and_then_stays_offline(
    tv_mirror, server, tmp_path, tv_resnet18
):
    data = tmp_path / "data"
    weights = fetch_weights("torchvision:resnet18", data_dir=data, progress=False)
    assert (data / "weights" / "torchvision" / tv_mirror).is_file()
    assert server.requests == [(f"/{tv_mirror}", None)]
    server.root.joinpath(tv_mirror).unlink()  # the server loses it: the cache is enough
    again = fetch_weights("torchvision:resnet18", data_dir=data, progress=False)
    assert len(server.requests) == 1
    net, _ = build_net(again, image_size=64)
    _same_outputs(tv_resnet18, net, 64)
    assert weights.classes == imagenet_classes()


def test_torchvision_download_resumes_after_a_cut(tv_mirror, server, tmp_path):
    data = tmp_path / "data"
    server.cut_after = 100_000
    with pytest.raises(StriateError, match="could not download"):
        fetch_weights("torchvision:resnet18", data_dir=data, progress=False)
    part = data / "weights" / "torchvision" / f"{tv_mirror}.part"
    assert part.stat().st_size == 100_000
    fetch_weights("torchvision:resnet18", data_dir=data, progress=False)
    assert server.requests[-1] == (f"/{tv_mirror}", "bytes=100000-")
    assert not part.exists()


def test_torchvision_corrupt_download_is_refused_and_removed(
    server, resnet18_pth, monkeypatch, tmp_path, capsys
):
    name = "resnet18-0badc0de.pth"  # the published digits do not match what is served
    shutil.copy(resnet18_pth, server.root / name)
    monkeypatch.setitem(sources.TORCHVISION, "resnet18", (name, {"small_input": False}))
    monkeypatch.setenv("STRIATE_TORCHVISION_URL", server.base)
    data = tmp_path / "data"
    args = ["train", "image", "--model", "resnet18", "--weights", "torchvision:resnet18"]
    code = main([*args, "--data-dir", str(data), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "checksum" in err and err.count("\n") == 1
    assert not (data / "weights" / "torchvision").exists()  # nor the folders made for it


def test_unreachable_url_and_unknown_names_are_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("STRIATE_TORCHVISION_URL", "http://127.0.0.1:9")
    with pytest.raises(StriateError, match="could not download resnet18"):
        fetch_weights("torchvision:resnet18", data_dir=tmp_path, progress=False)
    with pytest.raises(StriateError, match="unknown torchvision weights 'vgg16'"):
        fetch_weights("torchvision:vgg16", data_dir=tmp_path)
    with pytest.raises(StriateError, match="none of torchvision:NAME"):
        fetch_weights("imagenet", data_dir=tmp_path)


def _hub(server, state_file: Path, sha: str) -> None:
    repo = server.root / "timm" / "resnet18.a1_in1k"
    (repo / "resolve" / "main").mkdir(parents=True)
    shutil.copy(state_file, repo / "resolve" / "main" / "model.safetensors")
    listing = [
        {"type": "file", "path": "config.json", "size": 10},
        {"type": "file", "path": "model.safetensors", "lfs": {"oid": sha, "size": 1}},
    ]
    tree = server.root / "api" / "models" / "timm" / "resnet18.a1_in1k" / "tree"
    tree.mkdir(parents=True)
    (tree / "main").write_text(json.dumps(listing))


def test_hub_repository_downloads_checks_sha256_and_caches(
    server, tv_resnet18, monkeypatch, tmp_path
):
    file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in tv_resnet18.state_dict().items()}, str(file))
    _hub(server, file, _sha(file))
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    weights = fetch_weights("hf:timm/resnet18.a1_in1k", data_dir=tmp_path / "d", progress=False)
    assert weights.model == "resnet18"
    net, _ = build_net(weights, image_size=64)
    _same_outputs(tv_resnet18, net, 64)
    count = len(server.requests)
    fetch_weights("hf:timm/resnet18.a1_in1k", data_dir=tmp_path / "d", progress=False)
    assert len(server.requests) == count  # offline once present


def test_hub_file_with_wrong_sha256_is_refused(server, tv_resnet18, monkeypatch, tmp_path):
    file = tmp_path / "model.safetensors"
    save_file({"fc.bias": torch.zeros(3)}, str(file))
    _hub(server, file, "0" * 64)
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    with pytest.raises(StriateError, match="checksum"):
        fetch_weights("hf:timm/resnet18.a1_in1k", data_dir=tmp_path / "d", progress=False)
    with pytest.raises(StriateError, match=r"holds no model\.safetensors|HTTP 404"):
        fetch_weights("hf:timm/other", data_dir=tmp_path / "d", progress=False)
