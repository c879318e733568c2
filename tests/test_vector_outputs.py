"""Several scalar outputs: forward gives their array, jvp and vjp their directional derivatives, jacobian J."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import bpgen

r, th, ph, z = sympy.symbols("r theta phi z", real=True)

CASES = {
    "polar": ([r * sympy.cos(th), r * sympy.sin(th)], [r, th], (2.0, 0.5)),  # square
    "wide": ([r * th * z + sympy.exp(r - z), r + th + z], [r, th, z], (0.3, -1.2, 0.8)),  # m < n: vjp rows
    "tall": ([sympy.sin(r), r**2, bpgen.sigmoid(r), r * sympy.exp(-r)], [r], (0.7,)),  # m > n: jvp columns
}


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_jacobian_matches_sympy(name, jit):
    outputs, inputs, point = CASES[name]
    g = bpgen.compile(sympy.Matrix(outputs), inputs=inputs, name=name, jit=jit)
    values, J = g.jacobian(*point)
    at = dict(zip(inputs, point))
    want = np.array(sympy.Matrix(outputs).jacobian(inputs).subs(at).evalf(30), dtype=float)
    np.testing.assert_allclose(values, [float(o.subs(at).evalf(30)) for o in outputs], rtol=1e-14)
    np.testing.assert_allclose(J, want, rtol=1e-13, atol=1e-15)
    assert J.shape == (len(outputs), len(inputs)) and J.dtype == np.float64
    np.testing.assert_array_equal(g.forward(*point), values)
    direction = np.linspace(-1.0, 1.0, len(inputs))
    _, tangent = g.jvp(*point, tuple(direction))
    np.testing.assert_allclose(tangent, J @ direction, rtol=1e-13, atol=1e-15)
    seed = np.linspace(0.5, 2.0, len(outputs))
    _, grads = g.vjp(*point, seed)
    np.testing.assert_allclose(grads, seed @ J, rtol=1e-13, atol=1e-15)


def test_a_decorated_function_returning_a_tuple_names_its_outputs():
    @bpgen.function(jit=False)
    def spherical(rho, phi, theta):
        x = rho * sympy.sin(phi) * sympy.cos(theta)
        y = rho * sympy.sin(phi) * sympy.sin(theta)
        height = rho * sympy.cos(phi)
        return x, y, height

    assert "return np.array([x, y, height])" in spherical.source
    assert "def vjp(rho, phi, theta, dx, dy, dheight):" in spherical.source
    values, J = spherical.jacobian(1.0, 0.3, 0.7)
    assert np.linalg.det(J) == pytest.approx(np.sin(0.3), rel=1e-13)  # rho**2 sin(phi)


def test_shared_outputs_get_every_seed():
    """One value returned twice, an input returned, an output another output uses: every seed counts."""
    g = bpgen.compile([r * th, r * th, th, r * th**2], inputs=[r, th], jit=False)
    _, grads = g.vjp(2.0, 3.0, [1.0, 10.0, 100.0, 1000.0])
    assert grads == pytest.approx((3.0 * 11.0 + 9.0 * 1000.0, 2.0 * 11.0 + 100.0 + 12.0 * 1000.0))
    assert "# its seed, as an output" in g.source
    u = bpgen.compile([r * th, sympy.sin(r * th)], inputs=[r, th], jit=False)
    _, grads = u.vjp(0.5, 2.0, [1.0, 1.0])
    assert grads == pytest.approx((2.0 * (1 + np.cos(1.0)), 0.5 * (1 + np.cos(1.0))))


def test_what_a_vector_of_outputs_does_not_have_is_one_clear_line():
    g = bpgen.compile(sympy.Matrix([r, th]), inputs=[r, th], jit=False)
    with pytest.raises(AttributeError, match="has a vector of 2 outputs: it has forward, jvp, vjp"):
        g.value_and_grad(1.0, 2.0)
    with pytest.raises(ValueError, match=r"the seeds must be one number per output \(2\), not 1"):
        g.vjp(1.0, 2.0, [1.0])
    with pytest.raises(TypeError, match=r"vjp takes its 2 arguments and then 2 seeds .* not 3 values"):
        g.vjp(1.0, 2.0, 1.0)
    # the seeds one by one, as the generated module takes them, or in one sequence: the same
    one_by_one, together = g.vjp(1.0, 2.0, 3.0, 4.0), g.vjp(1.0, 2.0, [3.0, 4.0])
    np.testing.assert_equal(one_by_one, together)
    np.testing.assert_equal(one_by_one, g.module.vjp(1.0, 2.0, 3.0, 4.0))
    with pytest.raises(bpgen.BpgenError, match="not a 2 x 2 matrix"):
        bpgen.compile(sympy.Matrix([[r, th], [th, r]]), inputs=[r, th])
    with pytest.raises(AttributeError, match="jacobian is for a vector of outputs"):
        bpgen.compile(r * th, inputs=[r, th], jit=False).jacobian(1.0, 2.0)


def test_the_command_line_generates_checks_and_refuses_to_draw(tmp_path, monkeypatch, capsys):
    from bpgen.tools import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.py").write_text("import sympy, bpgen\n\n@bpgen.function\ndef polar(r, theta):\n"
                                      "    x = r * sympy.cos(theta)\n    y = r * sympy.sin(theta)\n    return x, y\n")
    assert cli.main(["generate", "spec.py"]) == 0
    assert "def vjp(r, theta, dx, dy):" in (tmp_path / "generated" / "polar.py").read_text()
    assert cli.main(["check", "spec.py", "--points", "2", "--python"]) == 0
    assert "output 1  d/dtheta" in capsys.readouterr().out
    assert cli.main(["show", "spec.py", "--backward-only"]) == 0
    assert capsys.readouterr().out.endswith("return np.array([x, y]), (dr, dtheta)\n")
    assert cli.main(["graph", "spec.py", "-o", "p.svg"]) == 2
    assert "pictures draw one output" in capsys.readouterr().err
