"""Tensor support: every tensor rule against HIPS autograd, finite differences, whole networks, staged source,
shape errors."""

from __future__ import annotations

import re

import autograd.numpy as anp
import numpy as np
import pytest
import sympy
from autograd import grad as agrad
from helpers import close, rng_for
from spellings import A, B, a_sigmoid, a_softplus
from test_rules import DIFFERENTIABLE, rule_symbols
from test_rules import RTOL as RULE_RTOL

import bpgen
from bpgen import nn
from bpgen.frontend.lower import Lowerer
from bpgen.ir.shapes import ShapeError
from bpgen.rules.table import sympy_builder

RTOL = 1e-9
ATOL = 1e-12
N = 5  # concrete value of the symbolic batch size "N" in the rule tests


def assert_close(actual, expected, rtol=RTOL, atol=ATOL):
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# the rule cases: (id, shapes, kinds of data, wrt, body(m, **tensors)) -------------------------------------------
# kinds: "pos" (uniform 0.5..2), "onehot" (one-hot rows), "prob" (uniform 0..1), otherwise standard normal.

CASES = [
    # broadcasting and scalars
    ("add_row", {"X": ("N", 3), "b": (3,)}, {}, ["X", "b"], lambda m, X, b: X + b),
    ("add_row_left", {"X": ("N", 3), "b": (3,)}, {}, ["X", "b"], lambda m, X, b: b + X),
    ("sub_row", {"X": ("N", 3), "b": (3,)}, {}, ["X", "b"], lambda m, X, b: b - X),
    ("mul_outer", {"u": ("N", 1), "v": (1, 3)}, {}, ["u", "v"], lambda m, u, v: u * v),
    ("add_3d_broadcast", {"P": ("N", 1, 3), "Q": ("N", 3, 1)}, {}, ["P", "Q"], lambda m, P, Q: m.tanh(P + Q)),
    ("mul_broadcast_both", {"P": (2, 1, 4), "Q": (3, 1)}, {}, ["P", "Q"], lambda m, P, Q: P * Q * P),
    ("div_col", {"X": ("N", 3), "d": ("N", 1)}, {"d": "pos"}, ["X", "d"], lambda m, X, d: X / d),
    ("div_row", {"X": (4, 3), "d": (3,)}, {"d": "pos"}, ["X", "d"], lambda m, X, d: X / d),
    ("scalar_bias", {"X": ("N", 3), "s": ()}, {}, ["X", "s"], lambda m, X, s: X + s),
    ("scalar_times", {"X": ("N", 3), "s": ()}, {}, ["X", "s"], lambda m, X, s: s * X * X),
    ("scalar_only", {"s": (), "t": ()}, {}, ["s", "t"], lambda m, s, t: s * t + s / (1.5 + t * t)),
    ("py_scalars", {"X": ("N", 3)}, {}, ["X"], lambda m, X: 2.0 * X - 1.5 + X / 3.0 - 0.25 * (1.0 - X)),
    ("rdiv", {"X": ("N", 3)}, {"X": "pos"}, ["X"], lambda m, X: 2.0 / X),
    ("neg", {"X": ("N", 3)}, {}, ["X"], lambda m, X: -X * X),
    ("pow_const", {"X": ("N", 3)}, {}, ["X"], lambda m, X: X ** 3),
    ("pow_half", {"X": ("N", 3)}, {"X": "pos"}, ["X"], lambda m, X: X ** 0.5),
    ("pow_tensor", {"X": ("N", 3), "p": (3,)}, {"X": "pos"}, ["X", "p"], lambda m, X, p: X ** p),
    ("rpow", {"X": ("N", 3)}, {}, ["X"], lambda m, X: 2.0 ** X),
    ("shared_subexpr", {"X": ("N", 3), "b": (3,)}, {}, ["X", "b"],
     lambda m, X, b: (X + b) * (X + b) + m.tanh(X + b)),
    # matmul, transpose, reshape
    ("matmul_mm", {"X": ("N", 3), "W": (3, 4)}, {}, ["X", "W"], lambda m, X, W: X @ W),
    ("matmul_mv", {"W": (3, 4), "v": (4,)}, {}, ["W", "v"], lambda m, W, v: W @ v),
    ("matmul_vm", {"v": (3,), "W": (3, 4)}, {}, ["v", "W"], lambda m, v, W: v @ W),
    ("matmul_vv", {"u": (4,), "v": (4,)}, {}, ["u", "v"], lambda m, u, v: u @ v),
    ("matmul_chain", {"X": ("N", 3), "W": (3, 4), "V": (4, 2)}, {}, ["X", "W", "V"],
     lambda m, X, W, V: (X @ W) @ V),
    ("matmul_self", {"W": (3, 3)}, {}, ["W"], lambda m, W: W @ W),
    ("matmul_stack_matrix", {"X": ("N", 3, 4), "W": (4, 2)}, {}, ["X", "W"], lambda m, X, W: m.tanh(X @ W)),
    ("matmul_stacks", {"P": ("N", 3, 4), "Q": ("N", 4, 2)}, {}, ["P", "Q"], lambda m, P, Q: P @ Q),
    # a stack's product plus a bias row, fused into one affine op (bpgen/transforms/fuse.py), and one not fused
    # because the product is read again
    ("affine_stack", {"X": ("N", 3, 4), "W": (4, 2), "b": (2,)}, {}, ["X", "W", "b"],
     lambda m, X, W, b: m.tanh(X @ W + b)),
    ("affine_bias_first", {"X": (2, "N", 4), "W": (3, 4), "b": (3,)}, {}, ["X", "W", "b"],
     lambda m, X, W, b: (b + X @ W.T) ** 2),
    ("affine_product_read_twice", {"X": ("N", 3, 4), "W": (4, 2), "b": (2,)}, {}, ["X", "W", "b"],
     lambda m, X, W, b: (X @ W + b) * (X @ W)),
    ("matmul_stacks_broadcast", {"P": (2, 1, 3, 4), "Q": (3, 4, 2)}, {}, ["P", "Q"], lambda m, P, Q: P @ Q),
    ("matmul_matrix_stack", {"W": (3, 4), "X": ("N", 4, 2)}, {}, ["W", "X"], lambda m, W, X: W @ X),
    ("matmul_vector_stack", {"v": (4,), "X": ("N", 4, 2)}, {}, ["v", "X"], lambda m, v, X: v @ X),
    ("matmul_stack_vector", {"X": ("N", 3, 4), "v": (4,)}, {}, ["X", "v"], lambda m, X, v: X @ v),
    ("matmul_attention_scores", {"Q": (2, 2, 3, 4), "K": (2, 2, 3, 4)}, {}, ["Q", "K"],
     lambda m, Q, K: Q @ m.swapaxes(K, -1, -2) * 0.5),
    ("einsum_batched", {"P": ("N", 3, 4), "Q": ("N", 4, 2)}, {}, ["P", "Q"],
     lambda m, P, Q: m.einsum("bij,bjk->bik", P, Q)),
    ("einsum_scores", {"Q": (2, 2, 3, 4), "K": (2, 2, 5, 4)}, {}, ["Q", "K"],
     lambda m, Q, K: m.einsum("bhqd,bhkd->bhqk", Q, K)),
    ("einsum_matvec", {"W": (3, 4), "v": (4,)}, {}, ["W", "v"], lambda m, W, v: m.einsum("ij,j->i", W, v)),
    ("einsum_dot", {"u": (4,), "v": (4,)}, {}, ["u", "v"], lambda m, u, v: m.einsum("i,i", u, v)),
    ("einsum_outer", {"u": (3,), "v": (4,)}, {}, ["u", "v"], lambda m, u, v: m.einsum("i,j->ji", u, v)),
    ("einsum_stack_weight", {"X": ("N", 3, 4), "W": (4, 5)}, {}, ["X", "W"],
     lambda m, X, W: m.einsum("btd,de->bte", X, W)),
    ("einsum_summed_and_merged", {"P": (2, 3, 4, 5), "Q": (4, 5, 6)}, {}, ["P", "Q"],
     lambda m, P, Q: m.einsum("abcd,cde->eb", P, Q)),
    ("einsum_free_on_the_right", {"v": (4,), "X": (4, 2, "N")}, {}, ["v", "X"],
     lambda m, v, X: m.einsum("i,ijk->jk", v, X)),
    ("einsum_one_operand", {"X": (2, 3, 4)}, {}, ["X"], lambda m, X: m.einsum("ijk->ki", X)),
    ("matmul_4d_matrix", {"X": (2, "N", 3, 4), "W": (4, 5)}, {}, ["X", "W"], lambda m, X, W: (X * X) @ W),
    ("transpose", {"X": ("N", 3), "W": ("N", 4)}, {}, ["X", "W"], lambda m, X, W: m.T(X) @ W),
    ("transpose_expr", {"X": (4, 3), "b": (3,)}, {}, ["X", "b"], lambda m, X, b: m.T(X * b) * 2.0),
    ("reshape_2d", {"X": (4, 6)}, {}, ["X"], lambda m, X: m.reshape(X, (3, 8))),
    ("reshape_flat", {"X": (4, 6)}, {}, ["X"], lambda m, X: m.reshape(X, (24,))),
    ("reshape_unflat", {"v": (12,), "W": (4, 2)}, {}, ["v", "W"], lambda m, v, W: m.reshape(v, (3, 4)) @ W),
    ("reshape_minus_one", {"X": ("N", 6)}, {}, ["X"], lambda m, X: m.tanh(m.reshape(X, (-1, 2, 3))) * 2.0),
    ("reshape_minus_one_fixed", {"X": (4, 6), "W": (8, 3)}, {}, ["X", "W"], lambda m, X, W: m.reshape(X, (3, -1)) @ W),
    # basic indexing (its gradient: the upstream one in zeros), concatenate and stack
    ("index_gates", {"X": ("N", 3), "W": (3, 8)}, {}, ["X", "W"],
     lambda m, X, W: m.tanh((X @ W)[:, 0:4]) * m.sigmoid((X @ W)[:, 4:])),
    ("index_int_negative", {"W": (3, 8)}, {}, ["W"], lambda m, W: W[-1] * W[0] + W[1, 2:6].sum()),
    ("index_ellipsis_newaxis", {"X": ("N", 3, 4)}, {}, ["X"], lambda m, X: m.tanh(X[..., 1:3][:, None]) * 2.0),
    ("index_steps", {"X": (6, 5)}, {}, ["X"], lambda m, X: m.tanh(X[::2, 1::2]) * X[5::-2, 4:0:-2]),
    ("index_reversed", {"X": ("N", 4)}, {}, ["X"], lambda m, X: X[:, ::-1] * X),
    ("index_twice", {"X": (4, 6)}, {}, ["X"], lambda m, X: X[1:3][:, 2:5] * X[0:2, 0:3]),
    ("index_element", {"v": (5,), "W": (3, 4)}, {}, ["v", "W"], lambda m, v, W: v[0] * v[-1] * W + W[1, 2] * m.tanh(W)),
    ("take_rows", {"E": (6, 3), "ids": ("N", 4, "int")}, {"ids": "ids"}, ["E"], lambda m, E, ids: m.tanh(E[ids])),
    ("take_rows_repeated", {"E": (5,), "ids": (8, "int")}, {"ids": "ids"}, ["E"], lambda m, E, ids: E[ids] * E[ids]),
    ("take_rows_of_expression", {"E": (6, 3), "W": (3, 2), "ids": ("N", "int")}, {"ids": "ids"}, ["E", "W"],
     lambda m, E, W, ids: (E @ W)[ids]),
    ("take_rows_sliced_ids", {"E": (6, 3), "ids": ("N", 4, "int")}, {"ids": "ids"}, ["E"],
     lambda m, E, ids: E[ids[:, 1:3]] * 2.0),
    ("where_mask", {"M": (3, 4, "bool"), "S": ("N", 3, 4)}, {"M": "mask"}, ["S"],
     lambda m, M, S: m.where(M, m.tanh(S), -2.0 * S)),
    ("where_compare", {"X": ("N", 3), "Y": ("N", 3)}, {}, ["X", "Y"], lambda m, X, Y: m.where(X > Y, X * Y, Y)),
    ("where_broadcast", {"M": (4, "bool"), "X": ("N", 1), "Y": (4,)}, {"M": "mask"}, ["X", "Y"],
     lambda m, M, X, Y: m.where(M, X, Y * Y)),
    ("where_number", {"M": ("N", 4, "bool"), "X": ("N", 4)}, {"M": "mask"}, ["X"],
     lambda m, M, X: m.softmax(m.where(M, X, -1e9))),
    ("concatenate", {"P": ("N", 2), "Q": ("N", 3)}, {}, ["P", "Q"],
     lambda m, P, Q: m.concatenate([P, m.tanh(Q), P * P], axis=1)),
    ("concatenate_rows", {"P": (2, 3), "Q": (4, 3)}, {}, ["Q"], lambda m, P, Q: m.concatenate([P, Q * Q], axis=0)),
    ("stack", {"u": (4,), "v": (4,)}, {}, ["u", "v"], lambda m, u, v: m.stack([u, v * v], axis=1)),
    # axes permuted (NumPy's transpose(axes) and swapaxes)
    ("permute_3d", {"X": ("N", 3, 4)}, {}, ["X"], lambda m, X: m.tanh(m.permute(X, (2, 0, 1))) * 2.0),
    ("permute_composed", {"X": (2, 3, 4)}, {}, ["X"],
     lambda m, X: m.permute(m.permute(X, (1, 2, 0)), (2, 1, 0)) * m.swapaxes(X, 1, 2)),
    ("permute_reshape", {"X": (2, 3, 4), "W": (8, 2)}, {}, ["X", "W"],
     lambda m, X, W: m.reshape(m.permute(X, (1, 0, 2)), (3, 8)) @ W),
    ("swapaxes_2d", {"X": ("N", 3), "W": ("N", 4)}, {}, ["X", "W"], lambda m, X, W: m.swapaxes(X, 0, -1) @ W),
    # reductions
    ("sum_all", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.sum(X * X)),
    ("sum_axis0", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.sum(X * X, axis=0)),
    ("sum_axis1", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.sum(X * X, axis=1)),
    ("sum_axis_neg", {"X": (4, 3)}, {}, ["X"], lambda m, X: m.sum(m.tanh(X), axis=-1)),
    ("sum_vector", {"v": (5,)}, {}, ["v"], lambda m, v: m.sum(v * v, axis=0)),
    ("mean_all", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.mean(X * X)),
    ("mean_axis0", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.mean(X * X, axis=0)),
    ("mean_axis1", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.mean(X * X, axis=1)),
    ("mean_fixed", {"X": (4, 3)}, {}, ["X"], lambda m, X: m.mean(X * X, axis=0) + m.mean(X)),
    ("mean_broadcast_back", {"X": ("N", 3)}, {}, ["X"],
     lambda m, X: X - m.reshape(m.mean(X, axis=1), (X.shape[0], 1))),
    # NumPy's axis tuples and keepdims; min and var
    ("sum_axes_tuple", {"X": ("N", 3, 4)}, {}, ["X"], lambda m, X: m.sum(X * X, axis=(0, 2))),
    ("sum_keepdims", {"X": ("N", 3)}, {}, ["X"], lambda m, X: X * m.sum(m.tanh(X), axis=1, keepdims=True)),
    ("mean_axes_keepdims", {"X": ("N", 3, 4)}, {}, ["X"],
     lambda m, X: X / (1.0 + m.mean(X * X, axis=(1, -1), keepdims=True))),
    ("max_axes_tuple", {"X": (2, 3, 4)}, {}, ["X"], lambda m, X: m.max(X, axis=(0, 2))),
    ("min_axis", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.min(m.tanh(X), axis=1)),
    ("min_all_keepdims", {"X": (4, 3)}, {}, ["X"], lambda m, X: X * m.min(X, keepdims=True)),
    ("var_axis", {"X": ("N", 4)}, {}, ["X"], lambda m, X: m.var(X, axis=1)),
    ("var_all", {"X": (3, 4)}, {}, ["X"], lambda m, X: m.var(X * 2.0) * X),
    ("max_all", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.max(X * X)),
    ("max_axis0", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.max(X, axis=0)),
    ("max_axis1", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.max(m.tanh(X), axis=1)),
    ("max_3d_middle", {"X": (2, 3, 4)}, {}, ["X"], lambda m, X: m.max(X, axis=1)),
    ("max_3d_last", {"X": ("N", 3, 4)}, {}, ["X"], lambda m, X: m.max(X, axis=-1)),
    ("max_3d_all", {"X": (2, 3, 4)}, {}, ["X"], lambda m, X: m.max(X)),
    ("max_vector", {"v": (5,)}, {}, ["v"], lambda m, v: m.max(v, axis=0)),
    ("max_transposed", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.max(m.T(X), axis=0)),
    ("max_shared", {"X": ("N", 3), "b": (3,)}, {}, ["X", "b"], lambda m, X, b: m.max(X + b, axis=1) * m.max(X + b)),
    ("maxout", {"X": ("N", 6)}, {}, ["X"], lambda m, X: m.maxout(X, 3)),
    ("maxout_layer", {"X": ("N", 4), "W": (4, 6), "b": (6,)}, {}, ["X", "W", "b"],
     lambda m, X, W, b: m.maxout(X @ W + b, 2)),
    ("reshape_transposed", {"X": (4, 6)}, {}, ["X"], lambda m, X: m.reshape(m.T(X), (24,)) * 2.0),
    # elementwise functions
    ("exp", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.exp(X)),
    ("log", {"X": ("N", 3)}, {"X": "pos"}, ["X"], lambda m, X: m.log(X)),
    ("sqrt", {"X": ("N", 3)}, {"X": "pos"}, ["X"], lambda m, X: m.sqrt(X)),
    ("abs", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.abs(X)),
    ("tanh", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.tanh(X)),
    ("sigmoid", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.sigmoid(X)),
    ("relu", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.relu(X)),
    ("softplus", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.softplus(X)),
    ("composed", {"X": ("N", 3), "b": (3,)}, {}, ["X", "b"],
     lambda m, X, b: m.log(1.0 + m.exp(m.tanh(X) * b)) + m.sqrt(1.0 + X * X)),
    # nn
    ("nn_relu", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.nn_relu(X)),
    ("nn_sigmoid", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.nn_sigmoid(X)),
    ("nn_tanh", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.nn_tanh(X)),
    ("nn_softplus", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.nn_softplus(X)),
    ("leaky_relu", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.leaky_relu(X, 0.1)),
    ("leaky_relu_default", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.leaky_relu(X)),
    ("elu", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.elu(X, 0.7)),
    ("softmax", {"X": ("N", 4)}, {}, ["X"], lambda m, X: m.softmax(X)),
    ("log_softmax", {"X": ("N", 4)}, {}, ["X"], lambda m, X: m.log_softmax(X)),
    ("logsumexp", {"X": ("N", 4)}, {}, ["X"], lambda m, X: m.logsumexp(X)),
    ("softmax_axis0", {"X": ("N", 4)}, {}, ["X"], lambda m, X: m.softmax(X, axis=0)),
    ("softmax_vector", {"v": (5,)}, {}, ["v"], lambda m, v: m.softmax(v)),
    ("softmax_3d", {"X": ("N", 3, 4)}, {}, ["X"], lambda m, X: m.softmax(X)),
    ("softmax_4d_axis1", {"X": (2, 3, 4, 2)}, {}, ["X"], lambda m, X: m.softmax(X * X, axis=1)),
    ("log_softmax_3d", {"X": ("N", 3, 4)}, {}, ["X"], lambda m, X: m.log_softmax(X, axis=-1)),
    ("log_of_softmax_3d_axis0", {"X": (3, 2, 4)}, {}, ["X"], lambda m, X: m.log(m.softmax(X, axis=0))),
    ("logsumexp_3d_axis0", {"X": (3, "N", 4)}, {}, ["X"], lambda m, X: m.logsumexp(X, axis=0)),
    ("logsumexp_3d", {"X": ("N", 3, 4)}, {}, ["X"], lambda m, X: m.logsumexp(X)),
    ("log_softmax_axis0", {"X": (3, 4)}, {}, ["X"], lambda m, X: m.log_softmax(X, axis=0)),
    ("log_softmax_vector", {"v": (5,)}, {}, ["v"], lambda m, v: m.log_softmax(v, axis=0)),
    ("logsumexp_axis0", {"X": ("N", 4)}, {}, ["X"], lambda m, X: m.logsumexp(X, axis=0)),
    ("logsumexp_vector", {"v": (5,)}, {}, ["v"], lambda m, v: m.logsumexp(v) * 2.0),
    ("softmax_ce", {"Z": ("N", 4), "Y": ("N", 4)}, {"Y": "onehot"}, ["Z"],
     lambda m, Z, Y: m.softmax_cross_entropy(Z, Y)),
    ("softmax_ce_soft_targets", {"Z": ("N", 4), "Y": ("N", 4)}, {"Y": "simplex"}, ["Z", "Y"],
     lambda m, Z, Y: m.softmax_cross_entropy(Z, Y)),
    ("softmax_ce_unnormalized_targets", {"Z": ("N", 4), "Y": ("N", 4)}, {"Y": "prob"}, ["Z", "Y"],
     lambda m, Z, Y: m.softmax_cross_entropy(Z, Y)),
    ("mse", {"P": ("N", 3), "T": ("N", 3)}, {}, ["P", "T"], lambda m, P, T: m.mse(P, T)),
    ("bce_logits", {"Z": ("N", 3), "Y": ("N", 3)}, {"Y": "prob"}, ["Z", "Y"], lambda m, Z, Y: m.bce_logits(Z, Y)),
    ("gelu", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.gelu(X)),
    ("nn_gelu", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.nn_gelu(X)),
    ("gelu_tanh", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.gelu_tanh(X)),
    ("layer_norm", {"X": ("N", 5), "g": (5,), "b": (5,)}, {}, ["X", "g", "b"],
     lambda m, X, g, b: m.layer_norm(X, g, b)),
    ("layer_norm_3d", {"X": (2, 3, 4), "g": (4,), "b": (4,)}, {}, ["X", "g", "b"],
     lambda m, X, g, b: m.layer_norm(X, g, b)),
    ("swish", {"X": ("N", 3)}, {}, ["X"], lambda m, X: m.swish(X)),
]

