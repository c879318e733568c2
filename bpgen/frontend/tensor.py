"""Tensors: `bpgen.Tensor(name, shape)` and NumPy-style expressions over them.

Tensor expressions are IR nodes built at once through the algebra (so shapes
are checked when an expression is declared, and shared subexpressions are
one node). They live in one module-level graph; each compiled function
takes from it only what its output depends on.
"""

from __future__ import annotations

import sympy

from ..errors import BpgenError
from ..ir.graph import Graph, Node, viewed
from ..ir.ops import Op
from ..ir.shapes import ShapeError, check_dim, format_shape, normalize_axis, permutation, same_size
from ..ir.shapes import broadcast as broadcast_shape
from ..ir.shapes import size as shape_size
from ..rules import sympy_functions
from ..rules.algebra import Algebra
from ..rules.idioms import recognize

GRAPH = Graph()
ALGEBRA = Algebra(GRAPH)
LOCAL_NAMES: dict[int, str] = {}  # node id -> the local name `@bpgen.function` saw it take, while it runs


def _dim(d):
    if isinstance(d, str):
        return sympy.Symbol(d, integer=True, positive=True)
    return check_dim(d)


# the dtypes an input may declare, by the names people write -> the one bpgen uses
DTYPES = {"float64": "float64", "float": "float64", "int64": "int64", "int": "int64", "bool": "bool"}


def _dtype(name: str, dtype) -> str:
    key = getattr(dtype, "__name__", dtype) if not isinstance(dtype, str) else dtype
    if str(key) not in DTYPES:
        raise BpgenError(f"tensor {name!r}: dtype is one of {', '.join(DTYPES)}, not {dtype!r}")
    return DTYPES[str(key)]


def dtype_of(node: Node) -> str:
    """The dtype of a value: an input's declared one, through the views that keep it (x[1:], x.T); bool for a
    comparison of arrays; float64 for anything computed."""
    node = viewed(node)
    if node.op == Op.INPUT and isinstance(node.attrs[1], tuple) and node.attrs[1][0] == "tensor":
        return node.attrs[1][3]
    if node.op in (Op.LT, Op.LE, Op.GT, Op.GE, Op.EQ, Op.NE, Op.AND, Op.OR, Op.NOT) and node.shape:
        return "bool"
    return "float64"


