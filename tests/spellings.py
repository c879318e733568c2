"""Two namespaces of the same operations, so that a test case is written once and evaluated by bpgen (B) and
by HIPS autograd (A, independent, straightforward reference formulas): used by test_tensors and test_fuzz."""

from __future__ import annotations

import autograd.numpy as anp
import autograd.scipy.special as asp
import numpy as np
import sympy

import bpgen
from bpgen import nn


class B:
    """bpgen's spelling."""

    matmul = staticmethod(lambda a, b: a @ b)
    transpose = staticmethod(lambda a: a.T)
    T = transpose
    reshape = staticmethod(lambda a, shape: a.reshape(shape))
    permute = staticmethod(lambda a, axes: a.transpose(axes))
    swapaxes = staticmethod(bpgen.swapaxes)
    concatenate = staticmethod(bpgen.concatenate)
    stack = staticmethod(bpgen.stack)
    einsum = staticmethod(bpgen.einsum)
    where = staticmethod(bpgen.where)
    sum = staticmethod(bpgen.sum)
    mean = staticmethod(bpgen.mean)
    max = staticmethod(bpgen.max)
    min = staticmethod(bpgen.min)
    var = staticmethod(bpgen.var)
    exp = staticmethod(bpgen.exp)
    log = staticmethod(bpgen.log)
    sqrt = staticmethod(bpgen.sqrt)
    abs = staticmethod(bpgen.abs)
    tanh = staticmethod(bpgen.tanh)
    sigmoid = staticmethod(bpgen.sigmoid)
    relu = staticmethod(bpgen.relu)
    softplus = staticmethod(bpgen.softplus)
    nn_relu = staticmethod(nn.relu)
    nn_sigmoid = staticmethod(nn.sigmoid)
    nn_tanh = staticmethod(nn.tanh)
    nn_softplus = staticmethod(nn.softplus)
    leaky_relu = staticmethod(nn.leaky_relu)
    elu = staticmethod(nn.elu)
    softmax = staticmethod(nn.softmax)
    log_softmax = staticmethod(nn.log_softmax)
    logsumexp = staticmethod(nn.logsumexp)
    maxout = staticmethod(nn.maxout)
    softmax_cross_entropy = staticmethod(nn.softmax_cross_entropy)
    cross_entropy = staticmethod(nn.cross_entropy)
    mse = staticmethod(nn.mse)
    bce_logits = staticmethod(nn.binary_cross_entropy_with_logits)
    nn_gelu = staticmethod(nn.gelu)
    gelu_tanh = staticmethod(lambda x: nn.gelu(x, approximate="tanh"))
    layer_norm = staticmethod(nn.layer_norm)

    @staticmethod
    def gelu(x):
        u = sympy.Symbol("u", real=True)
        return nn.elementwise(sympy.Lambda(u, u * (1 + sympy.erf(u / sympy.sqrt(2))) / 2), x)

    @staticmethod
    def swish(x):
        u = sympy.Symbol("u", real=True)
        return nn.elementwise(sympy.Lambda(u, u * bpgen.sigmoid(u)), x)


def a_sigmoid(x):
    return 0.5 * (anp.tanh(x / 2) + 1)


def a_softplus(x):
    return anp.logaddexp(0.0, x)


def a_logsumexp_kept(x, axis=-1):
    m = anp.max(x, axis=axis, keepdims=True)
    return m + anp.log(anp.sum(anp.exp(x - m), axis=axis, keepdims=True))


def a_log_softmax(x, axis=-1):
    return x - a_logsumexp_kept(x, axis)


def a_where(c, a, b):
    """np.where with each side broadcast to the full shape first: autograd's own where does not sum a broadcast
    side's gradient back to its shape."""
    full = np.zeros(np.broadcast_shapes(np.shape(c), np.shape(a), np.shape(b)))  # added: autograd sums it back
    return anp.where(c, a + full if np.ndim(a) else a, b + full if np.ndim(b) else b)


class A:
    """autograd's spelling."""

    matmul = staticmethod(anp.matmul)
    transpose = staticmethod(anp.transpose)
    T = transpose
    reshape = staticmethod(anp.reshape)
    permute = staticmethod(anp.transpose)
    swapaxes = staticmethod(anp.swapaxes)
    concatenate = staticmethod(anp.concatenate)
    stack = staticmethod(anp.stack)
    einsum = staticmethod(anp.einsum)
    where = staticmethod(lambda c, a, b: a_where(c, a, b))
    sum = staticmethod(anp.sum)
    mean = staticmethod(anp.mean)
    min = staticmethod(anp.min)
    var = staticmethod(anp.var)
    max = staticmethod(anp.max)
    exp = staticmethod(anp.exp)
    log = staticmethod(anp.log)
    sqrt = staticmethod(anp.sqrt)
    abs = staticmethod(anp.abs)
    tanh = staticmethod(anp.tanh)
    sigmoid = staticmethod(a_sigmoid)
    relu = staticmethod(lambda x: anp.maximum(x, 0.0))
    softplus = staticmethod(a_softplus)
    nn_relu, nn_sigmoid, nn_tanh, nn_softplus = relu, sigmoid, tanh, softplus
    leaky_relu = staticmethod(lambda x, alpha=0.01: anp.where(x > 0, x, alpha * x))
    elu = staticmethod(lambda x, alpha=1.0: anp.where(x > 0, x, alpha * (anp.exp(x) - 1.0)))
    softmax = staticmethod(lambda x, axis=-1: anp.exp(a_log_softmax(x, axis)))
    log_softmax = staticmethod(a_log_softmax)
    logsumexp = staticmethod(lambda x, axis=-1: anp.squeeze(a_logsumexp_kept(x, axis), axis))

    @staticmethod
    def maxout(x, pieces):
        return anp.max(anp.reshape(x, x.shape[:-1] + (x.shape[-1] // pieces, pieces)), axis=-1)

    softmax_cross_entropy = staticmethod(lambda z, y: -anp.mean(anp.sum(y * a_log_softmax(z), axis=1)))
    cross_entropy = staticmethod(lambda z, labels: -anp.mean(a_log_softmax(z)[np.arange(len(labels)), labels]))
    mse = staticmethod(lambda p, t: anp.mean((p - t) ** 2))
    # -y log(sigmoid(z)) - (1 - y) log(1 - sigmoid(z)), with log(sigmoid(z)) = -log(1 + exp(-z)) written stably:
    # 1 - sigmoid(z) loses all digits for large z
    bce_logits = staticmethod(lambda z, y: anp.mean(y * anp.logaddexp(0.0, -z) + (1 - y) * anp.logaddexp(0.0, z)))

    @staticmethod
    def gelu(x):
        return x * (1 + asp.erf(x / np.sqrt(2.0))) / 2

    nn_gelu = gelu

    @staticmethod
    def gelu_tanh(x):  # PyTorch's gelu(x, approximate="tanh")
        return 0.5 * x * (1 + anp.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    @staticmethod
    def layer_norm(x, gamma, beta, eps=1e-5):  # torch.nn.LayerNorm over the last axis
        centered = x - anp.mean(x, axis=-1, keepdims=True)
        return centered / anp.sqrt(anp.mean(centered**2, axis=-1, keepdims=True) + eps) * gamma + beta

    @staticmethod
    def swish(x):
        return x * a_sigmoid(x)
