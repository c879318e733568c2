"""Idioms: the logistic function and tanh spelled out with exp, recognized as the functions they are.

People write sigmoid as `1 / (1 + exp(-u))`, `exp(u) / (1 + exp(u))` or
`(1 + exp(-u))**-1`, and tanh as `(exp(u) - exp(-u)) / (exp(u) + exp(-u))`.
Taken literally, each becomes four statements with invented names, a
backward line per statement, and an overflow at large |u| (exp(800) is
inf, and inf / inf is NaN in the gradient). Recognized, each is one
statement with its fused local gradient (`((1.0 - s) * s) * ds`) and the
stable helper behind it.

A pattern matches only over intermediates the user did not name: a named
one keeps its own line, as written.
"""

from __future__ import annotations

from ..ir.graph import Node
from ..ir.ops import Op
from .algebra import Algebra


def _is(node: Node, value: float) -> bool:
    return node.is_const and node.value == value


def _negated(A: Algebra, node: Node) -> Node | None:
    """-node without a new negation where an unnamed node is one: neg(u) -> u, (-2.0) * u -> 2.0 * u."""
    if node.id in A.keep:
        return None
    if node.op == Op.NEG:
        return node.args[0]
    if node.op == Op.MUL and node.args[0].is_const and node.args[0].value < 0:
        return A.mul(A.const(-node.args[0].value), *node.args[1:])
    return None


def _one_plus(node: Node, named: set[int]) -> Node | None:
    """t for an unnamed t + 1.0 (constants come last in a sum)."""
    if node.op == Op.ADD and len(node.args) == 2 and _is(node.args[1], 1.0) and node.id not in named:
        return node.args[0]
    return None


def _unnamed_exp(node: Node, named: set[int]) -> Node | None:
    """u for an unnamed exp(u)."""
    return node.args[0] if node.op == Op.EXP and node.id not in named else None


def recognize(A: Algebra, node: Node) -> Node:
    """`node` as sigmoid or tanh when it spells one out over intermediates the user did not name (those not in
    A.keep), else `node` itself."""
    if node.op != Op.DIV:
        return node
    named = A.keep
    top, bottom = node.args
    t = _one_plus(bottom, named)
    if t is not None:
        u = _unnamed_exp(t, named)
        if u is not None:
            if _is(top, 1.0):  # 1 / (1 + exp(v)) = sigmoid(-v)
                v = _negated(A, u)
                return A.apply(Op.SIGMOID, v if v is not None else A.neg(u))
            if top is t:  # exp(u) / (1 + exp(u)) = sigmoid(u)
                return A.apply(Op.SIGMOID, u)
    return _tanh(A, top, bottom, named) or node


def _tanh(A: Algebra, top: Node, bottom: Node, named: set[int]) -> Node | None:
    """(exp(u) - exp(-u)) / (exp(u) + exp(-u)) = tanh(u); (exp(v) - 1) / (exp(v) + 1) = tanh(v / 2);
    (1 - exp(v)) / (1 + exp(v)) = tanh(-v / 2)."""
    if top.id in named or bottom.op != Op.ADD or len(bottom.args) != 2 or bottom.id in named:
        return None
    if top.op == Op.SUB and {a.id for a in top.args} == {a.id for a in bottom.args}:  # (e1 - e2) / (e1 + e2)
        u, w = (_unnamed_exp(a, named) for a in top.args)
        if u is not None and w is not None and (_negated(A, u) is w or _negated(A, w) is u):
            return A.apply(Op.TANH, u)
    v = _unnamed_exp(bottom.args[0], named)
    if v is None or not _is(bottom.args[1], 1.0):
        return None
    if top.args in ((bottom.args[0], A.const(1.0)), (bottom.args[0], A.const(-1.0))) \
            and (top.op, top.args[1].value) in ((Op.SUB, 1.0), (Op.ADD, -1.0)):  # exp(v) - 1
        return A.apply(Op.TANH, A.mul(A.const(0.5), v))
    if top.op == Op.SUB and top.args == (A.const(1.0), bottom.args[0]):  # 1 - exp(v)
        return A.apply(Op.TANH, A.mul(A.const(-0.5), v))
    return None
