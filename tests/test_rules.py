"""Every differentiable rule in the rule table, checked against `sympy.diff`.

The tests are parametrized over `RULES` itself, so a new rule is tested
without writing a test: its `sympy_builder` says how to write the op in SymPy
and its `domain` where to sample. Comparisons and logic (partials None) have
no gradient and are skipped by construction.

Also here: SymPy functions outside the table (the generic fallback), and the
documented conventions at kinks (relu'(0) = 0, |x|'(0) = 0, Max/Min ties go
to the first argument) and for sigmoid's partial (written with its output).
"""

from __future__ import annotations

import re
import zlib

import mpmath
import numpy as np
import pytest
import sympy
from helpers import close
from sympy.codegen.cfunctions import expm1, hypot, log1p, log10

import bpgen
from bpgen.frontend.lower import Lowerer
from bpgen.ir.graph import Graph, schedule
from bpgen.rules.algebra import Algebra
from bpgen.rules.table import RULES, sympy_builder

N_POINTS = 5
RTOL = 1e-10

DIFFERENTIABLE = [r for r in RULES.values() if r.partials is not None]

# Rules whose test currently fails because of a bug in bpgen: op -> the bug.
KNOWN_BUGS: dict[str, str] = {}


def known_bug(reason: str):
    """A test that fails because of a bug in bpgen (a BpgenError where none is due); strict: fixing it shows."""
    return pytest.mark.xfail(strict=True, raises=bpgen.BpgenError, reason=reason)


def _rule_params():
    params = []
    for rule in DIFFERENTIABLE:
        marks = [known_bug(KNOWN_BUGS[rule.op])] if rule.op in KNOWN_BUGS else []
        params.append(pytest.param(rule, id=rule.op, marks=marks))
    return params


def sympy_value(expr: sympy.Expr, subs: dict) -> float:
    """`expr` at a point, by SymPy at 30 digits (bpgen's own functions evaluate through their `_eval_evalf`)."""
    exact = {s: sympy.Float(float(v), 30) for s, v in subs.items()}
    value = expr.subs(exact).evalf(30)
    if not value.is_number:
        value = value.rewrite(sympy.exp).evalf(30)
    return float(value)


def check_against_sympy(expr: sympy.Expr, syms, domain, seed: int, n_points: int = N_POINTS):
    """Compile `expr` (jit=False) and compare value and every gradient with `sympy.diff` at random points."""
    compiled = bpgen.compile(expr, inputs=list(syms), jit=False)
    derivatives = [sympy.diff(expr, s) for s in syms]
    rng = np.random.default_rng(seed)
    for _ in range(n_points):
        point = [float(rng.uniform(lo, hi)) for lo, hi in domain]
        subs = dict(zip(syms, point))
        value, grads = compiled.value_and_grad(*point)
        assert len(grads) == len(syms)
        expected = sympy_value(expr, subs)
        assert close(value, expected, RTOL), f"{expr} at {point}: value {value!r} != {expected!r}"
        for s, g, d in zip(syms, grads, derivatives):
            want = sympy_value(d, subs)
            assert close(g, want, RTOL), f"d({expr})/d{s} at {point}: {g!r} != {want!r} ({d})"
    return compiled


def lowered_ops(expr: sympy.Expr, syms) -> set[str]:
    """The ops of the forward program bpgen lowers `expr` to."""
    graph = Graph()
    leaves = {s: graph.input(i, s) for i, s in enumerate(syms)}
    out = Lowerer(Algebra(graph), leaves).lower(expr)
    return {n.op for n in schedule([out])}


def rule_symbols(rule):
    return sympy.symbols(f"a0:{len(rule.domain)}", real=True)


def test_table_has_differentiable_rules():
    ops = {r.op for r in DIFFERENTIABLE}
    assert {"add", "mul", "div", "pow", "exp", "log", "sin", "max", "sigmoid", "select"} <= ops
    for rule in DIFFERENTIABLE:
        assert sympy_builder(rule) is not None, f"rule {rule.op} cannot be written in SymPy, so it is untested"


@pytest.mark.parametrize("rule", _rule_params())
def test_rule_matches_sympy_diff(rule):
    syms = rule_symbols(rule)
    expr = sympy_builder(rule)(*syms)
    check_against_sympy(expr, syms, rule.domain, seed=zlib.crc32(rule.op.encode()))


@pytest.mark.parametrize("rule", _rule_params())
def test_rule_op_is_lowered(rule):
    """The SymPy form really exercises this rule (and not, say, a rewrite into other ops)."""
    syms = rule_symbols(rule)
    expr = sympy_builder(rule)(*syms)
    ops = lowered_ops(expr, syms)
    assert rule.op in ops, f"{expr} lowered to {sorted(ops)}, not to {rule.op}"


# generic fallback: SymPy functions outside the table ------------------------

x_, y_ = sympy.symbols("x y", real=True)

GENERIC_BUGS: dict[str, str] = {}

