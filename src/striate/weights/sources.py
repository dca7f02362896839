"""Where pretrained weights come from: a SPEC names them, this module finds the file.

SPECs:

* ``torchvision:NAME`` -- torchvision's ImageNet weights (``alexnet``, ``resnet18``,
  ``resnet34``, ``resnet50``), fetched once from their official address with the hash their
  file name publishes (the leading digits of the file's SHA-256), into the data directory
  (``weights/torchvision/``); resumable, and offline once present. The base address can be
  changed with ``STRIATE_TORCHVISION_URL`` (a mirror).
* ``hf:OWNER/REPO[@REVISION]`` -- a Hugging Face Hub repository holding
  ``model.safetensors`` (timm's ResNets, e.g. ``hf:timm/resnet18.a1_in1k``). The file's
  SHA-256 is the Hub's own record of it (the LFS object id, read from the repository's
  file listing) and is checked after the download. ``HF_ENDPOINT`` changes the host, as for
  the Hub's own client.
* a ``.safetensors`` file (or a ``.pth`` read without unpickling code, see
  :mod:`striate.weights.files`);
* a striate run or checkpoint directory (transfer from your own model).

Real weights need the network once; after that they are read from the data directory.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from striate.artifacts.checkpoint import load_checkpoint
from striate.artifacts.run_dir import locate_checkpoint
from striate.data.download import TIMEOUT_S, USER_AGENT, download
from striate.data.paths import resolve_data_dir
from striate.errors import StriateError
from striate.weights.files import read_state_dict
from striate.weights.imagenet import IMAGENET_PREPROCESS, imagenet_classes, imagenet_normalization
from striate.weights.layouts import detect_layout, to_striate

__all__ = ["TORCHVISION", "Weights", "fetch_weights"]

TORCHVISION_URL = "https://download.pytorch.org/models"
HF_URL = "https://huggingface.co"

# name -> (file name on download.pytorch.org, model options that reproduce the architecture);
# the 8 hex digits in each name are the leading digits of the file's SHA-256 (torchvision's
# own check). resnet50 is IMAGENET1K_V1, the weights of the original training recipe.
TORCHVISION: dict[str, tuple[str, dict[str, Any]]] = {
    "alexnet": ("alexnet-owt-7be5be79.pth", {"variant": "torchvision"}),
    "resnet18": ("resnet18-f37072fd.pth", {"small_input": False}),
    "resnet34": ("resnet34-b627a593.pth", {"small_input": False}),
    "resnet50": ("resnet50-0676ba61.pth", {"small_input": False}),
}

# what a model needs to take an ImageNet layout's weights (timm's ResNets, local files)
_IMAGENET_OPTIONS: dict[str, dict[str, Any]] = {
    "torchvision-resnet": {"small_input": False},
    "torchvision-alexnet": {"variant": "torchvision"},
}


@dataclass
class Weights:
    """Pretrained tensors in striate's names, and what travels with them."""

    spec: str
    state: dict[str, torch.Tensor]  # striate names (a net's state dict)
    origin: dict[str, str]  # striate name -> the name in the file
    layout: str
    model: str | None  # the architecture the weights are for, when the source says
    model_options: dict[str, Any] = field(default_factory=dict)
    classes: list[str] | None = None  # the classes of the weights' own head
    mean: list[float] | None = None
    std: list[float] | None = None
    image_size: int | None = None
    in_channels: int | None = None
    preprocess: dict[str, int] | None = None  # {"resize": 256, "crop": 224} for ImageNet


def _hash_prefix(filename: str) -> str:
    match = re.search(r"-([0-9a-f]{8,64})\.", filename)
    if not match:
        raise StriateError(f"no published hash in the file name {filename!r}")
    return match.group(1)


def _weights_dir(data_dir: str | Path | None, *parts: str) -> Path:
    return resolve_data_dir(data_dir).joinpath("weights", *parts)


def _imagenet(weights: Weights, image_size: int = 224) -> Weights:
    mean, std = imagenet_normalization()
    weights.mean, weights.std = mean, std
    weights.image_size, weights.in_channels = image_size, 3
    weights.preprocess = dict(IMAGENET_PREPROCESS)
    head = weights.state.get("fc.weight", weights.state.get("head.6.weight"))
    if head is not None and head.shape[0] == 1000:
        weights.classes = imagenet_classes()
    return weights


def _from_file(spec: str, path: Path, model: str | None) -> Weights:
    state = read_state_dict(path)
    layout = detect_layout(list(state))
    target = model
    if layout != "striate" and model is None:
        target = "alexnet" if layout == "torchvision-alexnet" else None
        if target is None:  # which ResNet: count the blocks of the third stage
            blocks = {k.split(".")[1] for k in state if k.startswith("layer3.")}
            bottleneck = any(".conv3." in k for k in state)
            target = "resnet50" if bottleneck else ("resnet34" if len(blocks) == 6 else "resnet18")
    renamed, origin = to_striate(state, layout, target or "")
    weights = Weights(spec, renamed, origin, layout, target)
    if layout != "striate":
        weights.model_options = dict(_IMAGENET_OPTIONS[layout])
        _imagenet(weights)
    elif "mean" in state and "std" in state:
        weights.mean = state["mean"].flatten().tolist()
        weights.std = state["std"].flatten().tolist()
    return weights


