"""The gamma family (loggamma, gamma, digamma, polygamma, beta): accurate, and differentiable in every argument.

Python's math has lgamma and gamma but nothing for their derivatives; bpgen's digamma and polygamma helpers
(series, recurrence, reflection) are checked against mpmath here, in plain Python and compiled by Numba, and
the likelihoods users write with them (Student-t in its degrees of freedom, Poisson, Gamma) against
sympy.diff and finite differences.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

import bpgen
from bpgen.rules.table import RULES

x, y, a, b, nu, lam, k = sp.symbols("x y a b nu lam k", real=True)

POSITIVE = list(np.geomspace(1e-3, 1e12, 150)) + list(np.linspace(0.01, 12.0, 300)) + [1.4616321449683622]
NEGATIVE = [v for v in list(-np.geomspace(1e-3, 40.0, 150)) + list(-np.linspace(0.013, 6.0, 200))
            if v != math.floor(v)]


def _ulps(got: float, want) -> float:
    want = float(want)
    return abs(got - want) / math.ulp(abs(want)) if want else abs(got)


@pytest.fixture(scope="module")
def jitted():
    """digamma and polygamma(n) for n = 1..4 as Numba compiles them, one module."""
    return bpgen.compile(sp.digamma(x) + sum(sp.polygamma(n, x) * y**n for n in range(1, 5)), inputs=[x, y],
                         name="gamma_family")


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4])
def test_polygamma_is_within_a_few_ulp_of_mpmath(order):
    helper = RULES["polygamma"].numeric
    with mpmath.workdps(40):
        worst_positive = max(_ulps(helper(order, v), mpmath.polygamma(order, mpmath.mpf(v))) for v in POSITIVE)
        worst_negative = max(abs(helper(order, v) - float(mpmath.polygamma(order, mpmath.mpf(v))))
                             / max(1.0, abs(float(mpmath.polygamma(order, mpmath.mpf(v))))) for v in NEGATIVE)
    assert worst_positive <= 8, worst_positive
    assert worst_negative <= 3e-14, worst_negative  # near its zeros between the poles, an absolute error


def test_numba_computes_what_plain_python_computes(jitted):
    """The helpers as the generated module compiles them give the plain-Python values (to an ulp or two: Numba
    raises to an integer power by repeated products), and the function using
    them its sum."""
    digamma, polygamma = RULES["digamma"].numeric, RULES["polygamma"].numeric
    for v in POSITIVE[::7] + NEGATIVE[::11]:
        assert jitted.module.digamma(v) == pytest.approx(digamma(v), rel=1e-15, abs=1e-300), v
        for n in range(1, 5):
            assert jitted.module.polygamma(float(n), v) == pytest.approx(polygamma(n, v), rel=1e-15, abs=1e-300)
    assert jitted.forward(2.5, 0.5) == pytest.approx(digamma(2.5) + sum(polygamma(n, 2.5) * 0.5**n
                                                                        for n in range(1, 5)), rel=1e-14)


def test_poles_and_edges():
    digamma, polygamma = RULES["digamma"].numeric, RULES["polygamma"].numeric
    for pole in (0.0, -1.0, -7.0):
        assert math.isnan(digamma(pole)) and math.isnan(polygamma(2, pole))
    assert digamma(math.inf) == math.inf and polygamma(3, math.inf) == 0.0
    assert math.isnan(digamma(math.nan)) and math.isnan(digamma(-math.inf))


@pytest.mark.parametrize("expr, point", [
    (sp.loggamma(x), (2.5,)),
    (sp.gamma(x) * y, (1.7, 0.3)),
    (sp.digamma(x), (0.4,)),
    (sp.polygamma(2, x * y), (1.2, 0.8)),
    (sp.beta(a, b), (1.5, 2.5)),
    (k * sp.log(lam) - lam - sp.loggamma(k + 1), (3.0, 2.5)),  # Poisson log-likelihood, in its rate and count
    # Gamma log-density in its shape a and rate b
    (a * sp.log(b) - sp.loggamma(a) + (a - 1) * sp.log(x) - b * x, (2.2, 1.3, 0.9)),
    # Student-t log-density in its degrees of freedom
    (sp.loggamma((nu + 1) / 2) - sp.loggamma(nu / 2) - sp.log(sp.sqrt(nu * sp.pi))
     - (nu + 1) / 2 * sp.log(1 + x**2 / nu), (3.5, 0.7)),
])
@pytest.mark.parametrize("jit", [False, True])
def test_likelihoods_differentiate_against_sympy_and_finite_differences(expr, point, jit):
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    g = bpgen.compile(expr, inputs=symbols, jit=jit)
    value, grads = g.value_and_grad(*point)
    at = dict(zip(symbols, point))
    assert value == pytest.approx(float(expr.subs(at).evalf(30)), rel=1e-13)
    for s, got in zip(symbols, grads):
        want = float(sp.diff(expr, s).subs(at).evalf(30))
        assert got == pytest.approx(want, rel=1e-12, abs=1e-14), (s, got, want)
        h = 1e-6
        up = [v + h if t == s else v for t, v in zip(symbols, point)]
        down = [v - h if t == s else v for t, v in zip(symbols, point)]
        assert got == pytest.approx((g.forward(*up) - g.forward(*down)) / (2 * h), rel=1e-6, abs=1e-8)


def test_the_order_of_polygamma_must_be_a_whole_number():
    for order in (y, sp.Rational(1, 2)):  # (SymPy itself turns polygamma(-1, x) into loggamma)
        with pytest.raises(bpgen.BpgenError, match="polygamma's order must be a whole number from 0"):
            bpgen.compile(sp.polygamma(order, x) + y, inputs=[x, y])


def test_an_underivable_function_is_named_as_the_user_wrote_it():
    with pytest.raises(bpgen.BpgenError) as info:
        bpgen.compile(sp.zeta(x))
    assert "zeta(x)" in str(info.value) and "_bpgen_arg" not in str(info.value)


def test_loggamma_elementwise_on_a_tensor():
    X = bpgen.Tensor("Xlgamma", ("N", 3))
    g = bpgen.compile(bpgen.sum(bpgen.nn.elementwise(sp.Lambda(a, sp.loggamma(a)), X)), inputs=[X], jit=False)
    values = np.array([[0.5, 2.5, 7.0], [1.0, 3.3, 0.1]])
    value, (dX,) = g.value_and_grad(values)
    assert value == pytest.approx(sum(math.lgamma(v) for v in values.ravel()))
    digamma = RULES["digamma"].numeric
    np.testing.assert_allclose(dX, np.vectorize(digamma)(values), rtol=1e-15)


@pytest.mark.parametrize("jit", [False, True])
def test_a_power_of_zero_has_the_limit_gradient_in_its_exponent(jit):
    g = bpgen.compile(x**y, inputs=[x, y], jit=jit)
    value, (dx, dy) = g.value_and_grad(0.0, 2.0)
    assert (value, dx, dy) == (0.0, 0.0, 0.0)
    assert g.value_and_grad(2.0, 3.0) == (8.0, (12.0, pytest.approx(8.0 * math.log(2.0))))
