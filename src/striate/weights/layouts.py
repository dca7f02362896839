"""Key layouts: the names other libraries give the tensors of the same networks.

torchvision and timm name a ResNet's tensors alike (``conv1``, ``bn1``, ``layerI.J.convK``,
``layerI.J.bnK``, ``layerI.J.downsample.0/1``, ``fc``); torchvision's AlexNet has
``features.N`` and ``classifier.N``. striate's models hold the same tensors under their own
names (``stem.0.conv``, ``stages.I-1.J.residual.K-1.conv``, ``shortcut.conv``; AlexNet's
``features.N``/``head.N``). The rules below rename every key exactly -- a key no rule knows
is an error, not something silently dropped -- and :func:`fit_state` checks every name and
shape against the model, reporting the first offending key in one line.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
from torch import nn

from striate.errors import StriateError

__all__ = ["LAYOUTS", "classifier_layer", "detect_layout", "fit_state", "to_striate"]

Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]


def _rule(pattern: str, target: Callable[[re.Match[str]], str]) -> Rule:
    return re.compile(pattern), target


_RESNET: list[Rule] = [
    _rule(r"conv1\.(weight)", lambda m: f"stem.0.conv.{m[1]}"),
    _rule(r"bn1\.(\w+)", lambda m: f"stem.0.bn.{m[1]}"),
    _rule(
        r"layer([1-4])\.(\d+)\.(conv|bn)([1-3])\.(\w+)",
        lambda m: f"stages.{int(m[1]) - 1}.{m[2]}.residual.{int(m[4]) - 1}.{m[3]}.{m[5]}",
    ),
    _rule(
        r"layer([1-4])\.(\d+)\.downsample\.([01])\.(\w+)",
        lambda m: f"stages.{int(m[1]) - 1}.{m[2]}.shortcut.{('conv', 'bn')[int(m[3])]}.{m[4]}",
    ),
    _rule(r"fc\.(weight|bias)", lambda m: f"fc.{m[1]}"),
]

_ALEXNET: list[Rule] = [
    _rule(r"features\.(0|3|6|8|10)\.(weight|bias)", lambda m: f"features.{m[1]}.{m[2]}"),
    _rule(r"classifier\.(1|4|6)\.(weight|bias)", lambda m: f"head.{m[1]}.{m[2]}"),
]

# layout name -> (architectures it is defined for, rules)
LAYOUTS: dict[str, tuple[tuple[str, ...], list[Rule]]] = {
    "torchvision-resnet": (("resnet18", "resnet34", "resnet50"), _RESNET),
    "torchvision-alexnet": (("alexnet",), _ALEXNET),
}


def detect_layout(keys: set[str] | list[str]) -> str:
    """``torchvision-resnet`` (timm's ResNets share it), ``torchvision-alexnet`` or ``striate``."""
    keys = set(keys)
    if "conv1.weight" in keys and any(k.startswith("layer1.") for k in keys):
        return "torchvision-resnet"
    if "features.0.weight" in keys and any(k.startswith("classifier.") for k in keys):
        return "torchvision-alexnet"
    return "striate"


def to_striate(
    state: dict[str, torch.Tensor], layout: str, model: str
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Rename ``state`` from ``layout`` to striate's names for ``model``.

    Returns (renamed state, striate name -> source name). The ``striate`` layout keeps the
    names, dropping an :class:`~striate.models.classifier.ImageClassifier`'s ``net.`` prefix
    and its ``mean``/``std`` buffers (those travel as the normalization instead).
    """
    if layout == "striate":
        renamed, origin = {}, {}
        for key, value in state.items():
            if key in ("mean", "std"):
                continue
            name = key.removeprefix("net.")
            renamed[name], origin[name] = value, key
        return renamed, origin
    if layout not in LAYOUTS:
        raise StriateError(f"unknown key layout {layout!r}; known: {', '.join(LAYOUTS)}, striate")
    models, rules = LAYOUTS[layout]
    if model not in models:
        raise StriateError(
            f"weights in the {layout} layout fit {', '.join(models)}, not {model!r}; "
            f"pass --model {models[0]}"
        )
    renamed, origin = {}, {}
    for key, value in state.items():
        for pattern, target in rules:
            match = pattern.fullmatch(key)
            if match:
                name = target(match)
                renamed[name], origin[name] = value, key
                break
        else:
            raise StriateError(f"weights hold {key!r}, which the {layout} layout of {model} lacks")
    return renamed, origin


def classifier_layer(net: nn.Module) -> tuple[str, nn.Linear]:
    """(name, module) of the last linear layer: the head that maps features to classes."""
    found = [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise StriateError(f"{type(net).__name__} has no linear classifier layer to replace")
    return found[-1]


def fit_state(
    net: nn.Module,
    state: dict[str, torch.Tensor],
    origin: dict[str, str],
    what: str,
    skip: str | None = None,
) -> None:
    """Load ``state`` (striate names) into ``net``, every tensor or none.

    ``skip`` is a module name (the classifier being replaced) whose tensors are neither
    required nor loaded. A missing key, a key the model lacks or a shape mismatch raises
    one line naming the first offending key (in the weights' own names where they have
    one). A missing ``num_batches_tracked`` counter is not an error: it only counts steps.
    """
    own = net.state_dict()

    def skipped(key: str) -> bool:
        return skip is not None and key.startswith(skip + ".")

    for key, value in state.items():
        if skipped(key):
            continue
        name = origin.get(key, key)
        if key not in own:
            raise StriateError(f"{what}: tensor {name!r} has no place in this model ({key})")
        if tuple(own[key].shape) != tuple(value.shape):
            raise StriateError(
                f"{what}: tensor {name!r} has shape {tuple(value.shape)}, the model's "
                f"{key} has {tuple(own[key].shape)}"
            )
    for key in own:
        if key not in state and not skipped(key) and not key.endswith("num_batches_tracked"):
            raise StriateError(f"{what}: no tensor for the model's {key!r}")
    loaded = {k: v for k, v in state.items() if not skipped(k)}
    with torch.no_grad():
        for key, value in loaded.items():
            own[key].copy_(value.to(own[key].dtype))
