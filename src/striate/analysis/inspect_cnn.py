"""Looking inside a trained CNN: filters, feature maps, saliency, Grad-CAM, worst errors.

The lecture's picture of a CNN is a stack of filter banks producing feature maps, each
layer seeing a larger part of the image. These functions return the numbers behind the
pictures that show it (``striate.artifacts.plots`` draws them):

* first-layer filters: the weights of the first convolution, one tile per output map;
* feature maps: the output of any named layer for one image (a forward hook);
* saliency (Simonyan, Vedaldi, Zisserman 2013, "Deep Inside Convolutional Networks"): how
  much each pixel changes the class score S_c, M_ij = max_c' |dS_c / dx_{c',i,j}|, the
  largest absolute input gradient over the colour channels;
* Grad-CAM (Selvaraju et al. 2017): with A^k the k-th map of a late convolutional layer,
  alpha_k = 1/Z sum_ij dS_c / dA^k_ij and L = ReLU(sum_k alpha_k A^k), upsampled
  (bilinear) to the input size;
* the most confidently wrong images of a labelled set, with their top-5.

``model`` is any module mapping float images in [0, 1], (N, C, H, W), to logits -- an
``ImageClassifier``, whose input standardization then counts as part of the network.
Layer names are those of ``model.named_modules()``; for an ``ImageClassifier`` they are the
wrapped network's own names (``features.c1``), as printed by ``striate analyze
receptive-field``, and the ``net.`` prefix may be given or left out.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from striate.errors import StriateError, check_finite

__all__ = [
    "ErrorCase",
    "analysis_copy",
    "as_model_input",
    "default_cam_layer",
    "feature_maps",
    "filter_tiles",
    "find_layer",
    "first_conv",
    "first_layer_filters",
    "grad_cam",
    "inner_network",
    "layer_names",
    "module_key",
    "saliency_map",
    "worst_errors",
]


# ---------------------------------------------------------------------------------------------
# layers by name


def inner_network(model: nn.Module) -> nn.Module:
    """The module whose names the user sees: the network inside an ``ImageClassifier``."""
    net = getattr(model, "net", None)
    return net if isinstance(net, nn.Module) else model


def layer_names(model: nn.Module) -> list[str]:
    """Every named submodule of the network, in registration order."""
    return [name for name, _ in inner_network(model).named_modules() if name]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; an unknown name is one line listing the closest names."""
    modules = dict(inner_network(model).named_modules())
    key = name.removeprefix("net.") if name.startswith("net.") and name not in modules else name
    if key and key in modules:
        return modules[key]
    names = [n for n in modules if n]
    leaf = key.rpartition(".")[2]
    same_leaf = [n for n in names if n.rpartition(".")[2] == leaf]
    close = same_leaf + [
        n for n in difflib.get_close_matches(key, names, n=6, cutoff=0.4) if n not in same_leaf
    ]
    if not close:  # nothing alike: offer the convolutions, the layers one usually wants
        close = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)][:8] or names[:8]
    raise StriateError(f"no layer {name!r} in the model; close names: {', '.join(close)}")


def module_key(model: nn.Module, name: str) -> str:
    """``name`` as a key of ``model.named_modules()`` (for ``ImageClassifier``: ``net.`` + name)."""
    find_layer(model, name)
    if inner_network(model) is model:
        return name
    return name if name.startswith("net.") else f"net.{name}" if name else "net"


