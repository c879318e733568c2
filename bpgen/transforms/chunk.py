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

from dataclasses import replace

import sympy

from ..errors import BpgenError
from ..frontend.declaration import Declaration, declare_tensor
from ..frontend.tensor import ALGEBRA as A
from ..frontend.tensor import Tensor
from ..ir.graph import READ_OPS, Node, depends_on, rebuild, schedule
from ..ir.loops import ScanBody, body_schedule
from ..ir.ops import Op
from ..rules.table import rule_for

# ops linear in each argument when the others do not touch the batch: applied to a chunk's partial sums
LINEAR = frozenset({Op.MUL, Op.MATMUL, Op.OUTER, Op.TRANSPOSE, Op.RESHAPE, Op.SUM, Op.FILL, Op.BROADCAST_TO,
                    Op.NEG, Op.DIV, Op.ADD, Op.SUB})
MEANS = frozenset({Op.SOFTMAX_CE, Op.CROSS_ENTROPY})  # fused losses that average over their own rows
WHAT = {Op.LOG: "a log", Op.EXP: "an exp", Op.MAX_ALL: "a max over the batch", Op.MAX_ALONG: "a max over the batch",
        Op.MAX_LAST: "a max", Op.SQRT: "a square root", Op.POW: "a power", Op.SOFTMAX: "a softmax"}


def batch_layout(declaration: Declaration, batch: list[int]) -> tuple[object, dict[int, int]]:
    """The batch size of the inputs at positions `batch` (passed as Dask arrays) and the axis each has it on: as
    `batch_axes` declares, else the symbolic size they all share that no scan runs over (their leading one if
    several are shared). A one-line error when there is none, or no way to choose."""
    name, inputs = declaration.name, list(declaration.inputs)
    names = ", ".join(inputs[i].name for i in batch)
    lengths = {n.attrs[0].length: n.attrs[0].name for n in schedule([declaration.output]) if n.op == Op.SCAN}
    declared = dict(declaration.batch_axes)
    sizes = {inputs[i].shape[declared[inputs[i].name]] for i in batch if inputs[i].name in declared}
    if len(sizes) > 1:
        raise BpgenError(f"{name}: batch_axes gives the Dask inputs ({names}) different sizes: "
                         f"{', '.join(sorted(map(str, sizes)))}")
    if not sizes:
        shared = set.intersection(*({d for d in inputs[i].shape if not isinstance(d, int)} for i in batch)) - \
            set(lengths)
        leading = {inputs[i].shape[0] if inputs[i].shape else None for i in batch}
        sizes = leading & shared if len(leading & shared) == 1 else shared
        if len(sizes) > 1:
            raise BpgenError(f"{name}: the Dask inputs ({names}) share the sizes {', '.join(sorted(map(str, sizes)))}:"
                             f" say which is the batch with batch_axes={{'{inputs[batch[0]].name}': axis}} in "
                             "bpgen.function")
    if not sizes:
        raise BpgenError(f"{name}: on Dask, the inputs passed as Dask arrays ({names}) must share a symbolic "
                         "size (a batch size such as 'N') that no scan runs over")
    (B,) = sizes
    if B in lengths:
        raise BpgenError(f"{name}: {B} is the number of steps of the scan {lengths[B]}: its steps follow each other "
                         "and cannot be split over chunks; chunk along the batch axis")
    axes = {}
    for i in batch:
        t = inputs[i]
        if t.shape.count(B) != 1:
            raise BpgenError(f"{name}: {t.name} has shape {tuple(t.shape)}: a Dask input has the batch size {B} "
                             "on one axis")
        axes[i] = t.shape.index(B)
    return B, axes


