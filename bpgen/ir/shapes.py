"""Shapes: NumPy broadcasting and the shape rules of tensor ops, with symbolic dimensions.

A shape is a tuple of ints and SymPy symbols (a batch size `N`); () is a scalar.
A mismatch raises ShapeError as soon as an expression is declared.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from ..errors import BpgenError
from ..runtime import conv_size  # the generated code's own rule, so that both agree


class ShapeError(BpgenError):
    """Operands whose shapes do not fit the op."""


def format_shape(shape: tuple) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def check_dim(d) -> int | sympy.Symbol:
    if isinstance(d, bool) or not isinstance(d, (int, sympy.Symbol)):
        if isinstance(d, sympy.Integer):
            return int(d)
        raise ShapeError(f"a dimension must be an int or a SymPy symbol, not {d!r}")
    if isinstance(d, int) and d < 1:
        raise ShapeError(f"a dimension must be positive, not {d}")
    return d


def broadcast(shapes: Sequence[tuple], what: str = "combine") -> tuple:
    """The NumPy broadcast of `shapes`; symbolic dimensions must match exactly or meet a 1."""
    ndim = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(-ndim, 0):
        dims = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        if len(dims) > 1:
            raise ShapeError(f"cannot {what} shapes {' and '.join(format_shape(s) for s in shapes)}: "
                             f"they do not broadcast")
        result.append(dims.pop() if dims else 1)
    return tuple(result)


def matmul(a: tuple, b: tuple) -> tuple:
    """NumPy's matmul: vectors and matrices, and stacks of matrices whose leading (batch) axes broadcast; a
    vector operand gains an axis that the result then drops."""
    if not a or not b:
        raise ShapeError("@ needs tensors with at least one axis, not scalars")
    inner_a = a[-1]
    inner_b = b[0] if len(b) == 1 else b[-2]
    if inner_a != inner_b:
        raise ShapeError(f"cannot multiply shapes {format_shape(a)} @ {format_shape(b)}: "
                         f"inner dimensions {inner_a} and {inner_b} differ")
    lead_a, lead_b = a[:-2], b[:-2]
    try:
        lead = broadcast([lead_a, lead_b])
    except ShapeError:
        raise ShapeError(f"cannot multiply shapes {format_shape(a)} @ {format_shape(b)}: their batch axes "
                         f"{format_shape(lead_a)} and {format_shape(lead_b)} do not broadcast") from None
    rows = a[-2:-1] if len(a) >= 2 else ()
    cols = b[-1:] if len(b) >= 2 else ()
    return lead + rows + cols


def conv_output(size: tuple, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> tuple:
    """The spatial size of a convolution's or a pool's output: the positions the dilated kernel takes along each
    axis of the padded input, `stride` apart (PyTorch's floor rule)."""
    return tuple(conv_size(*axis) for axis in zip(size, kernel, stride, padding, dilation))


def reduce(shape: tuple, axis: int | None) -> tuple:
    if axis is None:
        return ()
    return shape[:axis] + shape[axis + 1:]


def normalize_axis(shape: tuple, axis: int | None) -> int | None:
    if axis is None:
        return None
    if not isinstance(axis, int) or not -len(shape) <= axis < len(shape):
        raise ShapeError(f"axis {axis!r} is out of range for shape {format_shape(shape)}")
    return axis % len(shape)


def permutation(shape: tuple, axes) -> tuple[int, ...]:
    """`axes` as NumPy's transpose takes them (negative axes allowed), checked to be a permutation of the axes
    of `shape`."""
    ndim = len(shape)
    try:
        normalized = tuple(int(a) % ndim if isinstance(a, int) and -ndim <= a < ndim else None for a in axes)
    except TypeError:
        normalized = (None,)
    if len(normalized) != ndim or None in normalized or sorted(normalized) != list(range(ndim)):
        raise ShapeError(f"axes {tuple(axes)!r} are not a permutation of the {ndim} axes of shape "
                         f"{format_shape(shape)}")
    return normalized


def inverse_permutation(axes: tuple[int, ...]) -> tuple[int, ...]:
    """The axes that undo permuting by `axes`."""
    inverse = [0] * len(axes)
    for position, axis in enumerate(axes):
        inverse[axis] = position
    return tuple(inverse)


def size(shape: tuple):
    """The number of elements: an int, or a SymPy expression when a dimension is symbolic. Evaluated whatever
    SymPy's global switch says (`@bpgen.function` declares under `sympy.evaluate(False)`)."""
    with sympy.evaluate(True):
        total = sympy.Integer(1)
        for d in shape:
            total *= d
    return int(total) if total.is_Integer else total


def same_size(a: tuple, b: tuple) -> bool:
    """Whether two shapes hold the same number of elements (N * 6 and 2 * N * 3 do)."""
    with sympy.evaluate(True):
        return sympy.expand(sympy.sympify(size(a)) - sympy.sympify(size(b))) == 0


def size_sources(values) -> dict:
    """Each symbolic size of the values' shapes -> (the first value that has it, the axis): where code reads
    it (`N = X.shape[0]`)."""
    sources: dict = {}
    for value in values:
        for axis, d in enumerate(value.shape):
            if not isinstance(d, int) and d not in sources:
                sources[d] = (value, axis)
    return sources
