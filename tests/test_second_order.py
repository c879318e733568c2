"""Second order: g.hvp (forward mode over the reverse pass) and g.hessian, against sympy.diff twice."""

from __future__ import annotations

import math
import re
import zlib

import numpy as np
import pytest
import sympy
from test_corpus import CASES
from test_rules import DIFFERENTIABLE, rule_symbols, sympy_value

import bpgen
from bpgen import nn
from bpgen.rules.table import sympy_builder

x, y, z = sympy.symbols("x y z", real=True)


def _check_hessian(g, expr, inputs, wrt, points, rtol=1e-9):
    """g.hessian at `points` (values of `inputs`) against sympy.diff twice in `wrt`; symmetric to rounding."""
    hessian = [[sympy.diff(expr, a, b) for b in wrt] for a in wrt]
    for point in points:
        at = dict(zip(inputs, point))
        value, grads, H = g.hessian(*point)
        want = np.array([[sympy_value(h, at) for h in row] for row in hessian])
        scale = max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(H, want, rtol=rtol, atol=rtol * scale, err_msg=f"{expr} at {point}")
        np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12 * scale)
        assert value == pytest.approx(sympy_value(expr, at), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("rule", [pytest.param(r, id=r.op) for r in DIFFERENTIABLE if r.shape is None])
def test_every_rules_hessian_matches_sympy_diff_twice(rule):
    syms = rule_symbols(rule)
    expr = sympy_builder(rule)(*syms)
    g = bpgen.compile(expr, inputs=list(syms), jit=False)
    rng = np.random.default_rng(zlib.crc32(("hessian-" + rule.op).encode()))
    _check_hessian(g, expr, syms, syms, [[float(rng.uniform(lo, hi)) for lo, hi in rule.domain] for _ in range(3)])


SMALL_CASES = [c for c in CASES if not c.bug and c.loop is None and c.name not in
               ("deep_100", "deep_50", "deep_residual_60", "many_inputs_50")]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in SMALL_CASES])
def test_corpus_hessians_match_sympy(case):
    expr, inputs, wrt = case.build()
    syms = list(wrt or inputs)
    if len(syms) > 6 or sympy.count_ops(expr) > 150:
        pytest.skip("large: the sympy reference would dominate the run")
    g = bpgen.compile(expr, inputs=list(inputs), wrt=syms, jit=False)
    _check_hessian(g, expr, inputs, syms, case.sample()[:2], rtol=1e-8)


def test_hvp_is_the_hessian_times_the_vector_and_numba_agrees():
    expr = sympy.exp(x * y) / (1 + z**2) + bpgen.sigmoid(x - y) * sympy.log(1 + z**2) + bpgen.softplus(y * z)
    jitted = bpgen.compile(expr, inputs=[x, y, z])
    plain = bpgen.compile(expr, inputs=[x, y, z], jit=False)
    point, vector = (0.3, -0.7, 1.1), (0.5, -2.0, 0.25)
    value, grads, hv = jitted.hvp(*point, vector)
    _, _, H = plain.hessian(*point)
    np.testing.assert_allclose(hv, H @ np.array(vector), rtol=1e-12)
    assert (value, grads) == (jitted.value_and_grad(*point)[0], jitted.value_and_grad(*point)[1])
    p_value, p_grads, p_hv = plain.hvp(*point, vector)
    np.testing.assert_allclose(hv, p_hv, rtol=1e-13)
    assert all(type(h) is float for h in hv)


def test_the_seed_functions_second_order_lines_cite_what_they_differentiate(cs231n_declared):
    g = cs231n_declared
    source = g.hvp_source
    assert "def hvp(x, y, tx, ty):" in source and "return f, (dx, dy), (tdx, tdy)" in source
    for line in ("tdnum = tinvden", "tdinvden = tnum", "tdx = tdxpy", "tdx += tdnum"):
        assert re.search(rf"^    {re.escape(line)} ", source, re.M), line
    assert re.search(r"^    tdden = .*# dden = \(-1\.0 / den\*\*2\) \* dinvden$", source, re.M)
    assert "    tf = " not in source  # the output's own tangent is not needed


