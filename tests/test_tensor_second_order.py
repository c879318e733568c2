"""Forward mode and second order of tensor functions: every tensor rule's JVP, hvp and hessian against HIPS
autograd (make_jvp, make_hvp, hessian), tensor outputs' JVPs, whole networks, Python against Numba."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from helpers import rng_for
from spellings import A, B
from test_tensors import BY_ID, CASE_PARAMS, assert_close, concrete, make_data, setup_case

import bpgen
from bpgen import nn
from bpgen.errors import BpgenError

RTOL = 1e-9


def _split_wrt(arrays, wrt_idx):
    """(the autograd loss as a function of the wrt arrays alone, their values)."""
    def at(ref):
        def f(*wrt_values):
            full = list(arrays)
            for i, v in zip(wrt_idx, wrt_values):
                full[i] = v
            return ref(*full)
        return f
    return at, [arrays[i] for i in wrt_idx]


def _directions(key, values):
    rng = rng_for(key)
    return tuple(rng.normal(size=np.shape(v)) if np.shape(v) else float(rng.normal()) for v in values)


@pytest.mark.parametrize("case_id", CASE_PARAMS)
def test_every_tensor_rules_jvp_is_the_gradient_along_the_tangent(case_id):
    g, arrays, wrt_idx, ref = setup_case(case_id)
    at, values = _split_wrt(arrays, wrt_idx)
    tangents = _directions("jvp-" + case_id, values)
    value, tangent = g.jvp(*arrays, tangents)
    gradients = autograd.grad(lambda flat: at(ref)(*flat))(tuple(values))  # autograd has no JVP of erf
    want = sum(float(np.sum(np.asarray(gi) * ti)) for gi, ti in zip(gradients, tangents))
    assert_close(value, ref(*arrays))
    assert_close(tangent, want)


@pytest.mark.parametrize("case_id", CASE_PARAMS)
def test_every_tensor_rules_hvp_matches_autograd(case_id):
    g, arrays, wrt_idx, ref = setup_case(case_id)
    at, values = _split_wrt(arrays, wrt_idx)
    vectors = _directions("hvp-" + case_id, values)
    value, grads, hv = g.hvp(*arrays, vectors)
    hvp = autograd.make_hvp(lambda flat: at(ref)(*flat))(tuple(values))[0]
    want = hvp(vectors)
    assert_close(value, ref(*arrays))
    for got, expected, v in zip(hv, want, values):
        assert np.shape(got) == np.shape(v)
        assert_close(got, expected, rtol=1e-8, atol=1e-10)
    _, plain_grads = g.value_and_grad(*arrays)
    for got, expected in zip(grads, plain_grads):
        assert_close(got, expected, rtol=1e-13, atol=0)


@pytest.mark.parametrize("case_id", ["add_row", "matmul_chain", "scalar_bias", "softmax_ce_soft_targets", "max_shared",
                                     "log_softmax_axis0", "maxout_layer", "pow_tensor", "composed"])
def test_tensor_hessian_blocks_match_autograd_and_are_symmetric(case_id):
    g, arrays, wrt_idx, ref = setup_case(case_id)
    at, values = _split_wrt(arrays, wrt_idx)
    value, grads, H = g.hessian(*arrays)
    shapes = [np.shape(v) for v in values]
    sizes = [int(np.prod(s, dtype=int)) for s in shapes]

    def flat_loss(flat):
        parts, start = [], 0
        for shape, size in zip(shapes, sizes):
            parts.append(anp.reshape(flat[start:start + size], shape))
            start += size
        return at(ref)(*parts)

    want = autograd.hessian(flat_loss)(np.concatenate([np.ravel(v) for v in values]))
    got = np.block([[np.reshape(H[i][j], (sizes[i], sizes[j])) for j in range(len(sizes))]
                    for i in range(len(sizes))])
    assert len(H) == len(values) and all(H[i][j].shape == shapes[i] + shapes[j]
                                         for i in range(len(sizes)) for j in range(len(sizes)))
    assert_close(got, want, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(got, got.T, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(got).max()))
    assert_close(value, ref(*arrays))


TENSOR_OUTPUTS = ["add_row", "matmul_mv", "transpose", "reshape_transposed", "sum_axis0", "max_axis1",
                  "max_3d_middle", "softmax", "log_softmax", "logsumexp_axis0", "maxout_layer", "relu"]


@pytest.mark.parametrize("case_id", TENSOR_OUTPUTS)
def test_jvp_of_a_tensor_output_matches_autograd(case_id):
    _, shapes, kinds, wrt, body = BY_ID[case_id]
    tensors = {k: bpgen.Tensor(f"out_{case_id}_{k}", s) for k, s in shapes.items()}
    g = bpgen.compile(body(B, **tensors), inputs=list(tensors.values()), wrt=[tensors[w] for w in wrt], jit=False)
    rng = rng_for("out-" + case_id)
    names = list(shapes)
    arrays = [make_data(rng, concrete(shapes[k]), kinds.get(k)) for k in names]
    wrt_idx = [names.index(w) for w in wrt]
    tangents = tuple(rng.normal(size=np.shape(arrays[i])) for i in wrt_idx)
    value, tangent = g.jvp(*arrays, tangents)

    def f(*wrt_values):
        full = list(arrays)
        for i, v in zip(wrt_idx, wrt_values):
            full[i] = v
        return body(A, **dict(zip(names, full)))

    want_value, want = autograd.make_jvp(lambda flat: f(*flat))(tuple(arrays[i] for i in wrt_idx))(tangents)
    assert_close(value, want_value)
    assert_close(tangent, want)
    assert not np.shares_memory(tangent, tangents[0])


def test_a_tangent_passed_through_is_returned_as_a_copy():
    X = bpgen.Tensor("pass_X", (3, 2))
    g = bpgen.compile(X, inputs=[X], jit=False)
    t = np.ones((3, 2))
    _, tangent = g.jvp(np.zeros((3, 2)), (t,))
    assert np.array_equal(tangent, t) and not np.shares_memory(tangent, t)


# whole networks, compiled: Python and Numba agree, and both match autograd -------------------------------------

def _mlp(jit):
    @bpgen.function(shapes={"X": ("N", 6), "Y": ("N", 3), "W1": (6, 5), "b1": (5,), "W2": (5, 3), "b2": (3,)},
                    wrt=["W1", "b1", "W2", "b2"], jit=jit)
    def mlp_hvp(X, Y, W1, b1, W2, b2):
        h = nn.tanh(X @ W1 + b1)
        return nn.softmax_cross_entropy(h @ W2 + b2, Y) + 0.01 * bpgen.sum(W1 * W1)
    return mlp_hvp


def _mlp_reference(X, Y):
    def loss(W1, b1, W2, b2):
        z = anp.tanh(X @ W1 + b1) @ W2 + b2
        top = anp.max(z, axis=1, keepdims=True)
        lse = anp.log(anp.sum(anp.exp(z - top), axis=1, keepdims=True)) + top
        return anp.mean(anp.sum(Y * (lse - z), axis=1)) + 0.01 * anp.sum(W1 * W1)
    return loss


@pytest.fixture(scope="module")
def mlp_hvp_data():
    rng = rng_for("mlp-hvp")
    n = 11
    X, Y = rng.normal(size=(n, 6)), np.eye(3)[rng.integers(0, 3, n)]
    params = (rng.normal(size=(6, 5)), rng.normal(size=5), rng.normal(size=(5, 3)), rng.normal(size=3))
    vectors = tuple(rng.normal(size=p.shape) for p in params)
    return X, Y, params, vectors


@pytest.mark.parametrize("jit", [False, True])
def test_mlp_jvp_hvp_and_hessian_match_autograd(mlp_hvp_data, jit):
    X, Y, params, vectors = mlp_hvp_data
    g = _mlp(jit)
    loss = _mlp_reference(X, Y)
    flat = lambda p: loss(*p)  # noqa: E731
    value, tangent = g.jvp(X, Y, *params, vectors)
    assert_close(tangent, autograd.make_jvp(flat)(params)(vectors)[1])
    value, grads, hv = g.hvp(X, Y, *params, vectors)
    for got, want in zip(hv, autograd.make_hvp(flat)(params)[0](vectors)):
        assert_close(got, want, rtol=1e-9, atol=1e-12)
    _, _, H = g.hessian(X, Y, *params)
    sizes = [p.size for p in params]
    full = np.block([[H[i][j].reshape(sizes[i], sizes[j]) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(full, full.T, atol=1e-13)
    np.testing.assert_allclose(full @ np.concatenate([v.ravel() for v in vectors]),
                               np.concatenate([h.ravel() for h in hv]), rtol=1e-10, atol=1e-12)


def test_mlp_numba_agrees_with_python(mlp_hvp_data):
    X, Y, params, vectors = mlp_hvp_data
    plain, jitted = _mlp(False), _mlp(True)
    for method in ("jvp", "hvp"):
        want, got = getattr(plain, method)(X, Y, *params, vectors), getattr(jitted, method)(X, Y, *params, vectors)
        for a, b in zip(_leaves(want), _leaves(got)):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def test_a_large_tall_weights_backward_product_has_a_tangent():
    """dW = X.T @ dz for a 300 x 256 weight: its tangent line is a product of the transpose too."""
    X, W, Y = bpgen.Tensor("tall_X", ("N", 300)), bpgen.Tensor("tall_W", (300, 256)), bpgen.Tensor("tall_Y", ("N", 256))
    g = bpgen.compile(nn.mse(nn.tanh(X @ W), Y), inputs=[X, W, Y], wrt=[W], jit=False)
    assert "matmul(tall_X.T, " in g.hvp_source
    rng = rng_for("tall")
    x, w, y, v = rng.normal(size=(4, 300)), rng.normal(size=(300, 256)) * 0.05, rng.normal(size=(4, 256)), \
        rng.normal(size=(300, 256))

    def loss(w):
        return anp.mean((anp.tanh(x @ w) - y) ** 2)

    _, _, (hv,) = g.hvp(x, w, y, (v,))
    assert_close(hv, autograd.make_hvp(loss)(w)[0](v), rtol=1e-9, atol=1e-12)


def test_tensor_tangents_of_the_wrong_shape_are_one_line_errors(mlp_hvp_data):
    X, Y, params, vectors = mlp_hvp_data
    g = _mlp(False)
    with pytest.raises(ValueError, match=r"mlp_hvp.jvp: tb1 must have shape \(5,\), not \(4,\)"):
        g.jvp(X, Y, *params, (vectors[0], np.ones(4), vectors[2], vectors[3]))
    with pytest.raises(TypeError, match=r"4 vectors for 4 inputs|3 vectors for 4 inputs"):
        g.hvp(X, Y, *params, vectors[:3])
    with pytest.raises(TypeError, match="tuple of 4 arrays and numbers"):
        g.hvp(X, Y, *params, vectors[0])


def test_hvp_of_a_tensor_output_is_a_one_line_error():
    X = bpgen.Tensor("err_X", ("N", 3))
    g = bpgen.compile(nn.tanh(X), inputs=[X], jit=False)
    with pytest.raises(BpgenError, match=r"tensor output of shape \(N, 3\): hvp is for a scalar output"):
        g.hvp(np.ones((2, 3)), (np.ones((2, 3)),))


def test_the_mlps_second_order_lines_are_staged(mlp_hvp_data):
    source = _mlp(False).hvp_source
    for line in ("tmatmul1 = matmul(X, tW1)", "tadd1 = tadd1 + tb1",
                 "tdW2 = matmul(th.T, dmatmul2) + matmul(h.T, tdmatmul2)", "tdb1 = sum_axis0(tdadd1)"):
        assert f"    {line} " in source, line
    assert "def hvp(X, Y, W1, b1, W2, b2, tW1, tb1, tW2, tb2):" in source
    assert "return mlp_hvp, (dW1, db1, dW2, db2), (tdW1, tdb1, tdW2, tdb2)" in source
    assert "np.broadcast_to" not in source  # a bias's tangent broadcasts as it is added
    for line in source.splitlines():
        if line.lstrip().startswith("t") and "=" in line and "#" in line:
            assert line.split("#")[1].strip(), line  # every tangent line cites the line it differentiates
