"""Forward mode: g.jvp(*args, tangents), generated in the staged style, from the same rule table."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest
import sympy
from test_corpus import CASES, compiled
from test_rules import DIFFERENTIABLE, rule_symbols, sympy_value

import bpgen
from bpgen.rules.table import sympy_builder

x, y = sympy.symbols("x y", real=True)


@pytest.mark.parametrize("rule", [pytest.param(r, id=r.op) for r in DIFFERENTIABLE if r.shape is None])
def test_every_rules_jvp_matches_sympy_diff(rule):
    """The derivative along a random direction, against the directional derivative from sympy.diff."""
    syms = rule_symbols(rule)
    expr = sympy_builder(rule)(*syms)
    g = bpgen.compile(expr, inputs=list(syms), jit=False)
    rng = np.random.default_rng(zlib.crc32(("jvp-" + rule.op).encode()))
    for _ in range(4):
        point = [float(rng.uniform(lo, hi)) for lo, hi in rule.domain]
        direction = [float(rng.normal()) for _ in syms]
        value, tangent = g.jvp(*point, tuple(direction))
        at = dict(zip(syms, point))
        want = sum(t * sympy_value(sympy.diff(expr, s), at) for t, s in zip(direction, syms))
        assert value == pytest.approx(sympy_value(expr, at), rel=1e-10, abs=1e-10)
        assert tangent == pytest.approx(want, rel=1e-10, abs=1e-10), (rule.op, point, direction)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES if not c.bug])
def test_jvp_is_the_gradient_along_the_direction(case):
    """On the corpus of real functions: jvp(t) = grad . t, exactly as the reverse pass computes it, to rounding."""
    g = compiled(case)
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    for point in case.sample()[:3]:
        direction = tuple(float(v) for v in rng.normal(size=len(g.wrt)))
        value, grads = g.value_and_grad(*point)
        jvp_value, tangent = g.jvp(*point, direction)
        assert jvp_value == value
        want = sum(d * t for d, t in zip(grads, direction))
        assert tangent == pytest.approx(want, rel=1e-9, abs=1e-9 * max(1.0, max(map(abs, grads), default=1.0)))


def test_the_seed_functions_tangent_lines_read_like_the_notes(cs231n_declared):
    g = cs231n_declared
    source = g.jvp_source
    assert "def jvp(x, y, tx, ty):" in source
    for line in ("tsigy = ((1.0 - sigy) * sigy) * ty", "tnum = tx", "tnum += tsigy",
                 "tinvden = (-1.0 / den**2) * tden", "tf = invden * tnum", "tf += num * tinvden", "return f, tf"):
        assert re.search(rf"^    {re.escape(line)}\b", source, re.M), line
    assert "# sigy = sigmoid(y)" in source


def test_numba_and_python_agree_and_arguments_are_converted():
    expr = sympy.exp(x * y) / (1 + y**2) + bpgen.sigmoid(x - y)
    jitted, plain = bpgen.compile(expr, inputs=[x, y]), bpgen.compile(expr, inputs=[x, y], jit=False)
    for point in [(0.3, -1.2), (2, 3), (np.float32(0.5), np.int8(-2))]:
        value, tangent = jitted.jvp(*point, (1.5, -0.25))
        assert (value, tangent) == pytest.approx(plain.jvp(*point, (1.5, -0.25)), rel=1e-14)
        assert type(value) is float and type(tangent) is float
    assert jitted.jvp(0.3, -1.2, (1, 0))[1] == pytest.approx(jitted.grad(0.3, -1.2)[0], rel=1e-14)


def test_one_input_takes_a_bare_tangent_and_wrong_counts_are_clear():
    g = bpgen.compile(sympy.sin(x) * y, inputs=[x, y], wrt=[x], jit=False)
    assert g.jvp(0.5, 2.0, 1.0) == g.jvp(0.5, 2.0, (1.0,))
    with pytest.raises(TypeError, match=r"f.jvp: 2 tangents for 1 inputs in wrt \(x\)"):
        g.jvp(0.5, 2.0, (1.0, 0.0))
    h = bpgen.compile(sympy.sin(x) * y, inputs=[x, y], jit=False)
    with pytest.raises(TypeError, match="the tangents must be a tuple of 2 numbers"):
        h.jvp(0.5, 2.0, 1.0)


def test_a_tensor_functions_jvp_reads_its_batch_size_and_checks_its_tangents():
    X = bpgen.Tensor("Xjvp", ("N", 2))
    g = bpgen.compile(bpgen.sum(X * X), inputs=[X], jit=False)
    x, t = np.arange(6.0).reshape(3, 2), np.ones((3, 2))
    value, tangent = g.jvp(x, (t,))
    assert value == float(np.sum(x * x)) and tangent == pytest.approx(float(np.sum(2 * x * t)), rel=1e-15)
    with pytest.raises(ValueError, match=r"tXjvp has N=2 on axis 0, but Xjvp has N=3"):
        g.jvp(x, (np.ones((2, 2)),))
