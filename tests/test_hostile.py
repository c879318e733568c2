"""Hostile and careless arguments: every number is computed in float64, everything else is one clear error.

The compiled object's methods are Numba dispatchers compiled for float64 only; any other argument type
misses and is converted (or refused) by bpgen. These tests pin that down for every kind of argument a user
can pass, and the declaration mistakes users make.
"""

from __future__ import annotations

import fractions
import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpgen
from bpgen import nn
from bpgen.errors import BpgenError

x, y = sympy.symbols("x y", real=True)


@pytest.fixture(scope="module")
def product():
    return bpgen.compile(x * y, inputs=[x, y], name="product")


@pytest.fixture(scope="module")
def cube():
    return bpgen.compile(x**3, inputs=[x], name="cube")


@pytest.fixture(scope="module")
def power():
    return bpgen.compile(x**y, inputs=[x, y], name="power")


@pytest.fixture(scope="module")
def difference():
    return bpgen.compile(x - y, inputs=[x, y], name="difference")


# 1. numbers of every type are computed in float64 ------------------------------------------------------------------


def _is_float64_result(result) -> bool:
    value, grads = result
    return type(value) is float and all(type(g) is float for g in grads)


def test_integers_are_computed_as_floats(product, cube, power, difference):
    value, grads = product.value_and_grad(2**40, 2**40)
    assert value == 2.0**80 and grads == (2.0**40, 2.0**40)
    assert cube.value_and_grad(3_000_000) == (2.7e19, (2.7e13,))
    assert power.forward(2, -1) == 0.5
    assert difference.value_and_grad(np.uint8(1), np.uint8(2)) == (-1.0, (1.0, -1.0))
    assert _is_float64_result(product.value_and_grad(3, 8))
    for result in (product.value_and_grad(2**40, 2**40), cube.value_and_grad(3_000_000),
                   difference.value_and_grad(np.uint8(1), np.uint8(2))):
        assert _is_float64_result(result)


def test_only_the_float64_specialization_is_compiled(product):
    for args in [(1, 2), (np.int8(1), np.uint64(2)), (np.float32(1.5), np.float16(2)), (True if False else 1, 2.0),
                 (np.array(1.5), np.array(2, dtype=np.int32)), (fractions.Fraction(1, 3), sympy.Rational(2, 3))]:
        product.value_and_grad(*args)
        product.forward(*args)
    for method in (product.value_and_grad, product.forward):
        assert [tuple(map(str, s)) for s in method.signatures] == [("float64", "float64")]


NUMBER_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                 np.float16, np.float32, np.float64, np.longdouble]


def _number_of_type(draw_value: float, kind: str):
    """`draw_value` (a small whole or fractional number) as the argument type `kind`."""
    if kind == "int":
        return int(draw_value)
    if kind == "float":
        return float(draw_value)
    if kind == "0-d":
        return np.array(draw_value)
    if kind == "0-d float32":
        return np.array(draw_value, dtype=np.float32)
    if kind == "fraction":
        return fractions.Fraction(draw_value).limit_denominator(1000)
    dtype = np.dtype(kind)
    value = abs(draw_value) if dtype.kind == "u" else draw_value
    return dtype.type(int(value) if dtype.kind in "iu" else value)


ARGUMENT_KINDS = ["int", "float", "0-d", "0-d float32", "fraction"] + [np.dtype(d).name for d in NUMBER_DTYPES]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.integers(-40, 40).map(lambda k: k / 4), min_size=2, max_size=2),
       kinds=st.lists(st.sampled_from(ARGUMENT_KINDS), min_size=2, max_size=2))
def test_any_argument_type_gives_the_float64_answer(product, values, kinds):
    args = [_number_of_type(v, k) for v, k in zip(values, kinds)]
    as_float = [float(a) for a in args]  # what the argument means, in float64
    assert product.value_and_grad(*args) == product.value_and_grad(*as_float)
    assert _is_float64_result(product.value_and_grad(*args))
    batch = product.value_and_grad_batch(*[np.array([a], dtype=np.asarray(a).dtype if not isinstance(
        a, (int, fractions.Fraction)) else np.float64) for a in args])
    assert batch[0].dtype == np.float64 and batch[0][0] == product.forward(*as_float)


