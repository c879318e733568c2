"""A corpus of scalar functions, each checked end to end.

For every case: the value and every gradient against central finite
differences (of the jit=False forward) and against `sympy.diff` (evaluated by
`lambdify` over `math`); the deep compositions, too big for `sympy.diff`, are
checked against autograd running the same loop instead. Then the Numba build
of every case must agree with the plain-Python build, and the batch, `grad`
and `forward` entry points with `value_and_grad`.

Each case compiles once per mode (a module-level cache), so the file stays fast.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
import sympy
from helpers import close

import bpgen
from bpgen import relu, sigmoid, softplus

x, y, z = sympy.symbols("x y z", real=True)


# the corpus -------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable  # () -> (expr, inputs, wrt or None); for deep cases () -> CompiledFunction (jit=False)
    domain: tuple[tuple[float, float], ...] | None = None  # sample points uniformly in this box
    points: tuple[tuple[float, ...], ...] = ()  # and/or at these points
    n_random: int = 3
    loop: tuple[Callable, int] | None = None  # deep cases: (loop, depth), the function as a plain Python loop
    bug: str | None = None  # a known bpgen bug makes this case fail: xfail(strict=True)

    def sample(self) -> list[tuple[float, ...]]:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        found = [tuple(map(float, p)) for p in self.points]
        if self.domain is not None:
            for _ in range(self.n_random):
                found.append(tuple(float(rng.uniform(lo, hi)) for lo, hi in self.domain))
        return found


def expression(expr, inputs=(x, y), wrt=None):
    return lambda: (expr() if callable(expr) else expr, list(inputs), wrt)


def cs231n():
    return (x + sigmoid(y)) / (sigmoid(x) + (x + y) ** 2)


def shared_sin():
    t = sympy.sin(x * y)
    return t * t + sympy.exp(t)


def shared_logistic():
    u = x * y + z
    v = sympy.exp(u)
    return v / (1 + v) + u * v - sympy.log(1 + v) * u


def unevaluated_arithmetic():
    with sympy.evaluate(False):
        return 2 * (x + y) - (x - y) / (1 + x**2) + x - x + x * x * x + y + y - 3 * (y - 1)


def unevaluated_functions():
    with sympy.evaluate(False):
        return (sympy.exp(sympy.log(x)) * sympy.sqrt(x**2) / x + (x + 1) ** 2 - (x**2 + 2 * x + 1)
                + y * y * y + sympy.sin(x) ** 2 + sympy.cos(x) ** 2 + x ** sympy.Rational(1, 2) * y)


def piecewise_explicit():
    return sympy.Piecewise((x**2 * y, x < 1), (2 * x - 1 + sympy.sin(x - 1) * y, x >= 1), evaluate=False)


def piecewise_default():
    return sympy.Piecewise((sympy.sin(x), x < -1), (x * y, x < 1), (sympy.cos(y) + x, True))


# input names that clash with what generated code uses: modules, helpers, adjoint names, batch locals, keywords
AWKWARD = sympy.symbols("math dx f sigmoid n i values lambda x", real=True)


def awkward_names():
    math_, dx, f, sig, n, i, values, lam, x_ = AWKWARD
    return (sigmoid(math_ * dx) + f**2 + sympy.sin(f) * sig + n * i - values * lam + x_ * dx
            + softplus(values - n) * sympy.exp(lam / 4))


MANY = sympy.symbols("x0:50", real=True)


def many_inputs():
    ring = sum(sympy.sin(MANY[i] * MANY[(i + 1) % 50]) for i in range(50))
    return ring + sympy.Mul(*MANY) + MANY[7] ** 2 / (1 + MANY[31] ** 2)


def deep_loop(L, tanh, sin):
    def f(a, b, c):
        for _ in range(L):
            a, b, c = tanh(a * b + c), sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2
        return a + b + c
    return f


def residual_loop(L, tanh, sin):
    def f(a, b, c):
        for _ in range(L):
            a, b, c = a + sin(b - c) / 8, b + tanh(c + a) / 8, c - a * b / (8 * (1 + a**2 + b**2))
        return a * b + c
    return f


def declare_deep(loop, L):
    """`@bpgen.function` over the loop, the way a user writes it (SymPy builds it under evaluate(False))."""
    body = loop(L, sympy.tanh, sympy.sin)

    def deep(a, b, c):
        return body(a, b, c)

    deep.__name__ = deep.__qualname__ = f"{loop.__name__}{L}"
    return lambda: bpgen.function(deep, jit=False)


SQ = ((-2.0, 2.0), (-2.0, 2.0))
POS = ((0.3, 3.0), (0.3, 3.0))
CUBE = ((-1.5, 1.5),) * 3

CASES = [
    Case("cs231n", expression(cs231n), SQ, points=((3.0, -4.0),)),
    Case("shared_sin", expression(shared_sin), SQ),
    Case("shared_logistic", expression(shared_logistic, (x, y, z)), CUBE),
    Case("poly_cubic", expression(3 * x**3 - 2 * x**2 * y + y**4 - 7 * x + 1), SQ),
    Case("poly_expanded", expression(sympy.expand((x + 2 * y - 1) ** 7)), ((-1.0, 1.0), (-1.0, 1.0))),
    Case("poly_unexpanded", expression((x + 2 * y - 1) ** 7 + (x * y) ** 3 - x * y * z, (x, y, z)),
         ((-1.0, 1.0),) * 3),
    Case("rational", expression((x**2 + 1) / (y**2 + x * y + 3)), SQ),
    Case("rational_negative_powers", expression(1 / (1 + x**2) - x / (y**2 + 2) ** 3 + x**-2 - 3 / (x * y)), POS),
    Case("nested_sin_exp_cos", expression(sympy.sin(sympy.exp(sympy.cos(x * y)))), SQ),
    Case("nested_log_exp", expression(sympy.log(1 + sympy.exp(sympy.sin(x)) + y**2)), SQ),
    Case("nested_sqrt", expression(sympy.sqrt(1 + x**2 + sympy.sqrt(1 + y**2)) * sympy.sqrt(x**2 + 0.5)), SQ),
    Case("inverse_trig", expression(sympy.atan(sympy.tanh(x) * y) + sympy.asin(x / 3) + sympy.acos(y / 4)), SQ),
    Case("variable_powers", expression(x**y + y**x + (x + y) ** sympy.sin(x)), POS),
    Case("erf_hyperbolic", expression(sympy.erf(x) * sympy.cosh(y) - sympy.sinh(x * y) / (1 + sympy.cosh(x))), SQ),
    Case("tan_tanh", expression(sympy.tan(x / 2) * sympy.tanh(y) + sympy.tan(x * y / 5) ** 2), SQ),
    Case("atan2_polar", expression(sympy.sqrt(x**2 + y**2) * sympy.atan2(y, x)),
         points=((1.0, 0.5), (-1.2, 0.7), (-0.8, -1.1), (0.4, -1.6), (2.0, 0.0), (0.0, 1.5))),
    Case("atan2_nested", expression(sympy.atan2(sympy.sin(x), 1 + y**2) * sympy.exp(-x * y) + sympy.atan2(x, y)),
         points=((1.0, 0.5), (-1.2, 0.7), (0.3, -1.1))),
    Case("max_min", expression(sympy.Max(x, y, z) - sympy.Min(x * y, z) + sympy.Max(x, 1), (x, y, z)),
         ((-2.0, 2.0),) * 3, n_random=5),
    Case("abs", expression(sympy.Abs(x - y) + sympy.Abs(x * y) + sympy.Abs(sympy.sin(x)) * y), SQ, n_random=5),
    Case("piecewise_explicit", expression(piecewise_explicit), SQ, points=((0.5, 1.5), (1.5, -0.5)), n_random=4),
    Case("piecewise_default", expression(piecewise_default), SQ, points=((-1.5, 0.5), (0.5, 1.5), (1.5, -0.5))),
    Case("relu_mlp", expression(0.7 * relu(1.5 * x - 0.5 * y + 0.2) - 1.3 * relu(-x + 2 * y - 0.3)
                                + softplus(x * y) + relu(relu(x) - relu(y))), SQ, n_random=5),
    Case("sigmoid_nested", expression(sigmoid(sigmoid(x) * y - z) * softplus(z - x), (x, y, z)), CUBE),
    Case("softplus_log", expression(softplus(x * y) - sympy.log(1 + softplus(-x)) + sigmoid(x) * sigmoid(-y)), SQ),
    Case("unevaluated_arithmetic", expression(unevaluated_arithmetic), SQ),
    Case("unevaluated_functions", expression(unevaluated_functions), POS),
    Case("unused_input", expression(sympy.sin(x) * y + y**2, (x, y, z)), CUBE),
    Case("wrt_subset", expression(x * sympy.exp(y * z) + z**2, (x, y, z), wrt=[z, x]), CUBE),
    Case("wrt_reordered", expression(x**2 * sympy.cos(y) + 3 * y, (x, y), wrt=[y, x]), SQ),
    Case("output_is_an_input", expression(x, (x, y)), SQ),
    Case("constant_output", expression(sympy.Integer(3), (x, y)), SQ),
    Case("named_constants", expression(sympy.pi * x + sympy.E**y + sympy.sqrt(2) * x * y - sympy.exp(1) / 3), SQ),
    Case("fractional_powers", expression(x**-3 + y ** (-0.5) + (x * y) ** 1.5 + (x + y) ** sympy.Rational(1, 3)),
         POS),
    Case("generic_functions", expression(sympy.asinh(x * y) + sympy.erfc(x - y) + sympy.acosh(1 + x**2)), SQ),
    Case("awkward_names", expression(awkward_names, AWKWARD), ((-1.5, 1.5),) * 9),
    Case("many_inputs_50", expression(many_inputs, MANY), ((0.8, 1.2),) * 50, n_random=2),
    Case("deep_50", declare_deep(deep_loop, 50), CUBE, n_random=2, loop=(deep_loop, 50)),
    Case("deep_100", declare_deep(deep_loop, 100), CUBE, n_random=2, loop=(deep_loop, 100)),
    Case("deep_residual_60", declare_deep(residual_loop, 60), CUBE, n_random=2, loop=(residual_loop, 60)),
]

BY_NAME = {case.name: case for case in CASES}
assert len(BY_NAME) == len(CASES), "case names are unique"


def case_params(cases=CASES):
    """Cases as pytest params; a case with a known bpgen bug is a strict xfail (fixing the bug shows)."""
    return [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, raises=bpgen.BpgenError, reason=c.bug)]
                         if c.bug else []) for c in cases]


# compiled once per case and mode ------------------------------------------------

_COMPILED: dict[tuple[str, bool], bpgen.CompiledFunction] = {}
_SYMBOLIC: dict[str, tuple] = {}


def compiled(case: Case, jit: bool = False) -> bpgen.CompiledFunction:
    key = (case.name, jit)
    if key not in _COMPILED:
        if jit:
            _COMPILED[key] = bpgen.compile(compiled(case), jit=True)
        elif case.loop is not None:
            _COMPILED[key] = case.build()
        else:
            expr, inputs, wrt = case.build()
            _COMPILED[key] = bpgen.compile(expr, inputs=inputs, wrt=wrt, name=case.name, jit=False)
    return _COMPILED[key]


def _heaviside(t, h0=0.5):
    return 1.0 if t > 0 else 0.0 if t < 0 else h0


NUMERIC = {
    "sigmoid": lambda t: 1.0 / (1.0 + math.exp(-t)),
    "softplus": lambda t: math.log1p(math.exp(t)),
    "relu": lambda t: max(t, 0.0),
    "Heaviside": _heaviside,
}


def symbolic(case: Case):
    """(value, [d/dw for w in wrt]) as plain-Python functions of the inputs, from `sympy.diff`."""
    if case.name not in _SYMBOLIC:
        expr, inputs, wrt = case.build()
        wrt = inputs if wrt is None else wrt
        exprs = [expr] + [sympy.diff(expr, w) for w in wrt]
        # plain argument names: an input called `sigmoid` or `math` must not shadow what lambdify calls
        plain = {s: sympy.Symbol(f"v{k}", real=True) for k, s in enumerate(inputs)}
        args = [plain[s] for s in inputs]
        lam = [sympy.lambdify(args, e.xreplace(plain), modules=[NUMERIC, "math"]) for e in exprs]
        _SYMBOLIC[case.name] = (lam[0], lam[1:])
    return _SYMBOLIC[case.name]


# finite differences ---------------------------------------------------------------


def central_difference(forward, point, i, h_rel=1e-6):
    h = h_rel * max(1.0, abs(point[i]))
    up, down = list(point), list(point)
    up[i] += h
    down[i] -= h
    return (forward(*up) - forward(*down)) / (up[i] - down[i])


@pytest.mark.parametrize("case", case_params())
def test_against_finite_differences(case):
    f = compiled(case)
    wrt_index = [f.inputs.index(w) for w in f.wrt]
    for point in case.sample():
        value, grads = f.value_and_grad(*point)
        assert len(grads) == len(f.wrt)
        assert value == f.forward(*point)
        for i, g in zip(wrt_index, grads):
            fd = central_difference(f.forward, point, i)
            # error of the difference: h**2 truncation plus ~eps*|f|/h rounding, both far below this
            tol = 1e-6 * max(1.0, abs(fd), abs(value))
            assert abs(g - fd) <= tol, f"{case.name} at {point}: d/d{f.inputs[i]} = {g!r}, finite difference {fd!r}"


SYMBOLIC_CASES = [c for c in CASES if c.loop is None]


@pytest.mark.parametrize("case", case_params(SYMBOLIC_CASES))
def test_against_sympy_diff(case):
    f = compiled(case)
    value_fn, grad_fns = symbolic(case)
    for point in case.sample():
        value, grads = f.value_and_grad(*point)
        assert close(value, value_fn(*point), 1e-12), f"{case.name} at {point}: value"
        assert len(grads) == len(grad_fns)
        for w, g, d in zip(f.wrt, grads, grad_fns):
            want = float(d(*point))
            assert close(g, want, 1e-10), f"{case.name} at {point}: d/d{w} = {g!r}, sympy.diff gives {want!r}"


DEEP_CASES = [c for c in CASES if c.loop is not None]


@pytest.mark.parametrize("case", case_params(DEEP_CASES))
def test_deep_against_autograd(case):
    """The deep cases against reverse mode done by autograd on the same loop.

    `deep_50`/`deep_100` contract to a fixed point, so their gradients are tiny (1e-6 down to 1e-21)
    and finite differences cannot see them; autograd can, to a relative precision.
    """
    f = compiled(case)
    loop, depth = case.loop
    plain = loop(depth, math.tanh, math.sin)
    traced = loop(depth, anp.tanh, anp.sin)
    gradient = autograd.grad(lambda v: traced(v[0], v[1], v[2]))
    for point in case.sample():
        value, grads = f.value_and_grad(*point)
        assert close(value, plain(*point), 1e-12)
        want = gradient(np.array(point))
        for g, w in zip(grads, want):
            assert abs(g - w) <= 1e-9 * abs(w) + 1e-300, f"{case.name} at {point}: {grads} != {want}"


# particular cases -------------------------------------------------------------------


def test_cs231n_known_gradient():
    value, (dx, dy) = compiled(BY_NAME["cs231n"]).value_and_grad(3.0, -4.0)
    assert round(dx, 5) == 2.05957
    assert round(dy, 5) == 1.59223
    assert value == pytest.approx((3 + 1 / (1 + math.exp(4))) / (1 / (1 + math.exp(-3)) + 1), rel=1e-14)


def test_unused_input_gradient_is_exactly_zero():
    f = compiled(BY_NAME["unused_input"])
    for point in BY_NAME["unused_input"].sample():
        _, (dx, dy, dz) = f.value_and_grad(*point)
        assert dz == 0.0 and isinstance(dz, float)
        assert dx != 0.0 and dy != 0.0


def test_constant_and_identity_gradients_are_exact():
    assert compiled(BY_NAME["constant_output"]).value_and_grad(0.3, -0.2) == (3.0, (0.0, 0.0))
    assert compiled(BY_NAME["output_is_an_input"]).value_and_grad(0.3, -0.2) == (0.3, (1.0, 0.0))


def test_wrt_order_is_the_gradient_order():
    f = compiled(BY_NAME["wrt_subset"])
    assert f.inputs == (x, y, z) and f.wrt == (z, x)
    a, b, c = 0.4, -0.7, 1.1
    value, (dz, dx) = f.value_and_grad(a, b, c)
    assert value == pytest.approx(a * math.exp(b * c) + c**2, rel=1e-14)
    assert dz == pytest.approx(a * b * math.exp(b * c) + 2 * c, rel=1e-14)
    assert dx == pytest.approx(math.exp(b * c), rel=1e-14)
    g = compiled(BY_NAME["wrt_reordered"])
    _, (dy, dx) = g.value_and_grad(a, b)
    assert dy == pytest.approx(-a**2 * math.sin(b) + 3, rel=1e-14)
    assert dx == pytest.approx(2 * a * math.cos(b), rel=1e-14)
    # the same expression re-targeted to other wrt orders
    for wrt in ([x, y], [y], [x]):
        h = bpgen.compile(g, wrt=wrt, jit=False)
        full = dict(zip((y, x), (dy, dx)))
        assert h.value_and_grad(a, b)[1] == tuple(full[w] for w in wrt)


def test_shared_subexpression_is_computed_once():
    source = compiled(BY_NAME["shared_sin"]).source
    forward = source.split("def forward(", 1)[1].split("\ndef ", 1)[0]
    assert forward.count("math.sin(") == 1
    assert forward.count("math.exp(") == 1


@pytest.mark.parametrize("loop, L", [(deep_loop, 50), (deep_loop, 100), (residual_loop, 60)])
def test_deep_composition_builds_quickly(loop, L):
    start = time.perf_counter()
    f = declare_deep(loop, L)()
    f.value_and_grad(0.1, 0.2, 0.3)
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"building a {L}-layer composition took {elapsed:.1f} s"
    # DAG, not tree: the generated code grows linearly with depth
    assert len(f.source.splitlines()) < 60 * L


# Numba against plain Python ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("case", case_params())
def test_numba_agrees_with_python(case, numba_agrees):
    python, numba_build = compiled(case), compiled(case, jit=True)
    assert "@numba.njit" in numba_build.source and "@numba.njit" not in python.source
    for point in case.sample():
        value, _ = numba_agrees(numba_build, *point)
        assert numba_build.forward(*point) == value


# entry points -------------------------------------------------------------------------


@pytest.mark.parametrize("case", case_params())
def test_grad_and_forward_agree_with_value_and_grad(case):
    f = compiled(case)
    for point in case.sample():
        value, grads = f.value_and_grad(*point)
        assert f.forward(*point) == value
        assert f.grad(*point) == grads


# many_inputs_50 in plain Python only: a Numba batch function of 50 arrays takes seconds to compile
BATCH_CASES = [("cs231n", False), ("relu_mlp", False), ("many_inputs_50", False), ("awkward_names", False),
               ("cs231n", True), ("relu_mlp", True), ("shared_logistic", True)]


@pytest.mark.parametrize(("name", "jit"), BATCH_CASES,
                         ids=[f"{'numba' if jit else 'python'}-{name}" for name, jit in BATCH_CASES])
def test_value_and_grad_batch(name, jit):
    case = BY_NAME[name]
    f = compiled(case, jit=jit)
    rng = np.random.default_rng(1)
    lo, hi = np.array(case.domain).T
    points = rng.uniform(lo, hi, size=(1000, len(lo)))
    columns = [np.ascontiguousarray(points[:, k]) for k in range(len(lo))]
    values, grads = f.value_and_grad_batch(*columns)
    assert values.shape == (1000,) and len(grads) == len(f.wrt)
    assert all(g.shape == (1000,) for g in grads)
    for k in range(1000):
        value, point_grads = f.value_and_grad(*(float(c) for c in points[k]))
        assert close(values[k], value, 1e-14)
        for column, g in zip(grads, point_grads):
            assert close(column[k], g, 1e-14)
    if jit:
        grads_only = f.grad(*points[0])
        assert grads_only == f.value_and_grad(*points[0])[1]


def test_batch_rejects_mismatched_lengths():
    f = compiled(BY_NAME["cs231n"], jit=True)
    with pytest.raises(ValueError, match="differ in length"):
        f.value_and_grad_batch(np.zeros(3), np.zeros(4))