class Tensor:
    """A tensor input, `Tensor("X", (N, 784))`, or an expression over tensors.

    Shape entries are ints or SymPy symbols (strings become symbols): one
    compiled module then serves every size of that dimension. An input holds
    float64 numbers unless it declares `dtype="int64"` (indices, as in an
    embedding's `E[ids]`) or `dtype="bool"` (a mask for `bpgen.where`); the
    shape may name it last instead: `("N", "T", "int")`.
    """

    __array_priority__ = 1000  # NumPy scalars on the left defer to our operators

    def __init__(self, name: str, shape: tuple = (), dtype: str = "float64"):
        if not isinstance(name, str) or not name:
            raise BpgenError(f"a tensor needs a name (a non-empty string), not {name!r}")
        if isinstance(shape, (int, sympy.Symbol, str)):
            shape = (shape,)
        shape = tuple(shape)
        if shape and isinstance(shape[-1], str) and shape[-1] in DTYPES:  # ("N", "T", "int")
            shape, dtype = shape[:-1], shape[-1]
        dtype = _dtype(name, dtype)
        shape = tuple(_dim(d) for d in shape)
        if dtype != "float64" and not shape:
            raise BpgenError(f"tensor {name!r}: a {dtype} input is an array (indices or a mask), not a number")
        self.node = GRAPH.input(-1, ("tensor", name, shape, dtype), shape)
        self.name = name

    @property
    def dtype(self) -> str:
        return dtype_of(self.node)

    @classmethod
    def _wrap(cls, node: Node) -> Tensor:
        t = cls.__new__(cls)
        t.node = node
        t.name = None
        return t

    # what it is ------------------------------------------------------------

    @property
    def shape(self) -> tuple:
        return self.node.shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        label = self.name or self.node.op
        return f"Tensor({label}, shape={format_shape(self.shape)})"

    def describe(self) -> str:
        name = self.name or LOCAL_NAMES.get(self.node.id)
        if name:
            return f"{name} {format_shape(self.shape)}"
        return f"an expression of shape {format_shape(self.shape)}"

    def __bool__(self):
        raise BpgenError("a Tensor has no truth value while it is declared: write the branch with bpgen.nn "
                         "(relu, leaky_relu, ...) instead of if/else")

    # arithmetic ------------------------------------------------------------

    def __add__(self, other):
        return _binary("add", self, other, lambda a, b: ALGEBRA.add(a, b))

    def __radd__(self, other):
        return _binary("add", other, self, lambda a, b: ALGEBRA.add(a, b))

    def __sub__(self, other):
        return _binary("subtract", self, other, ALGEBRA.sub)

    def __rsub__(self, other):
        return _binary("subtract", other, self, ALGEBRA.sub)

    def __mul__(self, other):
        return _binary("multiply", self, other, lambda a, b: ALGEBRA.mul(a, b))

    def __rmul__(self, other):
        return _binary("multiply", other, self, lambda a, b: ALGEBRA.mul(a, b))

    def __truediv__(self, other):
        return _binary("divide", self, other, _divide)

    def __rtruediv__(self, other):
        return _binary("divide", other, self, _divide)

    def __pow__(self, other):
        return _binary("raise", self, other, ALGEBRA.pow)

    def __rpow__(self, other):
        return _binary("raise", other, self, ALGEBRA.pow)

    def __neg__(self):
        return Tensor._wrap(ALGEBRA.neg(self.node))

    def __pos__(self):
        return self

    def __matmul__(self, other):
        return _binary("matrix-multiply", self, other, ALGEBRA.matmul, matmul=True)

    def __rmatmul__(self, other):
        return _binary("matrix-multiply", other, self, ALGEBRA.matmul, matmul=True)

    def __gt__(self, other):
        return _binary("compare", self, other, lambda a, b: ALGEBRA.apply(Op.GT, a, b))

    def __lt__(self, other):
        return _binary("compare", self, other, lambda a, b: ALGEBRA.apply(Op.LT, a, b))

    @property
    def T(self) -> Tensor:
        return Tensor._wrap(ALGEBRA.transpose(self.node))

    def __getitem__(self, key) -> Tensor:
        """NumPy's basic indexing: ints (negative ones too), slices (with steps, negative ones too), `...` and
        None (a new axis); and an integer array input as the index picks rows (`E[ids]`, an embedding lookup).
        An int or a partial slice needs a concrete axis; a symbolic one (N) takes `:` only."""
        return index(self, key)

    def __iter__(self):
        """Over the first axis, as NumPy iterates (`a, b = t` for a (2, ...) tensor); a symbolic axis is refused:
        a loop over it is a bpgen.scan."""
        if not self.shape:
            raise TypeError(f"cannot iterate over the number {self.describe()}")
        first = self.shape[0]
        if not isinstance(first, int):
            raise ShapeError(f"cannot iterate over {self.describe()}: its first axis has the symbolic size {first} "
                             "(a loop over it is a bpgen.scan)")
        return iter([self[i] for i in range(first)])

    def _inferred(self, shape: tuple) -> tuple:
        """`shape` with a -1 replaced by the size the other entries leave (an int, or a symbol: N for
        (N, 784) reshaped to (-1, 28, 28)); an error when there is none."""
        unknown = [i for i, d in enumerate(shape) if isinstance(d, int) and not isinstance(d, bool) and d == -1]
        if len(unknown) > 1:
            raise ShapeError(f"cannot reshape {self.describe()} to {format_shape(shape)}: only one entry may be -1")
        if not unknown:
            return tuple(_dim(d) for d in shape)
        known = tuple(_dim(d) for i, d in enumerate(shape) if i != unknown[0])
        with sympy.evaluate(True):
            missing = sympy.simplify(sympy.sympify(shape_size(self.shape)) / sympy.sympify(shape_size(known)))
        if missing.is_Integer and int(missing) >= 1:
            missing = int(missing)
        elif not isinstance(missing, sympy.Symbol):
            raise ShapeError(f"cannot reshape {self.describe()} to {format_shape(shape)}: the -1 would be {missing}, "
                             "and a size is a whole number or one symbol")
        return tuple(missing if i == unknown[0] else _dim(d) for i, d in enumerate(shape))

    def transpose(self, *axes) -> Tensor:
        """NumPy's: the axes reversed, or in the order given (`t.transpose(0, 2, 1)` or `t.transpose((0, 2, 1))`)."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return transpose(self, axes or None)

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        return swapaxes(self, axis1, axis2)

    def reshape(self, *shape) -> Tensor:
        """NumPy's: the same elements in a new shape; one entry may be -1, the size the others leave."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = self._inferred(shape)
        if not same_size(shape, self.shape):
            raise ShapeError(f"cannot reshape {self.describe()} to {format_shape(shape)}: the sizes differ")
        return Tensor._wrap(ALGEBRA.reshape(self.node, shape))

    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        return sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        return mean(self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False) -> Tensor:
        return max(self, axis, keepdims)

    def min(self, axis=None, keepdims: bool = False) -> Tensor:
        return min(self, axis, keepdims)

    def var(self, axis=None, keepdims: bool = False) -> Tensor:
        return var(self, axis, keepdims)