def test_hessian_of_a_quadratic_is_exact():
    g = bpgen.compile(3 * x**2 + 2 * x * y - y**2 + 5, inputs=[x, y])
    value, grads, H = g.hessian(1, 2)
    assert H.tolist() == [[6.0, 2.0], [2.0, -2.0]] and H.dtype == np.float64


def test_a_tensor_functions_hvp_and_hessian_blocks():
    X = bpgen.Tensor("Xhvp", ("N", 2))
    w = bpgen.Tensor("whvp", (2,))
    g = bpgen.compile(bpgen.sum(nn.softplus(X @ w)), inputs=[X, w], wrt=[w], jit=False)
    x, v = np.array([[0.5, -1.0], [2.0, 0.25], [-0.3, 0.7]]), np.array([1.0, -2.0])
    s = 1.0 / (1.0 + np.exp(-(x @ np.array([0.3, 0.4]))))
    want = x.T @ (x * (s * (1 - s))[:, None])  # X.T diag(sigmoid') X
    value, grads, (hv,) = g.hvp(x, np.array([0.3, 0.4]), (v,))
    np.testing.assert_allclose(hv, want @ v, rtol=1e-13)
    _, _, ((H,),) = g.hessian(x, np.array([0.3, 0.4]))
    np.testing.assert_allclose(H, want, rtol=1e-13)
    assert H.shape == (2, 2)


def test_generate_puts_tensor_derivatives_in_the_module_and_check_checks_them(tmp_path, monkeypatch, capsys):
    from bpgen.tools import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(
        "import bpgen\nfrom bpgen import nn\n\n"
        "@bpgen.function(shapes={'X': ('N', 3), 'y': ('N',), 'w': (3,), 'b': ()}, wrt=['w', 'b'])\n"
        "def logistic(X, y, w, b):\n"
        "    z = X @ w + b\n"
        "    return bpgen.mean(nn.softplus(z) - y * z) + 0.1 * bpgen.sum(w * w)\n")
    assert cli.main(["generate", "net.py", "--derivatives", "jvp,hessian"]) == 0
    source = (tmp_path / "generated" / "logistic.py").read_text()
    for definition in ("def jvp(X, y, w, b, tw, tb):", "def hvp(X, y, w, b, tw, tb):", "def hessian(X, y, w, b):"):
        assert definition in source
    namespace: dict = {}
    exec(compile(source.replace("@numba.njit", "# @numba.njit"), "logistic.py", "exec"), namespace)  # plain Python
    rng = np.random.default_rng(3)
    X, y, w, b = rng.normal(size=(6, 3)), rng.integers(0, 2, 6).astype(float), rng.normal(size=3), 0.2
    _, _, H = namespace["hessian"](X, y, w, b)
    p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
    A = np.hstack([X, np.ones((6, 1))])
    full = A.T @ (A * (p * (1 - p))[:, None]) / 6 + np.diag([0.2, 0.2, 0.2, 0.0])
    np.testing.assert_allclose(H[0][0], full[:3, :3], rtol=1e-12)
    np.testing.assert_allclose(H[0][1], full[:3, 3], rtol=1e-12)
    assert H[1][1] == pytest.approx(full[3, 3], rel=1e-12) and H[1][0].shape == (3,)
    capsys.readouterr()
    assert cli.main(["check", "net.py", "--derivatives", "jvp,hvp,hessian", "--points", "2", "--python"]) == 0
    out = capsys.readouterr().out
    assert "hvp w" in out and "hessian b" in out and "FAIL" not in out


