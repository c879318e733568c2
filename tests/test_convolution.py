"""Convolution and pooling: the runtime helpers on their own against torch.nn.functional (float64), over a grid
of kernels, strides, paddings, dilations and groups; then bpgen.nn's layers end to end (gradients, tangents and
second order), and their one-line errors."""

from __future__ import annotations

import functools
import itertools
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bpgen
from bpgen import nn
from bpgen.ir.shapes import ShapeError
from bpgen.targets.numba import runtime as compiled
from bpgen.targets.numpy import runtime as numpy_runtime

RUNTIMES = {"compiled": lambda name: compiled._for_modules[name], "numpy": lambda name: getattr(numpy_runtime, name)}

KERNELS = [(1, 1), (3, 3), (5, 5), (3, 2)]
STRIDES = [(1, 1), (2, 2), (2, 1)]
PADDINGS = [(0, 0), (1, 1), (2, 1)]
DILATIONS = [(1, 1), (2, 2)]
GROUPS = [(1, 4, 6), (2, 4, 6), (4, 4, 8)]  # (groups, C, F): plain, two groups, depthwise with a multiplier 2


def _conv_grid():
    for kernel, stride, padding, dilation, (groups, c, f) in itertools.product(KERNELS, STRIDES, PADDINGS,
                                                                               DILATIONS, GROUPS):
        h, w = 9, 8  # odd and even sizes
        if (h + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) < 0 or \
                (w + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) < 0:
            continue
        yield kernel, stride, padding, dilation, groups, c, f, h, w


CONV_GRID = list(_conv_grid())


def _torch_conv(x, w, stride, padding, dilation, groups):
    """PyTorch's output and its gradients in x and w along the upstream gradient dy."""
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y = F.conv2d(tx, tw, stride=stride, padding=padding, dilation=dilation, groups=groups)
    dy = np.random.default_rng(7).normal(size=tuple(y.shape))
    (y * torch.tensor(dy)).sum().backward()
    return y.detach().numpy(), dy, tx.grad.numpy(), tw.grad.numpy()


@pytest.mark.parametrize("way", list(RUNTIMES))
def test_conv2d_helpers_agree_with_torch_over_the_grid(way):
    helper = RUNTIMES[way]
    conv2d, backward_input, backward_weight = (helper(n) for n in ("conv2d", "conv2d_backward_input",
                                                                     "conv2d_backward_weight"))
    rng = np.random.default_rng(0)
    for kernel, stride, padding, dilation, groups, c, f, h, w in CONV_GRID:
        x = rng.normal(size=(2, c, h, w))
        weight = rng.normal(size=(f, c // groups, *kernel))
        want, dy, want_dx, want_dw = _torch_conv(x, weight, stride, padding, dilation, groups)
        where = (kernel, stride, padding, dilation, groups)
        np.testing.assert_allclose(conv2d(x, weight, stride, padding, dilation, groups), want, rtol=1e-12,
                                   atol=1e-12, err_msg=str(where))
        np.testing.assert_allclose(backward_input(dy, weight, (h, w), stride, padding, dilation, groups), want_dx,
                                   rtol=1e-12, atol=1e-12, err_msg=str(where))
        np.testing.assert_allclose(backward_weight(x, dy, kernel, stride, padding, dilation, groups), want_dw,
                                   rtol=1e-12, atol=1e-11, err_msg=str(where))


POOL_GRID = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0)), ((2, 3), (3, 1), (0, 1))]