def _values(case):
    return case.values if hasattr(case, "marks") else case


CASE_PARAMS = [pytest.param(c.values[0], marks=c.marks, id=c.values[0]) if hasattr(c, "marks") else c[0] for c in CASES]
BY_ID = {_values(c)[0]: _values(c) for c in CASES}


def concrete(shape, n=N):
    return tuple(n if not isinstance(d, int) else d for d in shape if d not in ("int", "bool"))


def make_data(rng, shape, kind):
    if kind == "pos":
        return rng.uniform(0.5, 2.0, size=shape)
    if kind == "prob":
        return rng.uniform(0.0, 1.0, size=shape)
    if kind == "simplex":
        out = rng.uniform(0.1, 1.0, size=shape)
        return out / out.sum(axis=-1, keepdims=True)
    if kind == "ids":  # row indices of the cases' tables (4 rows or more), repeated ones among them
        return rng.integers(0, 4, size=shape)
    if kind == "mask":
        return rng.uniform(size=shape) < 0.6
    if kind == "onehot":
        out = np.zeros(shape)
        out[np.arange(shape[0]), rng.integers(0, shape[1], size=shape[0])] = 1.0
        return out
    x = rng.normal(size=shape)
    if shape:
        x[np.abs(x) < 1e-3] = 0.5  # keep away from the kinks of relu, abs, ...
    return x


