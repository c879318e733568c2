"""The runtime helpers (bpgen/runtime.py) as plain Python, against NumPy: what each computes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf, gammaln, logsumexp
from scipy.special import softmax as scipy_softmax

from bpgen import runtime as rt

rng = np.random.default_rng(7)
A = rng.normal(size=(5, 4)) * 3
G = rng.normal(size=(5,))
T = rng.normal(size=(3, 4, 2))


def test_reductions_along_an_axis():
    np.testing.assert_allclose(rt.sum_axis0(A), A.sum(axis=0))
    np.testing.assert_allclose(rt.sum_last(T), T.sum(axis=-1))
    np.testing.assert_array_equal(rt.max_last(A), A.max(axis=-1))
    np.testing.assert_array_equal(rt.max_along(T, 1), T.max(axis=1))


def test_the_max_gate_routes_to_the_first_winner():
    a = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]])
    np.testing.assert_array_equal(rt.route_max_last(a, np.array([5.0, 7.0])), [[0, 5, 0], [7, 0, 0]])
    np.testing.assert_array_equal(rt.route_max(a, np.array([1.0, 2.0, 3.0]), 0), [[0, 2, 3], [1, 0, 0]])
    np.testing.assert_array_equal(rt.route_max_all(a, 4.0), [[0, 4, 0], [0, 0, 0]])


def test_the_softmax_family_is_stable_and_right():
    big = A * 300
    np.testing.assert_allclose(rt.logsumexp_rows(big)[:, 0], logsumexp(big, axis=1), rtol=1e-14)
    np.testing.assert_allclose(rt.softmax(big), scipy_softmax(big, axis=1), atol=1e-15)
    np.testing.assert_allclose(rt.log_softmax(A), A - logsumexp(A, axis=1, keepdims=True), rtol=1e-14)
    targets = rng.uniform(size=A.shape)
    want = np.mean(np.sum(targets * (logsumexp(A, axis=1, keepdims=True) - A), axis=1))
    assert rt.softmax_cross_entropy(A, targets) == pytest.approx(want, rel=1e-14)
    labels = np.array([0, 3, 1, 2, 3])
    assert rt.cross_entropy(A, labels) == pytest.approx(np.mean(logsumexp(A, axis=1) - A[np.arange(5), labels]),
                                                        rel=1e-14)
    np.testing.assert_array_equal(rt.one_hot(labels, 4), np.eye(4)[labels])


@pytest.mark.parametrize("label", [-1, 4, 1.5])
def test_a_label_out_of_range_is_an_error(label):
    with pytest.raises(ValueError, match="every label must be a whole number"):
        rt.class_index(label, 4)


def test_the_transposed_product_is_the_product_in_c_order():
    X = rng.normal(size=(300, 20))
    dz = rng.normal(size=(300, 6))
    np.testing.assert_allclose(rt.transpose_matmul(X, dz), X.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(rt.transpose_matmul(X[:5], dz[:5]), X[:5].T @ dz[:5], rtol=1e-12)
    assert rt.transpose_matmul(X, dz).flags.c_contiguous


def test_elementwise_array_helpers_match_numpy_and_scipy():
    x = np.linspace(-30, 30, 61).reshape(61, 1)
    np.testing.assert_allclose(rt.exp_array(x), np.exp(x), rtol=4e-16)
    np.testing.assert_allclose(rt.sigmoid_array(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_allclose(rt.softplus_array(x), np.logaddexp(0.0, x), rtol=1e-15)
    np.testing.assert_allclose(rt.erf_array(x / 10), erf(x / 10), rtol=1e-15)
    positive = np.linspace(0.1, 20.0, 40)
    np.testing.assert_allclose(rt.lgamma_array(positive), gammaln(positive), rtol=1e-14)
    np.testing.assert_allclose(rt.gamma_array(positive[:20]), [math.gamma(v) for v in positive[:20]], rtol=1e-14)
    assert rt.same_shape(A, A.copy()) and not rt.same_shape(A, A.T) and not rt.same_shape(A, T)


def test_softmax_keeps_a_nan_and_makes_masked_entries_zero():
    """Entries below e**-700 of their row's largest are exactly 0 (a masked -inf logit), but a NaN logit still
    makes its row NaN, as NumPy's softmax would."""
    from bpgen.targets.numba import runtime as compiled

    logits = np.array([[1.0, -np.inf, 2.0], [1.0, np.nan, 2.0], [0.0, -800.0, 0.0]])
    for softmax in (rt.softmax, compiled._for_modules["softmax"]):
        out = softmax(logits)
        np.testing.assert_allclose(out[0], [1 / (1 + np.e), 0.0, np.e / (1 + np.e)], rtol=1e-15)
        assert np.isnan(out[1]).all()
        np.testing.assert_array_equal(out[2], [0.5, 0.0, 0.5])