@pytest.mark.parametrize("way", list(RUNTIMES))
def test_pooling_helpers_agree_with_torch(way):
    helper = RUNTIMES[way]
    rng = np.random.default_rng(1)
    for kernel, stride, padding in POOL_GRID:
        for ties in (False, True):
            x = rng.integers(0, 3, size=(2, 3, 7, 8)).astype(float) if ties else rng.normal(size=(2, 3, 7, 8))
            tx = torch.tensor(x, requires_grad=True)
            y = F.max_pool2d(tx, kernel, stride, padding)
            g = rng.normal(size=tuple(y.shape))
            (y * torch.tensor(g)).sum().backward()
            np.testing.assert_allclose(helper("max_pool2d")(x, kernel, stride, padding), y.detach().numpy())
            routed = helper("max_pool2d_backward")(x, g, kernel, stride, padding)
            if ties:  # PyTorch's CPU kernel also sends a tie's gradient to the first largest entry
                np.testing.assert_allclose(routed.sum(), g.sum())
            np.testing.assert_allclose(routed, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
            t = rng.normal(size=x.shape)
            np.testing.assert_allclose(helper("max_pool2d_at")(x, t, kernel, stride, padding),
                                       torch.func.jvp(functools.partial(F.max_pool2d, kernel_size=kernel,
                                                                        stride=stride, padding=padding),
                                                      (torch.tensor(x),), (torch.tensor(t),))[1].numpy())
        tx = torch.tensor(x, requires_grad=True)
        y = F.avg_pool2d(tx, kernel, stride, padding)
        g = rng.normal(size=tuple(y.shape))
        (y * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(helper("avg_pool2d")(x, kernel, stride, padding), y.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(helper("avg_pool2d_backward")(g, x.shape[2:], kernel, stride, padding),
                                   tx.grad.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("way", list(RUNTIMES))
def test_batch_normalization_helpers_agree_with_torch(way):
    helper = RUNTIMES[way]
    rng = np.random.default_rng(4)
    for shape in [(2, 3, 7, 8), (1, 4, 1, 2), (5, 1, 3, 2)]:
        x = rng.normal(size=shape) * 3.0 + 1.0
        g = rng.normal(size=shape)
        tx = torch.tensor(x, requires_grad=True)
        y = F.batch_norm(tx, None, None, training=True, eps=1e-5)
        (y * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(helper("normalize_channels")(x, 1e-5), y.detach().numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(helper("normalize_channels_vjp")(x, g, 1e-5), tx.grad.numpy(), rtol=1e-11,
                                   atol=1e-12)


# the layers end to end ------------------------------------------------------------------------------------------


def small_cnn(X, W1, b1, W2, gamma, beta, R):
    """Every layer once: a padded convolution with a bias, relu, max pool, a grouped dilated convolution, batch
    norm and an average pool."""
    h = nn.relu(nn.conv2d(X, W1, b1, padding=1))
    p = nn.max_pool2d(h, 2)
    z = nn.conv2d(p, W2, padding=(1, 0), dilation=(1, 2), groups=2)
    n = nn.batch_norm2d(z, gamma, beta)
    a = nn.avg_pool2d(n, 2, stride=1, padding=1)
    return bpgen.sum(a * R)


CNN_SHAPES = {"X": ("N", 2, 8, 9), "W1": (4, 2, 3, 3), "b1": (4,), "W2": (6, 2, 3, 2), "gamma": (6,), "beta": (6,),
              "R": ("N", 6, 5, 3)}
CNN_WRT = ["X", "W1", "b1", "W2", "gamma", "beta"]


def torch_small_cnn(X, W1, b1, W2, gamma, beta, R):
    h = torch.relu(F.conv2d(X, W1, b1, padding=1))
    p = F.max_pool2d(h, 2)
    z = F.conv2d(p, W2, padding=(1, 0), dilation=(1, 2), groups=2)
    n = F.batch_norm(z, None, None, gamma, beta, training=True, eps=1e-5)
    return (F.avg_pool2d(n, 2, stride=1, padding=1) * R).sum()


def cnn_point(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(3, 2, 8, 9)), rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4),
            rng.normal(size=(6, 2, 3, 2)), rng.uniform(0.5, 1.5, size=6), rng.normal(size=6),
            rng.normal(size=(3, 6, 5, 3))]


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "compiled"])
def cnn(request):
    return bpgen.function(small_cnn, shapes=CNN_SHAPES, wrt=CNN_WRT, jit=request.param, derivatives="hvp")


def test_a_small_cnn_matches_torch_in_value_and_every_gradient(cnn):
    point = cnn_point()
    value, grads = cnn.value_and_grad(*point)
    leaves = [torch.tensor(a, requires_grad=True) for a in point]
    loss = torch_small_cnn(*leaves)
    loss.backward()
    np.testing.assert_allclose(value, loss.item(), rtol=1e-12)
    for got, leaf in zip(grads, leaves[:6]):
        np.testing.assert_allclose(got, leaf.grad.numpy(), rtol=1e-10, atol=1e-11)


def test_a_small_cnn_has_torchs_tangent_and_hessian_vector_product(cnn):
    point = cnn_point(1)
    rng = np.random.default_rng(2)
    vectors = [rng.normal(size=np.shape(a)) for a in point[:6]]
    value, tangent = cnn.jvp(*point, tuple(vectors))
    torch_point = [torch.tensor(a) for a in point]

    def loss_of(*wrt):
        return torch_small_cnn(*wrt, torch_point[6])

    want_value, want_tangent = torch.func.jvp(loss_of, tuple(torch_point[:6]), tuple(map(torch.tensor, vectors)))
    np.testing.assert_allclose(value, want_value.item(), rtol=1e-12)
    np.testing.assert_allclose(tangent, want_tangent.item(), rtol=1e-9)
    _, grads, hv = cnn.hvp(*point, tuple(vectors))
    _, want_hv = torch.func.jvp(torch.func.grad(loss_of, argnums=tuple(range(6))), tuple(torch_point[:6]),
                                tuple(map(torch.tensor, vectors)))
    for got, want in zip(hv, want_hv):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-8, atol=1e-9)


def test_the_backward_lines_name_the_convolutions_helpers(cnn):
    body = cnn.source[cnn.source.index("def value_and_grad"):]
    assert "z = conv2d(p, W2, stride=(1, 1), padding=(1, 0), dilation=(1, 2), groups=2)" in body
    assert "dW2 = conv2d_backward_weight(p, dz, (3, 2), stride=(1, 1), padding=(1, 0), dilation=(1, 2), groups=2)" \
        in body
    assert "dp = conv2d_backward_input(dz, W2, (4, 4), stride=(1, 1), padding=(1, 0), dilation=(1, 2), groups=2)" \
        in body
    assert "dh = max_pool2d_backward(h, dp, (2, 2), stride=(2, 2), padding=(0, 0))" in body
    assert "sum_channels(" in body and ".sum(axis=" not in body  # a bias's and batch norm's sums: one pass
    # batch norm: one pass per channel each way
    assert "normalize_channels1 = normalize_channels(z, 1e-05)" in body
    assert "dz = normalize_channels_vjp(z, dnormalize_channels1, 1e-05)  # normalize_channels1 = " in body


def test_conv1d_is_torchs():
    def layer(X, W, b, R):
        return bpgen.sum(nn.conv1d(X, W, b, stride=2, padding=1, dilation=2) * R)

    g = bpgen.function(layer, shapes={"X": ("N", 3, 11), "W": (4, 3, 3), "b": (4,), "R": ("N", 4, 5)},
                       wrt=["X", "W", "b"])
    rng = np.random.default_rng(3)
    point = [rng.normal(size=(2, 3, 11)), rng.normal(size=(4, 3, 3)), rng.normal(size=4), rng.normal(size=(2, 4, 5))]
    value, grads = g.value_and_grad(*point)
    leaves = [torch.tensor(a, requires_grad=True) for a in point]
    loss = (F.conv1d(leaves[0], leaves[1], leaves[2], stride=2, padding=1, dilation=2) * leaves[3]).sum()
    loss.backward()
    np.testing.assert_allclose(value, loss.item(), rtol=1e-12)
    for got, leaf in zip(grads, leaves):
        np.testing.assert_allclose(got, leaf.grad.numpy(), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("build, message", [
    (lambda X, W: nn.conv2d(X, W), r"conv2d: the kernel \(7, 7\) is larger than X \(N, 3, 5, 6\) padded by \(0, 0\)"),
    (lambda X, W: nn.conv2d(X, W[:, :, :3, :3], padding=1, dilation=4),
     r"conv2d: the kernel \(3, 3\) \(dilated \(9, 9\)\) is larger than X \(N, 3, 5, 6\) padded by \(1, 1\)"),
    (lambda X, W: nn.conv2d(X, W, groups=2),
     r"conv2d: the channels of X \(N, 3, 5, 6\) and the filters of W \(4, 3, 7, 7\) must both be divisible by "
     r"groups=2"),
    (lambda X, W: nn.conv2d(X, W[:, :2]), r"conv2d: an expression of shape \(4, 2, 7, 7\) takes 2 channels per "
                                          r"group, X \(N, 3, 5, 6\) has 3"),
    (lambda X, W: nn.conv2d(X, W, stride=0), r"conv2d: stride must be a whole number >= 1 or a pair of them, not 0"),
    (lambda X, W: nn.max_pool2d(X, 3, padding=2), r"max_pool2d: padding \(2, 2\) must be at most half the kernel"),
    (lambda X, W: nn.conv2d(X, W[0]), r"conv2d takes W as \(F, C // groups, KH, KW\), each size but the first a "
                                      r"number: an expression of shape \(3, 7, 7\)"),
    (lambda X, W: nn.conv1d(X[:, :, 0], W[:, :, 0, :2], stride=(0,)),
     r"conv1d: stride must be a whole number >= 1, not 0"),
    (lambda X, W: nn.conv1d(X[:, :, 0], W[:, :, 0]), r"conv1d: the kernel \(1, 7\) is larger than an expression of "
                                                       r"shape \(N, 3, 1, 6\) padded by \(0, 0\)"),
    (lambda X, W: nn.conv2d(X.reshape(X.shape[0], 90), W), r"conv2d takes X as \(N, C, H, W\), each size but the "
                                                            r"first a number: an expression of shape \(N, 90\)"),
])
def test_shape_mistakes_are_one_line(build, message):
    X, W = bpgen.Tensor("X", ("N", 3, 5, 6)), bpgen.Tensor("W", (4, 3, 7, 7))
    with pytest.raises((ShapeError, bpgen.BpgenError), match=message) as caught:
        build(X, W)
    assert "\n" not in str(caught.value)


# real networks against PyTorch's modules: LeNet-5 and a ResNet basic block as examples/benchmark_layers.py
# declares them, with the weights of its torch modules ----------------------------------------------------------

LAYERS = runpy.run_path(str(Path(__file__).resolve().parent.parent / "examples" / "benchmark_layers.py"))


def test_lenet5_matches_torchs_module_on_every_parameter():
    size = {"B": 5}
    module = LAYERS["torch_module"]("lenet", size)
    d = LAYERS["data"]("lenet", size)
    g = LAYERS["bpgen_lenet"](**size)
    value, grads = g.value_and_grad(d["X"], *d["weights"], d["Y"])
    loss = F.cross_entropy(module(torch.tensor(d["X"])), torch.tensor(d["labels"]))
    loss.backward()
    np.testing.assert_allclose(value, loss.item(), rtol=1e-12)
    for got, p in zip(grads, module.parameters()):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_a_resnet_basic_block_matches_torchs_module_on_every_parameter():
    """Batch norm in training mode, its scale and shift away from 1 and 0, and the identity added back."""
    size = {"B": 3, "C": 4, "S": 6}
    module = LAYERS["torch_module"]("resnet", size)
    d = LAYERS["data"]("resnet", size)
    g = LAYERS["bpgen_resnet"](**size)
    value, grads = g.value_and_grad(d["X"], *d["weights"], d["R"])
    tx = torch.tensor(d["X"], requires_grad=True)
    loss = (module(tx) * torch.tensor(d["R"])).sum()
    loss.backward()
    np.testing.assert_allclose(value, loss.item(), rtol=1e-12)
    for got, want in zip(grads, [tx.grad] + [p.grad for p in module.parameters()]):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-11)
