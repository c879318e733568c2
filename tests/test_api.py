"""The public API and the promises of the pass: names, DCE, folding, DAG walking, errors."""

import ast
import re
import time

import numba
import numpy as np
import pytest
import sympy

import bpgen
from bpgen import BpgenError
from bpgen.targets.numba.target import INLINED_HELPERS

x, y, z = sympy.symbols("x y z", real=True)


def section(source: str, function: str, part: str) -> str:
    body = source.split(f"def {function}(")[1].split("\n\n\n")[0]
    if part == "all":
        return body
    forward, _, backward = body.partition("# backward")
    return forward if part == "forward" else backward


def deep_composition(layers: int):
    @bpgen.function(jit=False, name=f"deep{layers}")
    def deep(a, b, c):
        for _ in range(layers):
            a, b, c = sympy.tanh(a * b + c), sympy.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2
        return a + b + c

    return deep


# declaring ---------------------------------------------------------------------------


def test_compile_takes_inputs_wrt_and_name():
    g = bpgen.compile(x**2 * y + z, inputs=[x, y, z], wrt=[z, x], name="poly", jit=False)
    value, grads = g.value_and_grad(2.0, 3.0, 5.0)
    assert value == 17.0
    assert grads == (1.0, 12.0)  # in wrt order: dz, dx
    assert g.grad(2.0, 3.0, 5.0) == grads
    assert g.forward(2.0, 3.0, 5.0) == value
    assert g.name == "poly" and g.params == ["x", "y", "z"]
    assert "def forward(x, y, z):" in g.source


def test_default_inputs_are_the_free_symbols_sorted_by_name():
    g = bpgen.compile(z * x + y, jit=False)
    assert g.params == ["x", "y", "z"]


def test_decorated_function_is_a_compiled_function_and_compile_returns_it():
    @bpgen.function(jit=False)
    def h(a, b):
        return a * b

    assert isinstance(h, bpgen.CompiledFunction)
    assert bpgen.compile(h) is h
    only_b = bpgen.compile(h, wrt=[h.inputs[1]])
    assert only_b.value_and_grad(2.0, 3.0) == (6.0, (2.0,))


def test_decorator_wrt_by_parameter_name():
    @bpgen.function(wrt=["b"], jit=False)
    def h(a, b):
        return a * b

    assert h.value_and_grad(2.0, 3.0) == (6.0, (2.0,))
    assert "da" not in section(h.source, "value_and_grad", "backward")


def test_sigmoid_relu_softplus_are_sympy_functions():
    for fn in (bpgen.sigmoid, bpgen.relu, bpgen.softplus):
        assert issubclass(fn, sympy.Function)
    assert sympy.diff(bpgen.sigmoid(x), x) == bpgen.sigmoid(x) * (1 - bpgen.sigmoid(x))
    g = bpgen.compile(bpgen.sigmoid(x), jit=False)
    backward = section(g.source, "value_and_grad", "backward")
    assert "(1.0 - f) * f" in backward and "sigmoid(" not in backward.split("#")[0]


# the pass ------------------------------------------------------------------------------


def test_shared_subexpressions_are_computed_once():
    t = sympy.sin(x * y)
    g = bpgen.compile(t * t + sympy.exp(t) + t, jit=False)
    forward = section(g.source, "forward", "all")
    assert forward.count("math.sin(") == 1 and forward.count("x * y") == 1


def test_inputs_outside_wrt_get_no_adjoint_code():
    g = bpgen.compile(x * y * z, inputs=[x, y, z], wrt=[y], jit=False)
    backward = section(g.source, "value_and_grad", "backward")
    assert not re.search(r"\bd[xz]\b", backward)
    assert g.value_and_grad(2.0, 3.0, 5.0) == (30.0, (10.0,))


def test_unused_input_has_gradient_zero():
    g = bpgen.compile(sympy.sin(x), inputs=[x, y], jit=False)
    assert g.value_and_grad(0.0, 7.0) == (0.0, (1.0, 0.0))