GENERIC = [
    # name, expression in x (and y), sampling domain
    ("sec", sympy.sec(x_), ((-1.2, 1.2),)),
    ("csc", sympy.csc(x_), ((0.3, 2.8),)),
    ("cot", sympy.cot(x_), ((0.3, 2.8),)),
    ("asinh", sympy.asinh(x_), ((-2.0, 2.0),)),
    ("acosh", sympy.acosh(x_), ((1.2, 4.0),)),
    ("atanh", sympy.atanh(x_), ((-0.9, 0.9),)),
    ("acoth", sympy.acoth(x_), ((1.2, 4.0),)),
    ("coth", sympy.coth(x_), ((0.3, 2.0),)),
    ("erfc", sympy.erfc(x_), ((-2.0, 2.0),)),
    ("log_base_2", sympy.log(x_, 2), ((0.1, 4.0),)),
    ("log1p", log1p(x_), ((-0.5, 3.0),)),
    ("expm1", expm1(x_), ((-2.0, 2.0),)),
    ("log10", log10(x_), ((0.1, 4.0),)),
    ("hypot", hypot(x_, y_), ((-2.0, 2.0), (0.3, 2.0))),
    ("erfc_of_product", sympy.erfc(x_ * y_) + sympy.asinh(x_ - y_), ((-1.5, 1.5), (-1.5, 1.5))),
    ("sech", sympy.sech(x_), ((-2.0, 2.0),)),
    ("csch", sympy.csch(x_), ((0.3, 2.0),)),
    ("acot", sympy.acot(x_), ((0.3, 2.0),)),
]


@pytest.mark.parametrize(("name", "expr", "domain"), [
    pytest.param(*g, id=g[0], marks=[known_bug(GENERIC_BUGS[g[0]])]
                 if g[0] in GENERIC_BUGS else []) for g in GENERIC])
def test_generic_function_matches_sympy_diff(name, expr, domain):
    syms = [x_, y_][:len(domain)]
    assert expr.free_symbols <= set(syms)
    check_against_sympy(expr, syms, domain, seed=zlib.crc32(name.encode()))


def test_undefined_function_is_a_bpgen_error():
    mystery = sympy.Function("mystery")
    with pytest.raises(bpgen.BpgenError, match="mystery"):
        bpgen.compile(mystery(x_) + x_, inputs=[x_], jit=False)


@pytest.mark.parametrize("expr", [sympy.LambertW(x_), sympy.floor(x_) * x_], ids=["LambertW", "floor"])
def test_unsupported_function_is_a_bpgen_error(expr):
    """No Numba form (LambertW) or no derivative (floor): a BpgenError naming the function, nothing else."""
    func = sorted(expr.atoms(sympy.Function), key=str)[0].func.__name__
    with pytest.raises(bpgen.BpgenError, match=func):
        bpgen.compile(expr, inputs=[x_], jit=False)


# conventions at kinks -------------------------------------------------------


def test_relu_derivative_at_zero_is_zero():
    f = bpgen.compile(bpgen.relu(x_), inputs=[x_], jit=False)
    assert f.value_and_grad(0.0) == (0.0, (0.0,))
    assert f.value_and_grad(-0.0)[1] == (0.0,)
    assert f.value_and_grad(1e-300) == (1e-300, (1.0,))
    assert f.value_and_grad(-1e-300) == (0.0, (0.0,))


def test_max_with_zero_at_zero_matches_relu_convention():
    f = bpgen.compile(sympy.Max(x_, 0), inputs=[x_], jit=False)
    assert f.value_and_grad(0.0) == (0.0, (0.0,))
    assert f.value_and_grad(2.0) == (2.0, (1.0,))


def test_abs_derivative_at_zero_is_zero():
    f = bpgen.compile(sympy.Abs(x_), inputs=[x_], jit=False)
    assert f.value_and_grad(0.0) == (0.0, (0.0,))
    assert f.value_and_grad(-3.0) == (3.0, (-1.0,))
    assert f.value_and_grad(3.0) == (3.0, (1.0,))


@pytest.mark.parametrize("lattice", [sympy.Max, sympy.Min])
@pytest.mark.parametrize("names", ["x y", "y x", "b a", "p q r", "r q p"])
def test_tie_routes_gradient_to_first_argument(lattice, names):
    """At a tie, the whole gradient goes to the first argument in SymPy's order, `expr.args[0]`."""
    syms = sympy.symbols(names, real=True)
    expr = lattice(*syms)
    first = expr.args[0]
    # inputs in the order the user gave, which need not be SymPy's argument order
    f = bpgen.compile(expr, inputs=list(syms), jit=False)
    value, grads = f.value_and_grad(*[0.5] * len(syms))
    assert value == 0.5
    assert grads == tuple(1.0 if s == first else 0.0 for s in syms)
    # the same in reversed input order
    g = bpgen.compile(expr, inputs=list(reversed(syms)), jit=False)
    _, grads = g.value_and_grad(*[0.5] * len(syms))
    assert grads == tuple(1.0 if s == first else 0.0 for s in reversed(syms))