def chunk_declaration(declaration: Declaration, batch: list[int]) -> Declaration:
    """The per-chunk declaration of a tensor function whose inputs at positions `batch` carry the batch axis
    (batch_layout): its inputs are the function's, then `N_total` and `once`."""
    name = declaration.name
    inputs = list(declaration.inputs)
    B, _ = batch_layout(declaration, batch)
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
    """The output with the batch inputs replaced by their chunks and the batch size by the total row count; a
    scan's step is made again on one chunk's rows."""
    def on_chunks(node: Node, args: tuple) -> Node:
        if node.op == Op.DIM:
            return total if node.attrs[0] == B else node
        if not args:
            return node
        if node.op == Op.SCAN:
            return A.make(Op.SCAN, args, (_step_on_chunks(node.attrs[0], on_chunks, B, C),))
        attrs = tuple(tuple(C if d == B else d for d in a) if isinstance(a, tuple) else a for a in node.attrs)
        return A.make(node.op, args, attrs)  # shapes inferred again: the batch axis is the chunk's

    return rebuild([output], mapping, on_chunks)[output.id]


def _step_on_chunks(body: ScanBody, on_chunks, B, C) -> ScanBody:
    """A scan's step with the batch size B replaced by the chunk's C: placeholders of the chunk's shapes."""
    mapping = {p.id: A.graph.input(-1, ("chunk", C, p.attrs[1]), tuple(C if d == B else d for d in p.shape))
               for p in body.placeholders + body.closed if B in p.shape}
    if not mapping:
        return body
    made = rebuild(list(body.outputs), mapping, on_chunks)
    again = [made[n.id] for n in body.outputs]
    count = len(body.carry_out)
    return replace(body, carries=tuple(made[p.id] for p in body.carries), xs=tuple(made[p.id] for p in body.xs),
                   closed=tuple(made[p.id] for p in body.closed), carry_out=tuple(again[:count]),
                   ys=tuple(again[count:]), hints={made[i].id: n for i, n in body.hints.items() if i in made},
                   function="")


class _Splitter:
    def __init__(self, name: str, output: Node, batch: list[Node], C, total: Node):
        self.name, self.C, self.total = name, C, total
        self.varying = depends_on(schedule([output]), batch)  # what depends on the batch's rows

    def depends(self, node: Node) -> bool:
        return node.id in self.varying

    def rowwise(self, node: Node) -> bool:
        """`node` keeps the rows apart: the chunk's size on one axis, the leading one, or another one that its
        operation leaves alone (an elementwise op, the row axis of a matrix product, a scan's stacked ys)."""
        if node.shape.count(self.C) != 1:
            return False
        axis = node.shape.index(self.C)
        if axis == 0 or node.op in READ_OPS or node.op == Op.PART or rule_for(node.op, node.attrs).elementwise:
            return True
        return node.op in (Op.MATMUL, Op.AFFINE) and axis == len(node.shape) - 2

    def batch_axis(self, node: Node) -> int | None:
        return node.shape.index(self.C) if self.C in node.shape else None

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
        if node.op == Op.SUM and self.rowwise(args[0]) and node.attrs[0] in (None, self.batch_axis(args[0])):
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
            if n.op == Op.SCAN:  # a loop keeps the rows apart when its step does
                self.check_step(n.attrs[0])
                stack.extend(n.args)
                continue
            if not self.rowwise(n):
                raise BpgenError(f"{self.name}: cannot split over the batch on Dask: {self.describe(n)} inside a sum "
                                 "over the batch mixes its rows")
            stack.extend(n.args)

    def check_step(self, body: ScanBody) -> None:
        """Every value of the step that depends on the chunk's rows keeps them apart, rows first."""
        rows = [p for p in body.placeholders + body.closed if self.C in p.shape]
        forward = body_schedule(body)
        varying = depends_on(forward, rows)
        for n in forward:
            if n.id in varying and not (n.shape and n.shape.count(self.C) == 1 and n.shape[0] == self.C):
                raise BpgenError(f"{self.name}: cannot split over the batch on Dask: {self.describe(n)} in the step "
                                 f"{body.name} mixes the rows of the batch")

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