def test_dead_locals_are_not_emitted():
    @bpgen.function(jit=False)
    def h(a, b):
        unused = sympy.exp(a)  # noqa: F841
        return a * b

    assert "unused" not in h.source and "math.exp" not in h.source


def test_constants_fold_and_trivial_factors_vanish():
    with sympy.evaluate(False):
        expr = x * (sympy.Integer(2) + 3) + 0 * y + 1 * sympy.sin(x) * 1 + sympy.exp(0) * y + sympy.cos(0)
    g = bpgen.compile(expr, inputs=[x, y], jit=False)
    body = section(g.source, "value_and_grad", "all")
    assert "5.0 * x" in body
    assert not re.search(r"\* 1\.0\b|\b1\.0 \*|\+ 0\.0\b|\b0\.0 \+|math\.cos\(0", body)
    value, (dx, dy) = g.value_and_grad(0.5, 2.0)
    assert value == pytest.approx(2.5 + np.sin(0.5) + 2.0 + 1.0)
    assert (dx, dy) == pytest.approx((5 + np.cos(0.5), 1.0))


def test_unevaluated_expressions_are_taken_as_they_are():
    with sympy.evaluate(False):
        expr = (x + y) * 2 - (x + y) / 2
    g = bpgen.compile(expr, jit=False)
    forward = section(g.source, "forward", "all")
    assert forward.count("x + y") == 1  # one node for the shared sum
    assert g.value_and_grad(1.0, 2.0) == (4.5, (1.5, 1.5))


def test_deep_composition_is_walked_as_a_dag():
    start = time.perf_counter()
    g = deep_composition(100)
    elapsed = time.perf_counter() - start
    statements = section(g.source, "forward", "all").count(" = ")
    assert 900 <= statements <= 1400  # about a thousand distinct nodes, not 3**100 tree paths
    assert elapsed < 10.0


def test_deep_unevaluated_expression_compiles_directly():
    a, b, c = sympy.symbols("a b c", real=True)
    with sympy.evaluate(False):
        for _ in range(100):
            a, b, c = sympy.tanh(a * b + c), sympy.sin(b) * c / 2 + a / 2, a / (1 + b**2) + c / 2
        expr = a + b + c
    g = bpgen.compile(expr, inputs=list(sympy.symbols("a b c", real=True)), jit=False)
    reference = deep_composition(100)
    assert g.value_and_grad(0.3, -0.2, 0.5) == reference.value_and_grad(0.3, -0.2, 0.5)


# names -------------------------------------------------------------------------------


def test_user_names_win_over_generated_ones():
    @bpgen.function(jit=False)
    def h(x, y):
        dx = x * y  # a user variable that looks like an adjoint
        math = sympy.sin(dx)  # and ones that shadow the modules the code uses
        np = math + x
        return np * dx

    tree = ast.parse(h.source)
    assert {node.name for node in tree.body if isinstance(node, ast.FunctionDef)} >= {
        "forward", "value_and_grad", "grad", "value_and_grad_batch"}
    forward = section(h.source, "forward", "all")
    assert "dx = x * y" in forward
    assert "math_1 = math.sin(dx)" in forward and "np_1 = math_1 + x" in forward
    backward = section(h.source, "value_and_grad", "backward")
    assert "ddx = " in backward and re.search(r"\bdx_1 [+]?= ", backward)
    value, (gx, gy) = h.value_and_grad(0.7, -1.3)
    p = 0.7 * -1.3
    assert value == pytest.approx((np.sin(p) + 0.7) * p)
    assert gx == pytest.approx(np.cos(p) * -1.3 * p + (np.sin(p) + 0.7) * -1.3 + p)


