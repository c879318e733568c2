"""Standard architectures written in bpgen against PyTorch's own modules, in float64 with the weights copied
from the torch module: one-layer LSTM and GRU (bpgen.scan, the gates sliced in PyTorch's order), a
TransformerEncoderLayer with multi-head self-attention (with and without a causal mask), and an embedding,
mean-pool and linear classifier. Every parameter's gradient is compared, Numba's and plain Python's."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

import bpgen
from bpgen import nn

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-9, 1e-11
N, T, I, H = 3, 5, 4, 6  # batch, steps, input and hidden sizes of the recurrent layers


def close(actual, expected):
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL)


def torch_gradients(module, inputs: dict, loss_of):
    """(loss, {name: gradient}) of loss_of(module, inputs) for every parameter of the module and every input
    that requires a gradient."""
    loss = loss_of(module, inputs)
    loss.backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    grads.update({name: t.grad for name, t in inputs.items() if t.requires_grad})
    return loss.item(), grads


def as_torch(array, grad=True):
    return torch.tensor(array, dtype=torch.float64 if array.dtype.kind == "f" else None, requires_grad=grad
                        and array.dtype.kind == "f")


# recurrent layers ----------------------------------------------------------------------------------------


@bpgen.function(shapes={"X": (T, "N", I), "h0": ("N", H), "c0": ("N", H), "W_ih": (4 * H, I), "W_hh": (4 * H, H),
                        "b_ih": (4 * H,), "b_hh": (4 * H,), "R": (T, "N", H), "Rh": ("N", H), "Rc": ("N", H)},
                wrt=["X", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh"])
def lstm_layer(X, h0, c0, W_ih, W_hh, b_ih, b_hh, R, Rh, Rc):
    def lstm_cell(carry, x):
        h, c = carry
        gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh  # PyTorch's order: input, forget, cell, output
        i = bpgen.sigmoid(gates[:, 0:H])
        f = bpgen.sigmoid(gates[:, H:2 * H])
        g = bpgen.tanh(gates[:, 2 * H:3 * H])
        o = bpgen.sigmoid(gates[:, 3 * H:])
        c_next = f * c + i * g
        h_next = o * bpgen.tanh(c_next)
        return (h_next, c_next), h_next

    (h, c), hs = bpgen.scan(lstm_cell, (h0, c0), X)
    return bpgen.sum(hs * R) + bpgen.sum(h * Rh) + bpgen.sum(c * Rc)


@bpgen.function(shapes={"X": (T, "N", I), "h0": ("N", H), "W_ih": (3 * H, I), "W_hh": (3 * H, H),
                        "b_ih": (3 * H,), "b_hh": (3 * H,), "R": (T, "N", H)},
                wrt=["X", "h0", "W_ih", "W_hh", "b_ih", "b_hh"])
def gru_layer(X, h0, W_ih, W_hh, b_ih, b_hh, R):
    # PyTorch's order: reset, update, new; each gate's weights sliced from the stacked ones
    W_ir, W_iz, W_in = W_ih[0:H], W_ih[H:2 * H], W_ih[2 * H:]
    W_hr, W_hz, W_hn = W_hh[0:H], W_hh[H:2 * H], W_hh[2 * H:]
    b_ir, b_iz, b_in = b_ih[0:H], b_ih[H:2 * H], b_ih[2 * H:]
    b_hr, b_hz, b_hn = b_hh[0:H], b_hh[H:2 * H], b_hh[2 * H:]

    def gru_cell(h, x):
        r = bpgen.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
        z = bpgen.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
        n = bpgen.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
        h_next = (1.0 - z) * n + z * h
        return h_next, h_next

    _, hs = bpgen.scan(gru_cell, h0, X)
    return bpgen.sum(hs * R)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(26)


@pytest.mark.parametrize("jit", [True, False])
def test_lstm_layer_against_torch(rng, jit):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(I, H).double()
    data = {"X": rng.normal(size=(T, N, I)), "h0": rng.normal(size=(N, H)), "c0": rng.normal(size=(N, H)),
            "R": rng.normal(size=(T, N, H)), "Rh": rng.normal(size=(N, H)), "Rc": rng.normal(size=(N, H))}
    inputs = {k: as_torch(v, grad=k in ("X", "h0", "c0")) for k, v in data.items()}

    def loss_of(module, t):
        out, (h, c) = module(t["X"], (t["h0"][None], t["c0"][None]))
        return (out * t["R"]).sum() + (h[0] * t["Rh"]).sum() + (c[0] * t["Rc"]).sum()

    want, grads = torch_gradients(lstm, inputs, loss_of)
    weights = {name: p.detach().numpy().copy() for name, p in lstm.named_parameters()}
    g = lstm_layer if jit else bpgen.compile(lstm_layer, jit=False)
    value, got = g.value_and_grad(data["X"], data["h0"], data["c0"], weights["weight_ih_l0"],
                                  weights["weight_hh_l0"], weights["bias_ih_l0"], weights["bias_hh_l0"],
                                  data["R"], data["Rh"], data["Rc"])
    assert value == pytest.approx(want, rel=RTOL)
    for mine, name in zip(got, ["X", "h0", "c0", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]):
        close(mine, grads[name])


@pytest.mark.parametrize("jit", [True, False])
def test_gru_layer_against_torch(rng, jit):
    torch.manual_seed(1)
    gru = torch.nn.GRU(I, H).double()
    data = {"X": rng.normal(size=(T, N, I)), "h0": rng.normal(size=(N, H)), "R": rng.normal(size=(T, N, H))}
    inputs = {k: as_torch(v, grad=k in ("X", "h0")) for k, v in data.items()}

    def loss_of(module, t):
        out, _ = module(t["X"], t["h0"][None])
        return (out * t["R"]).sum()

    want, grads = torch_gradients(gru, inputs, loss_of)
    weights = {name: p.detach().numpy().copy() for name, p in gru.named_parameters()}
    g = gru_layer if jit else bpgen.compile(gru_layer, jit=False)
    value, got = g.value_and_grad(data["X"], data["h0"], weights["weight_ih_l0"], weights["weight_hh_l0"],
                                  weights["bias_ih_l0"], weights["bias_hh_l0"], data["R"])
    assert value == pytest.approx(want, rel=RTOL)
    for mine, name in zip(got, ["X", "h0", "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]):
        close(mine, grads[name])


# a transformer encoder layer ------------------------------------------------------------------------------

B, S, D, HEADS, FF = 3, 5, 8, 2, 16  # batch, sequence, model width, heads, feed-forward width

# the encoder layer as examples/benchmark_layers.py declares it (post-norm, relu; `mask` says which keys each
# query may see, all True for no mask), and the torch module's parameters in the order it takes them
LAYERS = runpy.run_path(str(Path(__file__).resolve().parent.parent / "examples" / "benchmark_layers.py"))
ENCODER_PARAMETERS = LAYERS["TRANSFORMER_PARAMETERS"]


@pytest.fixture(scope="module")
def encoder_jit():
    return LAYERS["bpgen_transformer"](B, S, D, HEADS, FF)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("jit", [True, False])
def test_transformer_encoder_layer_against_torch(encoder_jit, rng, causal, jit):
    torch.manual_seed(2)
    layer = torch.nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, batch_first=True).double()
    with torch.no_grad():  # non-trivial norms
        for norm in (layer.norm1, layer.norm2):
            norm.weight.add_(torch.tensor(rng.normal(size=D) * 0.3))
            norm.bias.add_(torch.tensor(rng.normal(size=D) * 0.3))
    mask = np.tril(np.ones((S, S), dtype=bool)) if causal else np.ones((S, S), dtype=bool)
    data = {"x": rng.normal(size=(B, S, D)), "R": rng.normal(size=(B, S, D))}
    inputs = {k: as_torch(v, grad=k == "x") for k, v in data.items()}
    float_mask = torch.tensor(np.where(mask, 0.0, -np.inf))

    def loss_of(module, t):
        return (module(t["x"], src_mask=float_mask if causal else None) * t["R"]).sum()

    want, grads = torch_gradients(layer, inputs, loss_of)
    weights = [dict(layer.named_parameters())[name].detach().numpy().copy() for name in ENCODER_PARAMETERS]
    g = encoder_jit if jit else bpgen.compile(encoder_jit, jit=False)
    value, got = g.value_and_grad(data["x"], mask, *weights, data["R"])
    assert value == pytest.approx(want, rel=RTOL)
    for mine, name in zip(got, ["x"] + ENCODER_PARAMETERS):
        close(mine, grads[name])


def test_the_attentions_backward_is_staged(encoder_jit):
    body = encoder_jit.source[encoder_jit.source.index("def value_and_grad"):]
    assert "scores = " in body and "attention = softmax(" in body and "context = " in body
    assert "dattention = " in body and "dscores = " in body and "dq = " in body
    assert "batch_matmul(" in body and "np.where(" in body


# an embedding classifier ----------------------------------------------------------------------------------

VOCAB, EMBED, CLASSES = 11, 6, 4


@bpgen.function(shapes={"ids": ("N", T, "int"), "E": (VOCAB, EMBED), "W": (CLASSES, EMBED), "b": (CLASSES,),
                        "y": ("N", "int")}, wrt=["E", "W", "b"])
def bag_of_embeddings(ids, E, W, b, y):
    pooled = bpgen.mean(E[ids], axis=1)
    return nn.cross_entropy(pooled @ W.T + b, y)


@pytest.mark.parametrize("jit", [True, False])
def test_embedding_classifier_against_torch(rng, jit):
    torch.manual_seed(3)

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCAB, EMBED)
            self.linear = torch.nn.Linear(EMBED, CLASSES)

        def forward(self, ids):
            return self.linear(self.embedding(ids).mean(dim=1))

    model = Classifier().double()
    ids = rng.integers(0, VOCAB, size=(N, T))
    ids[0, :3] = 2  # a repeated id: its rows of the gradient add up
    y = rng.integers(0, CLASSES, size=N)
    loss = torch.nn.functional.cross_entropy(model(torch.tensor(ids)), torch.tensor(y))
    loss.backward()
    params = dict(model.named_parameters())
    g = bag_of_embeddings if jit else bpgen.compile(bag_of_embeddings, jit=False)
    value, (dE, dW, db) = g.value_and_grad(ids, *(params[k].detach().numpy().copy() for k in
                                                  ("embedding.weight", "linear.weight", "linear.bias")), y)
    assert value == pytest.approx(loss.item(), rel=RTOL)
    close(dE, params["embedding.weight"].grad)
    close(dW, params["linear.weight"].grad)
    close(db, params["linear.bias"].grad)
