"""The model registry: every architecture registers a builder under a name.

A builder has the signature ``builder(num_classes, in_channels, image_size, **options)`` and
returns an ``nn.Module`` that maps float images (N, in_channels, image_size, image_size) to
logits (N, num_classes). Register your own with one decorator::

    from striate.models import register_model

    @register_model("tiny", image_size=28)
    def tiny(num_classes=10, in_channels=1, image_size=28):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, num_classes))

and it trains with every command (``striate train image --model tiny``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from striate.errors import StriateError
from striate.nn.recurrent import MAX_PARAMETERS


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one model name."""

    name: str
    builder: Callable[..., nn.Module]
    image_size: int  # the input side the architecture was designed for
    min_image_size: int  # the smallest input side it accepts
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


_MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str | None = None,
    *,
    image_size: int = 32,
    min_image_size: int | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that adds a model builder to the registry (duplicate names raise)."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is already registered")
        doc = (builder.__doc__ or "").strip().splitlines()
        _MODELS[key] = ModelSpec(
            name=key,
            builder=builder,
            image_size=image_size,
            min_image_size=min_image_size or image_size,
            description=doc[0] if doc else "",
            tags=tuple(tags),
        )
        return builder

    return decorator


def get_model_spec(name: str) -> ModelSpec:
    try:
        return _MODELS[name]
    except KeyError:
        known = ", ".join(sorted(_MODELS))
        raise StriateError(f"unknown model {name!r}; known: {known}") from None


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style wildcard, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def create_model(
    name: str,
    num_classes: int = 10,
    in_channels: int = 3,
    image_size: int | None = None,
    **options: Any,
) -> nn.Module:
    """Build a registered model. Options that are ``None`` mean "the model's default".

    The returned module carries ``striate_config``, the exact arguments that rebuild it,
    which checkpoints store as JSON.
    """
    spec = get_model_spec(name)
    size = image_size or spec.image_size
    if num_classes < 1 or in_channels < 1:
        raise StriateError("num_classes and in_channels must be positive")
    if size < spec.min_image_size:
        raise StriateError(
            f"model {name!r} needs images of at least {spec.min_image_size}px, got {size}px"
        )
    options = {k: v for k, v in options.items() if v is not None}
    arguments = {"num_classes": num_classes, "in_channels": in_channels, "image_size": size}
    try:
        with torch.device("meta"):  # shapes only: a model too large to allocate is refused
            count = count_parameters(spec.builder(**arguments, **options))
        if count > MAX_PARAMETERS:
            raise StriateError(
                f"model {name!r} with these options would have {count:,} parameters, over "
                f"the limit {MAX_PARAMETERS:,}"
            )
        model = spec.builder(**arguments, **options)
    except (TypeError, ValueError, RuntimeError) as exc:  # options the builder refuses
        raise StriateError(f"model {name!r}: {exc}") from None
    model.striate_config = {
        "name": name,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": size,
        "options": options,
    }
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
