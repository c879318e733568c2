"""Names in the generated loops: a step, its carries and the enclosing function's inputs may take any name, among
them the loops' own locals and function names; the module still compiles and computes the same numbers."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpgen
from bpgen import nn

# every identifier the loops and the module's functions use for themselves
LOCALS = ["t", "s", "start", "stop", "steps", "tape", "xs", "h", "h_init", "tape_h", "saved_h_next", "ys0", "y0",
          "dh", "dh_final", "segment_h", "dW", "dW_step", "step", "step_scan", "step_backward", "step_scan_backward",
          "forward", "value_and_grad", "grad", "check_arguments", "np", "numba", "math", "N", "T", "steps_1",
          "vjp", "sigmoid", "softmax", "sum_axis0"]


def declare(step_name: str, carry: str, inputs: tuple[str, str, str], checkpoint: int | None, jit: bool):
    h0, X, W = inputs
    namespace = {"bpgen": bpgen, "nn": nn}
    # the step's function and parameter names are the user's: written out as the user would
    exec(f"def {step_name}({carry}, x):\n"  # noqa: S102 - test source with chosen names
         f"    new = nn.tanh(x @ W + {carry})\n"
         f"    return new, new\n", namespace | {"W": None}, namespace)
    step = namespace[step_name]

    def loss(h0_, X_, W_):
        step.__globals__["W"] = W_
        h, hs = bpgen.scan(step, h0_, X_, checkpoint=checkpoint)
        return bpgen.sum(hs * hs) + bpgen.sum(h)

    shapes = {h0: ("N", 2), X: ("T", "N", 3), W: (3, 2)}
    source = f"def f({h0}, {X}, {W}):\n    return loss({h0}, {X}, {W})\n"
    scope = {"loss": loss}
    exec(source, scope)  # noqa: S102 - the parameters' names are what the test varies
    return bpgen.function(scope["f"], shapes=shapes, name="named_loop", jit=jit)


def reference(h0, X, W):
    h, total = h0, 0.0
    for x in X:
        h = np.tanh(x @ W + h)
        total += np.sum(h * h)
    return total + np.sum(h)


def check(g, rng):
    h0, X, W = rng.normal(size=(4, 2)), rng.normal(size=(5, 4, 3)), rng.normal(size=(3, 2))
    value, grads = g.value_and_grad(h0, X, W)
    assert np.isclose(value, reference(h0, X, W), rtol=1e-12)
    dW = grads[2]
    eps = 1e-6
    E = np.zeros_like(W)
    E[1, 0] = eps
    assert np.isclose(dW[1, 0], (reference(h0, X, W + E) - reference(h0, X, W - E)) / (2 * eps), rtol=1e-6)


@pytest.mark.parametrize("step_name, carry, inputs, checkpoint", [
    ("t", "h", ("h0", "X", "W"), None),
    ("steps", "h", ("h0", "X", "W"), None),
    ("xs", "h", ("h0", "X", "W"), None),
    ("h", "h", ("h0", "X", "W"), None),  # the step named like its carry
    ("s", "h", ("h0", "X", "W"), 2),
    ("start", "h", ("h0", "X", "W"), 2),
    ("stop", "h", ("h0", "X", "W"), 3),
    ("cell", "h", ("h0", "cell_scan", "W"), None),  # an input named like the loop's function
    ("cell", "h", ("tape", "X", "W"), None),  # an input named like the reversed loop's parameter
    ("cell", "tape", ("h0", "X", "start"), 2),
])
def test_names_that_clash_with_the_loops_own_compile_with_numba(step_name, carry, inputs, checkpoint):
    check(declare(step_name, carry, inputs, checkpoint, jit=True), np.random.default_rng(0))


names = st.sampled_from(LOCALS) | st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(step_name=names, carry=names, inputs=st.lists(names, min_size=3, max_size=3, unique=True),
       checkpoint=st.sampled_from([None, 2, 3]))
def test_any_names_compile(step_name, carry, inputs, checkpoint):
    import keyword

    if any(keyword.iskeyword(n) for n in [step_name, carry, *inputs]) or carry == "x" or "x" in inputs:
        return  # not a Python function the user could write (x is the step's slice here)
    if carry in ("nn", "W", "bpgen"):
        return  # the step's parameter would hide the module or weight its own body reads
    if carry in inputs or step_name in (carry, "x", "nn", "bpgen", "loss") or step_name in inputs:
        return  # the same name twice in the user's own code
    check(declare(step_name, carry, tuple(inputs), checkpoint, jit=False), np.random.default_rng(1))


# the locals and functions of every other template: the batch loop's, hessian's, vjp's, and the module's own
MODULE_LOCALS = ["n", "i", "values", "value", "point_grads", "H", "gradients", "column", "k", "vx", "end_x", "seed",
                 "forward", "value_and_grad", "grad", "value_and_grad_batch", "jvp", "hvp", "hessian", "vjp",
                 "check_arguments", "math", "np", "numba", "sigmoid", "exp_scalar", "tx", "dx", "d", "t", "f"]
input_names = st.sampled_from(MODULE_LOCALS) | st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names_=st.lists(input_names, min_size=2, max_size=2, unique=True))
def test_any_input_names_compile_in_every_kind_of_module(names_):
    """value_and_grad, the batch loop, jvp, hvp and hessian (scalar), and vjp and hessian (tensor): inputs named
    like the modules' own locals and functions still give the right numbers."""
    import keyword

    import sympy

    if any(keyword.iskeyword(n) for n in names_):
        return
    a, b = sympy.symbols(names_, real=True)
    g = bpgen.compile(a**2 * b + sympy.sin(a), inputs=[a, b], jit=False, derivatives=("jvp", "hessian"))
    value, (da, db) = g.value_and_grad(1.5, -2.0)
    assert np.isclose(value, 1.5**2 * -2.0 + np.sin(1.5)) and np.isclose(da, 2 * 1.5 * -2.0 + np.cos(1.5))
    assert np.isclose(g.value_and_grad_batch(np.array([1.5]), np.array([-2.0]))[1][1][0], db)
    assert np.isclose(g.jvp(1.5, -2.0, (1.0, 0.0))[1], da)
    _, _, H = g.hessian(1.5, -2.0)
    np.testing.assert_allclose(H, [[2 * -2.0 - np.sin(1.5), 3.0], [3.0, 0.0]], rtol=1e-12)

    X = bpgen.Tensor(names_[0], (3,))
    w = bpgen.Tensor(names_[1], (3,))
    t = bpgen.compile(bpgen.sum(X * w * w), inputs=[X, w], jit=False)
    _, (dX, dw) = t.value_and_grad(np.ones(3), np.full(3, 2.0))
    np.testing.assert_allclose(dw, np.full(3, 4.0))
    _, _, blocks = t.hessian(np.ones(3), np.full(3, 2.0))
    np.testing.assert_allclose(blocks[1][1], np.eye(3) * 2.0)
