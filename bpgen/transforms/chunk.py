"""Split a loss over the batch axis, exactly: the per-chunk function a cluster runs on each chunk of rows.

A loss that is affine in its sums over the batch (a mean log-loss plus an L2 penalty, a softmax
cross-entropy, `X.T @ dz`-shaped contractions) is the sum over chunks of the same sums taken over each
chunk's rows, plus the terms that do not touch the batch, counted once. The chunk function is the
declaration rebuilt on chunks: the batch inputs get a chunk's row count `C` as their leading size, the
total row count becomes a parameter (`N_total`: a mean divides by all rows, not the chunk's), the fused
losses that average their own rows are weighted by `C / N_total`, and the batch-free terms are multiplied
by a parameter `once` (1 on one chunk, 0 on the others). A loss whose rows are coupled non-linearly (a log
of a mean over the batch, a max over the batch) is refused, naming the operation.
"""

from __future__ import annotations

import sympy

from ..errors import BpgenError
from ..frontend.declaration import Declaration, declare_tensor
from ..frontend.tensor import ALGEBRA as A
from ..frontend.tensor import Tensor
from ..ir.graph import Node, depends_on, rebuild, schedule
from ..ir.ops import Op

# ops linear in each argument when the others do not touch the batch: applied to a chunk's partial sums
LINEAR = frozenset({Op.MUL, Op.MATMUL, Op.OUTER, Op.TRANSPOSE, Op.RESHAPE, Op.SUM, Op.FILL, Op.BROADCAST_TO,
                    Op.NEG, Op.DIV, Op.ADD, Op.SUB})
MEANS = frozenset({Op.SOFTMAX_CE, Op.CROSS_ENTROPY})  # fused losses that average over their own rows
WHAT = {Op.LOG: "a log", Op.EXP: "an exp", Op.MAX_ALL: "a max over the batch", Op.MAX_ALONG: "a max over the batch",
        Op.MAX_LAST: "a max", Op.SQRT: "a square root", Op.POW: "a power", Op.SOFTMAX: "a softmax"}


def chunk_declaration(declaration: Declaration, batch: list[int]) -> Declaration:
    """The per-chunk declaration of a tensor function whose inputs at positions `batch` carry the batch axis
    (their leading one): its inputs are the function's, then `N_total` and `once`."""
    name = declaration.name
    inputs = list(declaration.inputs)
    leading = {inputs[i].shape[0] if inputs[i].shape else None for i in batch}
    B = leading.pop() if len(leading) == 1 else None
    if B is None or isinstance(B, int):
        names = ", ".join(inputs[i].name for i in batch)
        raise BpgenError(f"{name}: on Dask, the inputs passed as Dask arrays ({names}) must share a symbolic "
                         "leading size (a batch size such as 'N')")
    for k, t in enumerate(inputs):
        if k not in batch and B in t.shape:
            raise BpgenError(f"{name}: {t.name} has the batch size {B} in its shape {tuple(t.shape)}: pass it as a "
                             "Dask array chunked like the others")
    for w in declaration.wrt:
        if inputs.index(w) in batch:
            raise BpgenError(f"{name}: on Dask, gradients are taken with respect to parameters, not the batch input "
                             f"{w.name} (leave it out of wrt)")
    C = sympy.Symbol(f"{B}_chunk", integer=True, positive=True)
    taken = {t.name for t in inputs}
    total = Tensor(_fresh(f"{B}_total", taken), ())
    once = Tensor(_fresh("once", taken), ())
    new_inputs = [Tensor(t.name, tuple(C if d == B else d for d in t.shape)) if k in batch else t
                  for k, t in enumerate(inputs)]
    mapping = {t.node.id: n.node for t, n in zip(inputs, new_inputs)}
    rebuilt = _rebuild(declaration.output, mapping, B, C, total.node)
    splitter = _Splitter(name, rebuilt, [new_inputs[i].node for i in batch], C, total.node)
    batch_part, free_part = splitter.split(rebuilt)
    parts = [p for p in (batch_part, None if free_part is None else A.mul(once.node, free_part)) if p is not None]
    output = A.add(*parts) if len(parts) > 1 else parts[0]
    return declare_tensor(Tensor._wrap(output), [*new_inputs, total, once],
                          [new_inputs[inputs.index(w)] for w in declaration.wrt], f"{name}_chunk", declaration.origin)


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    return name