@pytest.mark.parametrize("lattice", [sympy.Max, sympy.Min])
def test_partial_tie_routes_to_first_tied_argument(lattice):
    a, b, c = sympy.symbols("a b c", real=True)
    expr = lattice(a, b, c)
    assert expr.args == (a, b, c)
    f = bpgen.compile(expr, inputs=[a, b, c], jit=False)
    loser = -5.0 if lattice is sympy.Max else 5.0
    assert f.value_and_grad(loser, 1.0, 1.0)[1] == (0.0, 1.0, 0.0)
    assert f.value_and_grad(1.0, loser, 1.0)[1] == (1.0, 0.0, 0.0)
    assert f.value_and_grad(1.0, 1.0, loser)[1] == (1.0, 0.0, 0.0)
    winner = 5.0 if lattice is sympy.Max else -5.0
    assert f.value_and_grad(1.0, 1.0, winner)[1] == (0.0, 0.0, 1.0)


def _value_and_grad_body(source: str) -> tuple[str, str]:
    """The forward and backward sections of the generated `value_and_grad`."""
    body = source.split("def value_and_grad(", 1)[1].split("\ndef ", 1)[0]
    forward, backward = body.split("# backward", 1)
    return forward, backward


def test_sigmoid_partial_is_written_with_its_output():
    f = bpgen.compile(bpgen.sigmoid(x_), inputs=[x_], jit=False)
    forward, backward = _value_and_grad_body(f.source)
    assert forward.count("sigmoid(") == 1
    assert "(1.0 - " in backward
    backward_code = "\n".join(line.split("#", 1)[0] for line in backward.splitlines())
    assert "sigmoid(" not in backward_code, backward
    value, (d,) = f.value_and_grad(0.7)
    s = 1.0 / (1.0 + np.exp(-0.7))
    assert close(value, s, 1e-15) and close(d, s * (1.0 - s), 1e-15)


def test_sigmoid_partial_in_a_composition_reuses_the_forward_value():
    f = bpgen.compile(bpgen.sigmoid(x_ * y_) + x_, inputs=[x_, y_], jit=False)
    forward, backward = _value_and_grad_body(f.source)
    assert forward.count("sigmoid(") == 1
    backward_code = "\n".join(line.split("#", 1)[0] for line in backward.splitlines())
    assert "sigmoid(" not in backward_code and "(1.0 - " in backward_code


def test_sigmoid_is_stable_far_from_zero():
    f = bpgen.compile(bpgen.sigmoid(x_), inputs=[x_], jit=False)
    assert f.value_and_grad(-800.0) == (0.0, (0.0,))
    assert f.value_and_grad(800.0) == (1.0, (0.0,))
    g = bpgen.compile(bpgen.softplus(x_), inputs=[x_], jit=False)
    assert g.value_and_grad(800.0) == (800.0, (1.0,))
    value, (d,) = g.value_and_grad(-800.0)
    assert value == 0.0 and d == 0.0


def test_select_rule_with_explicit_conditions():
    """The select rule checked through a Piecewise whose last condition is explicit (no `True` branch)."""
    s, a, b = sympy.symbols("a0:3", real=True)
    expr = sympy.Piecewise((a * b, s > 0), (sympy.sin(a) - b, s <= 0), evaluate=False)
    assert sympy.true not in [pair.cond for pair in expr.args]
    assert "select" in lowered_ops(expr, [s, a, b])
    check_against_sympy(expr, [s, a, b], RULES["select"].domain, seed=7, n_points=8)


# forms chosen for accuracy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("expr, at, exact", [
    (sympy.tanh(x_), 15.0, lambda v: 1 / mpmath.cosh(v) ** 2),  # 1 - tanh**2 would keep 3 digits of 16 here
    (sympy.asin(x_), 1 - 2.0**-40, lambda v: 1 / mpmath.sqrt(1 - v**2)),
    (sympy.acos(x_), -1 + 2.0**-40, lambda v: -1 / mpmath.sqrt(1 - v**2)),
])
def test_one_minus_a_square_keeps_its_digits_near_one(expr, at, exact):
    g = bpgen.compile(expr, inputs=[x_], jit=False)
    (got,) = g.grad(at)
    with mpmath.workdps(40):
        want = float(exact(mpmath.mpf(at)))
    assert got == pytest.approx(want, rel=1e-14)


def test_a_quotients_numerator_gets_upstream_over_divisor():
    """d(a/b)/da * g is printed as g / b: one division, not (1.0 / b) * g."""
    source = bpgen.compile(sympy.sin(x_ / y_), inputs=[x_, y_], jit=False).source
    assert re.search(r"^    dx = \w+ / y\b", source, re.M), source
    assert "(1.0 / y)" not in source