@pytest.mark.parametrize("value, error, message", [
    (10**400, ValueError, "x = int 1000.* is beyond the range of a float"),
    (np.longdouble("1e400") if np.finfo(np.longdouble).max > 1e400 else 10**309, ValueError, "beyond the range"),
    (1 + 2j, TypeError, "x must be a real number, not complex"),
    (np.complex128(1.0), TypeError, "x must be a real number, not complex128"),
    ("2.0", TypeError, "x must be a real number, not str"),
    (None, TypeError, "x must be a real number, not NoneType"),
    (True, TypeError, "x must be a real number, not bool"),
    (np.bool_(True), TypeError, "x must be a real number, not bool"),
    (np.ones(2), TypeError, "x must be a real number, not an array of shape"),
    (sympy.Symbol("q"), TypeError, "x must be a real number, not Symbol q"),
])
def test_what_is_not_a_real_number_is_one_clear_error(product, value, error, message):
    for method in (product.value_and_grad, product.forward, product.grad):
        with pytest.raises(error, match=message):
            method(value, 1.0)


# 2. arrays of every dtype become C-contiguous float64 --------------------------------------------------------------


@pytest.fixture(scope="module")
def layer():
    X = bpgen.Tensor("X", ("N", 3))
    W = bpgen.Tensor("W", (3, 2))
    return bpgen.compile(bpgen.sum(bpgen.tanh(X @ W)), inputs=[X, W], name="layer")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.longdouble, ">f8", "<f4", np.int32, np.uint8,
                                   np.int64])
def test_arrays_of_any_real_dtype_are_computed_in_float64(layer, dtype):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, size=(5, 3)).astype(np.float64)  # unsigned dtypes too
    W = rng.integers(-3, 4, size=(3, 2)).astype(np.float64) / 4
    expected = layer.value_and_grad(X, W)
    value, (dX, dW) = layer.value_and_grad(X.astype(dtype), W)
    assert type(value) is float and dX.dtype == np.float64 and dW.dtype == np.float64
    assert value == expected[0]
    np.testing.assert_array_equal(dX, expected[1][0])
    assert [tuple(map(str, s)) for s in layer.value_and_grad.signatures] == [
        ("array(float64, 2d, C)", "array(float64, 2d, C)")]


def test_strided_read_only_and_fortran_arrays_are_taken(layer):
    rng = np.random.default_rng(1)
    X, W = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    expected = layer.value_and_grad(X, W)
    read_only = X.copy()
    read_only.flags.writeable = False
    for Xarg, Warg in [(np.asfortranarray(X), W), (X, np.ascontiguousarray(W.T).T), (read_only, W),
                       (np.repeat(X, 2, axis=0)[::2], W), (X, np.broadcast_to(W[:1], (3, 2)))]:
        value, (dX, dW) = layer.value_and_grad(Xarg, Warg)
        reference = layer.value_and_grad(np.array(Xarg), np.array(Warg))
        assert value == reference[0] and dX.flags.c_contiguous
        np.testing.assert_array_equal(dW, reference[1][1])
    assert layer.value_and_grad(np.asfortranarray(X), W)[0] == expected[0]


def test_batch_arrays_of_float32_give_float64(product):
    xs = np.linspace(-2, 2, 7, dtype=np.float32)
    ys = np.arange(7, dtype=np.int16)
    values, (dxs, dys) = product.value_and_grad_batch(xs, ys)
    assert values.dtype == dxs.dtype == dys.dtype == np.float64
    np.testing.assert_array_equal(values, xs.astype(np.float64) * ys)


@pytest.mark.parametrize("bad, error, message", [
    (np.ones((4, 3), dtype=bool), TypeError, "X must be a float array, not dtype bool"),
    (np.ones((4, 3), dtype=complex), TypeError, "X must be a float array, not dtype complex128"),
    (np.array([["a"] * 3] * 4), TypeError, "X must be a float array, not dtype <U1"),
    (np.ones((4, 3), dtype=object), TypeError, "X must be a float array, not dtype object"),
    ([[1.0] * 3] * 4, TypeError, "X must be a NumPy array"),
    (np.ones((4, 2)), ValueError, r"X must have shape \(N, 3\)"),
    (np.ones(3), ValueError, r"X must have shape \(N, 3\)"),
])
def test_arrays_that_are_not_real_are_refused(layer, bad, error, message):
    with pytest.raises(error, match=message):
        layer.value_and_grad(bad, np.ones((3, 2)))