def _rebuild(output: Node, mapping: dict[int, Node], B, C, total: Node) -> Node:
    """The output with the batch inputs replaced by their chunks and the batch size by the total row count."""
    def on_chunks(node: Node, args: tuple) -> Node:
        if node.op == Op.DIM:
            return total if node.attrs[0] == B else node
        if node.op == Op.SCAN:
            raise BpgenError("bpgen.scan on Dask is not available yet")
        if not args:
            return node
        attrs = tuple(tuple(C if d == B else d for d in a) if isinstance(a, tuple) else a for a in node.attrs)
        return A.make(node.op, args, attrs)  # shapes inferred again: the batch axis is the chunk's

    return rebuild([output], mapping, on_chunks)[output.id]


class _Splitter:
    def __init__(self, name: str, output: Node, batch: list[Node], C, total: Node):
        self.name, self.C, self.total = name, C, total
        self.varying = depends_on(schedule([output]), batch)  # what depends on the batch's rows

    def depends(self, node: Node) -> bool:
        return node.id in self.varying

    def rowwise(self, node: Node) -> bool:
        return bool(node.shape) and node.shape[0] == self.C

    def split(self, node: Node) -> tuple[Node | None, Node | None]:
        """(the part summed over chunks, the part counted once) of a node affine in the batch's sums."""
        if not self.depends(node):
            return None, node
        reduced = self.reduction(node)
        if reduced is not None:
            return reduced, None
        if node.op in LINEAR:
            dependent = [i for i, a in enumerate(node.args) if self.depends(a)]
            if node.op in (Op.ADD, Op.SUB):
                parts = [self.split(a) for a in node.args]
                return (self.combine(node, [p[0] for p in parts]), self.combine(node, [p[1] for p in parts]))
            if len(dependent) == 1 and not (node.op == Op.DIV and dependent[0] != 0):
                i = dependent[0]
                batch_part, free_part = self.split(node.args[i])
                return self.apply(node, i, batch_part), self.apply(node, i, free_part)
        raise BpgenError(f"{self.name}: cannot split over the batch on Dask: {self.describe(node)} couples the rows "
                         "(only sums and means over the batch, combined linearly, split exactly)")

    def reduction(self, node: Node) -> Node | None:
        """The chunk's partial value of a sum over the batch axis of row-wise terms, else None."""
        args = node.args
        if node.op == Op.SUM and self.rowwise(args[0]) and node.attrs[0] in (None, 0):
            inner = [args[0]]
        elif node.op == Op.MATMUL and len(args) == 2:
            a, b = args
            a = a.args[0] if a.op == Op.TRANSPOSE and self.rowwise(a.args[0]) and len(a.shape) == 2 else a
            if not (self.rowwise(a) and self.rowwise(b) and (len(args[0].shape) == 1 or args[0].op == Op.TRANSPOSE)):
                return None
            inner = [a, b]
        elif node.op in MEANS and self.rowwise(args[0]):
            inner = list(args)
        else:
            return None
        for term in inner:
            self.check_rowwise(term)
        if node.op in MEANS:  # the chunk's mean, weighted by its share of the rows
            return A.div(A.mul(node, A.rows(args[0])), self.total)
        return node

    def check_rowwise(self, node: Node) -> None:
        """Every batch-dependent value under a sum over the batch keeps the rows apart (the batch axis first)."""
        stack, seen = [node], set()
        while stack:
            n = stack.pop()
            if n.id in seen or not self.depends(n):
                continue
            seen.add(n.id)
            if not self.rowwise(n):
                raise BpgenError(f"{self.name}: cannot split over the batch on Dask: {self.describe(n)} inside a sum "
                                 "over the batch mixes its rows")
            stack.extend(n.args)

    def combine(self, node: Node, parts: list[Node | None]) -> Node | None:
        if all(p is None for p in parts):
            return None
        if node.op == Op.ADD:
            return A.add(*(p for p in parts if p is not None))
        first, second = parts
        if second is None:
            return first
        return A.neg(second) if first is None else A.sub(first, second)

    def apply(self, node: Node, i: int, part: Node | None) -> Node | None:
        if part is None:
            return None
        args = list(node.args)
        args[i] = part
        if node.op == Op.MUL:
            return A.mul(*args)
        if node.op == Op.DIV:
            return A.div(*args)
        if node.op == Op.NEG:
            return A.neg(part)
        return A.make(node.op, args, node.attrs)

    @staticmethod
    def describe(node: Node) -> str:
        return f"{WHAT.get(node.op, 'an operation')} ({node.op})"
