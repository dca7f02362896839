"""Recurrent cells and layers: the lecture's equations, fast == reference, torch interop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from striate.errors import StriateError
from striate.nn.cells import CuDNNGRUCell, GRUCell, LSTMCell, SimpleRNNCell
from striate.nn.recurrent import Recurrent, detach_state

CELLS = ["rnn", "lstm", "gru", "gru_cudnn"]
B, T, I, H = 3, 5, 4, 6  # noqa: E741 (batch, time, input, hidden as in the docstrings)
LENGTHS = torch.tensor([3, 5, 1])  # unsorted, one full length, one single step


def parts(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def random_state(module: Recurrent, batch: int = B, dtype=torch.float64):
    state = tuple(torch.randn_like(s, dtype=dtype) for s in parts(module.init_state(batch)))
    return state if module.cell == "lstm" else state[0]


def twins(cell: str, dtype=torch.float64, **kwargs) -> tuple[Recurrent, Recurrent]:
    """A reference and a fast layer with the same weights."""
    torch.manual_seed(0)
    ref = Recurrent(cell, I, H, impl="reference", **kwargs).to(dtype)
    fast = Recurrent(cell, I, H, impl="fast", **kwargs).to(dtype)
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def run_with_grads(module: Recurrent, x, state0, lengths):
    """Outputs, final state, and the gradients of a fixed random loss wrt x, h_0 and weights."""
    x = x.detach().requires_grad_()
    state0 = tuple(s.detach().requires_grad_() for s in parts(state0))
    out, state = module(x, state0 if module.cell == "lstm" else state0[0], lengths)
    gen = torch.Generator().manual_seed(1)
    loss = sum(
        (t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in (out, *parts(state))
    )
    grads = torch.autograd.grad(loss, [x, *state0, *module.parameters()])
    return out, parts(state), grads


def assert_all_close(a, b, atol: float) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, atol=atol, rtol=0)


# ----------------------------------------------------------------------------- fast == reference


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
def test_fast_equals_reference(cell, bidirectional, num_layers, lengths) -> None:
    ref, fast = twins(cell, num_layers=num_layers, bidirectional=bidirectional)
    x = torch.randn(B, T, I, dtype=torch.float64)
    state0 = random_state(ref)
    out_r, state_r, grads_r = run_with_grads(ref, x, state0, lengths)
    out_f, state_f, grads_f = run_with_grads(fast, x, state0, lengths)
    assert out_f.shape == (B, T, (2 if bidirectional else 1) * H)
    assert_all_close([out_f, *state_f], [out_r, *state_r], atol=1e-10)
    assert_all_close(grads_f, grads_r, atol=1e-10)  # input, initial state and every weight


@pytest.mark.parametrize("cell", CELLS)
def test_fast_equals_reference_float32(cell) -> None:
    ref, fast = twins(cell, dtype=torch.float32, num_layers=2, bidirectional=True)
    x = torch.randn(B, T, I)
    state0 = random_state(ref, dtype=torch.float32)
    out_r, state_r, grads_r = run_with_grads(ref, x, state0, LENGTHS)
    out_f, state_f, grads_f = run_with_grads(fast, x, state0, LENGTHS)
    assert_all_close([out_f, *state_f, *grads_f], [out_r, *state_r, *grads_r], atol=1e-4)


def test_auto_is_a_valid_impl() -> None:
    ref, _ = twins("gru")
    auto = Recurrent("gru", I, H, impl="auto").double()
    auto.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, I, dtype=torch.float64)
    torch.testing.assert_close(auto(x)[0], ref(x)[0])


# ----------------------------------------------------------------------------- the lecture


def sigma(t: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(t)


def block(w: torch.Tensor, k: int) -> torch.Tensor:
    return w[k * H : (k + 1) * H]


def W(cell, k: int) -> torch.Tensor:
    """The lecture's W_k for gate block k: [W_hh | W_ih], so that W_k · [h, x] is one product."""
    return torch.cat([block(cell.weight_hh, k), block(cell.weight_ih, k)], dim=1)


def b(cell, k: int) -> torch.Tensor:
    return block(cell.bias_ih, k) + block(cell.bias_hh, k)


def test_simple_rnn_cell_is_the_lecture_equation() -> None:
    cell = SimpleRNNCell(I, H).double()
    x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    expected = torch.tanh(h @ cell.weight_hh.T + x @ cell.weight_ih.T + b(cell, 0))
    got, state = cell(x, h)
    torch.testing.assert_close(got, expected)
    assert state is got


