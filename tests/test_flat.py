"""The flat view of a compiled function (g.flat): what SciPy's optimizers and samplers take."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import bpgen
from bpgen import nn


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return (data.data - data.data.mean(axis=0)) / data.data.std(axis=0), data.target.astype(np.float64)


def test_scipy_trust_krylov_runs_as_written(logistic, cancer):
    from scipy.optimize import minimize

    X, y = cancer
    obj = logistic.flat(X=X, y=y)
    assert obj.size == 31 and obj.names == ("w", "b") and obj.shapes == ((30,), ())
    result = minimize(obj.value_and_grad, obj.pack(np.zeros(30), 0.0), jac=True, hessp=obj.hvp,
                      method="trust-krylov")
    assert result.success and np.max(np.abs(obj.grad(result.x))) < 1e-5
    w, b = obj.unpack(result.x)
    value, (dw, db) = logistic.value_and_grad(X, y, w.copy(), b)
    assert value == obj.value_and_grad(result.x)[0] and type(b) is float
    np.testing.assert_array_equal(obj.grad(result.x), np.append(dw, db))


def test_hessian_and_hvp_are_flat_and_agree(logistic, cancer):
    X, y = cancer
    obj = logistic.flat(X=X, y=y)
    v = np.random.default_rng(0).normal(size=31) * 0.1
    p = np.random.default_rng(1).normal(size=31)
    H = obj.hessian(v)
    assert H.shape == (31, 31)
    np.testing.assert_allclose(H, H.T, atol=1e-15)
    np.testing.assert_allclose(H @ p, obj.hvp(v, p), rtol=1e-12, atol=1e-15)


def test_tensor_blocks_flatten_in_wrt_order():
    X, W, c = bpgen.Tensor("fl_X", ("N", 3)), bpgen.Tensor("fl_W", (3, 2)), bpgen.Tensor("fl_c", ())
    g = bpgen.compile(bpgen.sum(nn.tanh(X @ W) * c) + c * c, inputs=[X, W, c], wrt=[W, c], jit=False)
    x = np.random.default_rng(2).normal(size=(5, 3))
    obj = g.flat(fl_X=x)
    v = np.arange(7.0) / 10
    W_value, c_value = obj.unpack(v)
    assert W_value.shape == (3, 2) and c_value == 0.6
    np.testing.assert_array_equal(obj.pack(W_value, c_value), v)
    H = obj.hessian(v)
    h = 1e-6
    numeric = np.array([(obj.grad(v + h * e) - obj.grad(v - h * e)) / (2 * h) for e in np.eye(7)]).T
    np.testing.assert_allclose(H, numeric, rtol=1e-6, atol=1e-8)


def test_a_scalar_function_flat_without_data():
    x, y = sympy.symbols("x y", real=True)
    g = bpgen.compile(sympy.exp(x * y) + x**2, inputs=[x, y], jit=False)
    obj = g.flat()
    value, grad = obj.value_and_grad(np.array([0.5, -1.0]))
    assert value == pytest.approx(np.exp(-0.5) + 0.25)
    np.testing.assert_allclose(grad, [-np.exp(-0.5) + 1.0, 0.5 * np.exp(-0.5)])
    assert obj.hessian(np.array([0.5, -1.0])).shape == (2, 2)


def test_flat_errors_are_one_line(logistic, cancer):
    X, y = cancer
    with pytest.raises(bpgen.BpgenError, match="give the inputs that are not differentiated by name: y"):
        logistic.flat(X=X)
    with pytest.raises(bpgen.BpgenError, match="'Z' is not an input"):
        logistic.flat(X=X, y=y, Z=1)
    with pytest.raises(bpgen.BpgenError, match="w is differentiated"):
        logistic.flat(X=X, y=y, w=np.zeros(30))
    obj = logistic.flat(X=X, y=y)
    with pytest.raises(ValueError, match="a flat vector of 31 numbers, not shape"):
        obj.value_and_grad(np.zeros(30))
    with pytest.raises(TypeError, match="takes 2 values"):
        obj.pack(np.zeros(30))


def test_bound_inputs_are_converted_once_and_refused_in_one_line(logistic, cancer):
    X, y = cancer
    obj = logistic.flat(X=X.astype(np.float32), y=y.astype(np.int64))  # converted once, as the methods would
    assert obj._template[0].dtype == np.float64 and obj._template[1].dtype == np.float64
    np.testing.assert_allclose(obj.value_and_grad(np.zeros(31))[1], logistic.flat(X=X, y=y).grad(np.zeros(31)),
                               rtol=1e-6)
    with pytest.raises(ValueError, match=r"logistic_regression.flat: X must have shape \(N, 30\)"):
        logistic.flat(X=X[:, :5], y=y)


@pytest.mark.parametrize("bad, kind", [
    (np.array([1 + 2j, 3.0, 1.0]), "complex128"), (["a", "b", "c"], "list"), (None, "NoneType"),
    (np.array([True, False, True]), "bool"),
])
def test_a_vector_that_is_not_real_numbers_is_refused_in_one_line(bad, kind):
    x, y, z = sympy.symbols("x y z", real=True)
    obj = bpgen.compile(x**2 + x * y + z, jit=False).flat()
    with pytest.raises(TypeError, match=rf"^f\.flat: v must be a flat vector of 3 real numbers, not .*{kind}"):
        obj.value_and_grad(bad)
    assert obj.value_and_grad([1, 2, 3])[0] == 6.0  # integers are real numbers


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_the_bound_inputs_are_copied_whatever_their_dtype(logistic, dtype):
    rng = np.random.default_rng(3)
    X = (rng.normal(size=(20, 30)) * 4).astype(dtype)
    y = (rng.random(20) < 0.5).astype(float)
    obj = logistic.flat(X=X, y=y)
    v = np.full(obj.size, 0.1)
    before = obj.value_and_grad(v)[0]
    X[:] = 0
    y[:] = 1
    assert obj.value_and_grad(v)[0] == before