WAYS = ["compile", "function"]  # bpgen.Tensor + bpgen.compile, and @bpgen.function(shapes=...): the same results


def _declared(way, case_id, shapes, wrt, body, jit):
    """sum(body * C) declared `way`; returns the compiled function and the shape of body's value."""
    tag = f"{case_id}_"
    tensors = {k: bpgen.Tensor(tag + k, s) for k, s in shapes.items()}
    expr = body(B, **tensors)
    C = bpgen.Tensor(tag + "C", expr.shape)
    names = list(shapes)
    if way == "compile":
        loss = bpgen.sum(expr * C)
        return bpgen.compile(loss, inputs=[tensors[k] for k in names] + [C], wrt=[tensors[w] for w in wrt],
                             jit=jit), expr.shape
    # the same body traced by @bpgen.function, under SymPy's evaluate(False), with parameters named as declared
    namespace = {"body": body, "B": B, "bpgen": bpgen}
    params = ", ".join(names + ["C"])
    keywords = ", ".join(f"{k}={k}" for k in names)
    exec(f"def {case_id}({params}):\n    return bpgen.sum(body(B, {keywords}) * C)\n", namespace)
    shapes_with_c = {**shapes, "C": expr.shape}
    return bpgen.function(namespace[case_id], shapes=shapes_with_c, wrt=list(wrt), jit=jit), expr.shape


def setup_case(case_id, jit=False, n=N, way="compile"):
    """Compile sum(body * C) with bpgen; return (compiled, arrays, wrt indices, autograd loss)."""
    _, shapes, kinds, wrt, body = BY_ID[case_id]
    g, shape = _declared(way, case_id, shapes, wrt, body, jit)
    names = list(shapes)

    rng = rng_for(case_id)
    arrays = [make_data(rng, concrete(shapes[k], n), kinds.get(k)) for k in names]
    c = rng.normal(size=concrete(shape, n))
    arrays.append(c)

    def ref(*args):
        return anp.sum(body(A, **dict(zip(names, args[:-1]))) * args[-1])

    return g, arrays, [names.index(w) for w in wrt], ref


def reference(ref, arrays, wrt_idx):
    value = ref(*arrays)
    grads = [agrad(ref, i)(*arrays) for i in wrt_idx]
    return value, grads


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("case_id", CASE_PARAMS)
def test_rule_against_autograd(case_id, way):
    g, arrays, wrt_idx, ref = setup_case(case_id, way=way)
    value, grads = g.value_and_grad(*arrays)
    ref_value, ref_grads = reference(ref, arrays, wrt_idx)
    assert_close(value, ref_value)
    assert len(grads) == len(wrt_idx)
    for got, want in zip(grads, ref_grads):
        assert_close(got, want)
    assert_close(g.forward(*arrays), ref_value)
    for got, want in zip(g.grad(*arrays), ref_grads):
        assert_close(got, want)


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("case_id", CASE_PARAMS)
def test_rule_against_finite_differences(case_id, way):
    """Central differences of the value along a random direction in every wrt input at once."""
    g, arrays, wrt_idx, _ = setup_case(case_id, way=way)
    _, grads = g.value_and_grad(*arrays)
    rng = rng_for("fd-" + case_id)
    directions = {i: rng.normal(size=np.shape(arrays[i])) for i in wrt_idx}
    h = 1e-6

    def at(t):
        return g.forward(*(a + t * directions[i] if i in directions else a for i, a in enumerate(arrays)))

    fd = (at(h) - at(-h)) / (2 * h)
    analytic = sum(float(np.sum(np.asarray(gr) * directions[i])) for gr, i in zip(grads, wrt_idx))
    assert close(fd, analytic, 1e-6), (fd, analytic)


@pytest.mark.parametrize("case_id", ["add_row", "matmul_chain", "scalar_bias", "mean_axis0", "softmax_ce", "gelu",
                                     "max_all", "max_3d_middle", "max_transposed", "maxout_layer",
                                     "reshape_transposed", "softmax_axis0", "logsumexp_vector", "permute_3d",
                                     "permute_reshape", "permute_composed", "reshape_minus_one", "sum_keepdims",
                                     "min_all_keepdims", "var_all", "index_gates", "index_int_negative",
                                     "index_ellipsis_newaxis", "index_twice", "index_element", "concatenate",
                                     "stack", "layer_norm_3d", "gelu_tanh", "matmul_stack_matrix", "matmul_stacks",
                                     "matmul_stacks_broadcast", "matmul_matrix_stack", "matmul_vector_stack",
                                     "matmul_stack_vector", "matmul_attention_scores", "matmul_4d_matrix",
                                     "softmax_3d", "softmax_4d_axis1", "log_softmax_3d", "log_of_softmax_3d_axis0",
                                     "logsumexp_3d_axis0", "einsum_scores", "einsum_dot", "einsum_stack_weight",
                                     "einsum_summed_and_merged", "einsum_free_on_the_right", "add_3d_broadcast",
                                     "mul_broadcast_both", "take_rows", "take_rows_repeated",
                                     "take_rows_of_expression", "take_rows_sliced_ids", "where_mask", "where_compare",
                                     "where_broadcast", "where_number", "index_steps", "index_reversed"])
def test_jit_matches_python(case_id, numba_agrees):
    g_jit, arrays, wrt_idx, ref = setup_case(case_id, jit=True)
    assert "@numba.njit" in g_jit.source and "@numba.njit" not in bpgen.compile(g_jit, jit=False).source
    v_jit, grads_jit = numba_agrees(g_jit, *arrays)
    ref_value, ref_grads = reference(ref, arrays, wrt_idx)
    assert_close(v_jit, ref_value)
    for got, want in zip(grads_jit, ref_grads):
        assert_close(got, want)


@pytest.mark.parametrize("n", [1, 2, 9])
def test_symbolic_batch_sizes_share_one_module(n):
    g, arrays, wrt_idx, ref = setup_case("softmax_ce", n=n)
    value, grads = g.value_and_grad(*arrays)
    ref_value, ref_grads = reference(ref, arrays, wrt_idx)
    assert_close(value, ref_value)
    for got, want in zip(grads, ref_grads):
        assert_close(got, want)