def _divide(a: Node, b: Node) -> Node:
    """a / b, as sigmoid or tanh when it spells one out with exp (1.0 / (1.0 + exp(-X)))."""
    return recognize(ALGEBRA, ALGEBRA.div(a, b))


def as_node(value) -> Node:
    """A Tensor's node, or a constant for a Python or SymPy number."""
    if isinstance(value, Tensor):
        return value.node
    if isinstance(value, bool):
        raise BpgenError(f"a boolean {value!r} cannot be used as a number in a tensor expression")
    if isinstance(value, (int, float)):
        return ALGEBRA.const(float(value))
    if isinstance(value, sympy.Basic) and value.is_number and value.is_real:
        return ALGEBRA.const(float(value))
    raise BpgenError(f"cannot use {type(value).__name__} {value!r} in a tensor expression")


def _describe(value) -> str:
    return value.describe() if isinstance(value, Tensor) else f"the scalar {value!r}"


def _binary(verb: str, a, b, make, matmul: bool = False) -> Tensor:
    try:
        x, y = as_node(a), as_node(b)
        node = make(x, y)
        if not matmul:  # X - X or X * 0.0 fold to a number: it still has the broadcast shape of X
            node = ALGEBRA.broadcast_to(node, broadcast_shape([x.shape, y.shape]))
        return Tensor._wrap(node)
    except ShapeError as exc:
        detail = str(exc).split(": ", 1)[-1]
        raise ShapeError(f"cannot {verb} {_describe(a)} and {_describe(b)}: {detail}") from None


# reductions and elementwise functions --------------------------------------------


def index(t: Tensor, key) -> Tensor:
    """t[key]: each axis's range as a slice of that axis (its gradient: the upstream one in zeros), then a reshape
    that drops the axes an int took and adds those None asks for."""
    _check_tensor(t, "index")
    if isinstance(key, Tensor):
        return take(t, key)
    key = key if isinstance(key, tuple) else (key,)
    where = f"{t.describe()}[{', '.join(_key_text(k) for k in key)}]"
    if len([k for k in key if k is Ellipsis]) > 1:
        raise ShapeError(f"{where}: an index may hold one ... only")
    named = [k for k in key if k is not None and k is not Ellipsis]
    if len(named) > t.ndim:
        raise ShapeError(f"{where}: too many indices for {t.ndim} axes")
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (t.ndim - len(named)) + key[at + 1:]
    else:
        key = key + (slice(None),) * (t.ndim - len(named))
    if all(isinstance(k, int) and not isinstance(k, bool) for k in key) and key:  # one entry: x[i, j]
        index = tuple(_entry(where, axis, k, size) for axis, (k, size) in enumerate(zip(key, t.shape)))
        return Tensor._wrap(ALGEBRA.element(t.node, index))
    node, axis, shape = t.node, 0, []
    for k in key:
        if k is None:
            shape.append(1)
            continue
        size = t.shape[axis]
        if isinstance(k, slice) and k == slice(None):
            shape.append(size)
        elif isinstance(k, (int, slice)) and not isinstance(k, bool):
            if isinstance(k, int):
                start = _entry(where, axis, k, size)
                stop = start + 1
            else:
                _entry(where, axis, 0, size)  # a concrete axis
                start, stop, step = k.indices(size)
                count = len(range(start, stop, step))
                if not count:
                    raise ShapeError(f"{where}: the slice of axis {axis} is empty")
                shape.append(count)
                node = ALGEBRA.stride_axis(node, axis, start, step, count)
                axis += 1
                continue
            node = ALGEBRA.slice_axis(node, axis, start, stop)
        else:
            raise ShapeError(f"{where}: an index is an int, a slice, ... or None, not {type(k).__name__} {k!r}")
        axis += 1
    return Tensor._wrap(ALGEBRA.reshape(node, tuple(shape)))


