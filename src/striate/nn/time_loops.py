"""The time loops behind :class:`striate.nn.recurrent.Recurrent` that are not a library kernel.

* :func:`run_reference` steps any reference cell through time, one Python step at a time.
* :func:`run_gru_fast` runs the lecture's GRU: the input projections of all time steps in one
  matrix product, then only the recurrence in a loop, with a hand-written backward pass
  (:class:`GRURecurrence`) that carries dL/dh from step to step and forms the recurrent
  weights' gradient with two large products at the end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from striate.nn.cells import GRUCell


def run_reference(
    cell: nn.Module, x: Tensor, state, mask: Tensor | None, reverse: bool
) -> tuple[Tensor, object]:
    """Loop a reference cell over time: ``x`` (B, T, I) -> (outputs (B, T, H), final state).

    With a mask, a step outside a sequence keeps its state and outputs zero; run in reverse,
    each sequence therefore starts from the initial state at its own last element.
    """
    inputs = x.unbind(1)
    steps = range(len(inputs))
    outputs: list[Tensor] = [x] * len(inputs)  # placeholders, all overwritten
    for t in reversed(steps) if reverse else steps:
        h, new_state = cell(inputs[t], state)
        if mask is not None:
            m = mask[:, t]  # (B, 1)
            if isinstance(state, tuple):
                new_state = tuple(
                    torch.where(m, a, b) for a, b in zip(new_state, state, strict=True)
                )
            else:
                new_state = torch.where(m, new_state, state)
            h = torch.where(m, h, torch.zeros_like(h))
        state = new_state
        outputs[t] = h
    return torch.stack(outputs, 1), state


def run_gru_fast(
    cell: GRUCell, x: Tensor, h: Tensor, mask: Tensor | None, reverse: bool
) -> tuple[Tensor, Tensor]:
    """The lecture's GRU over time, input projections hoisted out of the loop.

    ``W · [h, x] = W_hh h + W_ih x``: the ``W_ih x_t + b`` terms of z, r and h~ for every t
    are one (B*T, I) x (I, 3H) product; the loop (:class:`GRURecurrence`) only does
    ``h @ [W_hz; W_hr]^T`` and ``(r * h) @ W_hn^T`` per step. ``x`` (B, T, I), ``h`` (B, H)
    -> (outputs (B, T, H), h_T).
    """
    bias = None if cell.bias_ih is None else cell.bias_ih + cell.bias_hh
    projected = F.linear(x, cell.weight_ih, bias).transpose(0, 1)  # (T, B, 3H), all t at once
    # Under autocast the product above runs in low precision; the recurrence runs in the
    # weights' precision (its out= products take no autocast, and h accumulates over time).
    dtype = cell.weight_hh.dtype
    projected, h = projected.to(dtype), h.to(dtype)
    masks = None if mask is None else mask.transpose(0, 1).to(dtype)  # (T, B, 1)
    if reverse:  # run the recurrence on the time-reversed sequence, then flip back
        projected = projected.flip(0)
        masks = None if masks is None else masks.flip(0)
    with torch.autocast(projected.device.type, enabled=False):
        outputs, h = GRURecurrence.apply(projected, h, cell.weight_hh, masks)
    outputs = outputs.flip(0) if reverse else outputs
    return outputs.transpose(0, 1).contiguous(), h  # contiguous like the reference's output


class GRURecurrence(torch.autograd.Function):
    """The loop of the lecture's GRU on precomputed input projections, and its BPTT.

    ``projected`` (T, B, 3H) holds ``W_ih x_t + b`` for ``[z, r, h~]``; ``h`` (B, H) is
    h_0; ``masks`` (T, B, 1) or None. Returns outputs (T, B, H) (zero where the mask is)
    and h_T. Outside a sequence z is zeroed, so h_t = h_{t-1}.

    The backward pass is written out by hand: autograd would compute dL/dW_hh as T small
    products plus T accumulations; here the loop only carries dL/dh back through time and
    dL/dW_hh is two large products over all steps. Tested against the reference cell.
    First-order gradients only.
    """

    @staticmethod
    def forward(ctx, projected, h, w_hh, masks):
        steps, hidden = projected.shape[0], h.shape[1]
        w_zr, w_n = w_hh[: 2 * hidden].T, w_hh[2 * hidden :].T  # (H, 2H), (H, H)
        zr_all = projected.new_empty(steps, *h.shape[:1], 2 * hidden)  # sigmoid([z, r])
        h_tilde_all = projected.new_empty(steps, *h.shape)
        h_all = projected.new_empty(steps + 1, *h.shape)  # h_0 .. h_T
        h_all[0] = h
        for t in range(steps):
            h = h_all[t]
            zr = torch.addmm(projected[t, :, : 2 * hidden], h, w_zr, out=zr_all[t]).sigmoid_()
            z, r = zr[:, :hidden], zr[:, hidden:]
            h_tilde = torch.addmm(projected[t, :, 2 * hidden :], r * h, w_n, out=h_tilde_all[t])
            h_tilde.tanh_()
            if masks is not None:
                z = z * masks[t]  # z = 0 outside the sequence: h stays
            torch.lerp(h, h_tilde, z, out=h_all[t + 1])  # (1 - z) * h + z * h~
        ctx.save_for_backward(w_hh, masks, zr_all, h_tilde_all, h_all)
        outputs = h_all[1:] if masks is None else h_all[1:] * masks
        return outputs, h_all[steps].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, d_outputs, d_h):
        w_hh, masks, zr_all, h_tilde_all, h_all = ctx.saved_tensors
        steps, hidden = zr_all.shape[0], d_h.shape[1]
        w_zr, w_n = w_hh[: 2 * hidden], w_hh[2 * hidden :]  # (2H, H), (H, H)
        d_projected = zr_all.new_empty(steps, d_h.shape[0], 3 * hidden)  # dL/d(pre-activations)
        if masks is not None:
            d_outputs = d_outputs * masks
        for t in reversed(range(steps)):
            zr, h_tilde, h_prev = zr_all[t], h_tilde_all[t], h_all[t]
            z, r = zr[:, :hidden], zr[:, hidden:]
            d_h = d_h + d_outputs[t]  # dL/dh_t: from the output and from step t+1
            d_z = d_h * (h_tilde - h_prev)
            sigmoid_grad = zr * (1 - zr)  # σ' of z and r, from the unmasked gates
            if masks is not None:
                z = z * masks[t]
                d_z.mul_(masks[t])
            d_n = torch.mul(d_h, z, out=d_projected[t, :, 2 * hidden :])
            d_n.mul_(1 - h_tilde * h_tilde)  # tanh'
            d_rh = d_n @ w_n  # dL/d(r * h_{t-1})
            d_zr = d_projected[t, :, : 2 * hidden]
            torch.mul(d_z, sigmoid_grad[:, :hidden], out=d_zr[:, :hidden])
            torch.mul(d_rh * h_prev, sigmoid_grad[:, hidden:], out=d_zr[:, hidden:])
            d_h = (d_h - d_h * z).addcmul_(d_rh, r)  # via (1 - z) * h_{t-1} and r * h_{t-1}
            d_h = torch.addmm(d_h, d_zr, w_zr)  # via W_hz h_{t-1} and W_hr h_{t-1}
        d_w_hh = None
        if ctx.needs_input_grad[2]:
            flat = d_projected.reshape(-1, 3 * hidden)  # (T*B, 3H)
            h_prev = h_all[:-1].reshape(-1, hidden)
            rh = (zr_all[..., hidden:] * h_all[:-1]).reshape(-1, hidden)
            d_w_hh = torch.cat((flat[:, : 2 * hidden].T @ h_prev, flat[:, 2 * hidden :].T @ rh))
        return d_projected, d_h, d_w_hh, None