def test_labels_of_any_integer_dtype_are_taken():
    Z = bpgen.Tensor("Z", ("N", 3))
    labels = bpgen.Tensor("labels", ("N",))
    g = bpgen.compile(nn.cross_entropy(Z, labels), inputs=[Z, labels], wrt=[Z], name="ce_labels")
    z = np.random.default_rng(2).normal(size=(4, 3))
    expected = g.value_and_grad(z, np.array([0, 2, 1, 2]))
    for dtype in (np.uint8, np.int8, np.uint16, np.int32, np.uint64, np.float32):
        value, (dz,) = g.value_and_grad(z, np.array([0, 2, 1, 2], dtype=dtype))
        assert value == expected[0]
        np.testing.assert_array_equal(dz, expected[1][0])
    with pytest.raises(ValueError, match="every label must be a whole number"):
        g.value_and_grad(z, np.array([0, 2, 1, 2.5]))
    with pytest.raises(ValueError, match="every label must be a whole number"):
        g.value_and_grad(z, np.array([0, 2, 1, 3], dtype=np.uint8))


# 3. softmax cross-entropy with any targets -------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_softmax_cross_entropy_gradient_is_right_for_targets_that_do_not_sum_to_one(jit):
    Z = bpgen.Tensor("Z", ("N", 4))
    Y = bpgen.Tensor("Y", ("N", 4))
    g = bpgen.compile(nn.softmax_cross_entropy(Z, Y), inputs=[Z, Y], name="sce_any", jit=jit)
    rng = np.random.default_rng(3)
    z = rng.normal(size=(4, 4)) * 3
    targets = np.array([[0.5, 0.5, 0.5, 0.5],  # sums to 2
                        [0.0, 0.0, 0.0, 0.0],  # all zero
                        [0.333, 0.333, 0.333, 0.0],  # 0.999 from rounding
                        [0.0, 1.0, 0.0, 0.0]])

    def reference(z, t):
        lse = anp.log(anp.sum(anp.exp(z - anp.max(z, axis=1, keepdims=True)), axis=1, keepdims=True)) \
            + anp.max(z, axis=1, keepdims=True)
        return anp.mean(anp.sum(t * (lse - z), axis=1))

    value, (dz, dt) = g.value_and_grad(z, targets)
    assert value == pytest.approx(reference(z, targets), rel=1e-12)
    np.testing.assert_allclose(dz, autograd.grad(reference, 0)(z, targets), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dt, autograd.grad(reference, 1)(z, targets), rtol=1e-10, atol=1e-14)


# 4. SymPy assumptions are checked ------------------------------------------------------------------------------------


@pytest.mark.parametrize("jit", [False, True])
def test_assumptions_sympy_relied_on_are_checked(jit):
    p = sympy.Symbol("p", positive=True)
    g = bpgen.compile(sympy.sqrt(p**2), inputs=[p], name="root", jit=jit)  # SymPy makes it p
    assert g.forward(2.0) == 2.0
    for method in (g.forward, g.value_and_grad, g.grad):
        with pytest.raises(ValueError, match=r"root: p must be positive \(its symbol assumes positive=True\)"):
            method(-2.0)
        with pytest.raises(ValueError, match="p must be positive"):
            method(math.nan)
    if jit:
        with pytest.raises(ValueError, match="p must be positive"):
            g.value_and_grad_batch(np.array([1.0, -1.0]))
        with pytest.raises(ValueError, match="p must be positive"):
            g.module.value_and_grad(-2.0)  # the generated module checks too


