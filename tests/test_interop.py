"""A compiled function handed to PyTorch (g.torch(), a torch.autograd.Function) and to JAX (g.jax(), through
jax.pure_callback with custom derivatives): their gradient checks, float32, jit, vmap, and a training loop."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import sympy
import torch

import bpgen
from bpgen import nn

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="module")
def seed():
    x, y = sympy.symbols("x y", real=True)
    return bpgen.compile((x + bpgen.sigmoid(y)) / (bpgen.sigmoid(x) + (x + y) ** 2), inputs=[x, y], name="seed_io",
                         jit=False)


@pytest.fixture(scope="module")
def mlp_loss():
    @bpgen.function(shapes={"X": ("N", 6), "labels": ("N",), "W1": (6, 8), "b1": (8,), "W2": (8, 3), "b2": (3,)},
                    wrt=["W1", "b1", "W2", "b2"], jit=False)
    def mlp_io(X, labels, W1, b1, W2, b2):
        return nn.cross_entropy(nn.relu(X @ W1 + b1) @ W2 + b2, labels)

    return mlp_io


@pytest.fixture(scope="module")
def layer():
    @bpgen.function(shapes={"X": ("N", 4), "W": (4, 3), "b": (3,)}, wrt=["W", "b"], jit=False)
    def layer_io(X, W, b):
        return nn.tanh(X @ W + b) * nn.sigmoid(X @ W)

    return layer_io


def mlp_data(seed=0, rows=7):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(rows, 6)), rng.integers(0, 3, rows), rng.normal(size=(6, 8)) * 0.5, rng.normal(size=8),
            rng.normal(size=(8, 3)) * 0.5, rng.normal(size=3)]


# PyTorch ------------------------------------------------------------------------------------------------------------

def test_torch_seed_passes_gradcheck_and_gives_the_generated_gradient(seed):
    f = seed.torch()
    x = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(-4.0, dtype=torch.float64, requires_grad=True)
    value = f(x, y)
    value.backward()
    want_value, (dx, dy) = seed.value_and_grad(3.0, -4.0)
    assert value.item() == want_value and x.grad.item() == dx and y.grad.item() == dy
    assert torch.autograd.gradcheck(f, (x, y))


def test_torch_loss_with_labels_and_a_tensor_layer_pass_gradcheck(mlp_loss, layer):
    X, labels, *weights = mlp_data()
    params = [torch.tensor(w, requires_grad=True) for w in weights]
    assert torch.autograd.gradcheck(lambda *p: mlp_loss.torch()(torch.tensor(X), torch.tensor(labels), *p), params)
    rng = np.random.default_rng(1)
    W = torch.tensor(rng.normal(size=(4, 3)), requires_grad=True)
    b = torch.tensor(rng.normal(size=3), requires_grad=True)
    assert torch.autograd.gradcheck(layer.torch(), (torch.tensor(rng.normal(size=(5, 4))), W, b))


def test_torch_float32_in_float32_out(layer):
    rng = np.random.default_rng(2)
    X, W, b = (torch.tensor(rng.normal(size=s), dtype=torch.float32) for s in ((5, 4), (4, 3), (3,)))
    W.requires_grad_()
    out = layer.torch()(X, W, b)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert W.grad.dtype == torch.float32
    _, (dW, _) = layer.vjp(X.double().numpy(), W.detach().double().numpy(), b.double().numpy(), np.ones((5, 3)))
    np.testing.assert_allclose(W.grad.numpy(), dW, rtol=1e-5)


def test_torch_training_loop_with_the_generated_loss_matches_torchs_own(mlp_loss):
    """Ten Adam steps on the generated loss give the parameters of ten steps on PyTorch's own cross-entropy."""
    X, labels, *weights = mlp_data(rows=40)
    loss = mlp_loss.torch()
    runs = []
    for generated in (True, False):
        params = [torch.tensor(w, requires_grad=True) for w in weights]
        optimizer = torch.optim.Adam(params, lr=0.05)
        for _ in range(10):
            optimizer.zero_grad()
            if generated:
                value = loss(torch.tensor(X), torch.tensor(labels), *params)
            else:
                W1, b1, W2, b2 = params
                logits = torch.relu(torch.tensor(X) @ W1 + b1) @ W2 + b2
                value = torch.nn.functional.cross_entropy(logits, torch.tensor(labels))
            value.backward()
            optimizer.step()
        runs.append([p.detach().numpy() for p in params])
    for mine, theirs in zip(*runs):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


def test_torch_wrong_arguments_are_one_line(seed):
    with pytest.raises(TypeError, match=r"seed_io.torch\(\) takes 2 arguments \(x, y\), not 1"):
        seed.torch()(torch.tensor(1.0))


# JAX ----------------------------------------------------------------------------------------------------------------

def test_jax_seed_under_jit_grad_and_vmap(seed):
    from jax.test_util import check_grads

    f = seed.jax()
    want_value, (dx, dy) = seed.value_and_grad(3.0, -4.0)
    assert float(jax.jit(f)(3.0, -4.0)) == want_value
    assert [float(d) for d in jax.grad(f, argnums=(0, 1))(3.0, -4.0)] == [dx, dy]
    check_grads(f, (3.0, -4.0), order=1, modes=("fwd", "rev"))
    xs, ys = np.array([3.0, 0.5, -1.0]), np.array([-4.0, 2.0, 0.25])
    np.testing.assert_allclose(jax.vmap(f)(xs, ys), [seed.forward(a, b) for a, b in zip(xs, ys)], rtol=1e-15)
    np.testing.assert_allclose(jax.vmap(jax.grad(f))(xs, ys), [seed.value_and_grad(a, b)[1][0] for a, b in
                                                                zip(xs, ys)], rtol=1e-15)


def test_jax_loss_and_tensor_layer_pass_check_grads(mlp_loss, layer):
    from jax.test_util import check_grads

    X, labels, *weights = mlp_data()
    loss = mlp_loss.jax()
    check_grads(lambda *w: loss(X, labels, *w), tuple(weights), order=1, modes=("fwd", "rev"))
    grads = jax.jit(jax.grad(lambda *w: loss(X, labels, *w), argnums=(0, 1, 2, 3)))(*weights)
    for mine, theirs in zip(grads, mlp_loss.value_and_grad(X, labels, *weights)[1]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-13)
    rng = np.random.default_rng(3)
    Xl, W, b = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    f = layer.jax()
    check_grads(lambda W, b: f(Xl, W, b), (W, b), order=1, modes=("rev",))
    np.testing.assert_allclose(jax.jit(f)(Xl, W, b), layer.forward(Xl, W, b), rtol=1e-15)
