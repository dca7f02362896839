"""Translation and captioning, exported as an encoder and a decoder step each (see
:mod:`striate.export.graphs`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from striate.export.graphs.base import (
    Graph,
    Port,
    TaskGraphs,
    example_ids,
    example_lengths,
    state_info,
    state_port,
)
from striate.export.recurrence import LoopRecurrent, StackStep
from striate.models.seq2seq import reverse_within_lengths
from striate.predict.base import Predictor

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


def translation_graphs(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
    translator = p.translator
    model = translator.model
    lstm = model.cell == "lstm"
    parts, layers, hidden = (2 if lstm else 1), model.layers, model.hidden
    keys, src_v, tgt_v = model.key_size, len(translator.src_vocab), len(translator.tgt_vocab)
    attention = model.attention is not None
    g = torch.Generator().manual_seed(0)

    def sources(b: int, t: int) -> tuple[Tensor, Tensor]:
        lengths = example_lengths(b, t)
        ids = example_ids(b, t, src_v, g)
        ids[torch.arange(t) >= lengths[:, None]] = model.pad_id
        return ids, lengths

    def encoded(src: Tensor, lengths: Tensor) -> tuple[Tensor, ...]:
        memory = model.encode(src, lengths)
        third = memory["proj"] if attention else memory["context"]
        h = memory["h"].transpose(0, 1)
        state = torch.stack([h, memory["c"].transpose(0, 1)]) if lstm else h.unsqueeze(0)
        return memory["keys"], memory["mask"], third, state

    state_in = state_port(parts, layers, "batch", hidden)
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
        [*memory_ports, third, state_in],
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
            state_in,
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
        "state": state_info(parts, layers, hidden, "the encoder's state output"),
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


def captioning_graphs(p: Predictor, options: dict[str, Any]) -> TaskGraphs:
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

    state_in = state_port(parts, layers, "batch", hidden)
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
        [*memory_ports, state_in],
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
        [Port("token", "int64", ("batch",)), state_in, *memory_ports],
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
        "state": state_info(parts, layers, hidden, "the encoder's state output"),
    }
    return TaskGraphs(p.kind, [encoder, decoder], info)
