"""Neural-network building blocks over tensors: activations and losses, in numerically stable forms."""

from __future__ import annotations

import sympy

from .errors import BpgenError
from .frontend.lower import Lowerer
from .frontend.tensor import ALGEBRA, Tensor, as_node, mean, tanh
from .ir.ops import Op
from .ir.shapes import ShapeError, format_shape, normalize_axis
from .rules.sympy_functions import relu, sigmoid, softplus

__all__ = ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "maxout", "softmax", "log_softmax",
           "logsumexp", "softmax_cross_entropy", "cross_entropy", "mse", "binary_cross_entropy_with_logits",
           "elementwise", "gelu", "layer_norm", "conv2d", "conv1d", "max_pool2d", "avg_pool2d", "batch_norm2d"]


def _wrap(node) -> Tensor:
    return Tensor._wrap(node)


def leaky_relu(t: Tensor, alpha: float = 0.01) -> Tensor:
    x = as_node(t)
    return _wrap(ALGEBRA.select(ALGEBRA.apply(Op.GT, x, ALGEBRA.const(0.0)), x, ALGEBRA.mul(ALGEBRA.const(alpha), x)))


def elu(t: Tensor, alpha: float = 1.0) -> Tensor:
    x = as_node(t)
    negative = ALGEBRA.mul(ALGEBRA.const(alpha), ALGEBRA.sub(ALGEBRA.apply(Op.EXP, x), ALGEBRA.const(1.0)))
    return _wrap(ALGEBRA.select(ALGEBRA.apply(Op.GT, x, ALGEBRA.const(0.0)), x, negative))