def analysis_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy whose activations do not overwrite their inputs, so a captured layer
    output keeps its values and can be differentiated against."""
    net = copy.deepcopy(model).eval()
    for module in net.modules():
        if getattr(module, "inplace", False):
            module.inplace = False
    return net


def as_model_input(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) or (C, H, W) float images in [0, 1] of the channel count the model takes."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4:
        raise StriateError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    mean = getattr(model, "mean", None)
    channels = mean.shape[1] if isinstance(mean, torch.Tensor) else None
    if channels is None:
        first = first_conv(model, required=False)
        channels = first[1].in_channels if first else images.shape[1]
    if images.shape[1] != channels:
        raise StriateError(
            f"image with {images.shape[1]} channel(s) does not fit: the model takes {channels}"
        )
    if images.dtype == torch.uint8:
        images = images.float() / 255
    return images.float()


class _Stop(Exception):
    """Raised by a hook to end the forward pass once the wanted output is captured."""


@dataclass
class _Capture:
    output: torch.Tensor | None = None


def _capture(module: nn.Module, stop: bool) -> tuple[_Capture, torch.utils.hooks.RemovableHandle]:
    box = _Capture()

    def hook(_: nn.Module, __: object, output: object) -> None:
        if not isinstance(output, torch.Tensor):
            raise StriateError(f"layer {type(module).__name__} does not return one tensor")
        box.output = output
        if stop:
            raise _Stop

    return box, module.register_forward_hook(hook)


# ---------------------------------------------------------------------------------------------
# filters and feature maps


def first_conv(model: nn.Module, required: bool = True) -> tuple[str, nn.Conv2d] | None:
    """(name, module) of the first ``nn.Conv2d`` in registration order."""
    for name, module in inner_network(model).named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    if required:
        raise StriateError(f"{type(inner_network(model)).__name__} has no convolutional layer")
    return None


def first_layer_filters(model: nn.Module) -> torch.Tensor:
    """The first convolution's weights (C_out, C_in, k_h, k_w), a detached CPU copy.

    For a masked convolution (LeNet-5's classic C3 is never first, but in general) the
    effective weight is returned.
    """
    _, conv = first_conv(model)  # type: ignore[misc]
    weight = conv.weight.detach()
    mask = getattr(conv, "mask", None)
    if isinstance(mask, torch.Tensor):
        weight = weight * mask
    return weight.float().cpu().clone()


def filter_tiles(weights: torch.Tensor) -> torch.Tensor:
    """Filters as images in [0, 1]: 0.5 + w / (2 max|w|) per filter, so zero is mid grey.

    (C_out, 1 or 3, k, k) stay as they are (grey or RGB tiles); other channel counts give
    one grey tile per (output, input) pair, (C_out * C_in, 1, k, k).
    """
    if weights.dim() != 4:
        raise StriateError(f"filters must be (C_out, C_in, k_h, k_w), got {tuple(weights.shape)}")
    if weights.shape[1] not in (1, 3):
        weights = weights.reshape(-1, 1, *weights.shape[2:])
    peak = weights.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    return 0.5 + 0.5 * weights / peak


def feature_maps(model: nn.Module, images: torch.Tensor, layer: str) -> torch.Tensor:
    """The output of ``layer`` for ``images`` (float in [0, 1] or uint8), detached.

    The forward pass stops at the layer; its output is copied before any in-place
    activation could change it. A layer whose output is not a tensor is refused.
    """
    images = as_model_input(model, images)
    target = find_layer(model, layer)
    box, handle = _capture(target, stop=True)
    try:
        with torch.no_grad():
            model.eval()(images)
    except _Stop:
        pass
    finally:
        handle.remove()
    if box.output is None:
        raise StriateError(f"layer {layer!r} is not used in the forward pass")
    return box.output.detach().clone()


# ---------------------------------------------------------------------------------------------
# saliency and Grad-CAM


def _target_class(logits: torch.Tensor, target: int | None) -> int:
    if target is None:
        return int(logits.argmax())
    if not 0 <= target < logits.numel():
        raise StriateError(f"class index {target} out of range 0..{logits.numel() - 1}")
    return int(target)


def saliency_map(
    model: nn.Module, image: torch.Tensor, target: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(saliency (H, W), input gradient (C, H, W), class) for one image (C, H, W).

    The gradient is that of the unnormalized class score S_c (the logit), as in Simonyan
    et al.; ``target`` None takes the predicted class. M = max over channels of |dS_c/dx|.
    """
    x = as_model_input(model, image)[:1].clone().requires_grad_(True)
    net = analysis_copy(model)
    logits = check_finite(net(x)[0])
    cls = _target_class(logits.detach(), target)
    (grad,) = torch.autograd.grad(logits[cls], x)
    grad = grad[0].detach()
    return grad.abs().amax(0), grad, cls


def _spatial_layers(model: nn.Module, image: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(name, output) of every layer whose output is a (1, C, H, W) map with H*W > 1,
    in the order the layers finish during a forward pass."""
    finished: list[tuple[str, torch.Tensor]] = []
    handles = []
    for name, module in inner_network(model).named_modules():
        if not name:
            continue

        def hook(_: nn.Module, __: object, output: object, name: str = name) -> None:
            spatial = isinstance(output, torch.Tensor) and output.dim() == 4
            if spatial and output.shape[2] * output.shape[3] > 1:
                finished.append((name, output))

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(image)
    finally:
        for handle in handles:
            handle.remove()
    return finished


def default_cam_layer(model: nn.Module, image: torch.Tensor) -> str:
    """The layer Grad-CAM looks at by default: the last one, in forward order, that still
    outputs spatial maps (larger than 1x1) -- the last convolutional stage after its
    activation and pooling (LeNet-5: S4; a ResNet: its last residual block). Of containers
    that return their last child's output, the innermost module is named."""
    image = as_model_input(model, image)[:1]
    layers = _spatial_layers(model, image)
    if not layers:
        raise StriateError("the model has no layer with spatial maps larger than 1x1")
    last = layers[-1][1]
    return next(name for name, output in layers if output is last)


def grad_cam(
    model: nn.Module, image: torch.Tensor, target: int | None = None, layer: str | None = None
) -> tuple[torch.Tensor, torch.Tensor, int, str]:
    """(map (H, W) at input size, map at the layer's size, class, layer) for one image.

    L^c = ReLU(sum_k alpha_k^c A^k), alpha_k^c = mean_ij dS_c/dA^k_ij (Selvaraju et al.
    2017, eq. 1-2), A the output of ``layer`` (default :func:`default_cam_layer`), S_c the
    logit of ``target`` (default: the predicted class). The coarse map is upsampled
    bilinearly to the input; values are not rescaled.
    """
    x = as_model_input(model, image)[:1]
    layer = layer or default_cam_layer(model, x)
    net = analysis_copy(model)
    box, handle = _capture(net.get_submodule(module_key(model, layer)), stop=False)
    try:
        logits = net(x)[0]
    finally:
        handle.remove()
    maps = box.output
    if maps is None or maps.dim() != 4:
        shape = None if maps is None else tuple(maps.shape)
        raise StriateError(f"layer {layer!r} gives {shape}, not (1, C, H, W) maps for Grad-CAM")
    cls = _target_class(logits.detach(), target)
    (grads,) = torch.autograd.grad(logits[cls], maps)
    alpha = grads[0].mean(dim=(1, 2))  # one weight per map
    coarse = F.relu((alpha.view(-1, 1, 1) * maps[0]).sum(0)).detach()
    fine = F.interpolate(coarse[None, None], size=x.shape[2:], mode="bilinear", align_corners=False)
    return fine[0, 0].clamp_min(0), coarse, cls, layer


# ---------------------------------------------------------------------------------------------
# worst errors


@dataclass(frozen=True)
class ErrorCase:
    """One misclassified image: its index in the set, true class and top-k (class, prob)."""

    index: int
    label: int
    top: tuple[tuple[int, float], ...]

    @property
    def predicted(self) -> int:
        return self.top[0][0]

    @property
    def confidence(self) -> float:
        return self.top[0][1]


@torch.no_grad()
def worst_errors(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    count: int = 16,
    top_k: int = 5,
    batch_size: int = 512,
) -> list[ErrorCase]:
    """The ``count`` misclassified images with the highest predicted probability, most
    confident first, each with its top-``top_k`` classes and probabilities."""
    if count < 1:
        raise StriateError("count must be at least 1")
    if len(images) != len(labels):
        raise StriateError(f"{len(images)} images but {len(labels)} labels")
    model.eval()
    probs = torch.cat(
        [
            model(as_model_input(model, images[i : i + batch_size])).float().softmax(-1)
            for i in range(0, len(images), batch_size)
        ]
    )
    confidence, predicted = probs.max(-1)
    wrong = (predicted != labels).nonzero().flatten()
    order = wrong[confidence[wrong].argsort(descending=True, stable=True)][:count]
    k = min(top_k, probs.shape[1])
    cases = []
    for i in order.tolist():
        values, classes = probs[i].topk(k)
        top = tuple(zip(classes.tolist(), values.tolist(), strict=True))
        cases.append(ErrorCase(i, int(labels[i]), top))
    return cases
