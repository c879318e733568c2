"""`bpgen.einsum`: NumPy's einsum for one or two operands, lowered when it is declared.

Numba has no `np.einsum`, and a product written as one reads better in the
staged code anyway: two operands become a sum over the letters only one of
them has, a permutation of each into (batch, free, contracted) and
(batch, contracted, free) order, a matrix product (`@`, batched over the
shared letters), and a reshape and permutation into the output's order. Its
gradient is that of those ops, which are two more products of the same kind.
"""

from __future__ import annotations

from ..errors import BpgenError
from ..ir.graph import Node
from ..ir.shapes import ShapeError, format_shape
from ..ir.shapes import size as shape_size
from .tensor import ALGEBRA, Tensor


def einsum(spec: str, *operands) -> Tensor:
    """numpy.einsum(spec, a) or numpy.einsum(spec, a, b): "bij,bjk->bik", "bhqd,bhkd->bhqk", "ij,j->i",
    "ij->ji". Without "->" the output holds the letters that appear once, in alphabetical order, as in NumPy.
    Not supported: a letter repeated in one operand (a diagonal, "ii") and "..."."""
    if not isinstance(spec, str):
        raise BpgenError(f"bpgen.einsum takes its subscripts as a string first, not {type(spec).__name__}")
    if len(operands) not in (1, 2) or not all(isinstance(t, Tensor) for t in operands):
        raise BpgenError(f"bpgen.einsum({spec!r}, ...) takes one or two Tensors, not "
                         f"{', '.join(type(t).__name__ for t in operands) or 'none'}")
    inputs, output = _parse(spec, len(operands))
    sizes: dict[str, object] = {}
    for letters, t in zip(inputs, operands):
        if len(letters) != t.ndim:
            raise ShapeError(f"einsum {spec!r}: {letters!r} names {len(letters)} axes, but {t.describe()} has "
                             f"{t.ndim}")
        for letter, d in zip(letters, t.shape):
            if sizes.setdefault(letter, d) != d:
                raise ShapeError(f"einsum {spec!r}: axis {letter!r} has sizes {sizes[letter]} and {d} "
                                 f"({', '.join(u.describe() for u in operands)})")
    # each operand keeps the letters the output or the other operand has, and is summed over the rest first
    wanted = [set(output) | set("".join(inputs[:i] + inputs[i + 1:])) for i in range(len(inputs))]
    nodes = [_sum_letters(t.node, letters, w) for t, letters, w in zip(operands, inputs, wanted)]
    inputs = ["".join(c for c in letters if c in w) for letters, w in zip(inputs, wanted)]
    if len(nodes) == 1:
        return Tensor._wrap(_arranged(nodes[0], inputs[0], output))
    return Tensor._wrap(_product(spec, nodes, inputs, output, sizes))


def _parse(spec: str, count: int) -> tuple[list[str], str]:
    text = spec.replace(" ", "")
    if "." in text:
        raise BpgenError(f"einsum {spec!r}: '...' is not supported; name every axis with a letter")
    left, arrow, output = text.partition("->")
    inputs = left.split(",")
    if len(inputs) != count:
        raise BpgenError(f"einsum {spec!r} names {len(inputs)} operands, but {count} were given")
    every = "".join(inputs)
    if not arrow:
        output = "".join(sorted(c for c in set(every) if every.count(c) == 1))
    for letters in inputs + [output]:
        if not all(c.isalpha() for c in letters):
            raise BpgenError(f"einsum {spec!r}: subscripts are letters, not {letters!r}")
        if len(set(letters)) != len(letters):
            raise BpgenError(f"einsum {spec!r}: {letters!r} repeats a letter (diagonals are not supported)")
    missing = [c for c in output if c not in every]
    if missing:
        raise BpgenError(f"einsum {spec!r}: the output's {missing[0]!r} is in no operand")
    return inputs, output


def _sum_letters(node: Node, letters: str, wanted: set) -> Node:
    """`node` summed over its letters that neither the output nor the other operand has (last axis first, so
    the others keep their numbers)."""
    for axis in reversed(range(len(letters))):
        if letters[axis] not in wanted:
            node = ALGEBRA.sum(node, axis)
    return node


def _arranged(node: Node, letters: str, output: str) -> Node:
    """`node`, whose axes are `letters`, permuted into the order of `output` (the same letters)."""
    return ALGEBRA.permute(node, tuple(letters.index(c) for c in output))


def _merged(spec: str, node: Node, groups: list[str], sizes: dict) -> Node:
    """`node` (axes `letters`, already in the order of `groups` joined) reshaped so that each group is one axis:
    a group of no letters is an axis of 1, of several letters the product of their sizes (whole numbers only)."""
    shape: list = []
    for group in groups:
        dims = [sizes[c] for c in group]
        if len(dims) == 1:
            shape.append(dims[0])
            continue
        total = shape_size(tuple(dims))
        if not isinstance(total, int):
            raise ShapeError(f"einsum {spec!r}: the axes {group!r} of sizes {format_shape(tuple(dims))} would be "
                             "merged into one, which needs whole-number sizes")
        shape.append(total)
    return ALGEBRA.reshape(node, tuple(shape))


def _product(spec: str, nodes: list[Node], inputs: list[str], output: str, sizes: dict) -> Node:
    (a, b), (la, lb) = nodes, inputs
    batch = "".join(c for c in output if c in la and c in lb)
    contracted = "".join(c for c in la if c in lb and c not in output)
    free_a = "".join(c for c in output if c in la and c not in lb)
    free_b = "".join(c for c in output if c in lb and c not in la)
    if not batch and len(free_b) > 1 and len(free_a) <= 1:  # (A B)^T = B^T A^T: B's free axes lead instead
        return _product(spec, [b, a], [lb, la], output, sizes)
    a = _arranged(a, la, batch + free_a + contracted)
    b = _arranged(b, lb, batch + contracted + free_b)
    groups_b = list(batch) + [contracted, free_b]
    if not batch and len(free_a) > 1:  # a stack times a matrix: its free axes stay leading (one flat product)
        groups_a = list(free_a) + [contracted]
    elif not (batch or free_a or free_b):  # a dot product of two vectors
        groups_a = groups_b = [contracted]
    else:
        groups_a = list(batch) + [free_a, contracted]
    a = _merged(spec, a, groups_a, sizes)
    b = _merged(spec, b, groups_b, sizes)
    product = ALGEBRA.matmul(a, b)
    result = batch + free_a + free_b
    product = ALGEBRA.reshape(product, tuple(sizes[c] for c in result))
    return _arranged(product, result, output)
