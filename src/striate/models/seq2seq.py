"""An encoder-decoder for sequence-to-sequence tasks (machine translation).

The encoder reads the source ``x_1 … x_S`` (embedded, optionally reversed as in Sutskever et
al. 2014, optionally bidirectional) with a :class:`~striate.nn.recurrent.Recurrent` stack;
a *bridge* turns its final state into the decoder's first one, ``s_0 = tanh(W_b h_S)`` per
layer (both directions concatenated). The decoder is a unidirectional stack of the same cell
that predicts ``y_t`` from ``y_{t-1}``, its state and a context ``c``:

* ``attention="none"`` (Cho et al. 2014): one fixed summary ``c = h_S`` (the encoder's top
  layer, both directions) is fed to every decoder step and to the output,
  ``s_t = f(s_{t-1}, [e(y_{t-1}); c])``.
* ``attention="bahdanau"`` (Bahdanau et al. 2015): ``c_t`` attends over all encoder outputs
  with the previous decoder state as query, ``c_t = Σ_s a_ts h_s``,
  ``a_t = softmax(vᵀ tanh(W_q s_{t-1} + W_k h_s))``, and ``s_t = f(s_{t-1}, [e(y_{t-1}); c_t])``.
* ``attention="luong"`` (Luong et al. 2015, global "general" attention without input
  feeding): ``s_t = f(s_{t-1}, e(y_{t-1}))`` first, then ``c_t`` attends with ``s_t`` as
  query, ``score = s_tᵀ W h_s``. The decoder recurrence does not depend on the attention,
  so under full teacher forcing all time steps run in one fused call.

The output layer is ``logits_t = W_o tanh(W_c [s_t; c_t; e(y_{t-1})])`` (Luong's attentional
state ``tanh(W_c [c_t; s_t])`` for ``luong``, which omits the embedding).

``forward(src, src_lengths, tgt_in, teacher_forcing=1.0)`` returns logits ``(B, T, V)``;
with ``teacher_forcing < 1`` each decoder input is, with probability ``1 - ratio``, the
model's own previous prediction (scheduled sampling, Bengio et al. 2015).
:meth:`Seq2Seq.decoder` gives the ``(step, state)`` pair of :mod:`striate.nn.decoding`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from striate.errors import StriateError
from striate.nn.attention import AdditiveAttention, MultiplicativeAttention
from striate.nn.recurrent import CELLS, Recurrent

ATTENTIONS = ("bahdanau", "luong", "none")


def reverse_within_lengths(ids: Tensor, lengths: Tensor) -> Tensor:
    """Each row's first ``length`` entries reversed, padding left in place."""
    steps = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
    lengths = lengths.to(ids.device).unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return ids.gather(1, index)


