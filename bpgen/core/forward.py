"""Forward mode: walk the forward schedule in order, pushing tangents through the same local partials.

The sibling of the reverse pass, from the same rule table: for every node that depends on a differentiated
input, each argument with a tangent contributes `partial * tangent(argument)`; the first contribution assigns
(`tnum = tx`), later ones add (`tnum += tsigy`). A tangent variable is an op "tangent" node of the node it
belongs to; the inputs' tangents are the parameters the caller passes (`jvp(x, y, tx, ty)`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BpgenError
from .algebra import Algebra
from .ir import Node
from .ops import Op
from .reverse import depends_on
from .rules import rule_of


@dataclass(frozen=True)
class TangentStep:
    target: Node  # the node whose tangent this line adds to
    tangent: Node  # the "tangent" node of target, the variable that accumulates
    term: Node  # partial * tangent of one argument, simplified
    partial: Node  # d(target)/d(argument)
    upstream: Node  # the argument's tangent (a "tangent" node)
    first: bool  # `=` rather than `+=`


@dataclass(frozen=True)
class Forward:
    steps: list[TangentStep]
    seeds: list[Node]  # the tangents of the differentiated inputs: parameters of jvp
    output_tangents: list[Node]  # each output's tangent variable, or the constant 0 when no input reaches it

    @property
    def output_tangent(self) -> Node:
        return self.output_tangents[0]


def tangent_of(A: Algebra, node: Node) -> Node:
    return A.graph.node(Op.TANGENT, (node,), shape=node.shape)


def forward_mode(forward: list[Node], output: Node | list[Node], wrt: list[Node], A: Algebra) -> Forward:
    """The tangent program of `forward` along the tangents of `wrt` (scalar functions; `output` may be several)."""
    outputs = output if isinstance(output, list) else [output]
    reach = depends_on(forward, wrt)
    seeds = [tangent_of(A, w) for w in wrt]
    tangent: dict[int, Node] = {w.id: s for w, s in zip(wrt, seeds)}
    steps: list[TangentStep] = []
    for node in forward:
        if node.id not in reach or node.id in tangent or not node.args:
            continue
        rule = rule_of(node)
        if rule.partials is None:
            if rule.vjp is not None:
                raise BpgenError(f"jvp is not available yet for tensor operations ({node.op})")
            continue  # a condition: no tangent flows through it
        partials = rule.partials(A, node.args, node)
        first = True
        for arg, partial in zip(node.args, partials):
            upstream = tangent.get(arg.id)
            if upstream is None or partial is None:
                continue
            term = A.mul(partial, upstream)
            if term.is_const and term.value == 0.0:
                continue
            variable = tangent_of(A, node)
            steps.append(TangentStep(node, variable, term, partial, upstream, first))
            tangent[node.id] = variable
            first = False
    return Forward(steps, seeds, [tangent.get(o.id, A.const(0.0)) for o in outputs])


@dataclass(frozen=True)
class SecondOrder:
    forward: Forward  # the tangents of the forward nodes
    steps: list[TangentStep]  # the tangents of the backward lines' terms, one per line, in the same order
    lines: list[int]  # for each step, the index of the backward contribution it differentiates
    hv: list[Node]  # per wrt input: the tangent of its gradient (a "tangent" node, or the constant 0)


def forward_over_reverse(forward: list[Node], output: Node, wrt: list[Node], backward, A: Algebra) -> SecondOrder:
    """The tangent of the reverse program along the tangents of `wrt`: forward mode over the backward lines.

    Each backward line adds a term to an adjoint (`dden = (-1.0 / den**2) * dinvden`); its tangent line adds the
    term's tangent to the adjoint's tangent (`tdden = ...`), by the chain rule through the term's operations.
    An adjoint is complete before any line reads it, so its tangent is too. The tangents of the gradients are
    the Hessian-vector product."""
    first_order = forward_mode(forward, output, wrt, A)
    tangent: dict[int, Node] = {w.id: s for w, s in zip(wrt, first_order.seeds)}
    for step in first_order.steps:
        tangent[step.target.id] = step.tangent
    zero = A.const(0.0)
    steps: list[TangentStep] = []
    lines: list[int] = []
    started: set[int] = set()
    for index, step in enumerate(backward.printed):
        term_tangent = _tangent_expression(A, step.term, tangent, {})
        if term_tangent.is_const and term_tangent.value == 0.0:
            continue
        variable = tangent_of(A, step.adjoint)
        steps.append(TangentStep(step.adjoint, variable, term_tangent, None, zero, step.adjoint.id not in started))
        lines.append(index)
        started.add(step.adjoint.id)
        tangent[step.adjoint.id] = variable
    hv = [tangent.get(g.id, A.const(0.0)) if not g.is_const else A.const(0.0) for g in backward.gradients]
    return SecondOrder(_needed(first_order, steps), steps, lines, hv)


def _needed(first_order: Forward, steps: list[TangentStep]) -> Forward:
    """The forward tangent lines the backward ones read, directly or in turn (the output's own is not)."""
    needed = {t.id for step in steps for t in _tangents_in(step.term)}
    kept = []
    for step in reversed(first_order.steps):
        if step.tangent.id in needed:
            kept.append(step)
            needed.update(t.id for t in _tangents_in(step.term))
    return Forward(kept[::-1], first_order.seeds, first_order.output_tangents)


def _tangents_in(node: Node) -> list[Node]:
    found, stack, seen = [], [node], set()
    while stack:
        n = stack.pop()
        if n.id in seen:
            continue
        seen.add(n.id)
        if n.op == Op.TANGENT:
            found.append(n)
        else:
            stack.extend(n.args)
    return found


def _tangent_expression(A: Algebra, node: Node, tangent: dict[int, Node], memo: dict[int, Node]) -> Node:
    """The tangent of an expression of the backward pass: a variable's tangent where the node has one (a forward
    node, an adjoint), else the chain rule through its operation, built with the algebra (zeros fold away)."""
    if node.id in tangent:
        return tangent[node.id]
    if node.id in memo:
        return memo[node.id]
    if node.is_const or not node.args or node.op in (Op.ADJ, Op.INPUT, Op.DIM):
        result = A.const(0.0)
    else:
        rule = rule_of(node)
        if rule.partials is None:
            if rule.vjp is not None:
                raise BpgenError(f"hvp is not available yet for tensor operations ({node.op})")
            result = A.const(0.0)  # a condition: no tangent flows through it
        else:
            terms = []
            for arg, partial in zip(node.args, rule.partials(A, node.args, node)):
                if partial is None:
                    continue
                t = _tangent_expression(A, arg, tangent, memo)
                if not (t.is_const and t.value == 0.0):
                    terms.append(A.mul(partial, t))
            result = A.add(*terms) if terms else A.const(0.0)
    memo[node.id] = result
    return result