def maxout(t: Tensor, pieces: int) -> Tensor:
    """Maxout units: the last axis, of size units * pieces, split into consecutive groups of `pieces`, each
    replaced by its largest entry. (N, 12) with pieces=3 gives (N, 4)."""
    x = as_node(t)
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
        raise BpgenError(f"maxout needs a positive whole number of pieces, not {pieces!r}")
    last = x.shape[-1] if x.shape else None
    if not isinstance(last, int) or last % pieces:
        raise ShapeError(f"maxout with {pieces} pieces needs a last axis of fixed size divisible by {pieces}, "
                         f"not shape {format_shape(x.shape)}")
    grouped = ALGEBRA.reshape(x, x.shape[:-1] + (last // pieces, pieces))
    return _wrap(ALGEBRA.max(grouped, len(grouped.shape) - 1))


def _rows(t: Tensor, what: str):
    x = as_node(t)
    if len(x.shape) != 2:
        raise ShapeError(f"{what} works on the rows of a matrix (batch, classes), not shape {format_shape(x.shape)}")
    return x


def _as_rows(t: Tensor, what: str, axis: int):
    """A tensor arranged so that `axis` is its last one, which the row-wise ops run along: a vector becomes one
    row, and another axis is swapped with the last. Returns (rows, how, axis): how is "vector", "swapped" or
    "rows", axis the normalized one."""
    x = as_node(t)
    if not x.shape:
        raise ShapeError(f"{what} works along an axis of an array, not on the number {t.describe()}")
    axis = normalize_axis(x.shape, axis)
    if len(x.shape) == 1:
        return ALGEBRA.reshape(x, (1,) + x.shape), "vector", axis
    if axis != len(x.shape) - 1:
        return _swapped(x, axis), "swapped", axis
    return x, "rows", axis


def _swapped(x, axis: int):
    """`x` with `axis` and the last axis exchanged (its own inverse)."""
    axes = list(range(len(x.shape)))
    axes[axis], axes[-1] = axes[-1], axes[axis]
    return ALGEBRA.permute(x, tuple(axes))


def _rowwise(op: str, t: Tensor, axis: int) -> Tensor:
    """An op that maps each row to a row (softmax), along `axis` of an array."""
    rows, how, axis = _as_rows(t, op, axis)
    out = ALGEBRA.make(op, (rows,))
    if how == "vector":
        return _wrap(ALGEBRA.reshape(out, out.shape[1:]))
    return _wrap(_swapped(out, axis) if how == "swapped" else out)


def softmax(t: Tensor, axis: int = -1) -> Tensor:
    """Softmax along `axis` (by default the last: each row of a (batch, classes) matrix, each query's scores in
    attention), computed stably."""
    return _rowwise(Op.SOFTMAX, t, axis)


def log_softmax(t: Tensor, axis: int = -1) -> Tensor:
    return _rowwise(Op.LOG_SOFTMAX, t, axis)


def logsumexp(t: Tensor, axis: int = -1) -> Tensor:
    """log(sum(exp(t), axis)), computed stably; the axis is removed."""
    rows, how, axis = _as_rows(t, "logsumexp", axis)
    column = ALGEBRA.make(Op.LOGSUMEXP, (rows,))  # rows' shape with a 1 for the last axis
    if how == "vector":
        return _wrap(ALGEBRA.sum(column, None))  # the one entry, as a number
    if how == "swapped":  # the 1 back at `axis`
        column = _swapped(column, axis)
    shape = t.shape
    return _wrap(ALGEBRA.reshape(column, shape[:axis] + shape[axis + 1:]))


def softmax_cross_entropy(logits: Tensor, onehot: Tensor) -> Tensor:
    """Mean over the batch of the cross-entropy of softmax(logits) against target rows (fused, stable).

    Target rows are usually distributions (one-hot, or soft labels summing to 1), but need not be: the backward
    dlogits = (softmax(logits) * rowsum(Y) - Y) / N is right for any targets, as the loss is linear in them.
    """
    x = _rows(logits, "softmax_cross_entropy")
    y = as_node(onehot)
    if y.shape != x.shape:
        raise ShapeError(f"softmax_cross_entropy needs logits and one-hot targets of one shape, not "
                         f"{format_shape(x.shape)} and {format_shape(y.shape)}")
    return _wrap(ALGEBRA.make(Op.SOFTMAX_CE, (x, y)))


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean over the batch of -log softmax(logits)[i, labels[i]], with labels the class indices 0..C-1 (pass
    an integer array; the generated code raises ValueError for a label out of range). Fused and stable like
    softmax_cross_entropy; labels get no gradient."""
    x = _rows(logits, "cross_entropy")
    y = as_node(labels)
    if y.shape != x.shape[:1]:
        raise ShapeError(f"cross_entropy needs one label per row of the logits {format_shape(x.shape)}, "
                         f"a vector of shape {format_shape(x.shape[:1])}, not {format_shape(y.shape)}")
    return _wrap(ALGEBRA.make(Op.CROSS_ENTROPY, (x, y)))


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over all elements (like PyTorch's MSELoss)."""
    return mean((pred - target) ** 2)


def binary_cross_entropy_with_logits(z: Tensor, y: Tensor) -> Tensor:
    """Mean over all elements of -[y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))] = softplus(z) - y z."""
    return mean(softplus(z) - y * z)


def elementwise(function: sympy.Lambda, t: Tensor) -> Tensor:
    """Apply a scalar SymPy Lambda to every element; its derivative comes from the rule table and sympy.diff."""
    if not isinstance(function, sympy.Lambda) or len(function.variables) != 1:
        raise BpgenError("elementwise takes a one-variable sympy.Lambda, e.g. Lambda(u, u * sigmoid(u))")
    (u,) = function.variables
    x = as_node(t)
    return _wrap(ALGEBRA.broadcast_to(Lowerer(ALGEBRA, {u: x}).lower(function.expr), x.shape))


_GELU_U = sympy.Symbol("u", real=True)
_GELU = {  # x * Phi(x), exactly (erf) or by PyTorch's and JAX's tanh approximation
    "none": sympy.Lambda(_GELU_U, _GELU_U * (1 + sympy.erf(_GELU_U / sympy.sqrt(2))) / 2),
    "tanh": sympy.Lambda(_GELU_U, _GELU_U * (1 + sympy.tanh(sympy.sqrt(2 / sympy.pi)
                                                              * (_GELU_U + sympy.Float(0.044715) * _GELU_U**3))) / 2),
}


def gelu(t: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x), Phi the standard normal's distribution function: with erf (approximate="none", as
    torch.nn.functional.gelu), or tanh's approximation (approximate="tanh")."""
    if approximate not in _GELU:
        raise BpgenError(f"gelu: approximate is 'none' or 'tanh', not {approximate!r}")
    return elementwise(_GELU[approximate], t)


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    """Each row (the last axis) less its mean, over its standard deviation (variance + eps, ddof 0), times gamma
    plus beta, both of the last axis's size: torch.nn.LayerNorm over the last axis."""
    for name, t in (("x", x), ("gamma", gamma), ("beta", beta)):
        if not isinstance(t, Tensor):
            raise BpgenError(f"layer_norm: {name} must be a Tensor, not {type(t).__name__}")
    if not x.shape or gamma.shape != x.shape[-1:] or beta.shape != x.shape[-1:]:
        raise ShapeError(f"layer_norm normalizes the last axis of {x.describe()}: gamma and beta must have shape "
                         f"{format_shape(x.shape[-1:])}, not {format_shape(gamma.shape)} and "
                         f"{format_shape(beta.shape)}")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise BpgenError(f"layer_norm: eps must be a positive number, not {eps!r}")
    normalized = ALGEBRA.make(Op.NORMALIZE, (x.node,), (float(eps),))  # one pass per row, its gradient too
    return _wrap(normalized) * gamma + beta


# convolutional layers, in PyTorch's layouts (N, C, H, W) and with its defaults ---------------------------------


def _pair(layer: str, name: str, value, least: int) -> tuple[int, int]:
    """An int or a pair of ints, each at least `least`, as a pair."""
    pair = value if isinstance(value, tuple) else (value, value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < least for v in pair):
        raise BpgenError(f"{layer}: {name} must be a whole number >= {least} or a pair of them, not {value!r}")
    return pair


def _image(layer: str, name: str, t, axes: int = 4) -> Tensor:
    """t as a tensor of `axes` axes whose every axis but the first has a size that is a number."""
    if not isinstance(t, Tensor):
        raise BpgenError(f"{layer}: {name} must be a Tensor, not {type(t).__name__}")
    if len(t.shape) != axes or not all(isinstance(d, int) for d in t.shape[1:]):
        kernel, image = {4: ("(F, C // groups, KH, KW)", "(N, C, H, W)"), 3: ("(F, C // groups, K)", "(N, C, L)")}[axes]
        want = kernel if name == "W" else image
        raise ShapeError(f"{layer} takes {name} as {want}, each size but the first a number: {t.describe()}")
    return t


def _check_window(layer: str, x: Tensor, kernel: tuple, padding: tuple, dilation: tuple) -> None:
    """A one-line error when the (dilated) kernel does not fit the padded image."""
    reach = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    padded = tuple(n + 2 * p for n, p in zip(x.shape[2:], padding))
    if any(r > n for r, n in zip(reach, padded)):
        dilated = f" (dilated {format_shape(reach)})" if reach != kernel else ""
        raise ShapeError(f"{layer}: the kernel {format_shape(kernel)}{dilated} is larger than {x.describe()} "
                         f"padded by {format_shape(padding)}")


def conv2d(X: Tensor, W: Tensor, b: Tensor | None = None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """torch.nn.functional.conv2d: X (N, C, H, W) cross-correlated with W (F, C // groups, KH, KW), plus b (F,).
    stride, padding and dilation are ints or pairs. The backward pass is two helper calls, the gradient of the
    input (conv2d_backward_input) and of the kernel (conv2d_backward_weight)."""
    X, W = _image("conv2d", "X", X), _image("conv2d", "W", W)
    return _conv2d("conv2d", X, W, b, _pair("conv2d", "stride", stride, 1), _pair("conv2d", "padding", padding, 0),
                   _pair("conv2d", "dilation", dilation, 1), groups)


def _conv2d(layer: str, X: Tensor, W: Tensor, b, stride: tuple, padding: tuple, dilation: tuple, groups) -> Tensor:
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise BpgenError(f"{layer}: groups must be a whole number >= 1, not {groups!r}")
    c, (f, cg) = X.shape[1], W.shape[:2]
    if c % groups or f % groups:
        raise ShapeError(f"{layer}: the channels of {X.describe()} and the filters of {W.describe()} must both be "
                         f"divisible by groups={groups}")
    if cg * groups != c:
        raise ShapeError(f"{layer}: {W.describe()} takes {cg} channels per group, {X.describe()} has {c // groups}")
    _check_window(layer, X, tuple(W.shape[2:]), padding, dilation)
    out = _wrap(ALGEBRA.make(Op.CONV2D, (X.node, W.node), (stride, padding, dilation, groups)))
    if b is None:
        return out
    if not isinstance(b, Tensor) or b.shape != (f,):
        raise ShapeError(f"{layer}: the bias of {W.describe()} must have shape ({f},), not "
                         f"{b.describe() if isinstance(b, Tensor) else type(b).__name__}")
    return out + b.reshape(f, 1, 1)


def conv1d(X: Tensor, W: Tensor, b: Tensor | None = None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """torch.nn.functional.conv1d: X (N, C, L) with W (F, C // groups, K), stride, padding and dilation ints (or
    1-tuples): conv2d over images one row high."""
    X, W = _image("conv1d", "X", X, 3), _image("conv1d", "W", W, 3)
    sizes = {}
    for name, value, least in (("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
        value = value[0] if isinstance(value, tuple) and len(value) == 1 else value
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise BpgenError(f"conv1d: {name} must be a whole number >= {least}, not {value!r}")
        sizes[name] = value
    (n, c, length), (f, cg, k) = X.shape, W.shape
    flat_x, flat_w = _wrap(ALGEBRA.reshape(X.node, (n, c, 1, length))), _wrap(ALGEBRA.reshape(W.node, (f, cg, 1, k)))
    out = _conv2d("conv1d", flat_x, flat_w, b, (1, sizes["stride"]), (0, sizes["padding"]), (1, sizes["dilation"]),
                  groups)
    return out.reshape(n, f, out.shape[3])


def _pool(layer: str, op: str, X: Tensor, kernel, stride, padding) -> Tensor:
    X = _image(layer, "X", X)
    kernel = _pair(layer, "kernel", kernel, 1)
    stride = kernel if stride is None else _pair(layer, "stride", stride, 1)
    padding = _pair(layer, "padding", padding, 0)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ShapeError(f"{layer}: padding {format_shape(padding)} must be at most half the kernel "
                         f"{format_shape(kernel)}")
    _check_window(layer, X, kernel, padding, (1, 1))
    return _wrap(ALGEBRA.make(op, (X.node,), (kernel, stride, padding)))


def max_pool2d(X: Tensor, kernel, stride=None, padding=0) -> Tensor:
    """torch.nn.functional.max_pool2d: the largest entry of each window (stride the kernel by default); the
    gradient goes to the first largest entry of a window on ties (row by row), as PyTorch's CPU kernel sends it."""
    return _pool("max_pool2d", Op.MAX_POOL2D, X, kernel, stride, padding)


def avg_pool2d(X: Tensor, kernel, stride=None, padding=0) -> Tensor:
    """torch.nn.functional.avg_pool2d: the mean of each window, the padding counted as zeros (PyTorch's
    count_include_pad=True)."""
    return _pool("avg_pool2d", Op.AVG_POOL2D, X, kernel, stride, padding)


def batch_norm2d(X: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5) -> Tensor:
    """torch.nn.BatchNorm2d in training mode: each channel less its mean over (N, H, W), over the square root of
    its biased variance plus eps, times gamma plus beta, both (C,)."""
    X = _image("batch_norm2d", "X", X)
    c = X.shape[1]
    for name, t in (("gamma", gamma), ("beta", beta)):
        if not isinstance(t, Tensor) or t.shape != (c,):
            raise ShapeError(f"batch_norm2d normalizes the channels of {X.describe()}: {name} must have shape "
                             f"({c},), not {t.describe() if isinstance(t, Tensor) else type(t).__name__}")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise BpgenError(f"batch_norm2d: eps must be a positive number, not {eps!r}")
    normalized = ALGEBRA.make(Op.NORMALIZE_CHANNELS, (X.node,), (float(eps),))  # one pass per channel each way
    return _wrap(normalized) * gamma.reshape(c, 1, 1) + beta.reshape(c, 1, 1)
