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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from striate.errors import StriateError
from striate.export.recurrence import CellStep, LoopRecurrent, StackStep, state_parts
from striate.models.seq2seq import reverse_within_lengths
from striate.predict.base import Predictor

__all__ = ["Graph", "Port", "TaskGraphs", "task_graphs"]


@dataclass(frozen=True)
class Port:
    """A graph input or output: its name, dtype and shape (a str names a dynamic size)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class Graph:
    """One exportable graph (see the module docstring).

    ``example`` traces or exports it; ``probe`` has other dynamic sizes, to check that they
    stayed dynamic; ``reference(*inputs)`` gives the trained model's own outputs in the
    graph's layout (``log_softmax``: its first output is the log-softmax of the graph's,
    as a decoder step gives it to beam search); ``loops``: the graph has a time loop
    (scripted, not traced).
    """

    name: str
    module: nn.Module
    inputs: list[Port]
    outputs: list[Port]
    example: tuple[Tensor, ...]
    probe: tuple[Tensor, ...]
    reference: Callable[..., tuple[Tensor, ...]]
    loops: bool = False
    for_script: Callable[[], nn.Module] | None = None  # a scriptable variant, if it differs
    log_softmax: bool = False  # the reference gives log-probabilities of the first output

    def dynamic_dims(self) -> dict[str, dict[int, str]]:
        """``{port: {axis: dimension name}}`` for every dynamic size, inputs and outputs."""
        return {
            port.name: {i: d for i, d in enumerate(port.shape) if isinstance(d, str)}
            for port in (*self.inputs, *self.outputs)
            if any(isinstance(d, str) for d in port.shape)
        }


@dataclass
class TaskGraphs:
    """A task's graphs and what a consumer needs beside them (classes, vocabularies,
    preprocessing, the state layout), written to the export's JSON."""

    kind: str
    graphs: list[Graph]
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# helpers


def _state_port(parts: int, layers: int, batch: str, hidden: int, name: str = "state") -> Port:
    return Port(name, "float32", (parts, layers, batch, hidden))


def _state_info(parts: int, layers: int, hidden: int, initial: str) -> dict[str, Any]:
    return {
        "shape": [parts, layers, "batch", hidden],
        "parts": ["h", "c"] if parts == 2 else ["h"],
        "initial": initial,
        "layout": "(S, L*D, B, H): S = 2 (h then C) for an LSTM, else 1",
    }


def _stack_state(state: Any) -> Tensor:
    """A torch-layout state, h (L, B, H) or (h, c), as one (S, L, B, H) tensor."""
    return torch.stack(list(state)) if isinstance(state, tuple) else state.unsqueeze(0)


def _unstack_state(state: Tensor, lstm: bool) -> Any:
    return (state[0], state[1]) if lstm else state[0]


def _ids(batch: int, length: int, vocab: int, generator: torch.Generator) -> Tensor:
    low = 4 if vocab > 5 else 0  # past <pad> <unk> <bos> <eos> where there are words
    return torch.randint(low, vocab, (batch, length), generator=generator)


def _lengths(batch: int, length: int) -> Tensor:
    """Unequal lengths, the first row full (so padding is exercised and T is reached)."""
    return torch.tensor([length] + [max(1, length - 1 - i % length) for i in range(batch - 1)])


# ---------------------------------------------------------------------------------------------
# image classifiers


class ImageGraph(nn.Module):
    """images (N, C, S, S) -> (logits, probabilities); standardization inside, and for
    uint8 pixels the division by 255."""

    def __init__(self, model: nn.Module, uint8: bool) -> None:
        super().__init__()
        self.model, self.uint8 = model, uint8

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = images.float() / 255.0 if self.uint8 else images
        logits = self.model(x)
        return logits, torch.softmax(logits, -1)