def test_lstm_cell_is_the_lecture_equations() -> None:
    cell = LSTMCell(I, H).double()
    x = torch.randn(B, I, dtype=torch.float64)
    h, c = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    hx = torch.cat([h, x], dim=1)  # [h_{t-1}, x_t]
    i_, f_, c_, o_ = range(4)  # torch's block order
    f = sigma(hx @ W(cell, f_).T + b(cell, f_))
    i = sigma(hx @ W(cell, i_).T + b(cell, i_))
    c_tilde = torch.tanh(hx @ W(cell, c_).T + b(cell, c_))
    c_new = f * c + i * c_tilde
    o = sigma(hx @ W(cell, o_).T + b(cell, o_))
    h_new = o * torch.tanh(c_new)
    got, (h_got, c_got) = cell(x, (h, c))
    torch.testing.assert_close(got, h_new)
    torch.testing.assert_close(h_got, h_new)
    torch.testing.assert_close(c_got, c_new)


def test_gru_cell_is_the_lecture_equations() -> None:
    cell = GRUCell(I, H).double()
    x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    z_, r_, n_ = range(3)
    z = sigma(torch.cat([h, x], 1) @ W(cell, z_).T + b(cell, z_))
    r = sigma(torch.cat([h, x], 1) @ W(cell, r_).T + b(cell, r_))
    h_tilde = torch.tanh(torch.cat([r * h, x], 1) @ W(cell, n_).T + b(cell, n_))
    expected = (1 - z) * h + z * h_tilde
    torch.testing.assert_close(cell(x, h)[0], expected)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(SimpleRNNCell, nn.RNNCell), (LSTMCell, nn.LSTMCell), (CuDNNGRUCell, nn.GRUCell)],
)
def test_cells_in_torch_layout_equal_torch_cells(ours, theirs) -> None:
    torch.manual_seed(0)
    reference = theirs(I, H).double()
    cell = ours(I, H).double()
    cell.load_state_dict(reference.state_dict())  # same names, shapes and gate order
    x = torch.randn(B, I, dtype=torch.float64)
    state = torch.randn(B, H, dtype=torch.float64)
    if ours is LSTMCell:
        state = (state, torch.randn(B, H, dtype=torch.float64))
        torch.testing.assert_close(cell(x, state)[1], reference(x, state))
    else:
        torch.testing.assert_close(cell(x, state)[0], reference(x, state))


def test_cells_start_from_zero_state() -> None:
    x = torch.randn(B, I)
    for cls in (SimpleRNNCell, LSTMCell, GRUCell, CuDNNGRUCell):
        cell = cls(I, H)
        zero = cell.init_state(B)
        torch.testing.assert_close(cell(x)[0], cell(x, zero)[0])


def test_lecture_gru_is_not_torch_gru() -> None:
    torch.manual_seed(0)
    lecture = Recurrent("gru", I, H)
    cudnn = Recurrent("gru_cudnn", I, H)
    cudnn.load_state_dict(lecture.state_dict())  # identical parameters, different maths
    x = torch.randn(B, T, I)
    assert (lecture(x)[0] - cudnn(x)[0]).abs().max() > 1e-2


# ----------------------------------------------------------------------------- torch interop


@pytest.mark.parametrize("module_type", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("impl", ["auto", "reference"])
def test_from_torch_matches_torch(module_type, bidirectional, impl) -> None:
    torch.manual_seed(0)
    theirs = module_type(I, H, num_layers=2, bidirectional=bidirectional).double()  # time-major
    ours = Recurrent.from_torch(theirs, impl=impl)
    assert ours.cell == {nn.LSTM: "lstm", nn.GRU: "gru_cudnn", nn.RNN: "rnn"}[module_type]
    x = torch.randn(B, T, I, dtype=torch.float64)
    state0 = random_state(ours)
    out, state = ours(x, state0)
    out_t, state_t = theirs(x.transpose(0, 1), state0)
    torch.testing.assert_close(out, out_t.transpose(0, 1))
    assert_all_close(parts(state), parts(state_t), atol=1e-12)


def test_from_torch_lengths_match_packed_sequences() -> None:
    torch.manual_seed(0)
    theirs = nn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True).double()
    ours = Recurrent.from_torch(theirs, impl="reference")
    x = torch.randn(B, T, I, dtype=torch.float64)
    packed = nn.utils.rnn.pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
    out_t, state_t = theirs(packed)
    out_t, _ = nn.utils.rnn.pad_packed_sequence(out_t, batch_first=True, total_length=T)
    out, state = ours(x, lengths=LENGTHS)
    torch.testing.assert_close(out, out_t)
    assert_all_close(state, state_t, atol=1e-12)


@pytest.mark.parametrize(
    "module",
    [nn.RNN(I, H, nonlinearity="relu"), nn.LSTM(I, H, proj_size=2), nn.Linear(I, H)],
    ids=["relu-rnn", "projected-lstm", "linear"],
)
def test_from_torch_rejects_what_it_cannot_match(module) -> None:
    with pytest.raises(StriateError):
        Recurrent.from_torch(module)


