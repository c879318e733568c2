"""The reverse pass: walk the forward schedule backwards, chaining local partials.

For each node, in reverse topological order, every argument that leads to a
`wrt` input receives `partial * upstream`; its first contribution assigns
(`dx = ...`) and later ones accumulate (`dx += ...`, the copy gate). Adjoints
nobody needs are never created: arguments that do not lead to a `wrt` input
get nothing, and nodes the output does not depend on are not in the schedule.
The output's own adjoint is the constant 1, folded into its users' partials;
a tensor-valued output instead starts from a seed (a vector-Jacobian product).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..ir.graph import Node, depends_on
from ..ir.ops import Op
from ..rules.algebra import Algebra
from ..rules.table import rule_of
from .scan import scan_parts, scan_vjp


@dataclass(frozen=True)
class Contribution:
    target: Node  # the node whose adjoint receives this term
    adjoint: Node  # the "adj" node of target, the variable that accumulates
    term: Node  # partial * upstream, simplified
    partial: Node | None  # d(source)/d(target), the local derivative (None for tensor ops' VJPs)
    upstream: Node  # the adjoint of `source` (an "adj" node, or the constant 1)
    source: Node  # the forward node being differentiated
    first: bool  # `=` rather than `+=`
    folded: bool = False  # a constant the adjoint became (a scalar's only contribution): no line computes it
    seeded: bool = False  # the seed of an output that also feeds another (a vector of outputs): `dy += dy_1`
    joined: tuple[Node, ...] = ()  # the slices whose gradients this one joins (one concatenate for all of them)


@dataclass(frozen=True)
class Backward:
    steps: list[Contribution]  # every contribution, in order, folded ones included (pictures draw them)
    gradients: list[Node]  # one per wrt input: its adjoint, or the constant 0

    @property
    def printed(self) -> list[Contribution]:
        """The contributions a backward line computes: all but the folded ones."""
        return [s for s in self.steps if not s.folded]


def output_seeds(A: Algebra, outputs: list[Node], tag: tuple = ()) -> tuple[list[Node], dict[int, Node]]:
    """One seed per output (an adjoint variable whose attrs are `tag` and its position, so that one node returned
    twice gets two), and by output node id their sum: what `backward` takes as `seeds`."""
    seeds = [A.graph.node(Op.ADJ, (o,), (*tag, k), shape=o.shape) for k, o in enumerate(outputs)]
    by_output: dict[int, Node] = {}
    for o, s in zip(outputs, seeds):
        by_output[o.id] = A.add(by_output[o.id], s) if o.id in by_output else s
    return seeds, by_output


def backward(forward: list[Node], output: Node, wrt: list[Node], A: Algebra, seed: Node | None = None,
             named: frozenset[int] = frozenset(), seeds: dict[int, Node] | None = None) -> Backward:
    """seed: the output's adjoint when it is a tensor (a parameter of `vjp`); a scalar output's is 1.
    named: nodes the user named, whose adjoints are variables even when constant (`dquad = 1.0`).
    seeds: instead, the adjoints of several outputs by node id (a vector of outputs: vjp's parameters)."""
    needed = depends_on(forward, wrt)
    scheduled = {n.id for n in forward}
    adjoint: dict[int, Node] = {}  # node id -> its adjoint: an "adj" variable or a folded constant
    if seeds is not None:
        adjoint.update((i, s) for i, s in seeds.items() if i in needed)
    elif output.id in needed:
        adjoint[output.id] = A.const(1.0) if seed is None else seed
    steps: list[Contribution] = []
    received: dict[int, list[int]] = {}  # target id -> indices of its contributions in steps
    folded: set[int] = set()
    parts = scan_parts(forward)
    for node in reversed(forward):
        if node.id in received:
            _join_slices(A, received[node.id], steps, folded)
            seed_of_node = adjoint.get(node.id) if seeds is not None else None
            adjoint[node.id] = _settle(node, received[node.id], steps, folded, node.id in named or seed_of_node is
                                       not None)
            if seed_of_node is not None:  # an output that other outputs also use: its own seed adds on
                variable = steps[received[node.id][0]].adjoint
                steps.append(Contribution(node, variable, seed_of_node, None, seed_of_node, node, False, seeded=True))
        if node.op == Op.TANGENT:  # a tangent jvp takes as a parameter: a leaf, whatever it is the tangent of
            continue
        wanted = [i for i, a in enumerate(node.args) if a.id in needed]
        if node.op == Op.SCAN:  # a loop: differentiated as a whole, from the adjoints of its results
            results = parts.get(node.id, {})
            body = node.attrs[0]
            upstreams = [adjoint.get(results[k].id) if k in results else None
                         for k in range(len(body.carries) + len(body.ys))]
            if wanted and any(u is not None for u in upstreams):
                grads = scan_vjp(A, node, upstreams, wanted)
                for i in wanted:
                    _add(steps, received, A, node.args[i], grads[i], None, grads[i].args[0], node)
            continue
        upstream = adjoint.get(node.id)
        if upstream is None or not node.args:
            continue
        rule = rule_of(node)
        if not wanted or (rule.partials is None and rule.vjp is None):  # a condition: no gradient flows
            continue
        if rule.vjp is not None:  # a tensor op: its whole vector-Jacobian product per argument
            terms = _per_argument(A, node.args, rule.vjp(A, node.args, node, upstream))
            partials = [None] * len(terms)
        else:  # elementwise: local partial times upstream, summed back over broadcast axes
            partials = _per_argument(A, node.args, rule.partials(A, node.args, node))
            terms = [None if p is None else A.sum_to(_times(A, p, upstream, scheduled), a.shape)
                     for p, a in zip(partials, node.args)]
        for i in wanted:
            if node.args.index(node.args[i]) == i:  # an argument used twice (w * w) gets one line
                _add(steps, received, A, node.args[i], terms[i], partials[i], upstream, node)
    for w in wrt:  # inputs the schedule leaves out (a loop's step takes them as parameters)
        if w.id not in received or w.id in scheduled:
            continue
        seed_of_input = seeds.get(w.id) if seeds is not None else None
        if w.id in adjoint and seed_of_input is None:
            continue
        adjoint[w.id] = _settle(w, received[w.id], steps, folded, True)
        if seed_of_input is not None:  # an input that is also an output: its seed adds on
            variable = steps[received[w.id][0]].adjoint
            steps.append(Contribution(w, variable, seed_of_input, None, seed_of_input, w, False, seeded=True))
    gradients = [adjoint.get(w.id, A.const(0.0)) for w in wrt]
    return Backward([replace(s, folded=True) if k in folded else s for k, s in enumerate(steps)], gradients)


def _per_argument(A: Algebra, args: tuple[Node, ...], parts: list[Node | None]) -> list[Node | None]:
    """Each argument's whole part, where one node is several arguments: d(w * w)/dw = w + w, as 2.0 * w."""
    combined = list(parts)
    for i, a in enumerate(args):
        positions = [j for j, b in enumerate(args) if b is a]
        if len(positions) > 1 and positions[0] == i:
            found = [parts[j] for j in positions if parts[j] is not None]
            if not found:
                continue
            same = all(f is found[0] for f in found)
            combined[i] = A.mul(A.const(float(len(found))), found[0]) if same else A.add(*found)
    return combined


def _add(steps: list[Contribution], received: dict[int, list[int]], A: Algebra, target: Node, term: Node | None,
         partial: Node | None, upstream: Node, source: Node) -> None:
    """One more term of target's adjoint: `=` for its first, `+=` after (the copy gate)."""
    if term is None or (term.is_const and term.value == 0.0):
        return
    first = target.id not in received
    received.setdefault(target.id, []).append(len(steps))
    variable = A.graph.node(Op.ADJ, (target,), shape=target.shape)
    steps.append(Contribution(target, variable, term, partial, upstream, source, first))


def _times(A: Algebra, partial: Node, upstream: Node, scheduled: set[int]) -> Node:
    """partial * upstream; a partial 1 / b that the forward pass did not compute gives upstream / b: one
    division rather than a division and a product. A constant upstream times a partial c * u gives
    (upstream * c) * u where that product is exact (one of them a power of two): 0.5 * (2.0 * u) is u."""
    if partial.op == Op.DIV and partial.id not in scheduled and partial.args[0].is_const \
            and partial.args[0].value == 1.0:
        return A.div(upstream, partial.args[1])
    if upstream.is_const and partial.op == Op.MUL and partial.id not in scheduled and partial.args[0].is_const \
            and (_power_of_two(upstream.value) or _power_of_two(partial.args[0].value)):
        return A.mul(A.const(upstream.value * partial.args[0].value), *partial.args[1:])
    return A.mul(partial, upstream)


def _power_of_two(c: float) -> bool:
    """Multiplying by c is exact (short of overflow and underflow)."""
    return c != 0.0 and math.isfinite(c) and math.frexp(abs(c))[0] == 0.5


def _join_slices(A: Algebra, indices: list[int], steps: list[Contribution], folded: set[int]) -> None:
    """An array read only through slices of one axis (the gates of an LSTM, q, k and v of attention) gets each
    slice's gradient in zeros, to be added up: instead, one line at the last of them joins them, with zeros for
    what no slice reads. The others are folded into it."""
    terms = [steps[i].term for i in indices]
    if len(terms) < 2 or any(t.op != Op.EMBED_AXIS or t.attrs[0] != terms[0].attrs[0] or t.attrs[2] !=
                             terms[0].attrs[2] for t in terms):
        return
    axis, _, size = terms[0].attrs
    pieces = sorted(((t.attrs[1], t.args[0]) for t in terms), key=lambda p: p[0])
    parts, at = [], 0
    for start, piece in pieces:
        if start < at:
            return  # overlapping slices: their gradients add up after all
        if start > at:
            shape = piece.shape[:axis] + (start - at,) + piece.shape[axis + 1:]
            parts.append(A.fill(A.const(0.0), shape))
        parts.append(piece)
        at = start + piece.shape[axis]
    if at < size:
        parts.append(A.fill(A.const(0.0), pieces[-1][1].shape[:axis] + (size - at,) + pieces[-1][1].shape[axis + 1:]))
    last = indices[-1]
    folded.update(indices[:-1])
    in_order = sorted(indices, key=lambda i: steps[i].term.attrs[1])
    steps[last] = replace(steps[last], term=A.concat(parts, axis), partial=None, first=True,
                          joined=tuple(steps[i].source for i in in_order))


def _settle(node: Node, indices: list[int], steps: list[Contribution], folded: set[int], named: bool) -> Node:
    """A node's adjoint once all its contributions are in: a lone constant is folded, not stored, unless the
    user named the node (its gradient then has a line of its own, as in the notes)."""
    if len(indices) == 1 and steps[indices[0]].term.is_const and node.shape == () and not named:
        folded.add(indices[0])
        return steps[indices[0]].term
    return steps[indices[0]].adjoint