def _image(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    uint8 = options.get("image_dtype", "float32") == "uint8"
    c, s = p.channels, p.size
    dtype = "uint8" if uint8 else "float32"
    g = torch.Generator().manual_seed(0)

    def images(n: int) -> Tensor:
        x = torch.rand(n, c, s, s, generator=g)
        return (x * 255).round().to(torch.uint8) if uint8 else x

    def reference(x: Tensor) -> tuple[Tensor, Tensor]:
        logits = p.model(x.float() / 255.0 if uint8 else x)
        return logits, logits.softmax(-1)

    k = len(p.classes)
    graph = Graph(
        "model",
        ImageGraph(p.model, uint8),
        [Port("images", dtype, ("batch", c, s, s))],
        [Port("logits", "float32", ("batch", k)), Port("probabilities", "float32", ("batch", k))],
        (images(2),),
        (images(3),),
        reference,
    )
    info = {
        "classes": p.classes,
        "preprocessing": {
            "channels": c,
            "image_size": s,
            "pixels": "uint8 0..255" if uint8 else "float32 0..1",
            "resize": p.preprocess or "centre-crop to a square, then resize to image_size",
            "normalization": "inside the graph (per-channel training mean and std)",
        },
    }
    return TaskGraphs(p.kind, [graph], info)


# ---------------------------------------------------------------------------------------------
# char-RNN


class CharStepGraph(nn.Module):
    """token (B,) int64, state -> (logits (B, V), state): one step of generation."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.embed = model.embed
        self.stack = StackStep(model.rnn)
        self.head = model.head

    def forward(self, token: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        first: CellStep = self.stack.first
        # a one-hot input's product W_ih x_t is one column of W_ih: read it by index
        g = first.project_index(token) if self.embed is None else first.project(self.embed(token))
        h, state = self.stack(g, state)
        return self.head(h), state  # y_t = W_hy h_t + b_y


def _text(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    model = p.model
    rnn = model.rnn
    parts, layers, hidden, vocab = state_parts(rnn), rnn.num_layers, rnn.hidden_size, len(p.vocab)
    g = torch.Generator().manual_seed(0)
    lstm = parts == 2

    def inputs(b: int) -> tuple[Tensor, Tensor]:
        return torch.randint(0, vocab, (b,), generator=g), torch.randn(
            parts, layers, b, hidden, generator=g
        )

    def reference(token: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        logits, new = model.step(token, _unstack_state(state, lstm))
        return logits, _stack_state(new)

    graph = Graph(
        "step",
        CharStepGraph(model),
        [Port("token", "int64", ("batch",)), _state_port(parts, layers, "batch", hidden)],
        [
            Port("logits", "float32", ("batch", vocab)),
            _state_port(parts, layers, "batch", hidden, "next_state"),
        ],
        inputs(2),
        inputs(3),
        reference,
    )
    info = {
        "vocabulary": p.vocab.chars,
        "state": _state_info(parts, layers, hidden, "zeros"),
        "cell": rnn.cell,
        "sampling": "next character ~ softmax(logits / temperature); feed it back as token",
    }
    return TaskGraphs(p.kind, [graph], info)


# ---------------------------------------------------------------------------------------------
# sentiment


class SentimentGraph(nn.Module):
    """ids (B, T) int64 right-padded, lengths (B,) -> logits (B, K)."""

    __constants__ = ("pooling", "bidirectional")

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.embed, self.head = model.embed, model.head
        self.rnn = LoopRecurrent(model.rnn)
        self.pooling = model.pooling
        self.bidirectional = model.rnn.bidirectional

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        x = self.embed(ids)
        outputs, state = self.rnn(x, lengths, self.rnn.zero_state(x))
        if self.pooling == "last":
            h = state[0]  # (L*D, B, H): the state after each row's last word
            summary = torch.cat([h[-2], h[-1]], 1) if self.bidirectional else h[-1]
        else:
            valid = (
                torch.arange(ids.shape[1], device=ids.device) < lengths.unsqueeze(1)
            ).unsqueeze(2)
            if self.pooling == "mean":
                total = outputs.masked_fill(~valid, 0.0).sum(1)
                summary = total / lengths.unsqueeze(1).to(total.dtype)
            else:
                summary = outputs.masked_fill(~valid, float("-inf")).amax(1)
        return self.head(summary)


def _sentiment(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    model, vocab = p.model, len(p.vocab)
    g = torch.Generator().manual_seed(0)

    def inputs(b: int, t: int) -> tuple[Tensor, Tensor]:
        lengths = _lengths(b, t)
        ids = _ids(b, t, vocab, g)
        ids[torch.arange(t) >= lengths[:, None]] = model.pad_id
        return ids, lengths

    k = len(p.classes)
    graph = Graph(
        "model",
        SentimentGraph(model),
        [Port("ids", "int64", ("batch", "length")), Port("lengths", "int64", ("batch",))],
        [Port("logits", "float32", ("batch", k))],
        inputs(2, 5),
        inputs(3, 8),
        lambda ids, lengths: (model(ids, lengths),),
        loops=True,
    )
    info = {
        "classes": p.classes,
        "vocabulary": p.vocab.to_json(),
        "tokenization": p.meta.get("tokenization"),
        "padding": {"id": model.pad_id, "side": "right", "lengths": "count of real ids, >= 1"},
    }
    return TaskGraphs(p.kind, [graph], info)


# ---------------------------------------------------------------------------------------------
# translation


class TranslationEncoder(nn.Module):
    """src (B, S) ids right-padded, src_lengths (B,) -> (memory (B, S, K), memory_mask (B, S),
    context (B, K), state): the encoder outputs, the last layer's final state (the context
    of ``attention="none"``), and the decoder's first state ``s_0 = tanh(W_b h_S)``."""

    __constants__ = ("lstm", "layers", "directions", "reverse")

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.embed, self.bridge_h, self.bridge_c = model.src_embed, model.bridge_h, model.bridge_c
        self.rnn = LoopRecurrent(model.encoder)
        self.lstm = model.cell == "lstm"
        self.layers, self.directions = model.layers, model.encoder.num_directions
        self.reverse = model.reverse_source

    def _by_layer(self, state: Tensor) -> Tensor:  # (L*D, B, H) -> (B, L, D*H)
        L, D = self.layers, self.directions
        return state.reshape(L, D, state.shape[1], state.shape[2]).permute(2, 0, 1, 3).flatten(2)

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.reverse:
            src = reverse_within_lengths(src, src_lengths)
        x = self.embed(src)
        outputs, final = self.rnn(x, src_lengths, self.rnn.zero_state(x))
        steps = torch.arange(src.shape[1], device=src.device)
        mask = steps.unsqueeze(0) < src_lengths.unsqueeze(1)
        h_final = self._by_layer(final[0])
        h = torch.tanh(self.bridge_h(h_final)).transpose(0, 1)  # (L, B, H)
        if self.lstm and self.bridge_c is not None:
            c = self.bridge_c(self._by_layer(final[1])).transpose(0, 1)
            state = torch.stack([h, c])
        else:
            state = h.unsqueeze(0)
        return outputs, mask, h_final[:, -1], state

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.encode(src, src_lengths)


