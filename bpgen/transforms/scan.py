"""A scan's derivatives. Its gradient: one reversed loop over the tape (a "scan_backward" node), calling the
step's backward and adding up the gradients of the weights, one result per argument the reverse pass wants.
Its tangent: a scan of its own whose carries, slices and weights are the old ones and their tangents, its step
the old step with tangent lines (forward mode: the primals computed once, beside their tangents)."""

from __future__ import annotations

from ..frontend.names import TANGENT_PREFIX
from ..ir.graph import Node, depends_on
from ..ir.loops import ScanBody
from ..ir.ops import Op
from .forward import tangent_expression, tangent_of


def scan_parts(forward: list[Node]) -> dict[int, dict[int, Node]]:
    """For each scan node of a schedule, its results in use: scan id -> {result index: part node}."""
    parts: dict[int, dict[int, Node]] = {}
    for node in forward:
        if node.op == Op.PART and node.args[0].op == Op.SCAN:
            parts.setdefault(node.args[0].id, {})[node.attrs[0]] = node
    return parts


def scan_vjp(A, scan: Node, seeds: list[Node | None], wanted: list[int]) -> dict[int, Node]:
    """The gradients of the scan's arguments `wanted` (indices into its args), given the adjoints of its
    final carries and stacked ys (None: not used, so zero): one scan_backward node and a part per argument."""
    body: ScanBody = scan.attrs[0]
    zeros = [A.fill(A.const(0.0), shape) if shape else A.const(0.0) for shape in body.result_shapes()]
    upstream = [seed if seed is not None else zeros[k] for k, seed in enumerate(seeds)]
    tape = A.make(Op.PART, (scan,), (body.tape_index,))
    mask = tuple(i in wanted for i in range(len(scan.args)))
    grads = A.make(Op.SCAN_BACKWARD, (*scan.args, tape, *upstream), (body, mask))
    return {i: A.make(Op.PART, (grads,), (j,)) for j, i in enumerate(sorted(wanted))}


