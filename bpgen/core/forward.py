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
    output_tangent: Node  # the output's tangent variable, or the constant 0 when no input reaches it


def tangent_of(A: Algebra, node: Node) -> Node:
    return A.graph.node(Op.TANGENT, (node,), shape=node.shape)


def forward_mode(forward: list[Node], output: Node, wrt: list[Node], A: Algebra) -> Forward:
    """The tangent program of `forward` along the tangents of `wrt` (scalar functions)."""
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
    return Forward(steps, seeds, tangent.get(output.id, A.const(0.0)))