class AttentionTranslationEncoder(TranslationEncoder):
    """As :class:`TranslationEncoder`, with the keys' projection for the attention's score
    (computed once per sentence) in place of the context."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.key_proj = model.attention.key_proj

    def forward(self, src: Tensor, src_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        outputs, mask, _, state = self.encode(src, src_lengths)
        return outputs, mask, self.key_proj(outputs), state


class TranslationStep(nn.Module):
    """One decoder step with attention: (token, state, memory, memory_mask, projected) ->
    (logits, state); ``bahdanau`` attends with the previous state before the step,
    ``luong`` with the new one after it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.stack = StackStep(model.decoder_rnn)

    def forward(
        self, token: Tensor, state: Tensor, memory: Tensor, mask: Tensor, projected: Tensor
    ) -> tuple[Tensor, Tensor]:
        m = self.model
        embedded = m.tgt_embed(token)
        if m.attention_kind == "bahdanau":  # c_t from s_{t-1}, then s_t = f(s_{t-1}, [e; c_t])
            context, _ = m.attention(state[0, -1], memory, mask, projected)
            s, state = self.stack(
                self.stack.first.project(torch.cat([embedded, context], -1)), state
            )
        else:  # luong: s_t = f(s_{t-1}, e) first, then c_t attends with s_t
            s, state = self.stack(self.stack.first.project(embedded), state)
            context, _ = m.attention(s, memory, mask, projected)
        return m._logits(s, context, embedded), state


