"""Forward mode through bpgen.scan: jvp is one loop carrying primals and tangents together, against HIPS autograd
(the gradient dotted with the tangents) and finite differences; the tangent step is staged in the user's names;
checkpointing and Numba give the same numbers."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from helpers import rng_for
from test_scan import CASES, arguments, declare, reference

import bpgen


def tangents_for(case: str, args: list) -> tuple:
    rng = rng_for("tangent-" + case)
    return tuple(rng.normal(size=np.shape(a)) if np.shape(a) else float(rng.normal()) for a in args)


def directional(ref, args: list, tangents: tuple) -> float:
    """The derivative of `ref` at `args` along `tangents`, from autograd's gradients."""
    return sum(float(np.sum(np.asarray(autograd.grad(ref, i)(*args)) * t)) for i, t in enumerate(tangents))


@pytest.mark.parametrize("case", list(CASES))
def test_jvp_through_a_scan_matches_autograd(case):
    g = declare(case)
    args = arguments(case)
    tangents = tangents_for(case, args)
    value, tangent = g.jvp(*args, tangents)
    ref = reference(case)
    assert value == pytest.approx(float(ref(*args)), rel=1e-12, abs=1e-12)
    assert tangent == pytest.approx(directional(ref, args, tangents), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_jvp_through_a_scan_matches_finite_differences(case):
    g = declare(case)
    args = arguments(case)
    tangents = tangents_for(case, args)
    h = 1e-6

    def at(t):
        return g.forward(*(a + t * d for a, d in zip(args, tangents)))

    assert g.jvp(*args, tangents)[1] == pytest.approx((at(h) - at(-h)) / (2 * h), rel=1e-6, abs=1e-7)


def test_the_tangent_step_is_staged_in_the_users_names():
    source = declare("rnn").jvp_source
    for line in ("def rnn_step_jvp(h, th, x, tx, W, U, b, tW, tU, tb):",
                 "th_new = ((1.0 - h_new) * (h_new + 1.0)) * ta  # h_new = tanh_array(a)",
                 "ta = ta + tb", "def rnn_step_jvp_scan(h_init, th_init, xs, txs, W, U, b, tW, tU, tb):",
                 "h, th, y0, y1 = rnn_step_jvp(h, th, xs[t], txs[t], W, U, b, tW, tU, tb)"):
        assert line in source, line
    jvp = source.split("def jvp(")[1].split("\n\n\n")[0]
    # one loop computes the values and their tangents: the primal loop does not run a second time
    assert jvp.count("_scan(") == 1 and "rnn_step_scan(" not in source
    assert "tape" not in source  # no gradient flows back through it: nothing is stored for a reversed loop


def test_a_carry_without_a_tangent_gains_one_from_the_weights():
    """Only W has a tangent: h0 starts with none, yet h's tangent grows from W's at every step."""
    @bpgen.function(shapes={"h0": ("N", 4), "X": ("T", "N", 3), "W": (3, 4), "U": (4, 4)}, wrt=["W"], jit=False)
    def rnn_w(h0, X, W, U):
        def rnn_step(h, x):
            return bpgen.tanh(x @ W + h @ U), bpgen.sum(h)

        h, s = bpgen.scan(rnn_step, h0, X)
        return bpgen.sum(h * h) + bpgen.sum(s)

    args = arguments("rnn")[:4]
    tW = rng_for("tW").normal(size=(3, 4))
    value, tangent = rnn_w.jvp(*args, (tW,))
    assert "def rnn_step_jvp(h, th, x, W, U, tW):" in rnn_w.jvp_source

    def ref(W):
        h, total = args[0], 0.0
        for t in range(args[1].shape[0]):
            total = total + anp.sum(h)
            h = anp.tanh(args[1][t] @ W + h @ args[3])
        return anp.sum(h * h) + total

    assert value == pytest.approx(float(ref(args[2])), rel=1e-12)
    assert tangent == pytest.approx(float(np.sum(autograd.grad(ref)(args[2]) * tW)), rel=1e-10)


@pytest.mark.parametrize("k", [2, 5])
def test_checkpointing_gives_the_same_jvp_bit_for_bit(k):
    args = arguments("rnn")
    tangents = tangents_for("rnn", args)
    assert declare("rnn", checkpoint=k).jvp(*args, tangents) == declare("rnn").jvp(*args, tangents)


def test_one_jvp_module_serves_every_number_of_steps():
    g = declare("rnn")
    source = g.jvp_source
    ref = reference("rnn")
    for steps in (1, 2, 9):
        args = arguments("rnn", steps)
        tangents = tangents_for("rnn", args)
        assert g.jvp(*args, tangents)[1] == pytest.approx(directional(ref, args, tangents), rel=1e-10)
    assert g.jvp_source == source


def test_jvp_through_a_sympy_scan():
    import sympy

    def deep_sympy(a, b, c):
        def layer(carry, x):
            a, b, c = carry
            return (sympy.tanh(a * b + c), sympy.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2), None

        (a, b, c), _ = bpgen.scan(layer, (a, b, c), length=30)
        return a * b + c

    def ref(a, b, c):
        for _ in range(30):
            a, b, c = anp.tanh(a * b + c), anp.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2
        return a * b + c

    g = bpgen.function(deep_sympy, jit=False, name="deep_sympy_jvp")
    point, tangents = (0.3, -0.2, 0.1), (0.5, -1.0, 2.0)
    value, tangent = g.jvp(*point, tangents)
    assert value == pytest.approx(ref(*point), rel=1e-13)
    assert tangent == pytest.approx(directional(ref, list(point), tangents), rel=1e-10)
    assert "def layer_jvp(a, b, c, ta, tb, tc):" in g.jvp_source


def test_a_module_with_value_and_jvp_holds_both_loops():
    g = bpgen.compile(declare("rnn"), jit=False, derivatives="jvp")
    for function in ("def rnn_step_scan(", "def rnn_step_scan_backward(", "def rnn_step_jvp_scan(", "def jvp("):
        assert function in g.source, function
    args = arguments("rnn")
    tangents = tangents_for("rnn", args)
    assert g.module.jvp(*args, *tangents) == declare("rnn").jvp(*args, tangents)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["rnn", "two_sequences", "carry_unchanged"])
