"""Unit tests with exact strings: how the printer writes expressions and statements, how names are chosen."""

from __future__ import annotations

import pytest
import sympy

from bpgen.ir.graph import Graph
from bpgen.rules.algebra import Algebra
from bpgen.targets.numba.target import numba_target
from bpgen.targets.python.naming import Namespace, assign_names, sanitize
from bpgen.targets.python.printer import ExpressionPrinter, Statement, format_float


@pytest.fixture
def built():
    """An algebra over a fresh graph with inputs a, b, c, and a printer that names them."""
    graph = Graph()
    A = Algebra(graph)
    a, b, c = (graph.input(i, name) for i, name in enumerate("abc"))
    names = {a.id: "a", b.id: "b", c.id: "c"}
    return A, (a, b, c), ExpressionPrinter(names, numba_target().syntax_of)


@pytest.mark.parametrize("make, text", [
    (lambda A, a, b, c: A.sub(a, A.sub(b, c)), "a - (b - c)"),
    (lambda A, a, b, c: A.sub(A.sub(a, b), c), "a - b - c"),
    (lambda A, a, b, c: A.mul(A.add(a, b), c), "(a + b) * c"),
    (lambda A, a, b, c: A.div(a, A.mul(b, c)), "a / (b * c)"),
    (lambda A, a, b, c: A.pow(a, A.const(2.0)), "a**2"),
    (lambda A, a, b, c: A.pow(A.add(a, b), A.const(-1.5)), "(a + b) ** -1.5"),
    (lambda A, a, b, c: A.pow(A.neg(a), A.const(2.0)), "(-a) ** 2"),  # a compound base: spaced
    (lambda A, a, b, c: A.mul(A.const(-2.0), a), "-2.0 * a"),
    (lambda A, a, b, c: A.neg(A.mul(a, b)), "-(a * b)"),
    (lambda A, a, b, c: A.add(a, A.const(1.0)), "a + 1.0"),
    (lambda A, a, b, c: A.apply("exp", A.neg(a)), "math.exp(-a)"),
    (lambda A, a, b, c: A.apply("sigmoid", a), "sigmoid(a)"),
    (lambda A, a, b, c: A.select(A.apply("gt", a, b), a, c), "a if a > b else c"),
    (lambda A, a, b, c: A.apply("max", a, b, c), "max(a, b, c)"),
])
def test_expressions_print_with_exactly_the_parentheses_needed(built, make, text):
    A, (a, b, c), printer = built
    assert printer(make(A, a, b, c)) == text


def test_a_staged_product_keeps_its_local_derivative_in_parentheses(built):
    A, (a, b, c), printer = built
    assert printer.product(A.mul(A.const(2.0), a), b) == "(2.0 * a) * b"
    assert printer.product(a, b) == "a * b"


def test_statements_print_as_assignments_and_accumulations(built):
    A, (a, b, c), printer = built
    assert Statement("dx", "a * b", a).code == "dx = a * b"
    assert Statement("dx", "a * b", a, accumulate=True).code == "dx += a * b"
    graph = Graph()
    X = graph.input(0, "X", shape=(3,))
    assert Statement("dX", "g", X, accumulate=True).code == "dX = dX + g"  # arrays: never in place


@pytest.mark.parametrize("value, text", [(0.1, "0.1"), (1.0, "1.0"), (-0.0, "-0.0"), (1e300, "1e+300"),
                                         (float("inf"), "math.inf"), (float("-inf"), "-math.inf"),
                                         (float("nan"), "math.nan")])
def test_floats_print_as_their_shortest_exact_literal(value, text):
    assert format_float(value) == text


def test_names_reserved_and_taken_get_the_next_suffix():
    namespace = Namespace()
    assert [namespace.claim(n) for n in ("x", "x", "lambda", "math", "x", "x_1")] == \
        ["x", "x_1", "lambda_1", "math_1", "x_2", "x_1_1"]


@pytest.mark.parametrize("raw, name", [("theta", "theta"), ("θ", "theta"), ("2x", "v2x"), ("a b", "a_b"),
                                       ("", "v"), ("日", "u65e5"), ("Ölmaß", "Olma_sharps")])
def test_sanitize(raw, name):
    assert sanitize(raw) == name


def test_user_names_win_then_op_names_then_adjoints():
    """The user's `dx` keeps its name; the adjoint of x becomes dx_1; unnamed intermediates take op names."""
    graph = Graph()
    A = Algebra(graph)
    x, y = graph.input(0, sympy.Symbol("x")), graph.input(1, sympy.Symbol("y"))
    product = A.mul(x, y)
    e = A.apply("exp", product)
    out = A.add(e, x)
    forward = [x, y, product, e, out]
    adjoints = [graph.node("adj", (node,), shape=()) for node in (x, y, product)]
    names = assign_names([x, y], ["x", "y"], forward, {product.id: "dx", out.id: "f"}, adjoints)
    assert [names[n.id] for n in forward] == ["x", "y", "dx", "exp1", "f"]
    assert [names[n.id] for n in adjoints] == ["dx_1", "dy", "ddx"]