def test_generate_puts_the_derivatives_in_the_module_and_check_checks_them(tmp_path, monkeypatch, capsys):
    from bpgen.tools import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.py").write_text("import sympy, bpgen\n\n@bpgen.function\ndef f(x, y):\n"
                                      "    s = bpgen.sigmoid(x * y)\n    return s * sympy.exp(y) + x**3\n")
    assert cli.main(["generate", "spec.py", "--derivatives", "jvp,hessian"]) == 0
    source = (tmp_path / "generated" / "f.py").read_text()
    for definition in ("def jvp(x, y, tx, ty):", "def hvp(x, y, tx, ty):", "def hessian(x, y):"):
        assert definition in source
    namespace: dict = {}
    exec(compile(source.replace("@numba.njit", "# @numba.njit"), "f.py", "exec"), namespace)  # plain Python
    g = bpgen.function(lambda x, y: bpgen.sigmoid(x * y) * sympy.exp(y) + x**3, jit=False)
    _, _, H = namespace["hessian"](0.4, -0.3)
    np.testing.assert_allclose(H, g.hessian(0.4, -0.3)[2], rtol=1e-14)
    capsys.readouterr()
    assert cli.main(["check", "spec.py", "--derivatives", "jvp,hvp,hessian", "--points", "2", "--python"]) == 0
    out = capsys.readouterr().out
    assert "jvp        along a random direction" in out and "hessian y" in out and "FAIL" not in out
    assert cli.main(["show", "spec.py", "--derivatives", "hvp"]) == 0
    assert "def hvp(x, y, tx, ty):" in capsys.readouterr().out
    assert cli.main(["generate", "spec.py", "--derivatives", "hesian"]) == 2
    assert "'hesian' is not one of jvp, hvp, hessian" in capsys.readouterr().err


def test_a_declaration_asks_for_the_derivatives_its_module_holds():
    @bpgen.function(derivatives="jvp,hvp", jit=False)
    def held(x, y):
        return sympy.exp(x * y) + x**2

    assert held.artifact.derivatives == ("jvp", "hvp") and "def hvp(x, y, tx, ty):" in held.source
    value, grads, hv = held.module.hvp(0.5, -1.0, 1.0, 0.0)
    assert hv == held.hvp(0.5, -1.0, (1.0, 0.0))[2]
    again = bpgen.compile(held, wrt=[held.inputs[0]])
    assert again.artifact.derivatives == ("jvp", "hvp") and "def jvp(x, y, tx):" in again.source
    assert "def jvp" not in bpgen.compile(held, derivatives=()).source
    with pytest.raises(bpgen.BpgenError, match="unknown derivative 'hesian'"):
        bpgen.compile(sympy.exp(x), derivatives="hesian")


def test_a_hessian_column_never_multiplies_an_infinite_partial_by_a_zero_direction():
    """sqrt(x) * y at x = 0: d/dx is infinite. Each column is the tangent along one input alone, so H is
    symmetric, with the infinities where they belong and H[y, y] = 0 (along (0, 1) as an hvp it would be nan)."""
    x, y = sympy.symbols("x y", real=True)
    g = bpgen.compile(sympy.sqrt(x) * y)
    value, (dx, dy), H = g.hessian(0.0, 2.0)
    assert (value, dx, dy) == (0.0, math.inf, 0.0)
    np.testing.assert_array_equal(H, [[-math.inf, math.inf], [math.inf, 0.0]])
    _, _, H = g.hessian(1.5, 2.0)
    np.testing.assert_allclose(H, [[-2.0 / (4 * 1.5**1.5), 0.5 / math.sqrt(1.5)], [0.5 / math.sqrt(1.5), 0.0]],
                               rtol=1e-14)
    assert "hvp(" not in g.hvp_source.split("def hessian(")[1]  # its own tangent lines, column by column


def test_hessian_counts_the_functions_own_arguments_and_says_hessian():
    x, y = sympy.symbols("x y", real=True)
    g = bpgen.compile(x**2 * y)
    with pytest.raises(TypeError, match=r"^f\.hessian takes 2 arguments \(x, y\), not 1$"):
        g.hessian(3.0)


def test_a_scalar_block_of_a_tensor_hessian_is_a_float():
    @bpgen.function(shapes={"w": (3,), "b": ()})
    def scaled(w, b):
        return bpgen.sum(w * w) * b + b * b

    _, _, H = scaled.hessian(np.ones(3), 2.0)
    assert isinstance(H[1][1], float) and H[1][1] == 2.0
    assert H[0][1].shape == (3,) and H[1][0].shape == (3,) and H[0][0].shape == (3, 3)
    np.testing.assert_allclose(H[0][1], np.full(3, 2.0))