def test_numba_jvp_agrees_with_python(case):
    args = arguments(case)
    tangents = tangents_for(case, args)
    want = declare(case).jvp(*args, tangents)
    got = declare(case, jit=True).jvp(*args, tangents)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_numba_jvp_of_a_checkpointed_scan_agrees_with_python():
    args = arguments("rnn")
    tangents = tangents_for("rnn", args)
    want = declare("rnn", checkpoint=4).jvp(*args, tangents)
    np.testing.assert_allclose(declare("rnn", jit=True, checkpoint=4).jvp(*args, tangents), want, rtol=1e-12)


# second order: hvp and hessian, the reverse pass over jvp's program ---------------------------------------------

def autograd_hvp(ref, args: list, vectors: tuple) -> list:
    """H v of `ref` at `args`, by autograd: the gradient of grad(ref) . v."""
    def directional_at(*point):
        return sum(anp.sum(autograd.grad(ref, i)(*point) * v) for i, v in enumerate(vectors))

    return [autograd.grad(directional_at, i)(*args) for i in range(len(args))]


@pytest.mark.parametrize("case", list(CASES))
def test_hvp_through_a_scan_matches_autograd_and_finite_differences(case):
    g = declare(case)
    args = arguments(case)
    vectors = tangents_for(case, args)
    value, grads, hv = g.hvp(*args, vectors)
    ref = reference(case)
    assert value == pytest.approx(float(ref(*args)), rel=1e-12, abs=1e-12)
    for i, (got, want) in enumerate(zip(grads, g.value_and_grad(*args)[1])):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13, err_msg=f"{case}: gradient {i}")
    for i, (got, want) in enumerate(zip(hv, autograd_hvp(ref, args, vectors))):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-11, err_msg=f"{case}: H v, input {i}")
        assert np.shape(got) == np.shape(args[i])
    h = 1e-5
    plus = g.value_and_grad(*(a + h * v for a, v in zip(args, vectors)))[1]
    minus = g.value_and_grad(*(a - h * v for a, v in zip(args, vectors)))[1]
    for got, p, m in zip(hv, plus, minus):
        np.testing.assert_allclose(got, (np.asarray(p) - np.asarray(m)) / (2 * h), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("k", [1, 2, 4, 50])
def test_checkpointing_gives_the_same_hvp_bit_for_bit(k):
    args = arguments("rnn")
    vectors = tangents_for("rnn", args)
    want = declare("rnn").hvp(*args, vectors)
    got = declare("rnn", checkpoint=k).hvp(*args, vectors)
    assert got[0] == want[0]
    for mine, theirs in zip(got[1] + got[2], want[1] + want[2]):
        assert np.array_equal(mine, theirs)


def test_the_hessian_of_a_sympy_scan_matches_autograd():
    import sympy

    def deep_h(a, b, c):
        def layer(carry, x):
            a, b, c = carry
            return (sympy.tanh(a * b + c), sympy.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2), None

        (a, b, c), _ = bpgen.scan(layer, (a, b, c), length=30, checkpoint=7)
        return a * b + c

    def ref(x):
        a, b, c = x[0], x[1], x[2]
        for _ in range(30):
            a, b, c = anp.tanh(a * b + c), anp.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2
        return a * b + c

    g = bpgen.function(deep_h, jit=False, name="deep_h")
    value, grads, H = g.hessian(0.3, -0.2, 0.1)
    np.testing.assert_allclose(H, autograd.hessian(ref)(np.array([0.3, -0.2, 0.1])), rtol=1e-10, atol=1e-14)


def test_the_hessian_of_a_tensor_scan_matches_autograd():
    g = declare("final_only")
    args = arguments("final_only")
    _, _, H = g.hessian(*args)
    ref = reference("final_only")
    for i in range(3):
        for j in range(3):
            want = autograd.jacobian(lambda *a, i=i: autograd.grad(ref, i)(*a), j)(*args)
            np.testing.assert_allclose(H[i][j], want, rtol=1e-9, atol=1e-12, err_msg=f"block {i}, {j}")


def test_the_hvp_reads_as_the_reverse_pass_of_jvp():
    source = declare("rnn").hvp_source
    hvp = source.split("def hvp(")[1].split("\n\n\n")[0]
    assert "the reverse pass over forward mode" in hvp and "dW, dU, db)" in hvp
    assert "rnn_step_jvp_scan(h0, th0, X, tX, W, U, b, tW, tU, tb)" in hvp
    assert "= rnn_step_jvp_scan_backward(" in hvp
    assert "def rnn_step_jvp_backward(" in source


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", [None, 3])
def test_numba_hvp_agrees_with_python(checkpoint):
    args = arguments("rnn")
    vectors = tangents_for("rnn", args)
    want = declare("rnn", checkpoint=checkpoint).hvp(*args, vectors)
    got = declare("rnn", jit=True, checkpoint=checkpoint).hvp(*args, vectors)
    assert got[0] == pytest.approx(want[0], rel=1e-12)
    for mine, theirs in zip(got[1] + got[2], want[1] + want[2]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-11, atol=1e-12)


def test_hvp_through_a_scan_matches_jax():
    """The same Elman network written with jax.lax.scan: jax.jvp of jax.grad, in float64."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def loss(h0, X, W, U, b):
        def rnn_step(h, x):
            h_new = jnp.tanh(x @ W + h @ U + b)
            return h_new, h_new

        h, hs = jax.lax.scan(rnn_step, h0, X)
        return jnp.sum(h * h) + 0.5 * jnp.sum(hs * hs)

    args = arguments("rnn")
    vectors = tangents_for("rnn", args)
    value, grads, hv = declare("rnn", checkpoint=2).hvp(*args, vectors)
    gradient = jax.grad(loss, argnums=tuple(range(5)))
    want_grads, want_hv = jax.jvp(lambda *a: gradient(*a), tuple(args), vectors)
    assert value == pytest.approx(float(loss(*args)), rel=1e-12)
    for mine, theirs in zip(grads + hv, list(want_grads) + list(want_hv)):
        np.testing.assert_allclose(mine, np.asarray(theirs), rtol=1e-10, atol=1e-12)