@pytest.mark.parametrize("assumptions, good, bad, words", [
    ({"nonnegative": True}, 0.0, -0.5, "nonnegative"),
    ({"negative": True}, -1.0, 0.0, "negative"),
    ({"nonpositive": True}, 0.0, 0.5, "nonpositive"),
    ({"nonzero": True, "real": True}, -3.0, 0.0, "nonzero"),
    ({"integer": True}, -3.0, 2.5, "a whole number"),
    ({"even": True}, -4.0, 3.0, "an even whole number"),
    ({"odd": True}, -3.0, 4.0, "an odd whole number"),
    ({"odd": True}, -3.0, 0.5, "an odd whole number"),
])
def test_each_assumption_is_checked(assumptions, good, bad, words):
    s = sympy.Symbol("s", **assumptions)
    g = bpgen.compile(s * y, inputs=[s, y], name="assumed", jit=False)
    assert g.forward(good, 2.0) == good * 2.0
    with pytest.raises(ValueError, match=f"s must be {words}"):
        g.forward(bad, 2.0)


def test_real_symbols_are_not_checked():
    assert "check_arguments" not in bpgen.compile(x * y, inputs=[x, y], jit=False).source


# 5. returned arrays are fresh ---------------------------------------------------------------------------------------


def test_returned_arrays_never_alias_the_callers_or_each_other():
    X = bpgen.Tensor("X", ("N", 3))
    b = bpgen.Tensor("b", (3,))
    shifted = bpgen.compile(X + b, inputs=[X, b], name="shifted")
    x_, b_, seed = np.ones((2, 3)), np.zeros(3), np.full((2, 3), 2.0)
    value, (dX, db) = shifted.vjp(x_, b_, seed)
    assert not np.shares_memory(dX, seed) and not np.shares_memory(value, x_)
    dX += 1.0
    assert (seed == 2.0).all()

    same = bpgen.compile(X * 1.0, inputs=[X], name="same")
    out = same.forward(x_)
    assert out is not x_ and not np.shares_memory(out, x_)
    transposed = bpgen.compile(X.T, inputs=[X], name="transposed")
    value, (dX,) = transposed.vjp(x_, np.ones((3, 2)))
    assert not np.shares_memory(value, x_)

    A = bpgen.Tensor("A", (2,))
    B = bpgen.Tensor("B", (2,))
    both = bpgen.compile(A + B, inputs=[A, B], name="both")
    value, (dA, dB) = both.vjp(np.ones(2), np.ones(2), np.ones(2))
    assert not np.shares_memory(dA, dB)


# 16. declaration mistakes are one clear line --------------------------------------------------------------------------


def test_inputs_and_wrt_may_be_any_iterable_and_wrt_may_name_inputs():
    g = bpgen.compile(x * y, inputs=(s for s in [x, y]), wrt=iter(["y"]), jit=False)
    assert g.params == ["x", "y"] and g.wrt == (y,)
    assert g.value_and_grad(2.0, 3.0) == (6.0, (2.0,))
    X = bpgen.Tensor("X", (2,))
    W = bpgen.Tensor("W", (2,))
    t = bpgen.compile(bpgen.sum(X * W), inputs=[X, W], wrt=["W"], jit=False)
    assert [w.name for w in t.wrt] == ["W"]
    with pytest.raises(BpgenError, match="wrt entry 'z' is not one of the inputs"):
        bpgen.compile(x * y, inputs=[x, y], wrt=["z"])


def _returns_true(a):
    return True


def _branches(a):
    b = a * 2
    if b > 0:
        return b
    return -b


def _uses_math(a):
    return math.exp(a)


@pytest.mark.parametrize("fn, message", [
    (_returns_true, "_returns_true must return a SymPy expression, not the boolean True"),
    (_branches, r"_branches, line \d+: `if`.* write the branch with sympy.Piecewise, sympy.Max"),
    (_uses_math, r"_uses_math, line \d+: a function of the math module .* use sympy.exp, bpgen.exp"),
])
def test_declaration_mistakes_say_what_to_write_instead(fn, message):
    with pytest.raises(BpgenError, match=message) as info:
        bpgen.function(fn)
    assert "\n" not in str(info.value)


def test_a_boolean_output_is_refused():
    with pytest.raises(BpgenError, match="not the boolean True"):
        bpgen.compile(True, inputs=[x])