def take(table: Tensor, ids: Tensor) -> Tensor:
    """table[ids]: the rows of `table` that the integer array `ids` names (an embedding lookup), of shape
    ids.shape + table.shape[1:]. Its gradient adds each upstream row into the row it came from, so repeated ids
    accumulate; the generated code checks every id against the number of rows."""
    where = f"{table.describe()}[{ids.describe()}]"
    if ids.dtype != "int64":
        raise BpgenError(f"{where}: an index array must be an input declared with an integer dtype "
                         f"(bpgen.Tensor(name, shape, dtype='int64') or shapes={{name: (..., 'int')}}), not "
                         f"{ids.dtype}")
    if not table.shape:
        raise ShapeError(f"{where}: a number has no rows to take")
    return Tensor._wrap(ALGEBRA.make(Op.TAKE_ROWS, (table.node, ids.node)))


def where(condition, a, b) -> Tensor:
    """numpy.where: `a` where `condition` holds, else `b`, all three broadcast together. The condition is a
    boolean input (dtype="bool", a causal mask) or a comparison (x > 0); `a` and `b` are tensors or numbers. The
    gradient goes to the chosen side."""
    if not isinstance(condition, Tensor) or condition.dtype != "bool":
        raise BpgenError("bpgen.where takes a boolean condition first: an input declared with dtype='bool' or a "
                         f"comparison such as x > 0, not {_describe(condition)}")
    cond, x, y = condition.node, as_node(a), as_node(b)
    try:
        shape = broadcast_shape([cond.shape, x.shape, y.shape])
    except ShapeError:
        raise ShapeError(f"bpgen.where: the condition {condition.describe()}, {_describe(a)} and {_describe(b)} "
                         "do not broadcast") from None
    # each array at the full shape (a view), numbers as they are: np.where under Numba takes no other mix; a
    # zero side is an array of zeros too, or the select would print as the product a * cond, which a nan or inf
    # on the side not chosen would reach
    cond, x, y = (n if not n.shape and n is not cond and not (n.is_const and n.value == 0.0)
                  else ALGEBRA.broadcast_to(n, shape) for n in (cond, x, y))
    return Tensor._wrap(ALGEBRA.select(cond, x, y))


def _entry(where: str, axis: int, k: int, size) -> int:
    """The int `k` as an index into a concrete axis of `size` (negative ones from the end)."""
    if not isinstance(size, int):
        raise ShapeError(f"{where}: axis {axis} has the symbolic size {size}, which takes ':' only")
    if not -size <= k < size:
        raise ShapeError(f"{where}: index {k} is out of range for axis {axis} of size {size}")
    return k % size


def _key_text(k) -> str:
    if k is Ellipsis:
        return "..."
    if isinstance(k, slice):
        text = f"{'' if k.start is None else k.start}:{'' if k.stop is None else k.stop}"
        return text + (f":{k.step}" if k.step is not None else "")
    return repr(k)


