"""Fusions made on the declared graph before it is differentiated: a few op pairs become one op whose runtime
helper does the pair's work in fewer passes over memory.

A stack of matrices times a weight plus a bias row, `x @ W + b` with x of three or more axes (a transformer's
projections, an LSTM's input projection), becomes one AFFINE node: compiled, its helper adds b in place into
dgemm's product, one array and one pass fewer than a product and then a sum.
Only a product that nothing else reads, and that the user did not name, is fused: its line would be wanted (or
its value computed twice). The backward lines are those of the pair: `dx = flat_matmul(dz, W.T)`,
`dW = flat_transpose_matmul(x, dz)`, `db = sum_axis0(...)`.
"""

from __future__ import annotations

from collections import Counter

from ..ir.graph import Node, rebuild, schedule
from ..ir.ops import Op
from ..rules.algebra import Algebra


def _affine_product(node: Node, uses: Counter, named: set[int]) -> int | None:
    """Which argument of `node` is a stack's product that it adds a bias row to, when the pair can be fused."""
    if node.op != Op.ADD or len(node.args) != 2:
        return None
    for index, (product, bias) in enumerate((node.args, node.args[::-1])):
        if product.op != Op.MATMUL or uses[product.id] != 1 or product.id in named:
            continue
        x, w = product.args
        if len(x.shape) > 2 and len(w.shape) == 2 and tuple(bias.shape) == tuple(product.shape[-1:]) \
                and node.shape == product.shape:
            return index
    return None


def fuse(A: Algebra, output: Node, hints: dict[int, str]) -> tuple[Node, dict[int, str]]:
    """The output of the graph with its fusable pairs fused, and the user's names moved to the rebuilt nodes."""
    order = schedule([output])
    uses = Counter(a.id for node in order for a in node.args)
    named = set(hints) | A.keep
    products = {node.id: index for node in order if (index := _affine_product(node, uses, named)) is not None}
    if not products:
        return output, hints

    def make(node: Node, args: tuple[Node, ...]) -> Node:
        """The node again from its arguments made again (the same node where nothing below changed), fused."""
        if not args:
            return node
        index = products.get(node.id)
        if index is None:
            return A.graph.node(node.op, args, node.attrs, node.shape, order=node.order)
        product, bias = args[index], args[1 - index]
        return A.graph.node(Op.AFFINE, (*product.args, bias), (), node.shape, order=node.order)

    made = rebuild([output], {}, make)
    moved = {made[i].id: name for i, name in hints.items() if i in made}
    A.keep.update(made[i].id for i in A.keep.intersection(made))
    return made[output.id], {**hints, **moved}