def test_checker_detects_wrong_gradient():
    """The comparison used above really fails for a gradient off by a little."""
    g, arrays, wrt_idx, ref = setup_case("tanh")
    _, grads = g.value_and_grad(*arrays)
    _, ref_grads = reference(ref, arrays, wrt_idx)
    with pytest.raises(AssertionError):
        assert_close(grads[0] * (1 + 1e-7), ref_grads[0])


# whole networks ------------------------------------------------------------------------------------------------


def mlp_loss(X, Y, W1, b1, W2, b2):
    z1 = X @ W1 + b1
    h1 = nn.relu(z1)
    logits = h1 @ W2 + b2
    return nn.softmax_cross_entropy(logits, Y)


MLP_SHAPES = {"X": ("N", 784), "Y": ("N", 10), "W1": (784, 128), "b1": (128,), "W2": (128, 10), "b2": (10,)}
MLP_WRT = ["W1", "b1", "W2", "b2"]


@pytest.fixture(scope="module")
def mlp_jit():
    return bpgen.function(mlp_loss, shapes=MLP_SHAPES, wrt=MLP_WRT, jit=True)


def mlp_reference(X, Y, W1, b1, W2, b2):
    z1 = anp.dot(X, W1) + b1
    h1 = anp.maximum(z1, 0.0)
    logits = anp.dot(h1, W2) + b2
    return A.softmax_cross_entropy(logits, Y)


def mlp_data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 784))
    Y = make_data(rng, (n, 10), "onehot")
    W1 = rng.normal(size=(784, 128)) / np.sqrt(784)
    b1 = rng.normal(size=128) * 0.1
    W2 = rng.normal(size=(128, 10)) / np.sqrt(128)
    b2 = rng.normal(size=10) * 0.1
    return [X, Y, W1, b1, W2, b2]


@pytest.mark.parametrize("n", [1, 7, 64])
def test_mlp_784_128_10_jit_against_autograd(mlp_jit, n):
    arrays = mlp_data(n, seed=n)
    value, grads = mlp_jit.value_and_grad(*arrays)
    assert_close(value, mlp_reference(*arrays))
    for got, i in zip(grads, range(2, 6)):
        assert_close(got, agrad(mlp_reference, i)(*arrays))
    assert_close(mlp_jit.forward(*arrays), value)


def tanh_sigmoid_net(X, T, W1, b1, W2, b2, W3, b3):
    h1 = nn.tanh(X @ W1 + b1)
    h2 = nn.sigmoid(h1 @ W2 + b2)
    out = h2 @ W3 + b3
    return nn.mse(out, T)


def tanh_sigmoid_reference(X, T, W1, b1, W2, b2, W3, b3):
    h1 = anp.tanh(anp.dot(X, W1) + b1)
    h2 = a_sigmoid(anp.dot(h1, W2) + b2)
    return anp.mean((anp.dot(h2, W3) + b3 - T) ** 2)


TS_SHAPES = {"X": ("N", 6), "T": ("N", 2), "W1": (6, 8), "b1": (8,), "W2": (8, 5), "b2": (5,), "W3": (5, 2),
             "b3": (2,)}
TS_WRT = ["W1", "b1", "W2", "b2", "W3", "b3"]


def gelu_net(X, Y, W1, b1, W2):
    u = sympy.Symbol("u", real=True)
    z = X @ W1 + b1
    h = nn.elementwise(sympy.Lambda(u, u * (1 + sympy.erf(u / sympy.sqrt(2))) / 2), z)
    return nn.softmax_cross_entropy(h @ W2, Y)


def gelu_reference(X, Y, W1, b1, W2):
    return A.softmax_cross_entropy(anp.dot(A.gelu(anp.dot(X, W1) + b1), W2), Y)


GELU_SHAPES = {"X": ("N", 5), "Y": ("N", 3), "W1": (5, 7), "b1": (7,), "W2": (7, 3)}
GELU_WRT = ["W1", "b1", "W2"]


def logreg(X, y, w, b):
    z = X @ w + b
    return nn.binary_cross_entropy_with_logits(z, y)


def logreg_reference(X, y, w, b):
    z = anp.dot(X, w) + b
    return anp.mean(a_softplus(z) - y * z)


LR_SHAPES = {"X": ("N", 4), "y": ("N",), "w": (4,), "b": ()}
LR_WRT = ["w", "b"]

NETWORKS = {
    "tanh_sigmoid_mse": (tanh_sigmoid_net, tanh_sigmoid_reference, TS_SHAPES, TS_WRT, {}),
    "gelu": (gelu_net, gelu_reference, GELU_SHAPES, GELU_WRT, {"Y": "onehot"}),
    "logreg": (logreg, logreg_reference, LR_SHAPES, LR_WRT, {"y": "prob"}),
}


def network_setup(key, n=9, jit=False):
    fn, ref, shapes, wrt, kinds = NETWORKS[key]
    g = bpgen.function(fn, shapes=shapes, wrt=wrt, jit=jit)
    rng = rng_for(key + str(n))
    arrays = [make_data(rng, concrete(s, n), kinds.get(k)) for k, s in shapes.items()]
    if key == "logreg":
        arrays[3] = np.array(0.3)  # a 0-d scalar bias
        arrays[1] = (arrays[1] > 0.5).astype(float)
    wrt_idx = [list(shapes).index(w) for w in wrt]
    return g, arrays, wrt_idx, ref


@pytest.mark.parametrize("key", sorted(NETWORKS))
@pytest.mark.parametrize("n", [1, 9])
def test_network_against_autograd(key, n):
    g, arrays, wrt_idx, ref = network_setup(key, n)
    value, grads = g.value_and_grad(*arrays)
    ref_value, ref_grads = reference(ref, arrays, wrt_idx)
    assert_close(value, ref_value)
    assert len(grads) == len(wrt_idx)
    for got, want in zip(grads, ref_grads):
        assert_close(got, want)


@pytest.mark.parametrize("key", ["tanh_sigmoid_mse", "gelu"])
def test_network_jit_matches_autograd(key):
    g, arrays, wrt_idx, ref = network_setup(key, 9, jit=True)
    value, grads = g.value_and_grad(*arrays)
    ref_value, ref_grads = reference(ref, arrays, wrt_idx)
    assert_close(value, ref_value)
    for got, want in zip(grads, ref_grads):
        assert_close(got, want)


def test_logreg_scalar_bias_gradient_is_scalar():
    g, arrays, _, ref = network_setup("logreg", 9)
    _, (dw, db) = g.value_and_grad(*arrays)
    assert np.shape(dw) == (4,)
    assert np.shape(db) == ()
    X, y, w, b = arrays
    # d/db mean(softplus(z) - y z) = mean(sigmoid(z) - y)
    z = X @ w + b
    assert_close(db, np.mean(1 / (1 + np.exp(-z)) - y))


# random-direction finite differences -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["tanh_sigmoid_mse", "gelu", "logreg"])
def test_random_direction_finite_difference(key):
    g, arrays, wrt_idx, _ = network_setup(key, 6)
    rng = rng_for("fd" + key)
    _, grads = g.value_and_grad(*arrays)
    directions = [rng.normal(size=np.shape(arrays[i])) for i in wrt_idx]
    h = 1e-5

    def at(t):
        moved = list(arrays)
        for i, v in zip(wrt_idx, directions):
            moved[i] = arrays[i] + t * v
        return g.forward(*moved)

    fd = (at(h) - at(-h)) / (2 * h)
    analytic = sum(float(np.sum(np.asarray(gr) * v)) for gr, v in zip(grads, directions))
    assert close(fd, analytic, 1e-6)
    # and the check is sharp enough to see a perturbed gradient
    assert abs(fd - 1.001 * analytic) > 1e-6 * max(1.0, abs(analytic))


def test_mlp_random_direction_finite_difference(mlp_jit):
    arrays = mlp_data(5, seed=11)
    rng = np.random.default_rng(12)
    _, grads = mlp_jit.value_and_grad(*arrays)
    directions = [rng.normal(size=a.shape) for a in arrays[2:]]
    h = 1e-5

    def at(t):
        return mlp_jit.forward(*arrays[:2], *(a + t * v for a, v in zip(arrays[2:], directions)))

    fd = (at(h) - at(-h)) / (2 * h)
    analytic = sum(float(np.sum(gr * v)) for gr, v in zip(grads, directions))
    assert close(fd, analytic, 1e-6)


# extreme logits ----------------------------------------------------------------------------------------------


def stable_softmax_ce(Z, Y):
    m = Z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True))
    p = np.exp(Z - lse)
    n = Z.shape[0]
    return -np.sum(Y * (Z - lse)) / n, (p - Y) / n


@pytest.mark.parametrize("jit", [False, True])
def test_softmax_cross_entropy_extreme_logits(jit):
    Z = bpgen.Tensor("Zext", ("N", 4))
    Y = bpgen.Tensor("Yext", ("N", 4))
    g = bpgen.compile(nn.softmax_cross_entropy(Z, Y), inputs=[Z, Y], wrt=[Z], jit=jit)
    logits = np.array([[1000.0, -1000.0, 0.0, 999.0],
                       [-1000.0, -1000.0, -1000.0, -999.0],
                       [1000.0, 1000.0, -1000.0, 1000.0],
                       [0.5, -0.25, 1000.0, -1000.0]])
    onehot = np.eye(4)[[1, 3, 0, 3]]
    value, (dZ,) = g.value_and_grad(logits, onehot)
    want_value, want_dZ = stable_softmax_ce(logits, onehot)
    assert np.isfinite(value) and np.all(np.isfinite(dZ))
    assert_close(value, want_value)
    assert_close(dZ, want_dZ)
    assert value > 400  # the wrong class wins by ~1000 in some rows: the loss is large, not inf/nan