class Seq2Seq(nn.Module):
    """Recurrent encoder-decoder; see the module docstring.

    Args:
        src_vocab, tgt_vocab: vocabulary sizes (id ``pad_id`` is padding on both sides).
        cell: ``"lstm"``, ``"gru"``, ``"gru_cudnn"`` or ``"rnn"``.
        layers: encoder and decoder layers.
        hidden: decoder width H (and the encoder's per direction).
        embedding: embedding width E of both sides.
        attention: ``"bahdanau"``, ``"luong"`` or ``"none"``.
        bidirectional: a bidirectional encoder (its two directions are bridged to H).
        reverse_source: feed the source backwards (Sutskever et al. 2014).
        dropout: on embeddings, between layers and before the output layer.
        pad_id: the padding id.
        impl: the recurrent layers' implementation (``"auto"``, ``"fast"``, ``"reference"``).
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        cell: str = "gru",
        layers: int = 1,
        hidden: int = 256,
        embedding: int = 256,
        attention: str = "bahdanau",
        bidirectional: bool = True,
        reverse_source: bool = False,
        dropout: float = 0.2,
        pad_id: int = 0,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise StriateError(f"attention must be one of {', '.join(ATTENTIONS)}")
        if cell not in CELLS:
            raise StriateError(f"cell must be one of {', '.join(CELLS)}")
        if min(src_vocab, tgt_vocab) < 2 or min(layers, hidden, embedding) < 1:
            raise StriateError("vocabularies need 2+ tokens; layers and sizes must be positive")
        if not 0 <= dropout < 1:
            raise StriateError("dropout must be in [0, 1)")
        self.config: dict[str, Any] = {
            "src_vocab": src_vocab,
            "tgt_vocab": tgt_vocab,
            "cell": cell,
            "layers": layers,
            "hidden": hidden,
            "embedding": embedding,
            "attention": attention,
            "bidirectional": bidirectional,
            "reverse_source": reverse_source,
            "dropout": dropout,
            "pad_id": pad_id,
        }
        self.cell, self.layers, self.hidden = cell, layers, hidden
        self.attention_kind, self.reverse_source, self.pad_id = attention, reverse_source, pad_id
        directions = 2 if bidirectional else 1
        self.key_size = directions * hidden
        self.src_embed = nn.Embedding(src_vocab, embedding, padding_idx=pad_id)
        self.tgt_embed = nn.Embedding(tgt_vocab, embedding, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        self.encoder = Recurrent(
            cell, embedding, hidden, layers, dropout, bidirectional=bidirectional, impl=impl
        )
        self.bridge_h = nn.Linear(self.key_size, hidden)
        self.bridge_c = nn.Linear(self.key_size, hidden) if cell == "lstm" else None
        feeds_context = attention in ("none", "bahdanau")
        self.decoder_rnn = Recurrent(
            cell, embedding + (self.key_size if feeds_context else 0), hidden, layers, dropout,
            impl=impl,
        )  # fmt: skip
        self.attention: nn.Module | None = None
        if attention == "bahdanau":
            self.attention = AdditiveAttention(hidden, self.key_size)
        elif attention == "luong":
            self.attention = MultiplicativeAttention(hidden, self.key_size)
        combined = hidden + self.key_size + (0 if attention == "luong" else embedding)
        self.combine = nn.Linear(combined, hidden)
        self.out = nn.Linear(hidden, tgt_vocab)

    # ----------------------------------------------------------------------------- encoder

    def encode(self, src: Tensor, src_lengths: Tensor) -> dict[str, Any]:
        """Encoder outputs and the decoder's initial state, all batch-first:
        ``{"keys" (B,S,K), "mask" (B,S), "context" (B,K), "h" (B,L,H)[, "c"], "proj"}``."""
        if self.reverse_source:
            src = reverse_within_lengths(src, src_lengths)
        outputs, final = self.encoder(self.drop(self.src_embed(src)), lengths=src_lengths)
        mask = torch.arange(src.shape[1], device=src.device).unsqueeze(0) < src_lengths.to(
            src.device
        ).unsqueeze(1)

        def by_layer(state: Tensor) -> Tensor:  # (L*D, B, H) -> (B, L, D*H)
            L, D = self.layers, self.key_size // self.hidden
            return state.view(L, D, *state.shape[1:]).permute(2, 0, 1, 3).flatten(2)

        h_final = by_layer(final[0] if self.cell == "lstm" else final)
        memory: dict[str, Any] = {
            "keys": outputs,
            "mask": mask,
            "context": h_final[:, -1],
            "h": torch.tanh(self.bridge_h(h_final)),
        }
        if self.cell == "lstm":
            memory["c"] = self.bridge_c(by_layer(final[1]))
        if self.attention is not None:
            memory["proj"] = self.attention.project_keys(outputs)
        return memory

    # ----------------------------------------------------------------------------- decoder

    def _rnn_state(self, memory: dict[str, Any]) -> Any:
        h = memory["h"].transpose(0, 1).contiguous()
        return (h, memory["c"].transpose(0, 1).contiguous()) if self.cell == "lstm" else h

    def _store_state(self, memory: dict[str, Any], state: Any) -> dict[str, Any]:
        memory = dict(memory)
        if self.cell == "lstm":
            memory["h"], memory["c"] = state[0].transpose(0, 1), state[1].transpose(0, 1)
        else:
            memory["h"] = state.transpose(0, 1)
        return memory

    def _attend(self, query: Tensor, memory: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(context c_t, weights a_t) of one step."""
        return self.attention(query, memory["keys"], memory["mask"], memory["proj"])

    def _logits(self, s: Tensor, context: Tensor, embedded: Tensor) -> Tensor:
        parts = [s, context] if self.attention_kind == "luong" else [s, context, embedded]
        return self.out(self.drop(torch.tanh(self.combine(torch.cat(parts, -1)))))

    def _step_input(
        self, embedded: Tensor, memory: dict[str, Any]
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The decoder RNN's input for one step, the context (None for luong: later) and
        the attention weights (None without attention, or for luong)."""
        if self.attention_kind == "none":
            context, weights = memory["context"], None
        elif self.attention_kind == "bahdanau":
            context, weights = self._attend(memory["h"][:, -1], memory)
        else:
            return embedded, None, None
        return torch.cat([embedded, context], -1), context, weights

    def forward(
        self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, teacher_forcing: float = 1.0
    ) -> Tensor:
        """Logits ``(B, T, V)`` for the next target token at each of tgt_in's T positions."""
        memory = self.encode(src, src_lengths)
        if teacher_forcing >= 1.0:
            if self.attention_kind != "bahdanau":
                return self._forward_parallel(tgt_in, memory)
            return self._forward_teacher_forced(tgt_in, memory)
        logits, token = [], tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            if t > 0:
                token = tgt_in[:, t]
                if teacher_forcing < 1.0:
                    own = logits[-1].detach().argmax(-1)
                    coin = torch.rand(token.shape, device=token.device) >= teacher_forcing
                    token = torch.where(coin, own, token)
            step_logits, memory = self._train_step(token, memory)
            logits.append(step_logits)
        return torch.stack(logits, 1)

    def _forward_teacher_forced(self, tgt_in: Tensor, memory: dict[str, Any]) -> Tensor:
        """Bahdanau under full teacher forcing: the recurrence step by step, then the output
        layer once over all steps (one large product instead of T small ones)."""
        embedded = self.drop(self.tgt_embed(tgt_in))  # (B, T, E)
        states, contexts = [], []
        for t in range(tgt_in.shape[1]):
            x, context, _ = self._step_input(embedded[:, t], memory)
            out, state = self.decoder_rnn(x.unsqueeze(1), self._rnn_state(memory))
            memory = self._store_state(memory, state)
            states.append(out[:, 0])
            contexts.append(context)
        return self._logits(torch.stack(states, 1), torch.stack(contexts, 1), embedded)

    def _train_step(self, token: Tensor, memory: dict[str, Any]) -> tuple[Tensor, dict]:
        embedded = self.drop(self.tgt_embed(token))
        x, context, _ = self._step_input(embedded, memory)
        out, state = self.decoder_rnn(x.unsqueeze(1), self._rnn_state(memory))
        s = out[:, 0]
        memory = self._store_state(memory, state)
        if context is None:
            context, _ = self._attend(s, memory)
        return self._logits(s, context, embedded), memory

    def _forward_parallel(self, tgt_in: Tensor, memory: dict[str, Any]) -> Tensor:
        """All decoder steps at once: the recurrence does not read the attention."""
        embedded = self.drop(self.tgt_embed(tgt_in))  # (B, T, E)
        T = tgt_in.shape[1]
        if self.attention_kind == "none":
            context = memory["context"].unsqueeze(1).expand(-1, T, -1)
            x = torch.cat([embedded, context], -1)
        else:
            x = embedded
        s, _ = self.decoder_rnn(x, self._rnn_state(memory))  # (B, T, H)
        if self.attention_kind == "luong":
            keys, proj, mask = memory["keys"], memory["proj"], memory["mask"]
            scores = torch.bmm(s, proj.transpose(1, 2))  # (B, T, S): s_tᵀ W h_s
            scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
            context = torch.bmm(torch.softmax(scores, -1), keys)
        return self._logits(s, context, embedded)

    # ----------------------------------------------------------------------------- decoding

    def decoder(
        self, src: Tensor, src_lengths: Tensor, banned: tuple[int, ...] = ()
    ) -> tuple[Callable[[Tensor, Any], tuple[Tensor, Any]], dict[str, Any]]:
        """``(step, state)`` for :func:`~striate.nn.decoding.greedy_decode` and
        :func:`~striate.nn.decoding.beam_search`; ``banned`` token ids are never produced
        (e.g. pad, bos and unk). Call in eval mode under ``torch.no_grad()``.

        With attention, the state a step returns holds that step's weights a_t ``(N, S)``
        under ``"weights"`` (over the encoder's positions: reversed with ``reverse_source``)."""
        memory = self.encode(src, src_lengths)
        banned_ids = torch.tensor(banned, dtype=torch.long, device=src.device)

        def step(tokens: Tensor, memory: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
            embedded = self.tgt_embed(tokens)
            x, context, weights = self._step_input(embedded, memory)
            s, state = self.decoder_rnn.step(x, self._rnn_state(memory))
            memory = self._store_state(memory, state)
            if context is None:
                context, weights = self._attend(s, memory)
            if weights is not None:
                memory["weights"] = weights
            log_probs = torch.log_softmax(self._logits(s, context, embedded).float(), -1)
            if len(banned_ids):
                log_probs.index_fill_(1, banned_ids, float("-inf"))
            return log_probs, memory

        return step, memory

    @torch.no_grad()
    def attention_weights(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Tensor:
        """The attention weights ``(B, T, S)`` the decoder uses when it is fed ``tgt_in``
        ``(B, T)`` (``<bos> y_1 … y_{T-1}``): row t is a_t = softmax_s(score(q_t, h_s)), the
        weights with which y_t is predicted, columns in the source's own order (undone
        ``reverse_source``), zero at padding. Fed a decoded hypothesis (greedy or the beam's
        best), these are the weights along it: decoding is deterministic and each a_t
        depends only on the source and y_<t. Runs the decode step, in eval mode."""
        if self.attention is None:
            raise StriateError("this model has no attention (it was trained with attention=none)")
        was_training = self.training
        self.eval()
        try:
            step, memory = self.decoder(src, src_lengths)
            rows = []
            for t in range(tgt_in.shape[1]):
                _, memory = step(tgt_in[:, t], memory)
                rows.append(memory["weights"])
        finally:
            self.train(was_training)
        if not rows:
            return memory["keys"].new_zeros(len(src), 0, src.shape[1])
        weights = torch.stack(rows, 1)
        if self.reverse_source:  # key position s holds source token index[s]
            positions = torch.arange(src.shape[1], device=src.device).expand(len(src), -1)
            index = reverse_within_lengths(positions, src_lengths)
            weights = weights.gather(2, index.unsqueeze(1).expand_as(weights))
        return weights