def concatenate(tensors, axis: int = 0) -> Tensor:
    """numpy.concatenate: tensors joined along a concrete axis; every other axis the same."""
    tensors = list(tensors)
    for t in tensors:
        _check_tensor(t, "concatenate")
    if not tensors:
        raise ShapeError("bpgen.concatenate needs at least one tensor")
    first = tensors[0]
    if not first.shape:
        raise ShapeError(f"bpgen.concatenate joins arrays, not the number {first.describe()}")
    axis = normalize_axis(first.shape, axis)
    for t in tensors:
        other = t.shape[:axis] + t.shape[axis + 1:] if len(t.shape) == len(first.shape) else None
        if other != first.shape[:axis] + first.shape[axis + 1:] or not isinstance(t.shape[axis], int):
            raise ShapeError(f"bpgen.concatenate along axis {axis}: {first.describe()} and {t.describe()} differ "
                             "elsewhere, or the axis is symbolic")
    return Tensor._wrap(ALGEBRA.concat([t.node for t in tensors], axis))


def stack(tensors, axis: int = 0) -> Tensor:
    """numpy.stack: tensors of one shape joined along a new axis."""
    tensors = list(tensors)
    for t in tensors:
        _check_tensor(t, "stack")
    if not tensors:
        raise ShapeError("bpgen.stack needs at least one tensor")
    shape = tensors[0].shape
    if any(t.shape != shape for t in tensors):
        raise ShapeError(f"bpgen.stack needs one shape: {', '.join(t.describe() for t in tensors)}")
    axis = normalize_axis(shape + (1,), axis)
    expanded = shape[:axis] + (1,) + shape[axis:]
    return concatenate([t.reshape(expanded) for t in tensors], axis)


def _check_tensor(t, verb: str) -> None:
    if not isinstance(t, Tensor):
        raise BpgenError(f"bpgen.{verb} takes a Tensor, not {type(t).__name__} {t!r}")


def transpose(t: Tensor, axes=None) -> Tensor:
    """numpy.transpose: the axes reversed (axes None), or permuted as `axes` says."""
    _check_tensor(t, "transpose")
    if axes is None:
        return Tensor._wrap(ALGEBRA.transpose(t.node))
    return Tensor._wrap(ALGEBRA.permute(t.node, permutation(t.shape, axes)))


def swapaxes(t: Tensor, axis1: int, axis2: int) -> Tensor:
    """numpy.swapaxes: two axes exchanged."""
    _check_tensor(t, "swapaxes")
    axes = list(range(t.ndim))
    first, second = normalize_axis(t.shape, axis1), normalize_axis(t.shape, axis2)
    axes[first], axes[second] = axes[second], axes[first]
    return Tensor._wrap(ALGEBRA.permute(t.node, tuple(axes)))


def _reduced_axes(shape: tuple, axis) -> tuple[int, ...] | None:
    """NumPy's `axis` (None, an int or a tuple of ints, negative ones allowed) as distinct axes, largest first
    (the order one-axis reductions apply them in without renumbering); None for all of them."""
    if axis is None:
        return None
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    normalized = [normalize_axis(shape, a) for a in axes]
    if len(set(normalized)) != len(normalized):
        raise ShapeError(f"axis {tuple(axes)!r} repeats an axis of shape {format_shape(shape)}")
    return tuple(sorted(normalized, reverse=True))


def _reduce(node: Node, axes: tuple[int, ...] | None, one_axis) -> Node:
    """A reduction over `axes` (None: all of them) as one-axis reductions `one_axis(node, axis)`."""
    if axes is None:
        return one_axis(node, None)
    if one_axis == ALGEBRA.sum and len(node.shape) >= 3 and set(axes) == set(range(len(node.shape))) - {1}:
        return ALGEBRA.sum_channels(node)  # over (N, H, W): one pass, as batch norm's statistics need
    for axis in axes:
        node = one_axis(node, axis)
    return node


