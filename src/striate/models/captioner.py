"""Image captioning: a CNN encoder and a recurrent word decoder ("one to many").

The lecture's first recurrent example is image captioning, image → sequence of words. Two
classic designs share this module:

* **Show and Tell** (Vinyals, Toshev, Bengio, Erhan 2015, "Show and Tell: A Neural Image
  Caption Generator", CVPR, §3.1): the CNN's image vector is the decoder's first input,
  then the words follow,

      x_{-1} = W_I CNN(I),   x_t = W_e S_t,   p_{t+1} = softmax(W_o LSTM(x_t)),  t = 0..N-1,

  so the image is seen once and its information travels in the recurrent state. (The
  output at the image step is not scored; S_0 is ``<bos>``, the last target ``<eos>``.)
* **Show, Attend and Tell** (Xu et al. 2015, ICML, §3.1.2, soft attention): the CNN's last
  spatial feature map a_1..a_L (one K-vector per position) stays; the state starts from
  their mean, h_0 = tanh(W_h mean(a)), c_0 = tanh(W_c mean(a)), and at every step

      α_t = softmax_i(score(h_{t-1}, a_i)),   z_t = β_t Σ_i α_ti a_i,
      β_t = σ(W_β h_{t-1}),   h_t = LSTM([W_e S_t ; z_t], h_{t-1}),
      p_{t+1} = softmax(W_o [h_t ; z_t]),

  with the gating scalar β of their §4.2.1 and the shared attention modules of
  :mod:`striate.nn.attention`. (The doubly stochastic penalty on α is left out.)

Both batch-normalize what the decoder receives from the CNN (the image embedding, the
annotation channels), as is common since the features of a CNN trained from scratch differ
little between images at first and would be drowned by the unit-scale word embeddings.

The encoder is any model of the zoo wrapped in :class:`~striate.models.classifier.ImageClassifier`
(its input standardization travels with it): Show and Tell reads ``forward_features``,
attention reads the feature map just before it is pooled or flattened
(:func:`spatial_features`). ``freeze_encoder`` keeps its weights and batch statistics fixed.

Both variants give ``forward(images, tokens_in) -> logits`` for teacher forcing and
``decode_start(images) -> (step, state)`` for :mod:`striate.nn.decoding`'s greedy and beam
search, with the state batch-first.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from striate.errors import StriateError
from striate.models.classifier import ImageClassifier
from striate.nn.attention import AdditiveAttention, MultiplicativeAttention
from striate.nn.recurrent import Recurrent

__all__ = ["ATTENTIONS", "Captioner", "drop_head", "spatial_features"]

ATTENTIONS = {"additive": AdditiveAttention, "multiplicative": MultiplicativeAttention}


def drop_head(net: nn.Module) -> nn.Module:
    """Replace a zoo model's classifier (``head``, or a ResNet's ``fc``) by the identity, so
    an encoder holds no parameter that never gets a gradient. Returns ``net``."""
    for name in ("head", "fc"):
        if isinstance(getattr(net, name, None), nn.Module):
            setattr(net, name, nn.Identity())
            return net
    return net


def spatial_features(net: nn.Module, x: Tensor) -> Tensor:
    """The last feature map of a zoo model before it is pooled or flattened: (N, K, h, w).

    ResNets (``stem`` + ``stages``) give the last stage's output; models whose ``features``
    is an ``nn.Sequential`` give the output of the layers before its first ``Flatten``.
    """
    if hasattr(net, "stem") and hasattr(net, "stages"):
        return net.stages(net.stem(x))
    features = getattr(net, "features", None)
    if isinstance(features, nn.Sequential):
        for layer in features:
            if isinstance(layer, nn.Flatten):
                break
            x = layer(x)
        if x.dim() == 4:
            return x
    name = getattr(net, "striate_config", {}).get("name", type(net).__name__)
    raise StriateError(f"model {name!r} exposes no spatial feature map to attend over")


class Captioner(nn.Module):
    """CNN encoder → recurrent decoder over words (see the module docstring).

    Args:
        encoder: an ImageClassifier around a zoo model (its head is never used).
        vocab_size: V, output classes of the decoder (the word vocabulary, specials included).
        image_size: the square input side (used once to size the encoder's output).
        embedding: E, the word (and image) embedding width.
        hidden: H, the recurrent state width; ``layers``: stacked cells; ``cell``: ``lstm``,
            ``gru``, ``gru_cudnn`` or ``rnn``.
        attention: None (Show and Tell), ``"additive"`` or ``"multiplicative"`` (Show,
            Attend and Tell).
        dropout: before the output layer, and between stacked cells.
        freeze_encoder: no gradient into the encoder and its BN statistics stay fixed.
        pad_id: the padding id (its embedding is zero and gets no gradient).
    """

    def __init__(
        self,
        encoder: ImageClassifier,
        vocab_size: int,
        image_size: int,
        embedding: int = 64,
        hidden: int = 256,
        layers: int = 1,
        cell: str = "lstm",
        attention: str | None = None,
        dropout: float = 0.0,
        freeze_encoder: bool = False,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if attention is not None and attention not in ATTENTIONS:
            raise StriateError(f"attention must be one of {', '.join(ATTENTIONS)}, or none")
        if min(vocab_size, embedding, hidden, layers) < 1:
            raise StriateError("vocabulary, embedding, hidden size and layers must be positive")
        self.config: dict[str, Any] = {
            "vocab_size": vocab_size,
            "image_size": image_size,
            "embedding": embedding,
            "hidden": hidden,
            "layers": layers,
            "cell": cell,
            "attention": attention,
            "dropout": dropout,
            "freeze_encoder": freeze_encoder,
            "pad_id": pad_id,
        }
        self.encoder = encoder
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            encoder.requires_grad_(False)
        self.cell, self.layers, self.hidden = cell, layers, hidden
        channels = encoder.mean.shape[1]
        with torch.no_grad():
            was_training = encoder.training
            probe = torch.zeros(1, channels, image_size, image_size)
            encoder.eval()
            if attention is None:
                feature_size = encoder.forward_features(probe).flatten(1).shape[1]
            else:
                feature_size = spatial_features(encoder.net, encoder.standardize(probe)).shape[1]
            encoder.train(was_training)
        self.feature_size = feature_size
        self.embed = nn.Embedding(vocab_size, embedding, padding_idx=pad_id)
        self.drop = nn.Dropout(dropout)
        if attention is None:
            self.attention = None
            # W_I, then batch normalization: CNN features of different images differ by a
            # small fraction of their size, and word embeddings start at unit scale
            self.image_proj = nn.Sequential(
                nn.Linear(feature_size, embedding), nn.BatchNorm1d(embedding)
            )
            self.rnn = Recurrent(cell, embedding, hidden, layers, dropout)
            self.out = nn.Linear(hidden, vocab_size)  # W_o
        else:
            self.feature_norm = nn.BatchNorm2d(feature_size)  # annotations per channel
            self.attention = ATTENTIONS[attention](hidden, feature_size)
            self.init_h = nn.Linear(feature_size, layers * hidden)
            self.init_c = nn.Linear(feature_size, layers * hidden) if cell == "lstm" else None
            self.gate = nn.Linear(hidden, 1)  # β
            self.rnn = Recurrent(cell, embedding + feature_size, hidden, layers, dropout)
            self.out = nn.Linear(hidden + feature_size, vocab_size)

    def train(self, mode: bool = True) -> Captioner:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()  # a frozen encoder keeps its batch-norm statistics
        return self

    # ------------------------------------------------------------------------- encoder

    @staticmethod
    def to_float(images: Tensor) -> Tensor:
        """uint8 pixels 0..255 → floats in [0, 1]; float images pass unchanged."""
        return images.float().div_(255) if images.dtype == torch.uint8 else images

    def _encode(self, images: Tensor) -> Tensor:
        """Show and Tell: (N, C, S, S) images → image vectors (N, feature_size)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            return self.encoder.forward_features(self.to_float(images)).flatten(1)

    def annotations(self, images: Tensor) -> Tensor:
        """Show, Attend and Tell: images → annotation vectors a (N, h * w, feature_size)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            x = self.encoder.standardize(self.to_float(images))
            maps = spatial_features(self.encoder.net, x)
        return self.feature_norm(maps).flatten(2).transpose(1, 2)

    # ------------------------------------------------------------------------- state

    def _initial_state(self, keys: Tensor) -> Any:
        """h_0 (and c_0) from the mean annotation, as the recurrent layer's (L, N, H)."""
        mean = keys.mean(1)
        n = keys.shape[0]

        def layered(linear: nn.Linear) -> Tensor:
            return torch.tanh(linear(mean)).view(n, self.layers, self.hidden).transpose(0, 1)

        h = layered(self.init_h).contiguous()
        return (h, layered(self.init_c).contiguous()) if self.init_c is not None else h

    def _top(self, state: Any) -> Tensor:
        """The last layer's h of an (L, N, H) state, or of a per-layer list of states."""
        if isinstance(state, list):
            last = state[-1]
            return last[0] if isinstance(last, tuple) else last
        return (state[0] if isinstance(state, tuple) else state)[-1]

    def _attend(self, state: Any, keys: Tensor, projected: Tensor) -> tuple[Tensor, Tensor]:
        query = self._top(state)
        context, weights = self.attention(query, keys, None, projected)
        return torch.sigmoid(self.gate(query)) * context, weights

    def _per_layer(self, state: Any) -> list:
        """(L, N, H) state (or an (h, c) pair of them) → one state per layer."""
        if isinstance(state, tuple):
            return list(zip(state[0].unbind(0), state[1].unbind(0), strict=True))
        return list(state.unbind(0))

    def _cells_step(self, x_t: Tensor, states: list) -> tuple[Tensor, list]:
        """One time step through the stacked cells, with autograd: the cells' own equations
        are much cheaper per call than a fused kernel run on a sequence of length 1."""
        new = []
        for k, cell in enumerate(self.rnn.cells):
            if k > 0:
                x_t = F.dropout(x_t, self.rnn.dropout, self.training)
            x_t, state = cell(x_t, states[k])
            new.append(state)
        return x_t, new

    # ------------------------------------------------------------------------- training

    def forward(self, images: Tensor, tokens_in: Tensor) -> Tensor:
        """Teacher forcing: images (N, C, S, S) (uint8, or floats in [0, 1]) and the ids of
        ``<bos> w_1 … w_n`` (N, T) → logits (N, T, V) for ``w_1 … w_n <eos>``."""
        words = self.embed(tokens_in)
        if self.attention is None:
            image = self.image_proj(self._encode(images)).unsqueeze(1)  # x_{-1}
            outputs, _ = self.rnn(torch.cat([image, words], 1))
            return self.out(self.drop(outputs[:, 1:]))
        keys = self.annotations(images)
        projected = self.attention.project_keys(keys)
        states = self._per_layer(self._initial_state(keys))
        logits = []
        for t in range(tokens_in.shape[1]):
            context, _ = self._attend(states, keys, projected)
            h_t, states = self._cells_step(torch.cat([words[:, t], context], 1), states)
            logits.append(self.out(self.drop(torch.cat([h_t, context], 1))))
        return torch.stack(logits, 1)

    # ------------------------------------------------------------------------- decoding

    def decode_start(self, images: Tensor) -> tuple[Any, dict[str, Tensor]]:
        """``(step, state)`` for greedy or beam search over ``images`` (eval mode).

        ``step(tokens (N,), state) -> (log_probs (N, V), state)``; every tensor of the state
        has the hypothesis on dim 0 (the recurrent state is stored as (N, L, H)).
        """
        with torch.no_grad():
            if self.attention is None:
                image = self.image_proj(self._encode(images)).unsqueeze(1)
                _, rnn_state = self.rnn(image)
                state: dict[str, Tensor] = {}
            else:
                keys = self.annotations(images)
                state = {"keys": keys, "projected": self.attention.project_keys(keys)}
                rnn_state = self._initial_state(keys)
        if isinstance(rnn_state, tuple):
            state["h"], state["c"] = (s.transpose(0, 1) for s in rnn_state)
        else:
            state["h"] = rnn_state.transpose(0, 1)
        return self._step, state

    def _step(self, tokens: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict]:
        rnn_state: Any = state["h"].transpose(0, 1).contiguous()
        if "c" in state:
            rnn_state = (rnn_state, state["c"].transpose(0, 1).contiguous())
        x = self.embed(tokens)
        new = dict(state)
        if self.attention is None:
            h, rnn_state = self.rnn.step(x, rnn_state)
            logits = self.out(h)
        else:
            context, _ = self._attend(rnn_state, state["keys"], state["projected"])
            h, rnn_state = self.rnn.step(torch.cat([x, context], 1), rnn_state)
            logits = self.out(torch.cat([h, context], 1))
        if isinstance(rnn_state, tuple):
            new["h"], new["c"] = (s.transpose(0, 1) for s in rnn_state)
        else:
            new["h"] = rnn_state.transpose(0, 1)
        return F.log_softmax(logits.float(), -1), new

    @torch.no_grad()
    def attention_maps(self, images: Tensor, tokens_in: Tensor) -> Tensor:
        """α for each step of a teacher-forced pass: (N, T, h * w) (attention models only)."""
        if self.attention is None:
            raise StriateError("this captioner has no attention")
        keys = self.annotations(images)
        projected = self.attention.project_keys(keys)
        states, words, maps = self._per_layer(self._initial_state(keys)), self.embed(tokens_in), []
        for t in range(tokens_in.shape[1]):
            context, weights = self._attend(states, keys, projected)
            _, states = self._cells_step(torch.cat([words[:, t], context], 1), states)
            maps.append(weights)
        return torch.stack(maps, 1)