def test_extreme_logits_through_a_layer():
    X = bpgen.Tensor("Xbig", ("N", 3))
    W = bpgen.Tensor("Wbig", (3, 4))
    Y = bpgen.Tensor("Ybig", ("N", 4))
    g = bpgen.compile(nn.softmax_cross_entropy(X @ W, Y), inputs=[X, W, Y], wrt=[W], jit=False)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 3))
    w = rng.normal(size=(3, 4)) * 1000.0
    y = make_data(rng, (6, 4), "onehot")
    value, (dW,) = g.value_and_grad(x, w, y)
    want_value, want_dZ = stable_softmax_ce(x @ w, y)
    assert np.isfinite(value) and np.all(np.isfinite(dW))
    assert_close(value, want_value)
    assert_close(dW, x.T @ want_dZ, atol=1e-10)


# the generated backward code is staged at the matrix level -----------------------------------------------------


def function_body(source: str, name: str) -> str:
    match = re.search(rf"^def {name}\(.*?(?=^\S)", source + "\nEND", re.S | re.M)
    assert match, f"no def {name} in source"
    return match.group(0)


@pytest.mark.parametrize("jit", [False, True])
def test_products_of_transposes_read_them_in_place(jit):
    """dW = X.T @ dz and dX = dz @ W.T call matmul on the transposed views (compiled, dgemm reads them in place,
    with no copy): the same numbers as NumPy's products, in C order, for a small batch and a large one."""
    X = bpgen.Tensor("X", ("N", 300))
    W = bpgen.Tensor("W", (300, 256))
    g = bpgen.compile(((X @ W) ** 2).sum(), inputs=[X, W], wrt=[X, W], jit=jit)
    body = function_body(g.source, "value_and_grad")
    assert re.search(r"^\s*matmul1 = matmul\(X, W\)$", body, re.M), body
    assert re.search(r"^\s*dW = matmul\(X\.T, d\w+\)", body, re.M), body
    assert re.search(r"^\s*dX = matmul\(d\w+, W\.T\)", body, re.M), body
    rng = np.random.default_rng(8)
    w = rng.normal(size=(300, 256))
    for rows in (5, 400):
        x = rng.normal(size=(rows, 300))
        value, (dx, dw) = g.value_and_grad(x, w)
        np.testing.assert_allclose(value, ((x @ w) ** 2).sum(), rtol=1e-12)
        for got, want in ((dw, 2 * x.T @ (x @ w)), (dx, 2 * (x @ w) @ w.T)):  # sums of 256 and 300 terms
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
            assert got.flags.c_contiguous


def test_a_stacks_product_plus_a_bias_is_one_affine_line_unless_the_product_is_wanted():
    """x @ W + b on a stack is affine(x, W, b), its backward the pair's lines; a product read twice, or named
    by the user, keeps its own line."""
    def layer(x, W, b):
        return bpgen.sum(bpgen.tanh(x @ W + b))

    def named(x, W, b):
        z = x @ W
        return bpgen.sum(bpgen.tanh(z + b))

    shapes = {"x": ("N", 3, 4), "W": (4, 2), "b": (2,)}
    body = function_body(bpgen.function(layer, shapes=shapes, jit=False).source, "value_and_grad")
    assert re.search(r"^\s*affine1 = affine\(x, W, b\)$", body, re.M), body
    assert re.search(r"^\s*dW = flat_transpose_matmul\(x, d\w+\)\s+# affine1 = affine\(x, W, b\)$", body, re.M), body
    assert re.search(r"^\s*db = sum_axis0\(sum_axis0\(d\w+\)\)", body, re.M), body
    body = function_body(bpgen.function(named, shapes=shapes, jit=False).source, "value_and_grad")
    assert "affine(" not in body and re.search(r"^\s*z = flat_matmul\(x, W\)$", body, re.M), body


def test_mlp_source_is_staged(mlp_jit):
    source = mlp_jit.source
    assert re.search(r"@numba\.njit.*\ndef value_and_grad", source)
    body = function_body(source, "value_and_grad")
    assert re.search(r"^\s*dW2 = matmul\(h1\.T, d\w+\)", body, re.M), body
    assert re.search(r"^\s*\w+ = matmul\(X, W1\)$", body, re.M), body  # X @ W1, 784 x 128
    assert re.search(r"^\s*dW1 = matmul\(X\.T, d\w+\)", body, re.M), body  # X.T @ d...
    assert re.search(r"^\s*dh1 = matmul\(d\w+, W2\.T\)", body, re.M), body
    assert re.search(r"^\s*db2 = sum_axis0\(dlogits\)", body, re.M), body
    assert re.search(r"^\s*db1 = sum_axis0\(d\w+\)", body, re.M), body
    assert re.search(r"^\s*dz1 = dh1 \* \(z1 > 0\.0\)", body, re.M), body
    assert re.search(r"^\s*dlogits = ", body, re.M), body
    # inputs outside wrt get no adjoint
    assert not re.search(r"\bdX\b", body)
    assert not re.search(r"\bdY\b", body)
    # no scalar loops in the function itself: all loops live in small helpers (softmax, ...)
    assert not re.search(r"^\s*for\b", body, re.M), body
    assert not re.search(r"^\s*while\b", body, re.M), body
    assert re.search(r"return mlp_loss, \(dW1, db1, dW2, db2\)", body), body


def test_mlp_source_names_follow_locals():
    g = bpgen.function(mlp_loss, shapes=MLP_SHAPES, wrt=["W2"], jit=False)
    body = function_body(g.source, "value_and_grad")
    assert re.search(r"^\s*dW2 = matmul\(h1\.T, d\w+\)", body, re.M), body
    # only what W2's gradient needs is computed
    for unneeded in ("dW1", "db1", "db2", "dz1", "dh1"):
        assert not re.search(rf"\b{unneeded}\b", body), (unneeded, body)


# shape errors ------------------------------------------------------------------------------------------------


@pytest.fixture
def no_codegen(monkeypatch):
    import bpgen.program.build as pipeline
    import bpgen.targets.python.emit as emit

    def fail(*args, **kwargs):
        raise AssertionError("code generation was reached")

    monkeypatch.setattr(pipeline, "build", fail)
    monkeypatch.setattr(emit, "emit", fail)


def test_matmul_shape_error(no_codegen):
    a = bpgen.Tensor("A", (3, 4))
    b = bpgen.Tensor("B", (5, 2))
    with pytest.raises(bpgen.BpgenError) as info:
        a @ b
    message = str(info.value)
    assert "A (3, 4)" in message and "B (5, 2)" in message


@pytest.mark.parametrize(("left", "right", "words"), [
    ((2, 3, 4), (5, 4, 2), r"batch axes \(2,\) and \(5,\) do not broadcast"),
    (("N", 3, 4), (3, 2), r"inner dimensions 4 and 3 differ"),
])
def test_stacked_matmul_shape_errors_name_both_operands(no_codegen, left, right, words):
    a, b = bpgen.Tensor("Sa", left), bpgen.Tensor("Sb", right)
    with pytest.raises(bpgen.BpgenError, match=words) as info:
        a @ b
    assert "Sa (" in str(info.value) and "Sb (" in str(info.value)


@pytest.mark.parametrize(("spec", "shapes", "words"), [
    ("ij,jk->ik", [(3, 4), (5, 2)], r"axis 'j' has sizes 4 and 5 \(Ea \(3, 4\), Eb \(5, 2\)\)"),
    ("ii->i", [(3, 3)], r"'ii' repeats a letter"),
    ("...i,i->...", [(3, 3), (3,)], r"'\.\.\.' is not supported"),
    ("ij,jk->il", [(3, 4), (4, 2)], r"the output's 'l' is in no operand"),
    ("ijk,jk->i", [(3, 4), (4, 2)], r"'ijk' names 3 axes, but Ea \(3, 4\) has 2"),
    ("ij->i", [(3, 4), (4, 2)], r"names 1 operands, but 2 were given"),
    ("bij,bjk->bik", [("N", 3, 4), ("N", 4, "M")], None),
    ("ijk,jkl->il", [(2, "N", "M"), ("N", "M", 3)], r"the axes 'jk' of sizes \(N, M\) would be merged"),
])
def test_einsum_errors_are_one_line(no_codegen, spec, shapes, words):
    tensors = [bpgen.Tensor(name, shape) for name, shape in zip(["Ea", "Eb"], shapes)]
    if words is None:  # declares
        assert bpgen.einsum(spec, *tensors).shape[0] == tensors[0].shape[0]
        return
    with pytest.raises(bpgen.BpgenError, match=words) as info:
        bpgen.einsum(spec, *tensors)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("shapes", [((3, 4), (5,)), (("N", 3), (4,)), ((3, 4), (3,)), ((2, 3), (3, 2))])
def test_add_shape_error(no_codegen, shapes):
    p = bpgen.Tensor("P", shapes[0])
    q = bpgen.Tensor("Q", shapes[1])
    with pytest.raises(bpgen.BpgenError) as info:
        p + q
    message = str(info.value)
    fmt = [("(" + ", ".join(str(d) for d in s) + ("," if len(s) == 1 else "") + ")") for s in shapes]
    assert f"P {fmt[0]}" in message and f"Q {fmt[1]}" in message, message


@pytest.mark.parametrize("make", [
    lambda: bpgen.Tensor("v4", (4,)) @ bpgen.Tensor("M34", (3, 4)),
    lambda: bpgen.Tensor("u3", (3,)) @ bpgen.Tensor("u4", (4,)),
    lambda: bpgen.Tensor("M34", (3, 4)) @ bpgen.Tensor("u3", (3,)),
    lambda: bpgen.Tensor("M34", (3, 4)) * bpgen.Tensor("M43", (4, 3)),
    lambda: bpgen.Tensor("M34", (3, 4)).reshape((5, 2)),
    lambda: nn.softmax_cross_entropy(bpgen.Tensor("M34", (3, 4)), bpgen.Tensor("M43", (4, 3))),
    lambda: nn.softmax(bpgen.Tensor("scalar_s", ())),
    lambda: nn.logsumexp(bpgen.Tensor("M34", (3, 4)), axis=2),
])
def test_other_shape_errors(no_codegen, make):
    with pytest.raises(bpgen.BpgenError):
        make()