def test_from_torch_without_bias() -> None:
    theirs = nn.GRU(I, H, bias=False).double()
    ours = Recurrent.from_torch(theirs)
    x = torch.randn(B, T, I, dtype=torch.float64)
    torch.testing.assert_close(ours(x)[0], theirs(x.transpose(0, 1))[0].transpose(0, 1))


# ----------------------------------------------------------------------------- step


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_step_equals_forward(cell, bias) -> None:
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, num_layers=2, bias=bias).double()
    x = torch.randn(B, T, I, dtype=torch.float64)
    state0 = random_state(layer)
    outputs, final = layer(x, state0)
    state = state0
    with torch.inference_mode():
        for t in range(T):
            h, state = layer.step(x[:, t], state)
            torch.testing.assert_close(h, outputs[:, t])
    assert_all_close(parts(state), parts(final), atol=1e-12)
    one_step, _ = layer(x[:, :1])  # step from the zero state == forward over one step
    torch.testing.assert_close(layer.step(x[:, 0])[0], one_step[:, 0])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_stepper_equals_forward_for_dense_and_one_hot_inputs(cell, bias) -> None:
    """stepper(x_t) and stepper(token) (no one-hot vector built) must equal forward."""
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, num_layers=2, bias=bias).double()
    tokens = torch.randint(0, I, (T,))
    onehot = torch.nn.functional.one_hot(tokens, I).double().unsqueeze(0)  # (1, T, I)
    outputs, final = layer(onehot)
    dense_x = torch.randn(B, T, I, dtype=torch.float64)
    state0 = random_state(layer)
    dense_outputs, dense_final = layer(dense_x, state0)
    by_token, dense = layer.stepper(), layer.stepper(state0)
    kept = []
    with torch.inference_mode():
        for t, token in enumerate(tokens.tolist()):
            torch.testing.assert_close(by_token(token), outputs[:, t])
            kept.append(dense(dense_x[:, t]))
    torch.testing.assert_close(torch.stack(kept, 1), dense_outputs)  # outputs are not reused
    assert_all_close(parts(by_token.state), parts(final), atol=1e-12)
    assert_all_close(parts(dense.state), parts(dense_final), atol=1e-12)


def test_step_sees_weight_updates() -> None:
    layer = Recurrent("lstm", I, H, num_layers=2).double()
    x = torch.randn(B, I, dtype=torch.float64)
    before = layer.step(x)[0]
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(0.5)  # like an optimizer step: in place
    after = layer.step(x)[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, layer(x[:, None])[0][:, 0])


def test_step_of_a_layer_made_under_inference_mode_sees_loaded_weights() -> None:
    x = torch.randn(B, I, dtype=torch.float64)
    with torch.inference_mode():  # parameters without version counters
        layer = Recurrent("gru", I, H).double()
        layer.step(x)
        trained = Recurrent("gru", I, H).double()
        layer.load_state_dict(trained.state_dict())
        torch.testing.assert_close(layer.step(x)[0], trained.step(x)[0])


def test_step_rejects_bidirectional_and_bad_shapes() -> None:
    with pytest.raises(StriateError):
        Recurrent("gru", I, H, bidirectional=True).step(torch.randn(B, I))
    layer = Recurrent("gru", I, H)
    with pytest.raises(StriateError):
        layer.step(torch.randn(B, T, I))
    with pytest.raises(StriateError):
        layer.step(torch.randn(B, I), torch.zeros(2, B, H))


# ----------------------------------------------------------------------------- lengths


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_lengths_equal_running_each_valid_prefix(cell, impl) -> None:
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, num_layers=2, bidirectional=True, impl=impl).double()
    x = torch.randn(B, T, I, dtype=torch.float64)
    state0 = random_state(layer)
    out, state = layer(x, state0, lengths=LENGTHS)
    for i, n in enumerate(LENGTHS.tolist()):
        assert torch.all(out[i, n:] == 0)
        alone = tuple(s[:, i : i + 1] for s in parts(state0))
        out_i, state_i = layer(x[i : i + 1, :n], alone if cell == "lstm" else alone[0])
        torch.testing.assert_close(out[i : i + 1, :n], out_i)
        assert_all_close([s[:, i : i + 1] for s in parts(state)], parts(state_i), atol=1e-12)


def test_full_lengths_equal_no_lengths() -> None:
    layer = Recurrent("gru", I, H, bidirectional=True)
    x = torch.randn(B, T, I)
    torch.testing.assert_close(layer(x, lengths=torch.full((B,), T))[0], layer(x)[0])


@pytest.mark.parametrize(
    "lengths", [torch.tensor([0, 2, 3]), torch.tensor([1, 2, T + 1]), torch.tensor([1.0, 2, 3])]
)
def test_bad_lengths(lengths) -> None:
    with pytest.raises(StriateError):
        Recurrent("lstm", I, H)(torch.randn(B, T, I), lengths=lengths)