def test_names_are_unique_identifiers_and_every_backward_line_cites_its_forward_line():
    g = deep_composition(10)
    body = section(g.source, "value_and_grad", "all")
    forward_lines, _, backward_lines = body.partition("# backward")
    forward_statements = {line.strip() for line in forward_lines.splitlines() if " = " in line}
    targets = [line.strip().split(" = ")[0] for line in forward_statements]
    assert len(targets) == len(set(targets)) and all(t.isidentifier() for t in targets)
    for line in backward_lines.splitlines()[1:]:
        if not line.strip() or line.strip().startswith("return"):
            continue
        code, _, comment = line.partition("  # ")
        assert re.match(r"\s+\w+ \+?= ", code), line
        assert comment.strip() in forward_statements, line


def test_first_contribution_assigns_later_ones_accumulate():
    g = bpgen.compile(x * sympy.sin(x) + sympy.exp(x), jit=False)
    backward = section(g.source, "value_and_grad", "backward")
    assignments = re.findall(r"\b(dx) (\+?=) ", backward)
    assert [op for _, op in assignments] == ["="] + ["+="] * (len(assignments) - 1)
    assert len(assignments) == 3


# module and Numba --------------------------------------------------------------------


def test_generated_module_imports_only_math_numpy_numba(tmp_path):
    g = bpgen.compile(sympy.atan2(y, x) + bpgen.softplus(x), jit=True)
    path = g.save(tmp_path / "m.py")
    source = path.read_text()
    assert source == g.source and source.startswith("# Generated by bpgen")
    assert "Do not edit" in source.splitlines()[0]
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    assert imported == {"math", "numpy", "numba"}  # bpgen's compiled helpers come only from bpgen's own loader
    assert 'compiled_helpers = globals().get("compiled_helpers")' in source
    defs = [node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)]
    decorators = [ast.get_source_segment(source, d.decorator_list[0]) for d in defs]
    inlined = {"value_and_grad", *INLINED_HELPERS}  # into the loops over points or elements that call them
    assert {d.name for d in defs} & INLINED_HELPERS == {"exp_parts", "exp_scalar", "softplus"}
    assert decorators == ['numba.njit(cache=True, error_model="numpy", inline="always")' if d.name in inlined
                          else 'numba.njit(cache=True, error_model="numpy")' for d in defs]


def test_the_batch_loop_is_vector_code_with_no_libm_exp():
    """sigmoid's exp is exp_scalar's polynomial and value_and_grad is inlined, so LLVM vectorizes the loop over
    points; a libm exp there would be scalarized into one call per point (llvm.exp.v8f64)."""
    g = bpgen.compile((x + bpgen.sigmoid(y)) / (bpgen.sigmoid(x) + (x + y) ** 2), inputs=[x, y])
    batch = numba.njit(error_model="numpy")(g.module.value_and_grad_batch.py_func)  # not from the disk cache
    batch(np.ones(8), np.ones(8))
    llvm_ir = "\n".join(batch.inspect_llvm().values())
    assert re.search(r"<\d+ x double>", llvm_ir)
    assert not re.search(r"@(llvm\.)?exp\b", llvm_ir)


def test_a_long_value_and_grad_is_called_from_the_batch_loop_not_inlined():
    """Inlining would make grad and the batch loop compile a deep composition's body once more each."""
    a = x
    for _ in range(60):
        a = sympy.sin(a) * y + a / 2
    long_source = bpgen.compile(a).source
    body = re.search(r"^def value_and_grad\(.*?(?=^\S)", long_source, re.S | re.M).group(0)
    assert body.count("\n") > 300
    assert 'inline="always")\ndef value_and_grad(' not in long_source
    assert 'inline="always")\ndef value_and_grad(' in bpgen.compile(sympy.sin(x) * y).source


def test_jit_gives_numba_dispatchers_and_jit_false_plain_functions():
    expr = sympy.sin(x) * y
    compiled = bpgen.compile(expr)
    plain = bpgen.compile(expr, jit=False)
    assert isinstance(compiled.module.value_and_grad, numba.core.registry.CPUDispatcher)
    assert compiled.value_and_grad is compiled.module.value_and_grad  # converts other types on a miss
    assert plain.value_and_grad.__wrapped__ is plain.module.value_and_grad  # behind the same conversion
    assert type(plain.module.value_and_grad).__name__ == "function"
    assert compiled.value_and_grad(0.4, 2.0) == plain.value_and_grad(0.4, 2.0)


