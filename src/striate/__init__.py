"""striate: convolutional and recurrent neural networks on PyTorch, as the lecture teaches them.

The public API (the command line calls exactly these):

- models: :func:`create_model`, :func:`list_models`, :func:`register_model`
- data: :func:`load_image_data`
- training: :class:`EngineConfig`, :func:`fit`, :class:`ImageTrainConfig`, :func:`train_image`,
  :func:`resume_image`
- using a run: :func:`load` (a predictor for any task's run), :func:`evaluate_image`,
  :func:`classify`, :func:`load_classifier`

Names are imported on first use, so ``import striate`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "EngineConfig": ("striate.engine.loop", "EngineConfig"),
    "fit": ("striate.engine.loop", "fit"),
    "ImageTrainConfig": ("striate.apps.image_classification", "ImageTrainConfig"),
    "train_image": ("striate.apps.image_classification", "train"),
    "resume_image": ("striate.apps.image_classification", "resume"),
    "evaluate_image": ("striate.apps.image_classification", "evaluate"),
    "classify": ("striate.apps.image_classification", "classify"),
    "load_classifier": ("striate.apps.image_classification", "load_classifier"),
    "load_image_data": ("striate.data.sources.images", "load_image_data"),
    "create_model": ("striate.models", "create_model"),
    "list_models": ("striate.models", "list_models"),
    "register_model": ("striate.models", "register_model"),
    "StriateError": ("striate.errors", "StriateError"),
    "load": ("striate.predict", "load"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'striate' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