def test_label_and_maxout_errors(no_codegen):
    logits = bpgen.Tensor("Zl", ("N", 4))
    with pytest.raises(bpgen.BpgenError, match=r"one label per row .* \(N,\), not \(N, 4\)"):
        nn.cross_entropy(logits, bpgen.Tensor("Yl", ("N", 4)))
    with pytest.raises(bpgen.BpgenError, match=r"maxout with 3 pieces .* not shape \(N, 4\)"):
        nn.maxout(logits, 3)
    with pytest.raises(bpgen.BpgenError, match="pieces"):
        nn.maxout(logits, 0)
    with pytest.raises(bpgen.BpgenError, match="axis 2 is out of range"):
        bpgen.max(logits, axis=2)
    with pytest.raises(bpgen.BpgenError, match="sympy.Max"):
        bpgen.max(sympy.Symbol("x"), sympy.Symbol("y"))


# max reductions: the max gate -----------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_max_ties_route_to_the_first_winner(jit):
    X = bpgen.Tensor("Xtie", (3, 4))
    C = bpgen.Tensor("Ctie", (3,))
    g = bpgen.compile(bpgen.sum(bpgen.max(X, axis=1) * C) + 10.0 * X.max(), inputs=[X, C], wrt=[X], jit=jit)
    x = np.array([[1.0, 3.0, 3.0, 0.0],
                  [5.0, 5.0, 5.0, 5.0],
                  [-2.0, -1.0, -7.0, -1.0]])
    value, (dX,) = g.value_and_grad(x, np.array([1.0, 2.0, 3.0]))
    assert value == 1 * 3.0 + 2 * 5.0 + 3 * -1.0 + 10.0 * 5.0
    want = np.zeros((3, 4))
    want[0, 1] = 1.0
    want[1, 0] = 2.0 + 10.0  # the first 5.0 of row 1 wins both the row max and the overall max
    want[2, 1] = 3.0
    assert_close(dX, want, rtol=0, atol=0)


@pytest.mark.parametrize("order", ["F", "strided"])
def test_non_contiguous_inputs_reshape_and_max_under_numba(order):
    g, arrays, wrt_idx, ref = setup_case("reshape_transposed", jit=True)
    g2, arrays2, wrt_idx2, ref2 = setup_case("max_3d_middle", jit=True)
    for g_, arrays_, idx, ref_ in ((g, arrays, wrt_idx, ref), (g2, arrays2, wrt_idx2, ref2)):
        x = arrays_[0]
        if order == "F":
            moved = np.asfortranarray(x)
        else:
            big = np.zeros(tuple(2 * d for d in x.shape))
            big[tuple(slice(None, None, 2) for _ in x.shape)] = x
            moved = big[tuple(slice(None, None, 2) for _ in x.shape)]
        assert not moved.flags.c_contiguous
        value, grads = g_.value_and_grad(moved, *arrays_[1:])
        ref_value, ref_grads = reference(ref_, arrays_, idx)
        assert_close(value, ref_value)
        assert_close(grads[0], ref_grads[0])


# cross-entropy with integer labels ------------------------------------------------------------------------------


def labels_loss(X, y, W, b):
    logits = X @ W + b
    return nn.cross_entropy(logits, y)


LABELS_SHAPES = {"X": ("N", 5), "y": ("N",), "W": (5, 4), "b": (4,)}


def labels_reference(X, y, W, b):
    return A.softmax_cross_entropy(anp.dot(X, W) + b, np.eye(4)[y])


@pytest.fixture(scope="module")
def labels_jit():
    return bpgen.function(labels_loss, shapes=LABELS_SHAPES, wrt=["W", "b"], jit=True)


def labels_data(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, 5)), rng.integers(0, 4, size=n), rng.normal(size=(5, 4)), rng.normal(size=4)]


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("n", [1, 7, 64])
def test_cross_entropy_with_labels_against_autograd(labels_jit, jit, n):
    g = labels_jit if jit else bpgen.compile(labels_jit, jit=False)
    arrays = labels_data(n, seed=n)
    value, (dW, db) = g.value_and_grad(*arrays)
    assert_close(value, labels_reference(*arrays))
    assert_close(dW, agrad(labels_reference, 2)(*arrays))
    assert_close(db, agrad(labels_reference, 3)(*arrays))
    # labels given as whole floats work the same
    as_floats = [arrays[0], arrays[1].astype(float), *arrays[2:]]
    assert_close(g.forward(*as_floats), value)


def test_cross_entropy_source_is_fused_and_labels_get_no_adjoint(labels_jit):
    body = function_body(labels_jit.source, "value_and_grad")
    assert re.search(r"^\s*dlogits = \(softmax\(logits\) - one_hot\(y, 4\)\) / N\b", body, re.M), body
    assert not re.search(r"\bdy\b", body)


@pytest.mark.parametrize("jit", [False, True])
def test_cross_entropy_extreme_logits(jit):
    Z = bpgen.Tensor("Zlab", ("N", 4))
    y = bpgen.Tensor("ylab", ("N",))
    g = bpgen.compile(nn.cross_entropy(Z, y), inputs=[Z, y], wrt=[Z], jit=jit)
    logits = np.array([[1000.0, -1000.0, 0.0, 999.0], [-1000.0, -1000.0, -1000.0, -999.0]])
    labels = np.array([1, 3])
    value, (dZ,) = g.value_and_grad(logits, labels)
    want_value, want_dZ = stable_softmax_ce(logits, np.eye(4)[labels])
    assert np.isfinite(value) and np.all(np.isfinite(dZ))
    assert_close(value, want_value)
    assert_close(dZ, want_dZ)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("bad", [[0, 4, 1], [0, -1, 1], [0.5, 1.0, 2.0]])
def test_cross_entropy_rejects_bad_labels(labels_jit, jit, bad):
    g = labels_jit if jit else bpgen.compile(labels_jit, jit=False)
    X, _, W, b = labels_data(3, seed=0)
    for call in (g.forward, g.value_and_grad):
        with pytest.raises(ValueError, match="every label must be a whole number from 0"):
            call(X, np.array(bad), W, b)


# vector-Jacobian products of tensor-valued functions ----------------------------------------------------------


def layer(X, W, b):
    z = X @ W + b
    h = nn.tanh(z)
    return h


LAYER_SHAPES = {"X": ("N", 5), "W": (5, 3), "b": (3,)}


def layer_reference(X, W, b):
    return anp.tanh(anp.dot(X, W) + b)


@pytest.fixture(scope="module")
def layer_jit():
    return bpgen.function(layer, shapes=LAYER_SHAPES, jit=True)


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("n", [1, 6])
def test_vjp_of_a_layer_against_autograd(layer_jit, jit, n):
    g = layer_jit if jit else bpgen.compile(layer_jit, jit=False)
    rng = np.random.default_rng(n)
    arrays = [rng.normal(size=(n, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)]
    seed = rng.normal(size=(n, 3))
    value, grads = g.vjp(*arrays, seed)
    assert_close(value, layer_reference(*arrays))
    assert_close(g.forward(*arrays), value)

    def projected(*args):
        return anp.sum(layer_reference(*args) * seed)

    for i, got in enumerate(grads):
        assert_close(got, agrad(projected, i)(*arrays))


def test_vjp_source_takes_the_seed_as_the_outputs_adjoint(layer_jit):
    body = function_body(layer_jit.source, "vjp")
    assert body.startswith("def vjp(X, W, b, dh):")
    assert re.search(r"^\s*dz = \(\(1\.0 - h\) \* \(h \+ 1\.0\)\) \* dh\b", body, re.M), body
    assert re.search(r"^\s*dW = matmul\(X\.T, d\w+\)", body, re.M), body
    assert re.search(r"^\s*db = sum_axis0\(dz\)", body, re.M), body
    assert re.search(r"return h, \(dX, dW, db\)", body), body
    assert "def value_and_grad" not in layer_jit.source


@pytest.mark.parametrize("make", [
    lambda X: nn.softmax(X),
    lambda X: bpgen.max(X, axis=1),
    lambda X: X.T @ X,
    lambda X: X,
])
def test_vjp_of_other_tensor_outputs(make):
    X = bpgen.Tensor("Xv", ("N", 3))
    out = make(X)
    g = bpgen.compile(out, inputs=[X], jit=False)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3))
    seed = rng.normal(size=g.forward(x).shape)
    value, (dx,) = g.vjp(x, seed)
    h = 1e-6
    direction = rng.normal(size=x.shape)
    fd = np.sum((g.forward(x + h * direction) - g.forward(x - h * direction)) * seed) / (2 * h)
    assert abs(fd - np.sum(dx * direction)) < 1e-6 * max(1.0, abs(fd))


@pytest.mark.parametrize("jit", [False, True])
def test_vjp_seed_of_the_wrong_shape_is_refused(layer_jit, jit):
    g = layer_jit if jit else bpgen.compile(layer_jit, jit=False)
    arrays = [np.ones((4, 5)), np.ones((5, 3)), np.ones(3)]
    for seed in (np.ones((4, 1)), np.ones((3, 4)), np.ones((1, 3)), np.ones((4, 3, 1)), np.ones(3)):
        wrong = r"layer.vjp: dh (must have shape \(N, 3\)|has N=\d on axis 0, but X has N=4)"
        with pytest.raises(ValueError, match=wrong):
            g.vjp(*arrays, seed)
    for seed in (np.ones((4, 1)), np.ones((3, 4)), np.ones((1, 3))):  # the generated module checks too
        with pytest.raises(ValueError, match=r"layer.vjp: dh must have shape \(N, 3\), the shape of the output h"):
            g.module.vjp(*arrays, seed)


def test_scalar_and_tensor_outputs_name_the_function_they_lack(layer_jit, mlp_jit):
    with pytest.raises(AttributeError, match=r"layer has a tensor output of shape \(N, 3\).*vjp"):
        getattr(layer_jit, "value_and_grad")  # noqa: B009 - the attribute access is what is tested
    with pytest.raises(AttributeError, match="mlp_loss has a scalar output: use value_and_grad"):
        getattr(mlp_jit, "vjp")  # noqa: B009


