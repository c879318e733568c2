"""A scan's gradient: one reversed loop over the tape (a "scan_backward" node), calling the step's backward
and adding up the gradients of the weights, one result per argument the reverse pass wants."""

from __future__ import annotations

from ..ir.graph import Node
from ..ir.loops import ScanBody
from ..ir.ops import Op


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
