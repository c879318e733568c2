"""Unit tests of the IR and its algebra: hash-consing, scheduling, folding, and what a name protects."""

from __future__ import annotations

from bpgen.ir.graph import Graph, format_program, schedule
from bpgen.ir.ops import Op
from bpgen.rules.algebra import Algebra


def _setup():
    graph = Graph()
    return graph, Algebra(graph), graph.input(0, "x"), graph.input(1, "y")


def test_structurally_equal_nodes_are_one_node():
    graph, A, x, y = _setup()
    assert A.mul(x, y) is A.mul(x, y)
    assert A.apply(Op.EXP, x) is A.apply(Op.EXP, x)
    assert A.mul(x, y) is not A.mul(y, x)  # argument order is structure
    assert graph.const(2.0) is A.const(2.0)


def test_schedule_puts_arguments_first_and_drops_what_the_output_does_not_use():
    graph, A, x, y = _setup()
    unused = A.apply(Op.SIN, y)
    out = A.add(A.mul(x, y), A.apply(Op.EXP, x))
    order = schedule([out])
    assert unused not in order and order[-1] is out
    position = {n.id: k for k, n in enumerate(order)}
    assert all(position[a.id] < position[n.id] for n in order for a in n.args)
    assert format_program(order).splitlines()[-1].startswith(f"%{out.id}=add(")


def test_trivial_operations_fold_away():
    graph, A, x, y = _setup()
    assert A.mul(x, A.const(1.0)) is x
    assert A.add(x, A.const(0.0)) is x
    assert A.mul(x, A.const(0.0)).is_const and A.mul(x, A.const(0.0)).value == 0.0
    assert A.neg(A.neg(x)) is x
    assert A.sub(x, x).value == 0.0
    assert A.div(x, A.const(1.0)) is x
    assert A.apply(Op.EXP, A.const(0.0)).value == 1.0
    assert A.mul(A.const(2.0), A.const(3.0), x).args[0].value == 6.0  # constants first: 6.0 * x


def test_a_named_node_is_never_looked_inside():
    graph, A, x, y = _setup()
    minus = A.neg(x)
    A.keep.add(minus.id)
    assert A.neg(minus) is not x and A.neg(minus).args == (minus,)
    sig = A.apply(Op.SIGMOID, x)
    assert A.apply(Op.LOG, sig).op == Op.NEG  # log(sigmoid(x)) = -softplus(-x), stable
    A.keep.add(sig.id)  # a named sigmoid keeps its line, and its log is still the stable one (issue 26)
    assert A.apply(Op.LOG, sig).op == Op.NEG and A.apply(Op.LOG, sig).args[0].op == Op.SOFTPLUS
    square = A.mul(x, x)
    A.keep.add(square.id)
    assert A.apply(Op.LOG, square).args == (square,)  # any other named node is never looked inside