# array forms: every elementwise rule on arrays computes what it computes on numbers (the rules of test_rules.py) ----


ELEMENTWISE = [r for r in DIFFERENTIABLE if r.shape is None]


def _array_and_scalar(rule, jit: bool):
    """The rule's SymPy form compiled on numbers, and the same form applied elementwise to vectors of 4 (its
    value as a tensor-valued function, and sum(value) for the gradients)."""
    from bpgen.frontend.tensor import ALGEBRA, Tensor

    syms = rule_symbols(rule)
    expr = sympy_builder(rule)(*syms)
    scalar = bpgen.compile(expr, inputs=list(syms), jit=False)
    tensors = [Tensor(f"array_form_{rule.op}_{i}", (4,)) for i in range(len(syms))]
    node = Lowerer(ALGEBRA, {s: t.node for s, t in zip(syms, tensors)}).lower(expr)
    values = bpgen.compile(Tensor._wrap(node), inputs=tensors, jit=jit, name=f"array_{rule.op}")
    loss = bpgen.compile(bpgen.sum(Tensor._wrap(node)), inputs=tensors, jit=jit, name=f"array_sum_{rule.op}")
    return scalar, values, loss


def _check_array_form(rule, jit: bool):
    scalar, values, loss = _array_and_scalar(rule, jit)
    rng = rng_for("array-" + rule.op)
    points = [[float(rng.uniform(lo, hi)) for lo, hi in rule.domain] for _ in range(4)]
    columns = [np.array([p[i] for p in points]) for i in range(len(rule.domain))]
    got_values = values.forward(*columns)
    _, got_grads = loss.value_and_grad(*columns)
    for k, point in enumerate(points):
        value, grads = scalar.value_and_grad(*point)
        assert close(float(got_values[k]), value, RULE_RTOL), (rule.op, point, got_values[k], value)
        for got, want in zip(got_grads, grads):
            assert close(float(np.asarray(got)[k]), want, RULE_RTOL), (rule.op, point, got, want)


@pytest.mark.parametrize("rule", [pytest.param(r, id=r.op) for r in ELEMENTWISE])
def test_array_form_computes_what_the_scalar_form_computes(rule):
    """Driven by the table: an array form that prints the wrong function (np.arcsinh for np.arcsin) fails
    here, and an op with no array form is refused when applied to a tensor, so it cannot be in this list."""
    if not rule.elementwise:
        with pytest.raises(bpgen.BpgenError, match="has no array form"):
            _array_and_scalar(rule, jit=False)
        return
    _check_array_form(rule, jit=False)


@pytest.mark.slow
@pytest.mark.parametrize("rule", [pytest.param(r, id=r.op) for r in ELEMENTWISE if r.elementwise])
def test_array_form_compiles_under_numba(rule):
    _check_array_form(rule, jit=True)


def test_locals_holding_a_sympy_constant_or_a_lambda_declare():
    """A SymPy constant or Lambda kept in a local of a tensor declaration is used, not taken for a tensor's name."""
    t = sympy.Symbol("t")

    @bpgen.function(shapes={"x": ("N",), "mu": ()}, jit=False)
    def gaussian_nll(x, mu):
        half_log_2pi = sympy.log(2 * sympy.pi) / 2
        bump = sympy.Lambda(t, t**2 + sympy.sin(t))
        r = x - mu
        return bpgen.sum(r * r / 2 + half_log_2pi + nn.elementwise(bump, r))

    x = np.array([1.0, 2.0, 3.5])
    value, (dx, dmu) = gaussian_nll.value_and_grad(x, 0.5)
    r = x - 0.5
    assert value == pytest.approx(np.sum(r * r / 2 + 0.5 * np.log(2 * np.pi) + r**2 + np.sin(r)), rel=1e-12)
    np.testing.assert_allclose(dx, r + 2 * r + np.cos(r), rtol=1e-12)
    assert dmu == pytest.approx(-np.sum(r + 2 * r + np.cos(r)), rel=1e-12)


def test_permuted_axes_print_as_numpy_writes_them_and_refuse_a_wrong_permutation():
    X = bpgen.Tensor("perm_X", ("N", 3, 4))
    g = bpgen.compile(bpgen.sum(bpgen.tanh(X.transpose(0, 2, 1))), inputs=[X], jit=False)
    body = function_body(g.source, "value_and_grad")
    assert re.search(r"^\s*permute1 = np\.transpose\(perm_X, \(0, 2, 1\)\)$", body, re.M), body
    assert re.search(r"^\s*dperm_X = np\.transpose\(dpermute1, \(0, 2, 1\)\)", body, re.M), body
    assert X.transpose().shape == X.T.shape == (4, 3, X.shape[0])  # no axes: reversed, as NumPy does
    assert X.transpose(0, 1, 2).node is X.node  # the identity is no op
    with pytest.raises(ShapeError, match=r"axes \(0, 0, 1\) are not a permutation of the 3 axes of shape "):
        X.transpose(0, 0, 1)
    with pytest.raises(ShapeError, match=r"axis 3 is out of range"):
        bpgen.swapaxes(X, 0, 3)


def test_reshape_infers_one_minus_one_and_names_what_it_cannot():
    X = bpgen.Tensor("rs_X", ("N", 784))
    assert X.reshape(-1, 28, 28).shape == (X.shape[0], 28, 28)  # the batch symbol itself
    assert bpgen.Tensor("rs_Y", (4, 6)).reshape([-1, 2]).shape == (12, 2)
    with pytest.raises(ShapeError, match=r"cannot reshape rs_X \(N, 784\) to \(-1,\): the -1 would be 784\*N, "
                                         "and a size is a whole number or one symbol"):
        X.reshape(-1)
    with pytest.raises(ShapeError, match=r"only one entry may be -1"):
        X.reshape(-1, -1)


def test_a_repeated_reduction_axis_is_a_one_line_error():
    X = bpgen.Tensor("red_X", ("N", 3, 4))
    with pytest.raises(ShapeError, match=r"axis \(1, -2\) repeats an axis of shape \(N, 3, 4\)"):
        bpgen.sum(X, axis=(1, -2))
    with pytest.raises(bpgen.BpgenError, match=r"bpgen.min reduces a Tensor"):
        bpgen.min(2.0)


def test_indexing_prints_numpy_slices_and_names_what_it_refuses():
    W = bpgen.Tensor("ix_W", (3, 8))
    X = bpgen.Tensor("ix_X", ("N", 3))
    g = bpgen.compile(bpgen.sum(bpgen.tanh(W[:, 2:5])), inputs=[W], jit=False)
    body = function_body(g.source, "value_and_grad")
    assert re.search(r"^\s*slice_axis1 = ix_W\[:, 2:5\]$", body, re.M), body
    assert re.search(r"dix_W = np\.concatenate\(\(np\.zeros\(\(3, 2\)\), dslice_axis1, np\.zeros\(\(3, 3\)\)\), "
                     r"axis=1\)", body), body
    for key, message in [((slice(None), 8), r"index 8 is out of range for axis 1 of size 8"),
                         ((slice(0, 3, -1),), r"the slice of axis 0 is empty"),
                         ((0, 0, 0), r"too many indices for 2 axes"),
                         ((slice(3, 3),), r"the slice of axis 0 is empty"),
                         ((1.5,), r"an index is an int, a slice, ... or None, not float 1.5"),
                         ((5, 0), r"ix_W \(3, 8\)\[5, 0\]: index 5 is out of range for axis 0 of size 3")]:
        with pytest.raises(ShapeError, match=message):
            W[key]
    with pytest.raises(ShapeError, match=r"ix_X \(N, 3\)\[0\]: axis 0 has the symbolic size N, which takes ':' only"):
        X[0]
    with pytest.raises(ShapeError, match=r"ix_X \(N, 3\)\[0, 1\]: axis 0 has the symbolic size N"):
        X[0, 1]
    strided = function_body(bpgen.compile(bpgen.sum(W[::2, 7:0:-3]), inputs=[W], jit=False).source, "value_and_grad")
    assert "stride_axis1 = ix_W[0::2]" in strided and "stride_axis2 = stride_axis1[:, 7::-3]" in strided, strided
    assert "spread_axis(dstride_axis2, 1, 7, -3, 8)" in strided, strided
    with pytest.raises(ShapeError, match=r"ix_X \(N, 3\)\[::2\]: axis 0 has the symbolic size N"):
        X[::2]
    entry = bpgen.compile(W[1, 2] * W[0, 0], inputs=[W], jit=False).source
    assert "element1 = ix_W[1, 2]" in entry and "dix_W = at_index((0, 0), (3, 8), delement2)" in entry, entry
    assert X[:, 1].shape == (X.shape[0],) and X[None].shape == (1, X.shape[0], 3)
    with pytest.raises(ShapeError, match=r"concatenate along axis 0: ix_W \(3, 8\) and ix_X \(N, 3\) differ"):
        bpgen.concatenate([W, X])


def test_a_tensor_iterates_over_a_concrete_first_axis_only():
    W = bpgen.Tensor("it_W", (2, 3))
    first, second = W
    assert first.shape == second.shape == (3,)
    with pytest.raises(ShapeError, match=r"cannot iterate over it_X \(N, 3\): its first axis has the symbolic size N"):
        list(bpgen.Tensor("it_X", ("N", 3)))


def test_layer_norm_and_gelu_name_what_they_refuse():
    X = bpgen.Tensor("ln_X", ("N", 4))
    with pytest.raises(ShapeError, match=r"layer_norm normalizes the last axis of ln_X \(N, 4\): gamma and beta must "
                                         r"have shape \(4,\), not \(3,\) and \(4,\)"):
        nn.layer_norm(X, bpgen.Tensor("ln_g", (3,)), bpgen.Tensor("ln_b", (4,)))
    with pytest.raises(bpgen.BpgenError, match=r"gelu: approximate is 'none' or 'tanh', not 'fast'"):
        nn.gelu(X, approximate="fast")