def scan_jvp(A, body: ScanBody, args: tuple[Node, ...], tangents: list[Node | None]) -> tuple[Node, dict]:
    """The tangent scan of a scan (its `body`, its arguments `args`, their tangents, None where none flows): one
    forward loop carrying the primals and their tangents together, its step the user's step followed by its
    tangent lines (JAX's scan JVP). Returns the new scan node and, per result of the old one, (its index in the
    new one, its tangent's index or None)."""
    nc, nx = len(body.carries), len(body.xs)
    t_init, t_seqs, t_closed = tangents[:nc], tangents[nc:nc + nx], tangents[nc + nx:]

    def placeholder(p: Node) -> Node:
        return A.graph.input(-1, ("tangent", p.id), p.shape)

    fixed = {p.id: placeholder(p) for p, t in [*zip(body.xs, t_seqs), *zip(body.closed, t_closed)] if t is not None}
    # a carry has a tangent if it starts with one or a step gives it one (a weight's tangent): a fixed point
    moving = [t is not None for t in t_init]
    while True:
        known = {**fixed, **{p.id: placeholder(p) for p, m in zip(body.carries, moving) if m}}
        memo: dict[int, Node] = {}
        outs = [tangent_expression(A, o, dict(known), memo) for o in body.outputs]
        grown = [m or not _is_zero(t) for m, t in zip(moving, outs)]
        if grown == moving:
            break
        moving = grown

    def zeros(shape: tuple) -> Node:
        return A.fill(A.const(0.0), shape) if shape else A.const(0.0)

    t_carries = [known[p.id] for p, m in zip(body.carries, moving) if m]
    t_xs = [fixed[p.id] for p, t in zip(body.xs, t_seqs) if t is not None]
    t_closed_in = [fixed[p.id] for p, t in zip(body.closed, t_closed) if t is not None]
    t_carry_out = [zeros(o.shape) if _is_zero(t) else t for o, t, m in zip(body.carry_out, outs, moving) if m]
    flowing_ys = [k for k, t in enumerate(outs[nc:]) if not _is_zero(t)]
    # the step's tangent lines read as its own, with a t: `th_new` for `h_new`
    hints = dict(body.hints)
    for node_id, local in body.hints.items():
        t = memo.get(node_id)
        if t is not None and not t.is_const and t.op != Op.INPUT and t.id not in hints:
            hints[t.id] = TANGENT_PREFIX + local
    params = body.param_names
    carry_params, x_params = params[:nc], params[nc:]
    name = body.name if body.name.isidentifier() else "step"
    jvp_body = ScanBody(
        f"{name}_jvp", body.carries + tuple(t_carries), body.xs + tuple(t_xs), body.closed + tuple(t_closed_in),
        body.carry_out + tuple(t_carry_out), body.ys + tuple(outs[nc + k] for k in flowing_ys), body.length,
        body.checkpoint,
        (*carry_params, *(TANGENT_PREFIX + n for n, m in zip(carry_params, moving) if m), *x_params,
         *(TANGENT_PREFIX + n for n, t in zip(x_params, t_seqs) if t is not None)),
        hints, primal=body,
        tangent_params=tuple((p, known[p.id]) for p in body.placeholders + body.closed if p.id in known),
        tangent_outputs=(*(k for k, m in enumerate(moving) if m), *(nc + k for k in flowing_ys)))
    init, seqs, closed = args[:nc], args[nc:nc + nx], args[nc + nx:]
    new_args = [*init, *(t if t is not None else zeros(a.shape) for a, t, m in zip(init, t_init, moving) if m),
                *seqs, *(t for t in t_seqs if t is not None), *closed, *(t for t in t_closed if t is not None)]
    node = A.make(Op.SCAN, new_args, (jvp_body,))
    n_tc, ny = len(t_carries), len(body.ys)
    index: dict[int, tuple[int, int | None]] = {}
    tangent_place = iter(range(nc, nc + n_tc))
    for k, m in enumerate(moving):
        index[k] = (k, next(tangent_place) if m else None)
    for j, k in enumerate(flowing_ys):
        index[nc + k] = (nc + n_tc + k, nc + n_tc + ny + j)
    for k in range(ny):
        index.setdefault(nc + k, (nc + n_tc + k, None))
    index[nc + ny] = (len(jvp_body.result_shapes()) - 1, None)  # the tape
    return node, index


def tangent_scans(A, forward: list[Node], wrt: list[Node]) -> tuple[dict[int, Node], dict[int, Node]]:
    """The forward program with every scan that the inputs `wrt` reach replaced by its tangent scan (scan_jvp),
    whose arguments' tangents are computed before it from the tangents of `wrt` (jvp's parameters). Returns
    (old node id -> new node, for the nodes made again; a primal result of a tangent scan -> its tangent)."""
    reach = depends_on(forward, wrt)
    new: dict[int, Node] = {}
    scan_tangents: dict[int, Node] = {}
    if not any(n.op == Op.SCAN and n.id in reach for n in forward):
        return new, scan_tangents
    tangent = {w.id: tangent_of(A, w) for w in wrt}
    memo: dict[int, Node] = {}
    made: dict[int, tuple[Node, dict]] = {}
    for node in forward:
        args = tuple(new.get(a.id, a) for a in node.args)
        if node.op == Op.SCAN and node.id in reach:
            tangents = [tangent_expression(A, a, tangent, memo) for a in args]
            made[node.id] = scan_jvp(A, node.attrs[0], args, [None if _is_zero(t) else t for t in tangents])
            new[node.id] = made[node.id][0]
        elif node.op == Op.PART and node.args[0].id in made:
            whole, index = made[node.args[0].id]
            primal, tangent_index = index[node.attrs[0]]
            part = A.make(Op.PART, (whole,), (primal,))
            new[node.id] = part
            if tangent_index is not None:
                tangent[part.id] = scan_tangents[part.id] = A.make(Op.PART, (whole,), (tangent_index,))
        elif any(a is not b for a, b in zip(args, node.args)):
            new[node.id] = A.graph.node(node.op, args, node.attrs, node.shape, order=node.order)
    return new, scan_tangents


def _is_zero(node: Node) -> bool:
    return node.is_const and node.value == 0.0