def _torchvision(name: str, data_dir: str | Path | None, progress: bool) -> Weights:
    if name not in TORCHVISION:
        raise StriateError(f"unknown torchvision weights {name!r}; known: {', '.join(TORCHVISION)}")
    filename, options = TORCHVISION[name]
    base = os.environ.get("STRIATE_TORCHVISION_URL", TORCHVISION_URL).rstrip("/")
    dest = _weights_dir(data_dir, "torchvision") / filename
    path = download([f"{base}/{filename}"], dest, sha256=_hash_prefix(filename), progress=progress)
    weights = _from_file(f"torchvision:{name}", path, name)
    weights.model_options = dict(options)
    return weights


def _hub_sha256(endpoint: str, repo: str, revision: str, filename: str) -> str:
    """The SHA-256 the Hub records for ``filename`` (its LFS object id)."""
    url = f"{endpoint}/api/models/{repo}/tree/{revision}"
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            listing = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        exc.close()
        raise StriateError(
            f"cannot list hf:{repo}@{revision}: HTTP {exc.code} {exc.reason}"
        ) from None
    except urllib.error.URLError as exc:
        raise StriateError(f"cannot reach {endpoint} for hf:{repo}: {exc.reason}") from None
    except (OSError, ValueError) as exc:
        raise StriateError(f"cannot list hf:{repo}@{revision}: {exc}") from None
    entries = listing if isinstance(listing, list) else []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("path") == filename:
            lfs = entry.get("lfs") or {}
            sha = lfs.get("oid") or lfs.get("sha256")
            if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha):
                return sha
            raise StriateError(f"hf:{repo} lists {filename} without a SHA-256 to check it by")
    raise StriateError(f"hf:{repo}@{revision} holds no {filename}")


def _hub(repo_spec: str, data_dir: str | Path | None, model: str | None, progress: bool) -> Weights:
    repo, _, revision = repo_spec.partition("@")
    revision = revision or "main"
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo) or not re.fullmatch(r"[\w.-]+", revision):
        raise StriateError(f"hf:{repo_spec} is not hf:OWNER/REPO[@REVISION]")
    filename = "model.safetensors"
    dest = _weights_dir(data_dir, "hf", repo.replace("/", "--"), revision) / filename
    if not dest.is_file():  # offline once present: the file was checked when it arrived
        endpoint = os.environ.get("HF_ENDPOINT", HF_URL).rstrip("/")
        sha = _hub_sha256(endpoint, repo, revision, filename)
        url = f"{endpoint}/{repo}/resolve/{revision}/{filename}"
        download([url], dest, sha256=sha, progress=progress)
    return _from_file(f"hf:{repo_spec}", dest, model)


def _run(spec: str, runs_dir: str | Path) -> Weights:
    _, ckpt_dir = locate_checkpoint(spec, runs_dir)
    ckpt = load_checkpoint(ckpt_dir)
    meta = ckpt.meta
    cfg = meta.get("model")
    if not isinstance(cfg, dict) or "name" not in cfg:
        raise StriateError(f"{spec} holds no CNN (a run of kind {meta.get('kind', 'unknown')!r})")
    renamed, origin = to_striate(ckpt.model_state, "striate", cfg["name"])
    weights = Weights(spec, renamed, origin, "striate", cfg["name"], dict(cfg["options"]))
    weights.classes = meta.get("classes")
    norm = meta.get("normalization") or {}
    weights.mean, weights.std = norm.get("mean"), norm.get("std")
    weights.image_size = cfg.get("image_size")
    weights.in_channels = cfg.get("in_channels")
    weights.preprocess = meta.get("preprocess")
    return weights


def fetch_weights(
    spec: str,
    model: str | None = None,
    data_dir: str | Path | None = None,
    runs_dir: str | Path = "runs",
    progress: bool = True,
) -> Weights:
    """The weights a SPEC names, renamed to striate's keys for ``model`` (see module doc)."""
    spec = str(spec)
    scheme, sep, rest = spec.partition(":")
    if sep and scheme == "torchvision":
        return _torchvision(rest, data_dir, progress)
    if sep and scheme == "hf":
        return _hub(rest, data_dir, model, progress)
    path = Path(spec).expanduser()
    if path.suffix in (".safetensors", ".pth", ".pt"):
        if not path.is_file():
            raise StriateError(f"weights file {spec} not found")
        return _from_file(spec, path, model)
    if path.is_dir() or (Path(runs_dir) / spec).is_dir():
        return _run(spec, runs_dir)
    raise StriateError(
        f"weights {spec!r} are none of torchvision:NAME, hf:OWNER/REPO, a .safetensors file "
        "or a run"
    )
