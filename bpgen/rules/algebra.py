"""Smart constructors over the IR: constant folding and trivial-factor removal.

Lowering and the reverse pass build every node through `Algebra`, so `x * 1.0`,
`x + 0.0`, `-(-x)` and operations on constants never reach the output, and
structurally equal results are the same node (hash-consing in `Graph`).
"""

from __future__ import annotations

import math

from ..errors import BpgenError
from ..ir import shapes
from ..ir.graph import Graph, Node
from ..ir.ops import Op
from .table import rule_for


def _is(node: Node, value: float) -> bool:
    return node.is_const and node.value == value


def _whole(node: Node) -> bool:
    """A constant whole number: powers of powers of it multiply exactly, for any real base."""
    return node.is_const and float(node.value).is_integer() and abs(node.value) < 2**31


class Algebra:
    def __init__(self, graph: Graph):
        self.graph = graph
        # nodes the user named: a rewrite may use them as they are, never look inside (-(-a) is not x when
        # a = -x has a name, log(s) stays log(s)), so each keeps its own line
        self.keep: set[int] = set()

    def const(self, value: float) -> Node:
        return self.graph.const(value)

    def make(self, op: str, args, attrs: tuple = ()) -> Node:
        """A node of `op`, its shape inferred by the op's rule (elementwise ops broadcast)."""
        args = tuple(args)
        rule = rule_for(op, attrs)
        if rule.shape is not None:
            shape = rule.shape(args, attrs)
        elif any(a.shape for a in args):
            if not rule.elementwise:
                name = getattr(attrs[0], "__name__", op) if op == Op.CALL and attrs else op
                raise BpgenError(f"{name} has no array form: it cannot be applied elementwise to a tensor")
            shape = shapes.broadcast([a.shape for a in args], op)
        else:
            shape = ()
        return self.graph.node(op, args, attrs, shape)

    def _fold(self, op: str, args: tuple[Node, ...], attrs: tuple = ()) -> Node | None:
        """The constant result of `op` on constant `args`, when it is a finite real number."""
        if not args or not all(a.is_const for a in args):
            return None
        numeric = rule_for(op, attrs).numeric
        if numeric is None:
            return None
        try:
            value = numeric(*(a.value for a in args))
        except (ArithmeticError, ValueError, TypeError):
            return None
        if not isinstance(value, (int, float, bool)) or value != value:
            return None
        return self.const(float(value))

    def apply(self, op: str, *args: Node, attrs: tuple = ()) -> Node:
        """Any op, folded when its arguments are constants, in a stable form where one is known."""
        folded = self._fold(op, args, attrs)
        if folded is not None:
            return folded
        # a named sigmoid keeps its line where it is used, but its log is still taken in the stable form, from its
        # argument: log(p) of p = sigmoid(z) at z = -800 is -800, not log(0.0)
        if op == Op.LOG and len(args) == 1 and (args[0].id not in self.keep or args[0].op == Op.SIGMOID):
            stable = self._stable_log(args[0])
            if stable is not None:
                return stable
        return self.make(op, args, attrs)

    def _stable_log(self, a: Node) -> Node | None:
        """log of a logistic expression as a softplus, which stays finite (and keeps its gradient) at +-1000:
        log(sigmoid(u)) = -softplus(-u), log(1 - sigmoid(u)) = -softplus(u), log(exp(u) + 1) = softplus(u); of a
        softmax as a log-softmax, of a sum of exponentials as a log-sum-exp."""
        if a.shape and (a.op in (Op.SOFTMAX, Op.SUM, Op.RESHAPE, Op.TRANSPOSE, Op.PERMUTE)):
            return self._stable_log_of_array(a)
        if a.op == Op.SIGMOID:
            return self.neg(self.apply(Op.SOFTPLUS, self.neg(a.args[0])))
        if a.op == Op.SUB and _is(a.args[0], 1.0) and a.args[1].op == Op.SIGMOID:
            return self.neg(self.apply(Op.SOFTPLUS, a.args[1].args[0]))
        if a.op == Op.ADD and len(a.args) == 2 and _is(a.args[1], 1.0):
            term = a.args[0]
            if term.op == Op.NEG and term.args[0].op == Op.SIGMOID:
                return self.neg(self.apply(Op.SOFTPLUS, term.args[0].args[0]))
            if term.op == Op.EXP:
                return self.apply(Op.SOFTPLUS, term.args[0])
        return None

    def _stable_log_of_array(self, a: Node) -> Node | None:
        views = []  # a softmax along a vector or another axis than the last comes reshaped or permuted: undone, redone
        inner = a
        while inner.op in (Op.RESHAPE, Op.TRANSPOSE, Op.PERMUTE) and inner.id not in self.keep:
            views.append(inner)
            inner = inner.args[0]
        if inner.op == Op.SOFTMAX and inner.id not in self.keep:
            out = self.make(Op.LOG_SOFTMAX, inner.args)
            for view in reversed(views):
                if view.op == Op.RESHAPE:
                    out = self.reshape(out, view.attrs[0])
                else:
                    out = self.transpose(out) if view.op == Op.TRANSPOSE else self.permute(out, view.attrs[0])
            return out
        if a.op != Op.SUM or a.args[0].op != Op.EXP or a.args[0].id in self.keep:
            return None
        z, axis = a.args[0].args[0], a.attrs[0]
        if len(z.shape) == 1:  # log(sum(exp(v))) of a vector: one row
            return self.sum(self.make(Op.LOGSUMEXP, (self.reshape(z, (1,) + z.shape),)), None)
        if len(z.shape) == 2 and axis in (0, 1):
            rows = z if axis == 1 else self.transpose(z)
            return self.reshape(self.make(Op.LOGSUMEXP, (rows,)), rows.shape[:1])
        return None

    # arithmetic -----------------------------------------------------------

    def add(self, *terms: Node) -> Node:
        consts = [t.value for t in terms if t.is_const]
        rest = [t for t in terms if not t.is_const]
        total = sum(consts)
        if total != 0.0 or not rest:
            rest.append(self.const(total))  # constants last: x + 1.0
        if len(rest) == 1:
            return rest[0]
        return self.make(Op.ADD, rest)

    def sub(self, a: Node, b: Node) -> Node:
        if _is(b, 0.0):
            return a
        if _is(a, 0.0):
            return self.neg(b)
        if a is b:
            return self.const(0.0)
        if b.is_const:
            return self.add(a, self.const(-b.value)) if a.is_const else self.make(Op.SUB, (a, b))
        return self.make(Op.SUB, (a, b))

    def neg(self, a: Node) -> Node:
        if a.is_const:
            return self.const(-a.value)
        if a.op == Op.NEG and a.id not in self.keep:
            return a.args[0]
        return self.make(Op.NEG, (a,))

    def mul(self, *factors: Node) -> Node:
        coeff = 1.0
        rest = []
        for f in factors:
            if f.is_const:
                coeff *= f.value
            else:
                rest.append(f)
        if coeff == 0.0 or not rest:
            return self.const(coeff)
        selects = [f for f in rest if self._is_const_select(f)]
        if selects:
            # (1.0 if c else 0.0) * g  ->  g if c else 0.0: routing, not arithmetic
            chosen = selects[0]
            others = list(rest)
            others.remove(chosen)  # one occurrence: p * p keeps the other p
            return self._scale_select(chosen, coeff, others)
        if coeff == -1.0:
            return self.neg(self.mul(*rest))
        if coeff != 1.0:
            rest.insert(0, self.const(coeff))  # constants first: 2.0 * x
        if len(rest) == 1:
            return rest[0]
        return self.make(Op.MUL, rest)

    def _is_const_select(self, node: Node) -> bool:
        if node.is_const:  # a NaN branch (no condition holds) must not be multiplied into the other factors
            return not math.isnan(node.value)
        return node.op == Op.SELECT and self._is_const_select(node.args[1]) and self._is_const_select(node.args[2])

    def _scale_select(self, node: Node, coeff: float, others: list[Node]) -> Node:
        if node.is_const:
            return self.mul(self.const(coeff * node.value), *others)
        cond, a, b = node.args
        return self.select(cond, self._scale_select(a, coeff, others), self._scale_select(b, coeff, others))

    def div(self, a: Node, b: Node) -> Node:
        if _is(b, 1.0):
            return a
        if _is(b, -1.0):
            return self.neg(a)
        if _is(a, 0.0):
            return self.const(0.0)
        if b.op == Op.DIV and _is(b.args[0], 1.0) and b.id not in self.keep:
            return self.mul(a, b.args[1])  # a / (1 / c) = a * c
        folded = self._fold(Op.DIV, (a, b))
        return folded if folded is not None else self.make(Op.DIV, (a, b))

    def pow(self, base: Node, exponent: Node) -> Node:
        if _is(exponent, 1.0):
            return base
        if _is(exponent, 0.0):
            return self.const(1.0)
        if _is(exponent, 0.5):
            return self.apply(Op.SQRT, base)
        if base.op == Op.POW and base.id not in self.keep and _whole(exponent) and _whole(base.args[1]):
            return self.pow(base.args[0], self.const(base.args[1].value * exponent.value))  # (x**2)**2 = x**4
        folded = self._fold(Op.POW, (base, exponent))
        return folded if folded is not None else self.make(Op.POW, (base, exponent))

    def select(self, cond: Node, a: Node, b: Node) -> Node:
        if a is b:
            return a
        if cond.is_const:
            return a if cond.value else b
        return self.make(Op.SELECT, (cond, a, b))

    def logical_and(self, *conds: Node) -> Node:
        if any(c.is_const and not c.value for c in conds):
            return self.const(0.0)
        rest = [c for c in conds if not c.is_const]
        if not rest:
            return self.const(1.0)
        if len(rest) == 1:
            return rest[0]
        return self.make(Op.AND, rest)

    # tensors ----------------------------------------------------------------

    def matmul(self, a: Node, b: Node) -> Node:
        """a @ b with NumPy's meaning, in the forms the targets print: vectors and matrices as they are; a stack
        of matrices times a matrix as one product of its rows (flat_matmul); a matrix times a stack through the
        transposes; other stacks with their batch axes broadcast to one shape (batch_matmul). A vector beside a
        stack becomes a one-row or one-column matrix, and the result drops that axis again."""
        if len(a.shape) <= 2 and len(b.shape) <= 2:
            return self.make(Op.MATMUL, (a, b))
        if len(a.shape) == 1:
            return self.reshape(self.matmul(self.reshape(a, (1,) + a.shape), b), b.shape[:-2] + b.shape[-1:])
        if len(b.shape) == 1:
            return self.reshape(self.matmul(a, self.reshape(b, b.shape + (1,))), a.shape[:-1])
        if len(b.shape) == 2:
            return self.make(Op.MATMUL, (a, b))
        if len(a.shape) == 2:  # W @ X = (X^T @ W^T)^T: one product of X's rows
            return self.swap_last(self.matmul(self.swap_last(b), self.transpose(a)))
        lead = shapes.matmul(a.shape, b.shape)[:-2]
        a = self.broadcast_to(a, lead + a.shape[-2:])
        b = self.broadcast_to(b, lead + b.shape[-2:])
        return self.make(Op.MATMUL, (a, b))

    def flat_transpose_matmul(self, a: Node, g: Node) -> Node:
        """The sum over a's batch axes of a[i].T @ g[i]: a's rows and g's flattened, then a.T @ g."""
        if len(a.shape) == 2:
            return self.matmul(self.transpose(a), g)
        return self.make(Op.FLAT_TRANSPOSE_MATMUL, (a, g))

    def swap_last(self, a: Node) -> Node:
        """`a` with its last two axes exchanged (each matrix of a stack transposed)."""
        axes = list(range(len(a.shape)))
        axes[-2:] = axes[-1], axes[-2]
        return self.permute(a, tuple(axes))

    def outer(self, a: Node, b: Node) -> Node:
        return self.make(Op.OUTER, (a, b))

    def transpose(self, a: Node) -> Node:
        if len(a.shape) < 2:
            return a
        if a.op == Op.TRANSPOSE and a.id not in self.keep:
            return a.args[0]
        return self.make(Op.TRANSPOSE, (a,))

    def permute(self, a: Node, axes: tuple[int, ...]) -> Node:
        """`a`'s axes in the order `axes` (normalized): nothing for the identity, a transpose when they are
        reversed, one permutation for a permutation of a permutation."""
        axes = tuple(axes)
        if axes == tuple(range(len(a.shape))):
            return a
        if axes == tuple(reversed(range(len(a.shape)))):
            return self.transpose(a)
        if a.op == Op.PERMUTE and a.id not in self.keep:
            inner = a.attrs[0]
            return self.permute(a.args[0], tuple(inner[i] for i in axes))
        return self.make(Op.PERMUTE, (a,), (axes,))

    def slice_axis(self, a: Node, axis: int, start: int, stop: int) -> Node:
        """a[..., start:stop, ...] along `axis` (a concrete one): `a` itself for the whole axis."""
        if start == 0 and stop == a.shape[axis]:
            return a
        return self.make(Op.SLICE_AXIS, (a,), (axis, start, stop))

    def stride_axis(self, a: Node, axis: int, start: int, step: int, count: int) -> Node:
        """`count` entries of `a` along `axis`, from `start` on, `step` apart (a negative step runs backwards)."""
        if step == 1:
            return self.slice_axis(a, axis, start, start + count)
        return self.make(Op.STRIDE_AXIS, (a,), (axis, start, step, count))

    def spread_axis(self, g: Node, axis: int, start: int, step: int, size: int) -> Node:
        """Zeros of g's shape but `size` along `axis`, holding g's entries from `start` on, `step` apart."""
        if step == 1:
            return self.embed_axis(g, axis, start, size)
        return self.make(Op.SPREAD_AXIS, (g,), (axis, start, step, size))

    def element(self, a: Node, index: tuple[int, ...]) -> Node:
        """The entry of `a` at `index` (one int per axis, normalized)."""
        return self.make(Op.ELEMENT, (a,), (tuple(index),))

    def at_index(self, g: Node, index: tuple[int, ...], shape: tuple) -> Node:
        """Zeros of `shape` holding the number `g` at `index`."""
        return self.make(Op.AT_INDEX, (g,), (tuple(index), tuple(shape)))

    def embed_axis(self, a: Node, axis: int, start: int, size: int) -> Node:
        """Zeros of `a`'s shape but `size` along `axis`, holding `a` from `start` on."""
        if start == 0 and a.shape[axis] == size:
            return a
        return self.make(Op.EMBED_AXIS, (a,), (axis, start, size))

    def concat(self, parts: list[Node], axis: int) -> Node:
        if len(parts) == 1:
            return parts[0]
        return self.make(Op.CONCAT, tuple(parts), (axis,))

    def reshape(self, a: Node, shape: tuple) -> Node:
        if a.shape == shape:
            return a
        if a.op == Op.RESHAPE and a.id not in self.keep:
            a = a.args[0]
            if a.shape == shape:
                return a
        return self.make(Op.RESHAPE, (a,), (tuple(shape),))

    def sum(self, a: Node, axis: int | None) -> Node:
        if not a.shape:
            return a
        if len(a.shape) == 1:
            axis = None  # the one axis of a vector: all of it
        return self.make(Op.SUM, (a,), (axis,))

    def sum_channels(self, a: Node) -> Node:
        """(N, C, ...) summed over every axis but the channels' (the second): (C,)."""
        return self.make(Op.SUM_CHANNELS, (a,))

    def max(self, a: Node, axis: int | None) -> Node:
        """The largest entry over all of `a` (axis None) or along one axis."""
        if not a.shape:
            return a
        if axis is None or len(a.shape) == 1:
            return self.make(Op.MAX_ALL, (a,))
        if axis == len(a.shape) - 1:
            return self.make(Op.MAX_LAST, (a,))
        if axis == 0 and len(a.shape) == 2:  # a column max is the row max of the transpose
            return self.make(Op.MAX_LAST, (self.transpose(a),))
        return self.make(Op.MAX_ALONG, (a,), (axis,))

    def fill(self, value: Node, shape: tuple) -> Node:
        """`value` (a scalar) broadcast to a fresh array of `shape`."""
        if value.shape == shape:
            return value
        return self.make(Op.FILL, (value,), (tuple(shape),))

    def broadcast_to(self, a: Node, shape: tuple) -> Node:
        if a.shape == shape:
            return a
        if not a.shape:
            return self.fill(a, shape)
        return self.make(Op.BROADCAST_TO, (a,), (tuple(shape),))

    def sum_to(self, a: Node, shape: tuple) -> Node:
        """Undo broadcasting: sum `a` over the axes that broadcasting added or stretched to reach its shape."""
        if a.shape == shape:
            return a
        if not shape:
            return self.sum(a, None)
        channels = (a.shape[1],) + (1,) * (len(a.shape) - 2) if len(a.shape) >= 3 else None
        if channels and tuple(shape) in (channels, (1, *channels)):  # a bias of channels, (C, 1, 1) or (1, C, 1, 1)
            return self.reshape(self.sum_channels(a), tuple(shape))
        while len(a.shape) > len(shape):
            a = self.sum(a, 0)
        for axis, (have, want) in enumerate(zip(a.shape, shape)):
            if want == 1 and have != 1:
                kept = a.shape[:axis] + (1,) + a.shape[axis + 1:]
                a = self.reshape(self.sum(a, axis), kept)
        return a

    def dim(self, d) -> Node:
        """A dimension as a value: a constant, or the variable that holds a symbolic size."""
        if isinstance(d, int):
            return self.const(float(d))
        return self.graph.node(Op.DIM, (), (d,))

    def rows(self, a: Node) -> Node:
        return self.dim(a.shape[0])

    def keep_sum_rows(self, a: Node) -> Node:
        """Row sums of a matrix, kept as a column (n, 1) so that they broadcast back."""
        return self.reshape(self.sum(a, len(a.shape) - 1), a.shape[:-1] + (1,))