@pytest.mark.parametrize("case_id", ["index_ellipsis_newaxis", "index_element", "permute_reshape", "concatenate",
                                     "var_all", "transposed_row"])
def test_forward_mode_of_views_compiles_under_numba(case_id):
    """jvp and hvp through slices, entries, permutations and reshapes of them: Numba reshapes contiguous arrays
    only, and the tangent of a view is a view."""
    if case_id == "transposed_row":
        X = bpgen.Tensor("tr_X", (3, 4))
        g_jit = bpgen.compile(bpgen.sum(bpgen.sin(X.T[1]) * X[None, :, 1:3].reshape(3, 2)[:, 0]), inputs=[X])
        arrays = [rng_for(case_id).normal(size=(3, 4))]
    else:
        g_jit, arrays, wrt_idx, _ = setup_case(case_id, jit=True)
    g_py = bpgen.compile(g_jit, jit=False)
    vectors = tuple(rng_for("t" + case_id).normal(size=np.shape(a)) for a in arrays[:len(g_jit.declaration.wrt)])
    for got, want in zip(g_jit.jvp(*arrays, vectors), g_py.jvp(*arrays, vectors)):
        assert_close(got, want)
    value, grads, hv = g_jit.hvp(*arrays, vectors)
    value_py, grads_py, hv_py = g_py.hvp(*arrays, vectors)
    assert_close(value, value_py)
    for got, want in zip(list(grads) + list(hv), list(grads_py) + list(hv_py)):
        assert_close(got, want)


@pytest.fixture(scope="module")
def embedding_jit():
    """An embedding, mean-pooled, then a linear layer and cross-entropy: ids declared by the shapes' last entry."""

    @bpgen.function(shapes={"E": (7, 3), "ids": ("N", "T", "int"), "W": (3, 4), "y": ("N",)})
    def embedding_clf(E, ids, W, y):
        return nn.cross_entropy(bpgen.mean(E[ids], axis=1) @ W, y)

    return embedding_clf


def test_integer_inputs_declare_either_way_and_get_no_gradient(embedding_jit, no_codegen):
    assert [w.name for w in embedding_jit.wrt] == ["E", "W", "y"]  # not ids (y, the labels, gets none either)
    ids = bpgen.Tensor("ids_dtype", ("N", "T"), dtype="int64")
    assert ids.dtype == "int64" and ids.shape == bpgen.Tensor("ids_shape", ("N", "T", "int")).shape
    E = bpgen.Tensor("E_dtype", (7, 3))
    with pytest.raises(bpgen.BpgenError, match="wrt entry 'ids_dtype' holds int64 values, which have no gradient"):
        bpgen.compile(bpgen.sum(E[ids]), inputs=[E, ids], wrt=[ids])
    with pytest.raises(bpgen.BpgenError, match=r"an index array must be an input declared with an integer dtype"):
        E[bpgen.Tensor("X_float", ("N",))]
    with pytest.raises(bpgen.BpgenError, match="dtype is one of"):
        bpgen.Tensor("bad_dtype", (3,), dtype="complex")
    with pytest.raises(bpgen.BpgenError, match="a bool input is an array"):
        bpgen.Tensor("bad_scalar", (), dtype="bool")


@pytest.mark.parametrize("jit", [True, False])
def test_an_out_of_range_id_is_a_one_line_error_naming_the_input(embedding_jit, jit):
    g = embedding_jit if jit else bpgen.compile(embedding_jit, jit=False)
    rng = np.random.default_rng(0)
    E, W, y = rng.normal(size=(7, 3)), rng.normal(size=(3, 4)), rng.integers(0, 4, size=5)
    ids = rng.integers(0, 7, size=(5, 6))
    assert np.isfinite(g.value_and_grad(E, ids, W, y)[0])
    for bad in (7, -1):
        wrong = ids.copy()
        wrong[2, 3] = bad
        with pytest.raises(ValueError, match=r"^embedding_clf: every entry of ids must be a row of E, from 0 to 6$"):
            g.value_and_grad(E, wrong, W, y)
    with pytest.raises(TypeError, match="ids must be an integer array of indices"):
        g.value_and_grad(E, ids.astype(complex), W, y)


def test_repeated_ids_accumulate_in_the_embeddings_gradient(embedding_jit):
    E, W = np.ones((7, 3)), np.random.default_rng(1).normal(size=(3, 4))
    ids = np.array([[2, 2, 2, 5]])
    _, (dE, _, _) = embedding_jit.value_and_grad(E, ids, W, np.array([0]))
    assert np.allclose(dE[2], 3 * dE[5]) and not dE[[0, 1, 3, 4, 6]].any()


def test_a_mask_takes_booleans_only():
    M, S = bpgen.Tensor("M_only", (3,), dtype="bool"), bpgen.Tensor("S_only", (3,))
    g = bpgen.compile(bpgen.sum(bpgen.where(M, S, 0.0)), inputs=[M, S])
    assert [w.name for w in g.wrt] == ["S_only"]
    assert g.value_and_grad(np.array([True, False, True]), np.ones(3))[0] == 2.0
    with pytest.raises(TypeError, match="M_only must be a boolean array"):
        g.value_and_grad(np.ones(3), np.ones(3))


@pytest.mark.parametrize("jit", [False, True])
def test_the_log_of_a_named_sigmoid_stays_finite(jit):
    def bce(z, y):
        p = bpgen.sigmoid(z)
        return bpgen.sum(y * bpgen.log(p) + (1 - y) * bpgen.log(1 - p)) + bpgen.sum(p * 0.0 + p)

    g = bpgen.function(bce, shapes={"z": ("N",), "y": ("N",)}, wrt=["z"], jit=jit)
    assert re.search(r"^\s*p = sigmoid_array\(z\)$", g.source, re.M), g.source  # p keeps its line
    z = np.array([300.0, -300.0, 800.0, -800.0, 0.5])
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    value, (dz,) = g.value_and_grad(z, y)
    p_half = 1.0 / (1.0 + np.exp(-0.5))
    assert_close(value, -2200.0 + np.log(p_half) + 2.0 + p_half)
    assert_close(dz, [-1.0, 1.0, -1.0, 1.0, (1 - p_half) + p_half * (1 - p_half)])



def _xent_helper(logits, y):
    """A helper in the spec's file: its locals name values without keeping them from the stable rewrites."""
    p = nn.softmax(logits)
    return -bpgen.sum(y * bpgen.log(p))


def test_a_helpers_names_label_values_and_keep_the_stable_forms():
    def with_helper(Z, Y):
        return _xent_helper(Z * 1.0, Y)

    g = bpgen.function(with_helper, shapes={"Z": (2, 3), "Y": (2, 3)}, wrt=["Z"], jit=False)
    value, (dZ,) = g.value_and_grad(np.array([[0.0, 800.0, -800.0], [1.0, 2.0, 3.0]]),
                                    np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    assert np.isfinite(value) and np.all(np.isfinite(dZ)) and "log_softmax(" in g.source
    np.testing.assert_allclose(dZ[0], [-1.0, 1.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("jit", [False, True])
def test_ids_read_inside_a_scan_step_are_checked_too(jit):
    ids = bpgen.Tensor("step_ids", (4,), dtype="int64")
    H0, X = bpgen.Tensor("step_H0", (5, 3)), bpgen.Tensor("step_X", (6,))

    def step(h, x):
        return bpgen.tanh(h * x + bpgen.sum(h[ids])), None

    h_final, _ = bpgen.scan(step, H0, xs=X)
    g = bpgen.compile(bpgen.sum(h_final), inputs=[ids, H0, X], jit=jit)
    args = (np.ones((5, 3)), np.linspace(0.0, 1.0, 6))
    assert np.isfinite(g.value_and_grad(np.array([0, 1, 4, 2]), *args)[0])
    for bad in ([0, 1, 5, 2], [0, 1, 100000000, 2], [-1, 0, 0, 0]):
        with pytest.raises(ValueError, match="every entry of step_ids must be a row of step_H0, from 0 to 4"):
            g.value_and_grad(np.array(bad), *args)


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")  # NumPy computes both sides
def test_where_takes_numpys_meaning_with_a_zero_side_and_strided_ids():
    X = bpgen.Tensor("wz_X", (3,))
    g = bpgen.compile(bpgen.sum(bpgen.where(X > 0, bpgen.sqrt(X), 0.0)), inputs=[X], jit=False)
    assert g.forward(np.array([-1.0, 0.0, 4.0])) == 2.0  # sqrt(-1) is never chosen
    E, ids = bpgen.Tensor("wz_E", (5, 2)), bpgen.Tensor("wz_ids", (6,), dtype="int64")
    h = bpgen.compile(bpgen.sum(E[ids[::2]]), inputs=[E, ids], wrt=[E], jit=False)
    _, (dE,) = h.value_and_grad(np.ones((5, 2)), np.array([1, 4, 1, 4, 3, 4]))
    np.testing.assert_array_equal(dE[:, 0], [0.0, 2.0, 0.0, 1.0, 0.0])


def test_ids_into_a_slice_of_the_table_are_checked_against_the_slices_rows():
    ids = bpgen.Tensor("sl_ids", (2,), dtype="int64")
    H0, X = bpgen.Tensor("sl_H0", (5, 3)), bpgen.Tensor("sl_X", (4,))

    def step(h, x):
        return bpgen.tanh(h * x + bpgen.sum(h[1:][ids])), None

    h_final, _ = bpgen.scan(step, H0, xs=X)
    g = bpgen.compile(bpgen.sum(h_final), inputs=[ids, H0, X], jit=False)
    args = (np.ones((5, 3)), np.linspace(0.0, 1.0, 4))
    assert np.isfinite(g.value_and_grad(np.array([0, 3]), *args)[0])
    with pytest.raises(ValueError, match="every entry of sl_ids must be a row of its table, from 0 to 3"):
        g.value_and_grad(np.array([0, 4]), *args)
