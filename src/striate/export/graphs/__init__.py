"""What is exported for each task: the "exportable" graphs of a loaded predictor.

Each task gives one or two graphs (:class:`Graph`): a module with tensor inputs and outputs only
(no Python decisions on values, no vocabularies), its input and output ports with their
dynamic dimensions, example inputs, and a *reference*: the trained model's own code path
(the one ``striate.load(RUN).predict`` runs) that the exported graph must reproduce.

=====================  ===========================================================  ==========
task                   graph: inputs -> outputs                                      dynamic
=====================  ===========================================================  ==========
image classifier       model: images (N, C, S, S) -> logits, probabilities           N
                       (normalization inside; uint8 0..255 or float 0..1 pixels)
char-RNN               step: token (B,), state -> logits (B, V), state               B
sentiment              model: ids (B, T), lengths (B,) -> logits (B, K)               B, T
translation            encoder: src (B, S), src_lengths -> memory ..., state         B, S
                       decoder_step: token (B,), state, memory ... -> logits, state   B, S
captioner              encoder: images -> (annotations, projected,) state            N
                       decoder_step: token (N,), state(, annotations, projected)      N
                       -> logits, state
video classifier       model: frames (B, T, C, S, S) -> logits (B, T, K)              B, T
=====================  ===========================================================  ==========

A recurrent state is one tensor ``(S, L*D, B, H)``: S = 2 (h then C) for the LSTM, else 1.
Graphs with a time loop (sentiment, the translation encoder, the video classifier) run it
through :class:`~striate.export.recurrence.LoopRecurrent`.

The graphs of each task are built in :mod:`.vision` (image and video classifiers),
:mod:`.sequences` (char-RNN, sentiment) and :mod:`.encoder_decoder` (translation,
captioning); :mod:`.base` holds the types they share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from striate.errors import StriateError
from striate.export.graphs.base import Graph, Port, TaskGraphs
from striate.export.graphs.encoder_decoder import captioning_graphs, translation_graphs
from striate.export.graphs.sequences import sentiment_graphs, text_graphs
from striate.export.graphs.vision import image_graphs, video_graphs
from striate.predict.base import Predictor

__all__ = ["Graph", "Port", "TaskGraphs", "task_graphs"]

_BUILDERS: dict[str, Callable[[Predictor, dict[str, Any]], TaskGraphs]] = {
    "image-classification": image_graphs,
    "text-generation": text_graphs,
    "sentiment": sentiment_graphs,
    "translation": translation_graphs,
    "image-captioning": captioning_graphs,
    "video-classification": video_graphs,
}


def task_graphs(predictor: Predictor, **options: Any) -> TaskGraphs:
    """The graphs to export for a loaded predictor (on the CPU, eval mode)."""
    builder = _BUILDERS.get(predictor.kind)
    if builder is None:
        known = ", ".join(sorted(_BUILDERS))
        raise StriateError(f"cannot export a {predictor.kind} model (exportable: {known})")
    found = builder(predictor, options)
    for graph in found.graphs:
        graph.module.eval()
    return found