class PlainTranslationStep(nn.Module):
    """One decoder step without attention: (token, state, context) -> (logits, state),
    ``s_t = f(s_{t-1}, [e(y_{t-1}); c])`` with the fixed summary c."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.stack = StackStep(model.decoder_rnn)

    def forward(self, token: Tensor, state: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        embedded = self.model.tgt_embed(token)
        s, state = self.stack(self.stack.first.project(torch.cat([embedded, context], -1)), state)
        return self.model._logits(s, context, embedded), state


def _model_step(model: Any) -> Callable:
    """The decoder step that beam search runs (:meth:`Seq2Seq.decoder`), nothing banned."""
    dummy = torch.full((1, 1), 4, dtype=torch.long)
    with torch.no_grad():
        step, _ = model.decoder(dummy, torch.ones(1, dtype=torch.long))
    return step


def _translation(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    translator = p.translator
    model = translator.model
    lstm = model.cell == "lstm"
    parts, layers, hidden = (2 if lstm else 1), model.layers, model.hidden
    keys, src_v, tgt_v = model.key_size, len(translator.src_vocab), len(translator.tgt_vocab)
    attention = model.attention is not None
    g = torch.Generator().manual_seed(0)

    def sources(b: int, t: int) -> tuple[Tensor, Tensor]:
        lengths = _lengths(b, t)
        ids = _ids(b, t, src_v, g)
        ids[torch.arange(t) >= lengths[:, None]] = model.pad_id
        return ids, lengths

    def encoded(src: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
        memory = model.encode(src, lengths)
        third = memory["proj"] if attention else memory["context"]
        h = memory["h"].transpose(0, 1)
        state = torch.stack([h, memory["c"].transpose(0, 1)]) if lstm else h.unsqueeze(0)
        return memory["keys"], memory["mask"], third, state

    state_port = _state_port(parts, layers, "batch", hidden)
    memory_ports = [
        Port("memory", "float32", ("batch", "source_length", keys)),
        Port("memory_mask", "bool", ("batch", "source_length")),
    ]
    if attention:
        width = model.attention.key_proj.out_features
        third = Port("projected", "float32", ("batch", "source_length", width))
    else:
        third = Port("context", "float32", ("batch", keys))
    encoder = Graph(
        "encoder",
        (AttentionTranslationEncoder if attention else TranslationEncoder)(model),
        [
            Port("src", "int64", ("batch", "source_length")),
            Port("src_lengths", "int64", ("batch",)),
        ],
        [*memory_ports, third, state_port],
        sources(2, 5),
        sources(3, 7),
        encoded,
        loops=True,
    )
    step = _model_step(model)

    def step_inputs(b: int, t: int) -> tuple[Tensor, ...]:
        with torch.no_grad():
            memory, mask, third_value, state = encoded(*sources(b, t))
        token = torch.randint(4 if tgt_v > 5 else 0, tgt_v, (b,), generator=g)
        if attention:
            return token, state, memory, mask, third_value
        return token, state, third_value

    def step_reference(token: Tensor, state: Tensor, *rest: Tensor) -> tuple[Tensor, Tensor]:
        memory: dict[str, Any] = {"h": state[0].transpose(0, 1)}
        if lstm:
            memory["c"] = state[1].transpose(0, 1)
        if attention:
            memory.update(keys=rest[0], mask=rest[1], proj=rest[2])
        else:
            memory["context"] = rest[0]
        log_probs, new = step(token, memory)
        new_state = new["h"].transpose(0, 1)
        new_state = torch.stack([new_state, new["c"].transpose(0, 1)]) if lstm else new_state[None]
        return log_probs, new_state

    out_state = Port("next_state", "float32", (parts, layers, "batch", hidden))
    decoder = Graph(
        "decoder_step",
        (TranslationStep if attention else PlainTranslationStep)(model),
        [
            Port("token", "int64", ("batch",)),
            state_port,
            *(memory_ports if attention else []),
            third,
        ],
        [Port("logits", "float32", ("batch", tgt_v)), out_state],
        step_inputs(2, 5),
        step_inputs(3, 7),
        step_reference,
        log_softmax=True,  # the model's step gives beam search log-probabilities
    )
    pre = translator.preprocessing
    info = {
        "source_vocabulary": translator.src_vocab.to_json(),
        "target_vocabulary": translator.tgt_vocab.to_json(),
        "preprocessing": {
            "source_language": pre.src_lang,
            "target_language": pre.tgt_lang,
            "lowercase": pre.lowercase,
            "max_length": pre.max_length,
            "source": "tokens then <eos>, right-padded with <pad>",
        },
        "decoding": "start with <bos>; feed each chosen token and next_state back; stop at <eos>",
        "attention": model.attention_kind,
        "state": _state_info(parts, layers, hidden, "the encoder's state output"),
    }
    return TaskGraphs(p.kind, [encoder, decoder], info)


# ---------------------------------------------------------------------------------------------
# captioning


class CaptionEncoder(nn.Module):
    """images -> (annotations, projected, state) with attention, or state alone."""

    def __init__(self, model: nn.Module, uint8: bool) -> None:
        super().__init__()
        self.model, self.uint8 = model, uint8
        self.stack = StackStep(model.rnn)

    def forward(self, images: Tensor) -> Any:
        m = self.model
        x = images.float() / 255.0 if self.uint8 else images
        if m.attention is None:  # Show and Tell: the image is the first input, x_{-1}
            image = m.image_proj(m._encode(x))
            zero = image.new_zeros(2 if m.cell == "lstm" else 1, m.layers, image.shape[0], m.hidden)
            _, state = self.stack(self.stack.first.project(image), zero)
            return (state,)
        keys = m.annotations(x)
        state = m._initial_state(keys)
        state = torch.stack(list(state)) if isinstance(state, tuple) else state.unsqueeze(0)
        return keys, m.attention.project_keys(keys), state


class CaptionStep(nn.Module):
    """One word of Show and Tell: (token, state) -> (logits, state)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.stack = StackStep(model.rnn)

    def forward(self, token: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h, state = self.stack(self.stack.first.project(self.model.embed(token)), state)
        return self.model.out(h), state  # p_{t+1} = softmax(W_o h_t)


class AttentionCaptionStep(CaptionStep):
    """One word of Show, Attend and Tell: (token, state, annotations, projected) ->
    (logits, state)."""

    def forward(  # type: ignore[override]
        self, token: Tensor, state: Tensor, keys: Tensor, projected: Tensor
    ) -> tuple[Tensor, Tensor]:
        m = self.model
        x = m.embed(token)
        query = state[0, -1]  # the top layer's h_{t-1}
        context, _ = m.attention(query, keys, None, projected)
        context = torch.sigmoid(m.gate(query)) * context  # z_t = β_t Σ_i α_ti a_i
        h, state = self.stack(self.stack.first.project(torch.cat([x, context], 1)), state)
        return m.out(torch.cat([h, context], 1)), state


def _captioning(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    model, vocab = p.model, len(p.vocab)
    uint8 = options.get("image_dtype", "float32") == "uint8"
    lstm = model.cell == "lstm"
    parts, layers, hidden, size = (2 if lstm else 1), model.layers, model.hidden, p.size
    attention = model.attention is not None
    g = torch.Generator().manual_seed(0)
    dtype = "uint8" if uint8 else "float32"

    def images(n: int) -> tuple[Tensor]:
        x = torch.rand(n, 3, size, size, generator=g)
        return ((x * 255).round().to(torch.uint8) if uint8 else x,)

    def start(x: Tensor) -> dict[str, Tensor]:
        return model.decode_start(x.float() / 255.0 if uint8 else x)[1]

    def stacked(state: dict[str, Tensor]) -> Tensor:
        h = state["h"].transpose(0, 1)
        return torch.stack([h, state["c"].transpose(0, 1)]) if lstm else h.unsqueeze(0)

    def encoder_reference(x: Tensor) -> tuple[Tensor, ...]:
        state = start(x)
        if attention:
            return state["keys"], state["projected"], stacked(state)
        return (stacked(state),)

    state_port = _state_port(parts, layers, "batch", hidden)
    memory_ports: list[Port] = []
    if attention:
        with torch.no_grad():
            keys, projected, _ = encoder_reference(images(1)[0])
        memory_ports = [
            Port("annotations", "float32", ("batch", keys.shape[1], keys.shape[2])),
            Port("projected", "float32", ("batch", projected.shape[1], projected.shape[2])),
        ]
    encoder = Graph(
        "encoder",
        CaptionEncoder(model, uint8),
        [Port("images", dtype, ("batch", 3, size, size))],
        [*memory_ports, state_port],
        images(2),
        images(3),
        encoder_reference,
    )

    def step_inputs(n: int) -> tuple[Tensor, ...]:
        with torch.no_grad():
            encoded = encoder_reference(*images(n))
        token = torch.randint(4 if vocab > 5 else 0, vocab, (n,), generator=g)
        return (token, encoded[-1], *encoded[:-1])

    def step_reference(token: Tensor, state: Tensor, *memory: Tensor) -> tuple[Tensor, Tensor]:
        given = {"h": state[0].transpose(0, 1)}
        if lstm:
            given["c"] = state[1].transpose(0, 1)
        if attention:
            given["keys"], given["projected"] = memory
        log_probs, new = model._step(token, given)
        return log_probs, stacked(new)

    decoder = Graph(
        "decoder_step",
        (AttentionCaptionStep if attention else CaptionStep)(model),
        [Port("token", "int64", ("batch",)), state_port, *memory_ports],
        [
            Port("logits", "float32", ("batch", vocab)),
            Port("next_state", "float32", (parts, layers, "batch", hidden)),
        ],
        step_inputs(2),
        step_inputs(3),
        step_reference,
        log_softmax=True,
    )
    info = {
        "vocabulary": p.vocab.to_json(),
        "preprocessing": {
            "channels": 3,
            "image_size": size,
            "pixels": "uint8 0..255" if uint8 else "float32 0..1",
            "resize": "centre-crop to a square, then resize to image_size",
            "normalization": "inside the encoder graph",
        },
        "decoding": "start with <bos>; feed each chosen token and next_state back; stop at <eos>",
        "max_length": p.meta.get("max_len"),
        "attention": model.config.get("attention"),
        "state": _state_info(parts, layers, hidden, "the encoder's state output"),
    }
    return TaskGraphs(p.kind, [encoder, decoder], info)


# ---------------------------------------------------------------------------------------------
# video


class VideoGraph(nn.Module):
    """frames (B, T, C, S, S) floats 0..1 -> logits (B, T, K): the CNN on every frame, the
    recurrence over time (all T frames of every clip), a label per frame."""

    __constants__ = ("recurrent",)

    def __init__(self, model: nn.Module, encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else model.encoder
        self.register_buffer("mean", model.mean.clone())
        self.register_buffer("std", model.std.clone())
        self.recurrent = model.rnn is not None
        self.rnn = LoopRecurrent(model.rnn) if model.rnn is not None else None
        self.head = model.head

    def forward(self, frames: Tensor) -> Tensor:
        b, t = frames.shape[0], frames.shape[1]
        flat = frames.reshape(b * t, frames.shape[2], frames.shape[3], frames.shape[4])
        features = self.encoder((flat - self.mean) / self.std).reshape(b, t, -1)
        rnn = self.rnn
        if rnn is not None:
            lengths = torch.full((b,), t, dtype=torch.long, device=frames.device)
            features, _ = rnn(features, lengths, rnn.zero_state(features))
        return self.head(features)


def _video(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    model = p.model
    c, s, k = p.channels, p.size, len(p.classes)
    g = torch.Generator().manual_seed(0)

    def frames(b: int, t: int) -> tuple[Tensor]:
        return (torch.rand(b, t, c, s, s, generator=g),)

    def for_script() -> nn.Module:
        # the frame CNN is traced (its batch stays dynamic), the time loop scripted around it
        probe = torch.rand(2, c, s, s)
        with torch.no_grad():
            traced = torch.jit.trace(model.encoder, probe, check_trace=False)
        return VideoGraph(model, traced).eval()

    graph = Graph(
        "model",
        VideoGraph(model),
        [Port("frames", "float32", ("batch", "frames", c, s, s))],
        [Port("logits", "float32", ("batch", "frames", k))],
        frames(2, 4),
        frames(3, 6),
        lambda x: (model(x),),
        loops=model.rnn is not None,
        for_script=for_script,
    )
    info = {
        "classes": p.classes,
        "preprocessing": {
            "channels": c,
            "image_size": s,
            "pixels": "float32 0..1",
            "resize": "centre-crop each frame to a square, then resize to image_size",
            "normalization": "inside the graph",
        },
        "recurrence": model.config.get("cell") if model.rnn is not None else None,
        "bidirectional": bool(model.config.get("bidirectional")),
    }
    return TaskGraphs(p.kind, [graph], info)


_BUILDERS: dict[str, Callable[[Predictor, dict[str, Any]], TaskGraphs]] = {
    "image-classification": _image,
    "text-generation": _text,
    "sentiment": _sentiment,
    "translation": _translation,
    "image-captioning": _captioning,
    "video-classification": _video,
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