def _kept(out: Node, shape: tuple, axes: tuple[int, ...] | None, keepdims: bool) -> Tensor:
    """The reduction's result, with each reduced axis kept as a 1 when `keepdims` (NumPy's meaning)."""
    if keepdims and shape:
        reduced = set(range(len(shape))) if axes is None else set(axes)
        kept = tuple(1 if i in reduced else d for i, d in enumerate(shape))
        # a number (every axis reduced) has no reshape under Numba: it fills an array of ones' shape
        out = ALGEBRA.fill(out, kept) if not out.shape else ALGEBRA.reshape(out, kept)
    return Tensor._wrap(out)


def sum(t: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - mirrors numpy.sum
    """Sum over all elements (axis=None), one axis or a tuple of axes; keepdims as in NumPy."""
    node = as_node(t)
    axes = _reduced_axes(node.shape, axis)
    return _kept(_reduce(node, axes, ALGEBRA.sum), node.shape, axes, keepdims)


def max(t: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - mirrors numpy.max
    """The largest entry over all elements (axis=None), one axis or a tuple of axes; its gradient goes to the
    winner (the first one on ties). For the larger of SymPy expressions use sympy.Max."""
    if not isinstance(t, Tensor):
        raise BpgenError(f"bpgen.max reduces a Tensor, not {type(t).__name__} {t!r}: for the larger of "
                         "SymPy expressions write sympy.Max(x, y)")
    node = t.node
    axes = _reduced_axes(node.shape, axis)
    return _kept(_reduce(node, axes, ALGEBRA.max), node.shape, axes, keepdims)


def min(t: Tensor, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001 - mirrors numpy.min
    """The smallest entry, as -max(-t): its gradient goes to the winner (the first one on ties). For the smaller
    of SymPy expressions use sympy.Min."""
    if not isinstance(t, Tensor):
        raise BpgenError(f"bpgen.min reduces a Tensor, not {type(t).__name__} {t!r}: for the smaller of "
                         "SymPy expressions write sympy.Min(x, y)")
    return -max(-t, axis, keepdims)


def mean(t: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Mean over all elements (axis=None), one axis or a tuple of axes; keepdims as in NumPy."""
    node = as_node(t)
    axes = _reduced_axes(node.shape, axis)
    counted = node.shape if axes is None else tuple(node.shape[a] for a in axes)
    total = _reduce(node, axes, ALGEBRA.sum)
    count = shape_size(counted)
    if isinstance(count, int):
        out = ALGEBRA.div(total, ALGEBRA.const(float(count)))
    else:
        divisor = ALGEBRA.const(1.0)
        for d in counted:
            divisor = ALGEBRA.mul(divisor, ALGEBRA.dim(d))
        out = ALGEBRA.div(total, divisor)
    return _kept(out, node.shape, axes, keepdims)


def var(t: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Variance (NumPy's, ddof 0): the mean square deviation from the mean, over all elements, one axis or a
    tuple of axes."""
    _check_tensor(t, "var")
    deviation = t - mean(t, axis, keepdims=True)
    return mean(deviation * deviation, axis, keepdims)


def apply(op: str, *tensors) -> Tensor:
    """An elementwise op of the rule table (exp, log, tanh, sigmoid, ...) on tensors."""
    nodes = [as_node(t) for t in tensors]
    return Tensor._wrap(ALGEBRA.broadcast_to(ALGEBRA.apply(op, *nodes), broadcast_shape([n.shape for n in nodes])))


def _elementwise(op: str, sympy_function):
    def function(x):
        if isinstance(x, Tensor):
            return apply(op, x)
        return sympy_function(x)

    function.__name__ = op
    function.__doc__ = f"{op} of a SymPy expression (as sympy.{sympy_function.__name__}) or, elementwise, of a Tensor."
    return function


exp = _elementwise(Op.EXP, sympy.exp)
log = _elementwise(Op.LOG, sympy.log)
sqrt = _elementwise(Op.SQRT, sympy.sqrt)
tanh = _elementwise(Op.TANH, sympy.tanh)
sin = _elementwise(Op.SIN, sympy.sin)
cos = _elementwise(Op.COS, sympy.cos)
abs = _elementwise(Op.ABS, sympy.Abs)  # noqa: A001 - mirrors numpy.abs

sympy_functions.ON_TENSORS = (Tensor, apply)  # bpgen.sigmoid(t) and friends apply elementwise to a tensor
