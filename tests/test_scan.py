"""bpgen.scan: loops whose gradient is a loop, against HIPS autograd and finite differences; checkpointing bit
for bit; the generated step functions; Python against Numba; one-line errors."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from helpers import rng_for

import bpgen
from bpgen import nn
from bpgen.errors import BpgenError

T, N = 6, 3  # steps and batch of the concrete calls


# the cases: (name, shapes, body(m, scan, **tensors) -> scalar loss, where `scan` is bpgen.scan or the reference
# loop, `m` the math of bpgen (B) or autograd (A)) ------------------------------------------------------------

class B:
    tanh, sin, cos, exp, sum = bpgen.tanh, bpgen.sin, bpgen.cos, bpgen.exp, bpgen.sum

    @staticmethod
    def sigmoid(x):
        return nn.sigmoid(x)


class A:
    tanh, sin, cos, exp, sum = anp.tanh, anp.sin, anp.cos, anp.exp, anp.sum

    @staticmethod
    def sigmoid(x):
        return 1.0 / (1.0 + anp.exp(-x))


def reference_scan(step, init, xs=None, length=None, checkpoint=None):
    """The loop the scan stands for, in plain Python (autograd traces it)."""
    carry = init
    ys = []
    steps = length if xs is None else (xs[0] if isinstance(xs, tuple) else xs).shape[0]
    for t in range(steps):
        x = None if xs is None else (tuple(s[t] for s in xs) if isinstance(xs, tuple) else xs[t])
        carry, y = step(carry, x)
        ys.append(y)
    if ys[0] is None:
        return carry, None
    if isinstance(ys[0], tuple):
        return carry, tuple(anp.stack([y[k] for y in ys]) for k in range(len(ys[0])))
    return carry, anp.stack(ys)


def rnn(m, scan, h0, X, W, U, b):
    def rnn_step(h, x):
        a = x @ W + h @ U + b
        h_new = m.tanh(a)
        return h_new, h_new

    h, hs = scan(rnn_step, h0, X)
    return m.sum(h * h) + 0.5 * m.sum(hs * hs)


def deep(m, scan, a, b, c):
    def layer(carry, x):
        a, b, c = carry
        return (m.tanh(a * b + c), m.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2), None

    (a, b, c), ys = scan(layer, (a, b, c), length=7)
    assert ys is None
    return a + b + c


def two_sequences(m, scan, s0, X, Z, w):
    def mix(s, xz):
        x, z = xz
        s_new = m.sigmoid(s * w + m.sum(x) - z)
        return s_new, (s_new * z, x * s_new)

    s, (p, q) = scan(mix, s0, (X, Z))
    return m.sum(p) + m.sum(q * q) + s


def final_only(m, scan, h0, X, W):
    def step(h, x):
        return m.tanh(h @ W + x), None

    h, none = scan(step, h0, X)
    return m.sum(h)


def ys_only(m, scan, h0, X, W):
    def step(h, x):
        return m.tanh(h @ W + x), m.sum(h * x)

    h, ys = scan(step, h0, X)
    return m.sum(ys * ys)


def carry_unchanged(m, scan, h0, X, W):
    """A carry the step does not change, and one it reads only for the y."""
    def step(carry, x):
        h, k = carry
        return (h, k * 0.5 + m.sum(x @ W)), m.sum(h * x @ W) * k

    (h, k), ys = scan(step, (h0, 1.0), X)
    return m.sum(ys) + k + m.sum(h)


def transposed_weight(m, scan, h0, X, W):
    """The step reads W.T: computed once outside the loop."""
    def step(h, x):
        return m.tanh(x @ W.T + h), h

    h, hs = scan(step, h0, X)
    return m.sum(hs * h)


CASES = {
    "rnn": (rnn, {"h0": ("N", 4), "X": ("T", "N", 3), "W": (3, 4), "U": (4, 4), "b": (4,)}),
    "deep": (deep, {"a": (), "b": (), "c": ()}),
    "two_sequences": (two_sequences, {"s0": (), "X": ("T", 3), "Z": ("T",), "w": ()}),
    "final_only": (final_only, {"h0": (4,), "X": ("T", 4), "W": (4, 4)}),
    "ys_only": (ys_only, {"h0": (4,), "X": ("T", 4), "W": (4, 4)}),
    "carry_unchanged": (carry_unchanged, {"h0": (4,), "X": ("T", 4), "W": (4, 4)}),
    "transposed_weight": (transposed_weight, {"h0": ("N", 4), "X": ("T", "N", 3), "W": (4, 3)}),
}


def concrete(shape, steps=T):
    return tuple(steps if d == "T" else N if d == "N" else d for d in shape)


def declare(case: str, jit: bool = False, checkpoint: int | None = None):
    body, shapes = CASES[case]

    def scan(*args, **kwargs):
        return bpgen.scan(*args, checkpoint=checkpoint, **kwargs)

    names = list(shapes)
    namespace = {"body": body, "B": B, "scan": scan}
    exec(f"def {case}({', '.join(names)}):\n    return body(B, scan, {', '.join(names)})\n", namespace)
    return bpgen.function(namespace[case], shapes=shapes, jit=jit)


def arguments(case: str, steps: int = T):
    _, shapes = CASES[case]
    rng = rng_for(case)
    return [rng.normal(size=concrete(s, steps)) * 0.6 if s else float(rng.normal()) * 0.6 for s in shapes.values()]


def reference(case: str):
    body, _ = CASES[case]
    return lambda *args: body(A, reference_scan, *args)


@pytest.mark.parametrize("case", list(CASES))
def test_scan_gradients_match_autograd(case):
    g = declare(case)
    args = arguments(case)
    value, grads = g.value_and_grad(*args)
    ref = reference(case)
    assert value == pytest.approx(float(ref(*args)), rel=1e-12, abs=1e-12)
    for i, got in enumerate(grads):
        want = autograd.grad(ref, i)(*args)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"{case}: gradient {i}")
        assert np.shape(got) == np.shape(args[i])


@pytest.mark.parametrize("case", list(CASES))
def test_scan_gradients_match_finite_differences(case):
    g = declare(case)
    args = arguments(case)
    _, grads = g.value_and_grad(*args)
    rng = rng_for("fd-" + case)
    directions = [rng.normal(size=np.shape(a)) if np.shape(a) else float(rng.normal()) for a in args]
    h = 1e-6

    def at(t):
        return g.forward(*(a + t * d for a, d in zip(args, directions)))

    numeric = (at(h) - at(-h)) / (2 * h)
    analytic = sum(float(np.sum(np.asarray(gr) * d)) for gr, d in zip(grads, directions))
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("k", [1, 2, 4, 5, 6, 50])
def test_checkpointing_gives_the_same_gradient_bit_for_bit(k):
    plain = declare("rnn")
    checkpointed = declare("rnn", checkpoint=k)
    args = arguments("rnn")
    want = plain.value_and_grad(*args)
    got = checkpointed.value_and_grad(*args)
    assert got[0] == want[0]
    for a, b in zip(got[1], want[1]):
        assert np.array_equal(a, b)
    tape = [line for line in checkpointed.source.splitlines() if "tape_h = np.empty(" in line]
    assert tape and ((f"((steps - 1) // {k} + 1, h_init.shape[0], 4)" in tape[0]) if k > 1
                     else "np.empty((steps, h_init.shape[0], 4))" in tape[0])


def test_one_step_and_a_symbolic_length_share_one_module():
    @bpgen.function(shapes={"h0": (4,), "X": ("T", 4), "W": (4, 4)}, jit=False)
    def grow(h0, X, W):
        def step(h, x):
            return bpgen.exp(h @ W) * x, None

        h, _ = bpgen.scan(step, h0, X)
        return bpgen.sum(h)

    def ref(h0, X, W):
        return anp.sum(reference_scan(lambda h, x: (anp.exp(h @ W) * x, None), h0, X)[0])

    for steps in (1, 2, 9):
        rng = rng_for(f"grow-{steps}")
        args = [rng.normal(size=4) * 0.3, rng.normal(size=(steps, 4)) * 0.3, rng.normal(size=(4, 4)) * 0.3]
        value, grads = grow.value_and_grad(*args)
        assert value == pytest.approx(float(ref(*args)), rel=1e-12)
        for i in range(3):
            np.testing.assert_allclose(grads[i], autograd.grad(ref, i)(*args), rtol=1e-10, atol=1e-14)


def test_the_source_does_not_grow_with_the_number_of_steps():
    def deep_of(length):
        @bpgen.function(shapes={"a": (), "b": ()}, jit=False, name=f"deep_{length}")
        def deep_n(a, b):
            def layer(carry, x):
                a, b = carry
                return (bpgen.tanh(a * b), bpgen.sin(b) + a), None

            (a, b), _ = bpgen.scan(layer, (a, b), length=length)
            return a + b
        return deep_n

    small, large = deep_of(10), deep_of(10_000)
    assert len(small.source.splitlines()) == len(large.source.splitlines())
    assert small.source.replace("deep_10", "deep_10000").replace("= 10\n", "= 10000\n") == large.source


def test_the_step_functions_are_staged_in_the_users_names():
    g = declare("rnn")
    source = g.source
    for line in ("def rnn_step(h, x, W, U, b):", "def rnn_step_backward(h, x, W, U, b, h_new, dh_new, dh_new_1):",
                 "def rnn_step_scan(h_init, xs, W, U, b):", "dU += dU_step", "dW += dW_step",
                 "h_new = tanh_array(a)"):
        assert line in source, line
    assert "dh = matmul(dmatmul" in source  # the carry's gradient, staged like any other
    backward = source.split("def value_and_grad(")[1].split("def grad(")[0]
    assert "dh0, dX, dW, dU, db = rnn_step_scan_backward(" in backward


def test_only_the_wanted_gradients_are_computed():
    @bpgen.function(shapes={"h0": ("N", 4), "X": ("T", "N", 3), "W": (3, 4), "U": (4, 4)}, wrt=["U"], jit=False)
    def rnn_u(h0, X, W, U):
        def rnn_step(h, x):
            return bpgen.tanh(x @ W + h @ U), None

        h, _ = bpgen.scan(rnn_step, h0, X)
        return bpgen.sum(h)

    step_backward = rnn_u.source.split("def rnn_step_backward(")[1].split("\n\n\n")[0]
    assert "dx =" not in step_backward and "dW =" not in step_backward and "dU =" in step_backward
    args = arguments("rnn")[:4]
    (dU,) = rnn_u.grad(*args)

    def ref(U):
        h = args[0]
        for t in range(T):
            h = anp.tanh(args[1][t] @ args[2] + h @ U)
        return anp.sum(h)

    np.testing.assert_allclose(dU, autograd.grad(ref)(args[3]), rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["rnn", "deep", "two_sequences", "carry_unchanged"])
def test_numba_agrees_with_python(case, numba_agrees):
    g = declare(case, jit=True)
    numba_agrees(g, *arguments(case))


def test_checkpointed_numba_agrees_with_python(numba_agrees):
    numba_agrees(declare("rnn", jit=True, checkpoint=4), *arguments("rnn"))


def test_scan_errors_are_one_line():
    X = bpgen.Tensor("err_scan_X", ("T", 3))
    h0 = bpgen.Tensor("err_scan_h0", (3,))
    with pytest.raises(BpgenError, match="the new carry must have the structure of init"):
        bpgen.scan(lambda h, x: ((h, h), None), h0, X)
    with pytest.raises(BpgenError, match=r"carry 0 has shape \(3,\) in and \(\) out"):
        bpgen.scan(lambda h, x: (bpgen.sum(h), None), h0, X)
    with pytest.raises(BpgenError, match="give xs or length"):
        bpgen.scan(lambda h, x: (h, None), h0)
    with pytest.raises(BpgenError, match="checkpoint must be a whole number of steps >= 1"):
        bpgen.scan(lambda h, x: (h, None), h0, X, checkpoint=0)
    with pytest.raises(BpgenError, match=r"the step takes \(carry, x\)"):
        bpgen.scan(lambda h: (h, None), h0, X)
    with pytest.raises(BpgenError, match="must return \\(new_carry, y\\)"):
        bpgen.scan(lambda h, x: h, h0, X)
    with pytest.raises(BpgenError, match="length=4 but xs has T steps"):
        bpgen.scan(lambda h, x: (h, None), h0, X, length=4)
    with pytest.raises(BpgenError, match="init must be a bpgen.Tensor, a number or a tuple of them"):
        bpgen.scan(lambda h, x: (h, None), "h", X)


# scan in a SymPy function: scalar carries, length= ----------------------------------------------------------

def _sympy_deep(length: int, jit: bool = False, checkpoint=None):
    import sympy

    def deep_sympy(a, b, c):
        def layer(carry, x):
            a, b, c = carry
            return (sympy.tanh(a * b + c), sympy.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2), None

        (a, b, c), _ = bpgen.scan(layer, (a, b, c), length=length, checkpoint=checkpoint)
        return a * b + c

    return bpgen.function(deep_sympy, jit=jit, name=f"deep_sympy_{length}")


def _deep_reference(length):
    def ref(a, b, c):
        for _ in range(length):
            a, b, c = anp.tanh(a * b + c), anp.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2
        return a * b + c
    return ref


@pytest.mark.parametrize("length", [1, 3, 40])
def test_a_scan_in_a_sympy_function_matches_autograd(length):
    g = _sympy_deep(length)
    point = (0.3, -0.2, 0.1)
    value, grads = g.value_and_grad(*point)
    ref = _deep_reference(length)
    assert value == pytest.approx(ref(*point), rel=1e-13)
    for i in range(3):
        assert float(grads[i]) == pytest.approx(float(autograd.grad(ref, i)(*point)), rel=1e-10, abs=1e-15)
    assert "def layer(a, b, c):" in g.source and "def layer_backward(a, b, c, " in g.source


def test_a_scan_in_a_sympy_function_under_numba_and_batched(numba_agrees):
    g = _sympy_deep(40, jit=True)
    numba_agrees(g, 0.3, -0.2, 0.1)
    values, grads = g.value_and_grad_batch(np.array([0.3, 0.5]), np.array([-0.2, 0.1]), np.array([0.1, 0.2]))
    assert values[1] == pytest.approx(_deep_reference(40)(0.5, 0.1, 0.2), rel=1e-13)
    plain = _sympy_deep(40, checkpoint=7)
    assert plain.value_and_grad(0.3, -0.2, 0.1) == _sympy_deep(40).value_and_grad(0.3, -0.2, 0.1)


def test_a_sympy_scan_refuses_sequences_and_ys():
    import sympy

    x = sympy.Symbol("x", real=True)
    with pytest.raises(BpgenError, match="in a SymPy function there are no sequences"):
        bpgen.scan(lambda c, v: (c, None), x, xs=bpgen.Tensor("seq_for_sympy", (3,)))
    with pytest.raises(BpgenError, match="in a SymPy function the step returns y=None"):
        bpgen.scan(lambda c, v: (c * 2, c), x, length=3)


def test_cli_check_and_show_work_on_a_scanned_function(tmp_path, monkeypatch, capsys):
    from bpgen.tools import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rnn_spec.py").write_text(
        "import bpgen\nfrom bpgen import nn\n\n"
        "@bpgen.function(shapes={'h0': ('N', 4), 'X': ('T', 'N', 3), 'W': (3, 4), 'U': (4, 4)})\n"
        "def elman(h0, X, W, U):\n"
        "    def cell(h, x):\n"
        "        h_next = nn.tanh(x @ W + h @ U)\n"
        "        return h_next, h_next\n"
        "    h, hs = bpgen.scan(cell, h0, X)\n"
        "    return bpgen.sum(hs * hs) + bpgen.sum(h)\n")
    assert cli.main(["check", "rnn_spec.py", "--points", "2", "--python"]) == 0
    assert "FAIL" not in capsys.readouterr().out
    assert cli.main(["show", "rnn_spec.py"]) == 0
    shown = capsys.readouterr().out
    assert "def cell_backward(h, x, W, U, h_next, dh_next, dh_next_1):" in shown and "dU += dU_step" in shown
    assert cli.main(["graph", "rnn_spec.py", "--dims", "N=2,T=3", "--step", "1", "-o", str(tmp_path / "g.svg")]) == 0
    assert "cell: step 1 of 0 to 2" in (tmp_path / "g.svg").read_text()
    assert cli.main(["graph", "rnn_spec.py", "--dims", "T=3", "--step", "3", "-o", str(tmp_path / "g.svg")]) == 2
    assert "the loop cell has 3 steps: --step 3 is not one of them" in capsys.readouterr().err


def test_a_vector_of_outputs_through_a_scan_is_a_one_line_error():
    import sympy

    def vector_scan(a):
        def twice(c, x):
            return c * 1.5 + sympy.sin(c), None

        c, _ = bpgen.scan(twice, a, length=3)
        return (c, c * a)

    with pytest.raises(BpgenError, match="a vector of outputs through bpgen.scan is not available yet"):
        bpgen.function(vector_scan, jit=False)


def test_a_scan_inside_a_step_is_refused_in_one_line():
    with pytest.raises(bpgen.BpgenError, match=r"^step outer: a bpgen.scan inside a step is not supported yet"):
        @bpgen.function(shapes={"X": ("T", "N", 2), "h0": ("N", 2), "W": (2, 2)})
        def nested(X, h0, W):
            def inner(c, x):
                return nn.tanh(c @ W + x), None

            def outer(h, x):
                c, _ = bpgen.scan(inner, h, X)
                return c + x, None

            h, _ = bpgen.scan(outer, h0, X)
            return bpgen.sum(h)


def test_numpy_integers_are_whole_numbers_of_steps():
    import sympy

    r = sympy.Symbol("r", real=True)

    def grow(c, _):
        return c * r, None

    h, _ = bpgen.scan(grow, r, length=np.int64(3), checkpoint=np.int32(2))
    g = bpgen.compile(h, inputs=[r], jit=False)
    assert g.value_and_grad(2.0)[0] == pytest.approx(16.0)
    with pytest.raises(bpgen.BpgenError, match=r"length must be a whole number >= 1, not np.True_"):
        bpgen.scan(grow, r, length=np.bool_(True))


def test_a_sympy_scan_may_start_from_a_number():
    import sympy

    r = sympy.Symbol("r", real=True)

    def grow(c, _):
        return c * r, None

    h, _ = bpgen.scan(grow, 0.5, length=3)
    value, (dr,) = bpgen.compile(h, inputs=[r], jit=False).value_and_grad(2.0)
    assert (value, dr) == (pytest.approx(4.0), pytest.approx(6.0))


def test_a_tensor_scan_may_start_from_a_number():
    X = bpgen.Tensor("X", (4, 3))

    def running(c, x):
        return c + bpgen.sum(x), None

    total, _ = bpgen.scan(running, 0.0, X)
    value, (dX,) = bpgen.compile(total * total, inputs=[X], jit=False).value_and_grad(np.ones((4, 3)))
    assert value == pytest.approx(144.0)
    np.testing.assert_allclose(dX, np.full((4, 3), 24.0))