# ----------------------------------------------------------------------------- state, dropout


def test_detach_state() -> None:
    h = torch.randn(2, B, H, requires_grad=True) * 2
    assert not detach_state(h).requires_grad
    pair = detach_state((h, h + 1))
    assert isinstance(pair, tuple) and not any(s.requires_grad for s in pair)
    assert detach_state(None) is None


@pytest.mark.parametrize("cell", CELLS)
def test_init_state_shapes(cell) -> None:
    layer = Recurrent(cell, I, H, num_layers=3, bidirectional=True)
    state = layer.init_state(B, dtype=torch.float64)
    assert all(s.shape == (6, B, H) and s.dtype == torch.float64 for s in parts(state))
    assert isinstance(state, tuple) == (cell == "lstm")
    x = torch.randn(B, T, I)
    torch.testing.assert_close(layer(x)[0], layer(x, layer.init_state(B))[0])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_dropout_between_layers(cell, impl) -> None:
    torch.manual_seed(0)
    layer = Recurrent(cell, I, H, num_layers=2, dropout=0.5, impl=impl)
    plain = Recurrent(cell, I, H, num_layers=2, impl=impl)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(B, T, I)
    first, second = layer(x)[0], layer(x)[0]
    assert first.shape == second.shape == (B, T, H)
    assert not torch.equal(first, second)  # training: random masks between the layers
    layer.eval()
    torch.testing.assert_close(layer(x)[0], plain(x)[0])  # eval: no dropout at all
    single = Recurrent(cell, I, H, dropout=0.5, impl=impl)
    assert torch.equal(single(x)[0], single(x)[0])  # never after the last layer


def test_lecture_gru_dropout_is_identical_in_both_impls() -> None:
    ref, fast = twins("gru", num_layers=3, dropout=0.3)
    x = torch.randn(B, T, I, dtype=torch.float64)
    torch.manual_seed(7)
    out_r = ref(x)[0]
    torch.manual_seed(7)
    torch.testing.assert_close(fast(x)[0], out_r)


# ----------------------------------------------------------------------------- init, errors


def test_initialization() -> None:
    bound = 1 / H**0.5
    for cell in CELLS:
        for p in Recurrent(cell, I, H, forget_bias=None).parameters():
            assert p.abs().max() <= bound
    lstm = Recurrent("lstm", I, H, num_layers=2).cells
    for cell in lstm:  # b_f = b_ih + b_hh = 1 in the forget block (torch order i, f, C~, o)
        torch.testing.assert_close(block(cell.bias_ih + cell.bias_hh, 1), torch.ones(H))
    custom = LSTMCell(I, H, forget_bias=2.0)
    torch.testing.assert_close(block(custom.bias_ih + custom.bias_hh, 1), torch.full((H,), 2.0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cell": "transformer"},
        {"impl": "cuda"},
        {"input_size": 0},
        {"hidden_size": -1},
        {"num_layers": 0},
        {"hidden_size": 2.5},
        {"dropout": 1.0},
        {"dropout": -0.1},
    ],
)
def test_bad_arguments(kwargs) -> None:
    args = {"cell": "lstm", "input_size": I, "hidden_size": H, **kwargs}
    with pytest.raises(StriateError):
        Recurrent(**args)


def test_bad_inputs_and_states() -> None:
    lstm = Recurrent("lstm", I, H, num_layers=2)
    with pytest.raises(StriateError):
        lstm(torch.randn(B, T, I + 1))
    with pytest.raises(StriateError):
        lstm(torch.randn(B, I))
    with pytest.raises(StriateError):
        lstm(torch.randn(B, T, I), torch.zeros(2, B, H))  # an LSTM state is (h, c)
    with pytest.raises(StriateError):
        lstm(torch.randn(B, T, I), (torch.zeros(1, B, H), torch.zeros(1, B, H)))
    with pytest.raises(StriateError):
        SimpleRNNCell(0, H)


@pytest.mark.cpu
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_runs_under_cpu_autocast(cell, input_dtype) -> None:
    """Also on bf16 inputs, as they come from an autocast CNN or embedding before it."""
    x = torch.randn(B, T, I, dtype=input_dtype)
    for impl in ("reference", "fast"):
        layer = Recurrent(cell, I, H, num_layers=2, bidirectional=True, impl=impl)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = layer(x, lengths=LENGTHS)
        out.float().sum().backward()
        assert torch.isfinite(out).all()
        assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.cpu
def test_flatten_parameters_is_a_no_op_on_cpu() -> None:
    layer = Recurrent("lstm", I, H, num_layers=2).double()  # .double() calls it too
    before = [p.clone() for p in layer.parameters()]
    layer.flatten_parameters()
    assert_all_close(list(layer.parameters()), before, atol=0)