def test_batch_is_one_compiled_loop_over_points():
    """The batch loop (vectorized by LLVM, with value_and_grad inlined) gives the one-point call's very bits."""
    g = bpgen.compile(sympy.sin(x) * y + bpgen.sigmoid(x * y) + bpgen.softplus(x - y))
    xs = np.linspace(-30, 30, 101)
    ys = np.linspace(2, -1, 101)
    values, (dxs, dys) = g.value_and_grad_batch(xs, ys)
    for i in range(101):
        v, (gx, gy) = g.value_and_grad(xs[i], ys[i])
        assert (values[i], dxs[i], dys[i]) == (v, gx, gy)
    with pytest.raises(ValueError, match="differ in length"):
        g.value_and_grad_batch(xs, ys[:5])


# user errors -------------------------------------------------------------------------


@pytest.mark.parametrize("call, message", [
    (lambda: bpgen.compile(x * y, inputs=[x]), "symbol 'y' is not among the inputs"),
    (lambda: bpgen.compile(x * y, inputs=[x, y], wrt=[z]), "wrt entry 'z' is not one of the inputs"),
    (lambda: bpgen.compile(x * y, inputs=[x, x, y]), "input 'x' is listed twice"),
    (lambda: bpgen.compile(x * y, inputs=[x, "y"]), "inputs must be SymPy symbols"),
    (lambda: bpgen.compile(x * y, inputs=[x, y], wrt=[]), "wrt is empty"),
    (lambda: bpgen.compile(sympy.Function("mystery")(x)), "mystery"),
    (lambda: bpgen.compile(sympy.Integral(x, y)), "Integral"),
    (lambda: bpgen.compile(sympy.I * x), "not a real number"),
    (lambda: bpgen.compile("x + 1"), "must be a scalar SymPy expression"),
])
def test_user_errors_are_one_clear_line(call, message):
    with pytest.raises(BpgenError) as info:
        call()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_imports_a_generated_module_once_under_its_name(tmp_path):
    import sympy

    x = sympy.Symbol("x", real=True)
    path = bpgen.compile(sympy.exp(x) * x, jit=False).save(tmp_path / "loaded_model.py")
    module = bpgen.load(path)
    assert module.__name__ == "loaded_model" and module.value_and_grad(1.0)[0] == pytest.approx(2.718281828459045)
    assert bpgen.load(path) is module
    other = bpgen.compile(sympy.sin(x), jit=False).save(tmp_path / "other" / "loaded_model.py")
    with pytest.raises(bpgen.BpgenError, match="a module named 'loaded_model' is already imported from"):
        bpgen.load(other)
    assert bpgen.load(other, "loaded_model_2").forward(0.0) == 0.0
    with pytest.raises(bpgen.BpgenError, match="no such generated module"):
        bpgen.load(tmp_path / "missing.py")


def test_array_code_without_shapes_says_that_shapes_are_missing():
    """A function written for arrays but declared without shapes= gets numbers: one line that says so."""
    def f(W, X, Y):
        return bpgen.sum((W @ X - Y) ** 2)

    def g(W, X, Y):
        return bpgen.sum((W * X - Y) ** 2)

    for fn in (f, g):
        with pytest.raises(bpgen.BpgenError, match=r"without shapes= the parameters are numbers .*\{'W'") as info:
            bpgen.function(fn)
        assert "\n" not in str(info.value)


def test_submodules_need_no_import_of_their_own():
    import subprocess
    import sys

    code = "import bpgen; print(bpgen.nutpie.__name__, bpgen.interop.__name__, bpgen.nn.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["bpgen.nutpie", "bpgen.interop", "bpgen.nn"], done.stderr
