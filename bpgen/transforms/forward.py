"""Forward mode: walk the forward schedule in order, pushing tangents through the same local partials.

The sibling of the reverse pass, from the same rule table: for every node that depends on a differentiated
input, each argument with a tangent contributes `partial * tangent(argument)`; the first contribution assigns
(`tnum = tx`), later ones add (`tnum += tsigy`). A tangent variable is an op "tangent" node of the node it
belongs to; the inputs' tangents are the parameters the caller passes (`jvp(x, y, tx, ty)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.graph import Node, depends_on
from ..ir.ops import Op
from ..rules.algebra import Algebra
from ..rules.table import rule_of


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
    # a tangent scan's result -> its tangent, another result of the same loop (bpgen/transforms/scan.py)
    scan_tangents: dict[int, Node] = field(default_factory=dict)

    @property
    def output_tangent(self) -> Node:
        return self.output_tangents[0]


def tangent_of(A: Algebra, node: Node) -> Node:
    return A.graph.node(Op.TANGENT, (node,), shape=node.shape)


def forward_mode(forward: list[Node], output: Node | list[Node], wrt: list[Node], A: Algebra,
                 seeds: list[Node] | None = None, scan_tangents: dict[int, Node] | None = None) -> Forward:
    """The tangent program of `forward` along the tangents of `wrt` (`output` may be several): tangent variables,
    the parameters of jvp, or, given as `seeds`, constants (a Hessian's column: 1.0 along one input, the others
    left out, so that no line multiplies a local derivative by a tangent that is zero). `scan_tangents`: the
    results of tangent scans in `forward` with their tangents (transforms/scan.py's tangent_scans)."""
    outputs = output if isinstance(output, list) else [output]
    scan_tangents = scan_tangents or {}
    reach = depends_on(forward, wrt)
    if scan_tangents:
        reach -= _tangent_values(forward, scan_tangents)
    seeds = [tangent_of(A, w) for w in wrt] if seeds is None else seeds
    tangent: dict[int, Node] = {w.id: s for w, s in zip(wrt, seeds)}
    tangent.update(scan_tangents)  # computed by their loop, beside the primals
    steps: list[TangentStep] = []
    for node in forward:
        if node.id not in reach or node.id in tangent or not node.args or node.op == Op.SCAN:
            continue
        first = True
        for partial, upstream, term in tangent_terms(A, node, [tangent.get(a.id) for a in node.args]):
            variable = tangent_of(A, node)
            if first:  # a tangent has its node's shape: a bias's, added to a batch, is broadcast over the batch
                term = A.broadcast_to(term, node.shape)  # (later terms broadcast as they are added)
            steps.append(TangentStep(node, variable, term, partial, upstream, first))
            tangent[node.id] = variable
            first = False
    return Forward(steps, seeds, [tangent.get(o.id, A.const(0.0)) for o in outputs], scan_tangents)


def _tangent_values(forward: list[Node], scan_tangents: dict[int, Node]) -> set[int]:
    """The nodes of `forward` that compute tangents, not values: the tangent variables, a tangent scan's tangent
    results, and what is computed from them (the tangents a tangent scan starts from). A loop, and its primal
    results, are values."""
    found = {t.id for t in scan_tangents.values()}
    for node in forward:
        if node.op == Op.TANGENT or (node.op != Op.SCAN and node.id not in scan_tangents
                                      and any(a.id in found for a in node.args)):
            found.add(node.id)
    return found


def tangent_terms(A: Algebra, node: Node, tangents: list[Node | None]) -> list[tuple[Node | None, Node, Node]]:
    """The terms of `node`'s tangent, one per argument with a tangent (`tangents`, None where it has none):
    (the local partial, or None for a tensor op's JVP; the argument's tangent; the term).
    An elementwise op's term is its partial times the tangent; a tensor op's comes from its JVP rule; a
    condition has none."""
    rule = rule_of(node)
    if rule.jvp is not None:
        terms = rule.jvp(A, node.args, node, tangents)
        partials = [None] * len(terms)
    elif rule.partials is not None:
        partials = rule.partials(A, node.args, node)
        terms = [None if p is None or t is None else A.mul(p, t) for p, t in zip(partials, tangents)]
    else:
        return []  # a condition: no tangent flows through it
    result = []
    for partial, upstream, term in zip(partials, tangents, terms):
        if upstream is None or term is None or (term.is_const and term.value == 0.0):
            continue
        result.append((partial, upstream, term))
    return result


@dataclass(frozen=True)
class SecondOrder:
    forward: Forward  # the tangents of the forward nodes
    steps: list[TangentStep]  # the tangents of the backward lines' terms, one per line, in the same order
    lines: list[int]  # for each step, the index of the backward contribution it differentiates
    hv: list[Node]  # per wrt input: the tangent of its gradient (a "tangent" node, or the constant 0)


def forward_over_reverse(forward: list[Node], output: Node, wrt: list[Node], backward, A: Algebra,
                         seeds: list[Node] | None = None) -> SecondOrder:
    """The tangent of the reverse program along the tangents of `wrt`: forward mode over the backward lines.

    Each backward line adds a term to an adjoint (`dden = (-1.0 / den**2) * dinvden`); its tangent line adds the
    term's tangent to the adjoint's tangent (`tdden = ...`), by the chain rule through the term's operations.
    An adjoint is complete before any line reads it, so its tangent is too. The tangents of the gradients are
    the Hessian-vector product."""
    first_order = forward_mode(forward, output, wrt, A, seeds)
    tangent: dict[int, Node] = {w.id: s for w, s in zip(wrt, first_order.seeds)}
    for step in first_order.steps:
        tangent[step.target.id] = step.tangent
    zero = A.const(0.0)
    steps: list[TangentStep] = []
    lines: list[int] = []
    started: set[int] = set()
    for index, step in enumerate(backward.printed):
        term_tangent = tangent_expression(A, step.term, tangent, {})
        if term_tangent.is_const and term_tangent.value == 0.0:
            continue
        variable = tangent_of(A, step.adjoint)
        steps.append(TangentStep(step.adjoint, variable, term_tangent, None, zero, step.adjoint.id not in started))
        lines.append(index)
        started.add(step.adjoint.id)
        tangent[step.adjoint.id] = variable
    hv = [tangent.get(g.id, A.const(0.0)) if not g.is_const else A.const(0.0) for g in backward.gradients]
    return SecondOrder(_needed(first_order, steps), steps, lines, hv)


def hessian_columns(forward: list[Node], output: Node, wrt: list[Node], backward, A: Algebra) -> list[SecondOrder]:
    """The Hessian column by column, each the tangent of the reverse program along one input with the constant
    seed 1.0 and no tangent for the others: a column never multiplies a local derivative by a zero tangent, so an
    infinite partial (sqrt's at 0) gives inf where it belongs and no nan elsewhere."""
    one = A.const(1.0)
    return [forward_over_reverse(forward, output, [w], backward, A, [one]) for w in wrt]


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


def tangent_expression(A: Algebra, node: Node, tangent: dict[int, Node], memo: dict[int, Node]) -> Node:
    """The tangent of an expression (a backward line's term, a scan step's output): a variable's tangent where the
    node has one (a forward node, an adjoint), else the chain rule through its operation, built with the algebra
    (zeros fold away)."""
    if node.id in tangent:
        return tangent[node.id]
    if node.id in memo:
        return memo[node.id]
    if node.is_const or not node.args or node.op in (Op.ADJ, Op.INPUT, Op.DIM):
        result = A.const(0.0)
    else:
        tangents = [tangent_expression(A, arg, tangent, memo) for arg in node.args]
        tangents = [None if t.is_const and t.value == 0.0 else t for t in tangents]
        has_tangent = any(t is not None for t in tangents)
        terms = [term for _, _, term in tangent_terms(A, node, tangents)] if has_tangent else []
        result = A.broadcast_to(A.add(*terms), node.shape) if terms else A.const(0.0)
    memo[node.id] = result
    return result
