"""Loops: a scan is one node of the enclosing program whose step is a program of its own.

`scan(step, init, xs)` runs `carry, y = step(carry, x)` once per slice of xs. Its node's arguments are the
initial carries, the sequences and the values of the enclosing function the step reads (weights: `closed`);
its results, taken with "part" nodes, are the final carries, the stacked ys and the tape: the carries the
forward loop stored for the backward one (every one, or every k-th with checkpointing) and the values of
the step's lines its backward reads. The step's own
program lives in a `ScanBody`: placeholders stand for its carry and x, and its nodes are printed as functions
of their own, the step's forward and its staged backward, which the loops call.

Its gradient is a "scan_backward" node: a reversed loop over the tape calling the step's backward and adding
up the gradients of the weights, one result per argument the reverse pass wants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .graph import READ_OPS, Node, depends_on, rebuild, schedule
from .ops import Op


@dataclass(eq=False)
class ScanBody:
    """The step of one scan (compared and hashed by identity: it is a node's attribute)."""

    name: str  # the user's step function, for the generated functions' names
    carries: tuple[Node, ...]  # placeholders of the carries inside the step
    xs: tuple[Node, ...]  # placeholders of one slice of each sequence
    closed: tuple[Node, ...]  # placeholders of the values of the enclosing program the step reads (weights)
    carry_out: tuple[Node, ...]
    ys: tuple[Node, ...]
    length: object  # the number of steps: an int, or the symbolic leading size of the sequences
    checkpoint: int | None  # store every k-th carry, recompute the others in the backward loop
    param_names: tuple[str, ...]  # the step's parameters, for its placeholders: carries, then xs
    hints: dict[int, str] = field(default_factory=dict)  # node id -> the step's local name for it
    function: str = ""  # the generated functions' stem in one module, set when the module is printed
    # a tangent scan's step (bpgen/transforms/scan.py): the step it is the tangent of, its placeholders paired
    # with their tangents' placeholders, and which of that step's outputs have their tangents among its own
    primal: ScanBody | None = None
    tangent_params: tuple[tuple[Node, Node], ...] = ()
    tangent_outputs: tuple[int, ...] = ()

    @property
    def placeholders(self) -> tuple[Node, ...]:
        return self.carries + self.xs

    @property
    def outputs(self) -> tuple[Node, ...]:
        return self.carry_out + self.ys

    def result_shapes(self) -> list[tuple]:
        """Shapes of the scan node's results: the final carries, the stacked ys, and the tape (a tuple of arrays
        the backward loop takes whole: the stored carries and the step's values its backward reads)."""
        stacked = [(self.length, *y.shape) for y in self.ys]
        return [c.shape for c in self.carries] + stacked + [()]

    @property
    def tape_index(self) -> int:
        return len(self.carries) + len(self.ys)


def body_schedule(body: ScanBody) -> list[Node]:
    """The step's nodes in order, from the placeholders and closed values (its parameters) to its outputs."""
    stop = {n.id for n in body.placeholders + body.closed}
    seen: dict[int, Node] = {}
    stack = list(body.outputs)
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen[node.id] = node
        if node.id not in stop:
            stack.extend(node.args)
    return [seen[i] for i in sorted(seen) if i not in stop]


def closed_values(outputs: list[Node], placeholders: list[Node]) -> list[Node]:
    """What the step reads from the enclosing program: the largest expressions that do not depend on the
    placeholders (a weight, or `W.T` computed once outside the loop), in the order the step's expressions use
    them, left to right (`x @ W + h @ U + b`: W, U, b). Not by creation: an input another declaration made first
    (one graph holds every tensor) would come first."""
    varies = depends_on(schedule(outputs), placeholders)

    closed: list[Node] = []
    seen: set[int] = set()
    stack = list(reversed(outputs))
    while stack:
        node = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        if node.id not in varies:
            if node.op not in READ_OPS or node.op == Op.INPUT:
                closed.append(node)
            continue
        stack.extend(reversed(node.args))
    return closed


def substitute(graph, outputs: list[Node], mapping: dict[int, Node]) -> dict[int, Node]:
    """The nodes `outputs` depend on, with `mapping` (node id -> node) in place of some of their arguments,
    structure kept exactly: old id -> new node, for every node visited."""
    def same_op(node: Node, args: tuple) -> Node:
        if all(new is old for new, old in zip(args, node.args)):
            return node
        return graph.node(node.op, args, node.attrs, node.shape)

    return rebuild(outputs, mapping, same_op)


def backward_result_shapes(node: Node) -> list[tuple]:
    body, mask = node.attrs
    count = len(body.carries) + len(body.xs) + len(body.closed)
    return [a.shape for a, wanted in zip(node.args[:count], mask) if wanted]


def part_shape(args, attrs) -> tuple:
    (whole,) = args
    shapes = whole.attrs[0].result_shapes() if whole.op == Op.SCAN else backward_result_shapes(whole)
    return shapes[attrs[0]]
