"""Pretrained weights, never unpickled: fetch them (:mod:`.sources`), read them safely
(:mod:`.files`), rename other libraries' keys to striate's (:mod:`.layouts`) and build a
model around them (:mod:`.pretrained`).

Sits between artifacts/ and apps/: it downloads with :mod:`striate.data.download`, reads
runs through :mod:`striate.artifacts`, builds models from :mod:`striate.models`.
"""

from striate.weights.files import convert_weights, read_state_dict, save_state_dict
from striate.weights.pretrained import build_net, fit_image, pretrained_classifier
from striate.weights.sources import TORCHVISION, Weights, fetch_weights

__all__ = [
    "TORCHVISION",
    "Weights",
    "build_net",
    "convert_weights",
    "fetch_weights",
    "fit_image",
    "pretrained_classifier",
    "read_state_dict",
    "save_state_dict",
]
