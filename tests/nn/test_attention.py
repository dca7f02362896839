"""Attention: weights are a distribution over the unmasked positions; padding is invisible."""

from __future__ import annotations

import pytest
import torch

from striate.nn.attention import AdditiveAttention, MultiplicativeAttention


@pytest.mark.parametrize("kind", [AdditiveAttention, MultiplicativeAttention])
def test_weights_sum_to_one_and_masked_positions_get_none(kind):
    torch.manual_seed(0)
    attention = kind(6, 10)
    query, keys = torch.randn(3, 6), torch.randn(3, 5, 10)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    context, weights = attention(query, keys, mask)
    assert context.shape == (3, 10) and weights.shape == (3, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(3))
    assert (weights[~mask] == 0).all() and (weights[mask] > 0).all()
    assert torch.allclose(weights[2, 0], torch.tensor(1.0))
    assert torch.allclose(context, torch.einsum("ns,nsk->nk", weights, keys), atol=1e-6)
    # what lies behind the mask changes nothing
    noisy = keys.clone()
    noisy[~mask] = 100.0
    again, again_weights = attention(query, noisy, mask)
    assert torch.allclose(again, context, atol=1e-5) and torch.allclose(again_weights, weights)
    # precomputed key projections give the same answer
    same, _ = attention(query, keys, mask, projected_keys=attention.project_keys(keys))
    assert torch.allclose(same, context, atol=1e-6)


@pytest.mark.parametrize("kind", [AdditiveAttention, MultiplicativeAttention])
def test_no_mask_and_fully_masked_rows(kind):
    torch.manual_seed(1)
    attention = kind(4, 4)
    query, keys = torch.randn(2, 4), torch.randn(2, 3, 4)
    _, weights = attention(query, keys)
    assert torch.allclose(weights.sum(-1), torch.ones(2))
    mask = torch.tensor([[True, True, False], [False, False, False]])
    context, weights = attention(query, keys, mask)
    assert torch.isfinite(context).all() and (weights[1] == 0).all() and (context[1] == 0).all()


def test_luong_general_score_is_a_bilinear_form():
    torch.manual_seed(2)
    attention = MultiplicativeAttention(3, 5)
    query, keys = torch.randn(1, 3), torch.randn(1, 4, 5)
    _, weights = attention(query, keys)
    scores = (query @ attention.key_proj.weight @ keys[0].T).squeeze(0)
    assert torch.allclose(weights[0], torch.softmax(scores, -1), atol=1e-6)
