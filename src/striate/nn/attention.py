"""Attention: a weighted average of encoder states, the weights computed from a query.

Both modules take a decoder state ``query (N, H)``, the encoder states ``keys (N, S, K)`` and
an optional ``mask (N, S)`` (True = a real position, False = padding) and return the context
vector ``(N, K)`` with the attention weights ``(N, S)``:

    a_s = softmax_s(score(q, k_s)),   c = Σ_s a_s k_s.

Masked positions get weight exactly zero (a fully masked row gets all-zero weights and a
zero context).

- :class:`AdditiveAttention` (Bahdanau et al. 2015): ``score(q, k) = vᵀ tanh(W_q q + W_k k)``.
- :class:`MultiplicativeAttention` (Luong et al. 2015, "general"): ``score(q, k) = qᵀ W k``.

Both can precompute the part of the score that depends on the keys alone
(:meth:`project_keys`), which a decoder does once per sentence instead of once per step.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last dim with masked-out (False) positions at exactly zero."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights.masked_fill(~mask, 0.0)  # also turns the NaNs of empty rows into 0


class _Attention(nn.Module):
    """What both scores share: keys projected once by ``key_proj``, softmax with the mask,
    the weighted average. A subclass writes :meth:`scores`."""

    key_proj: nn.Linear

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """The key-only part of the score for every key, ``(N, S, ·)``: computed once per
        sequence and passed back as ``projected_keys`` at every decoder step."""
        return self.key_proj(keys)

    def scores(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        """``score(q, k_s)`` for every s: ``(N, S)``."""
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        projected = self.project_keys(keys) if projected_keys is None else projected_keys
        weights = masked_softmax(self.scores(query, projected), mask)  # a_s
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1), weights  # c = Σ_s a_s k_s


class AdditiveAttention(_Attention):
    """Bahdanau attention: ``score(q, k) = vᵀ tanh(W_q q + W_k k)``.

    Args:
        query_size, key_size: H and K; ``attention_size``: the width of the tanh layer
            (default: ``query_size``).
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int | None = None):
        super().__init__()
        size = attention_size or query_size
        self.query_proj = nn.Linear(query_size, size, bias=False)
        self.key_proj = nn.Linear(key_size, size, bias=True)  # W_k k (+ the bias of the tanh)
        self.v = nn.Linear(size, 1, bias=False)

    def scores(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.query_proj(query).unsqueeze(1) + projected_keys)
        return self.v(hidden).squeeze(-1)


class MultiplicativeAttention(_Attention):
    """Luong "general" attention: ``score(q, k) = qᵀ W k``."""

    def __init__(self, query_size: int, key_size: int):
        super().__init__()
        self.key_proj = nn.Linear(key_size, query_size, bias=False)  # W k

    def scores(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(projected_keys, query.unsqueeze(2)).squeeze(2)
