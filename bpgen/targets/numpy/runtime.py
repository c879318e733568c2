"""The NumPy target's runtime helpers: the array helpers of bpgen/runtime.py, written with NumPy's own array
functions instead of loops over elements (which only Numba makes fast).

Every function here has the name and the meaning of one in bpgen/runtime.py (the NumPy target looks a helper up
here first, then there): the same values up to rounding, the same ties (a max gate routes to the FIRST largest
entry, as np.argmax picks), the same errors. The scalar helpers (sigmoid, softplus, digamma, ...) come from
bpgen/runtime.py unchanged. NumPy has no erf, lgamma, gamma, digamma or polygamma ufunc: those apply `math`'s
function, or the scalar helper, to every element (np.vectorize), so their values are exactly the scalar ones.

Generated modules copy these functions' source: they use only `math` and `numpy` (as np) and the helpers of this
module and bpgen/runtime.py, and name those helpers in their own body, not inside a comprehension or a lambda
(the target finds the helpers a module must hold by the names a function's code uses).
"""

import math

import numpy as np

from ...runtime import conv_size, digamma, polygamma  # applied to every element below, conv_size as is


def at_index(index, shape, value):
    """Zeros of `shape` holding `value` at `index` (bpgen/runtime.py's, in NumPy already)."""
    out = np.zeros(shape)
    out[index] = value
    return out


def class_index(label, c):
    """Labels (a number or an array) as column indices, checked: a label that is not a whole number from 0 to
    c - 1 is refused, as bpgen/runtime.py's class_index refuses it."""
    labels = np.asarray(label)
    k = labels.astype(np.int64)
    if np.any(k != labels) or np.any(k < 0) or np.any(k >= c):
        raise ValueError("cross_entropy: every label must be a whole number from 0 to the number of classes - 1")
    return k


def affine(x, w, bias):
    """x @ w + bias for a stack of matrices x, a matrix w and a bias row."""
    return x @ w + bias


def flat_transpose_matmul(a, g):
    """The sum over the batch axes of a[i].T @ g[i]: a's rows and g's flattened into one product."""
    return a.reshape(-1, a.shape[-1]).T @ g.reshape(-1, g.shape[-1])


def spread_axis(g, axis, start, step, size):
    """Zeros of g's shape but `size` along `axis`, holding g's entries from `start` on, `step` apart."""
    shape = list(g.shape)
    shape[axis] = size
    out = np.zeros(shape)
    out[(slice(None),) * axis + (start + step * np.arange(g.shape[axis]),)] = g
    return out


def _standardized(x, eps, axes):
    """x less its mean over `axes`, and 1 / its standard deviation there (eps added to the variance)."""
    centered = x - x.mean(axis=axes, keepdims=True)
    return centered, 1.0 / np.sqrt((centered * centered).mean(axis=axes, keepdims=True) + eps)


def _standardized_vjp(x, g, eps, axes):
    """The gradient along g of x standardized over `axes`: rstd * (g - mean(g) - xhat * mean(g * xhat))."""
    centered, rstd = _standardized(x, eps, axes)
    xhat = centered * rstd
    return rstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))


def normalize_last(x, eps):
    """Each row (the last axis) less its mean, over its standard deviation (eps added to the variance)."""
    centered, rstd = _standardized(x, eps, -1)
    return centered * rstd


def normalize_last_vjp(x, g, eps):
    """normalize_last's gradient along g."""
    return _standardized_vjp(x, g, eps, -1)


def normalize_channels(x, eps):
    """Each channel of x (N, C, H, W) less its mean over N, H and W, over its standard deviation (eps added)."""
    centered, rstd = _standardized(x, eps, (0, 2, 3))
    return centered * rstd


def normalize_channels_vjp(x, g, eps):
    """normalize_channels' gradient along g, the means per channel."""
    return _standardized_vjp(x, g, eps, (0, 2, 3))


def take_rows(table, ids):
    """table[ids]: the rows an integer array names."""
    return table[ids]


def add_rows(ids, g, shape):
    """Zeros of a table's `shape`, each row of g added at its id (np.add.at: a repeated id accumulates)."""
    out = np.zeros(shape)
    np.add.at(out, ids, g)
    return out


def logsumexp_rows(a):
    """log(sum(exp(a), axis=-1)) with the last axis kept as a 1, stable for huge entries."""
    m = a.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(a - m).sum(axis=-1, keepdims=True))


def softmax(logits):
    """Softmax along the last axis, through the log-sum-exp, so exp never overflows."""
    return np.exp(logits - logsumexp_rows(logits))


def log_softmax(logits):
    """Log-softmax along the last axis: logits minus their log-sum-exp."""
    return logits - logsumexp_rows(logits)


def softmax_jvp(s, t):
    """The tangent of a softmax s (along the last axis) along the tangent t of its logits: s * (t - rowsum(s * t))."""
    return s * (t - (s * t).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits, onehot):
    """Mean over rows of -sum(onehot * log_softmax(logits)); log-sum-exp keeps it finite for huge logits."""
    return float((onehot * (logsumexp_rows(logits) - logits)).sum()) / logits.shape[0]


def cross_entropy(logits, labels):
    """Mean over rows of -log_softmax(logits)[i, labels[i]]; log-sum-exp keeps it finite for huge logits."""
    n, c = logits.shape
    picked = logits[np.arange(n), class_index(labels, c)]
    return float((logsumexp_rows(logits)[:, 0] - picked).sum()) / n


def one_hot(labels, c):
    """Rows of c zeros with a 1.0 in column labels[i]."""
    out = np.zeros((labels.shape[0], c))
    out[np.arange(labels.shape[0]), class_index(labels, c)] = 1.0
    return out


def same_shape(a, b):
    """Whether two arrays have one shape."""
    return np.shape(a) == np.shape(b)




def max_last(a):
    """a.max(axis=-1)."""
    return np.asarray(a.max(axis=-1), dtype=np.float64)


def route_max_last(a, g):
    """The max gate along the last axis: each entry of g goes to the first largest entry of its row of `a`."""
    out = np.zeros(a.shape)
    np.put_along_axis(out, np.argmax(a, axis=-1)[..., None], np.asarray(g, dtype=np.float64)[..., None], axis=-1)
    return out


def at_max_last(a, t):
    """Forward mode's max gate along the last axis: for each row of `a`, the entry of t at its first largest."""
    t = np.broadcast_to(t, a.shape)
    return np.take_along_axis(t, np.argmax(a, axis=-1)[..., None], axis=-1)[..., 0].astype(np.float64)


def max_along(a, axis):
    """The largest entry along `axis` (the axis is removed)."""
    return np.asarray(a.max(axis=axis), dtype=np.float64)


def route_max(a, g, axis):
    """The max gate: each entry of g goes to the first largest entry of its slice of `a` along `axis`."""
    out = np.zeros(a.shape)
    place = np.expand_dims(np.argmax(a, axis=axis), axis)
    np.put_along_axis(out, place, np.expand_dims(np.asarray(g, dtype=np.float64), axis), axis=axis)
    return out


def at_max(a, t, axis):
    """Forward mode's max gate along `axis`: for each slice of `a`, the entry of t at its first largest."""
    t = np.broadcast_to(t, a.shape)
    place = np.expand_dims(np.argmax(a, axis=axis), axis)
    return np.take_along_axis(t, place, axis=axis).squeeze(axis).astype(np.float64)


def route_max_all(a, g):
    """The max gate over all of `a`: g goes to its first largest entry."""
    out = np.zeros(a.size)
    out[np.argmax(a)] = g
    return out.reshape(a.shape)


def at_max_all(a, t):
    """Forward mode's max gate over all of `a`: the entry of t at the first largest entry of `a`."""
    return np.ascontiguousarray(t).reshape(-1)[np.argmax(a)]


def sigmoid_array(x):
    """1 / (1 + exp(-x)) without overflow for large |x|: t = exp(-|x|), then 1 / (1 + t) where x >= 0 and
    t / (1 + t) elsewhere (bpgen/runtime.py's sigmoid, on whole arrays)."""
    t = np.exp(-np.abs(x))
    r = 1.0 / (1.0 + t)
    return np.where(x >= 0.0, r, t * r)


def softplus_array(x):
    """log(1 + exp(x)) without overflow: np.logaddexp(0.0, x)."""
    return np.logaddexp(0.0, x)



def erf_array(x):
    """math.erf on every element (NumPy has no vectorized erf)."""
    return np.asarray(np.vectorize(math.erf, otypes=[np.float64])(x), dtype=np.float64)


def lgamma_array(x):
    """math.lgamma on every element."""
    return np.asarray(np.vectorize(math.lgamma, otypes=[np.float64])(x), dtype=np.float64)


def gamma_array(x):
    """math.gamma on every element."""
    return np.asarray(np.vectorize(math.gamma, otypes=[np.float64])(x), dtype=np.float64)


def digamma_array(x):
    """digamma (bpgen/runtime.py's) on every element."""
    return np.asarray(np.vectorize(digamma, otypes=[np.float64])(x), dtype=np.float64)


def polygamma_array(n, x):
    """polygamma(n, x) (bpgen/runtime.py's) on every element of x."""
    return np.asarray(np.vectorize(polygamma, otypes=[np.float64])(n, x), dtype=np.float64)


def _windows(x, kernel, stride, padding, dilation, fill):
    """x (N, C, H, W) padded with `fill`, as a read-only view of its windows (N, C, OH, OW, KH, KW)."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])), constant_values=fill)
    oh = conv_size(h, kernel[0], stride[0], padding[0], dilation[0])
    ow = conv_size(w, kernel[1], stride[1], padding[1], dilation[1])
    s = padded.strides
    return np.lib.stride_tricks.as_strided(padded, (n, c, oh, ow, kernel[0], kernel[1]),
                                           (s[0], s[1], s[2] * stride[0], s[3] * stride[1], s[2] * dilation[0],
                                            s[3] * dilation[1]), writeable=False)


def _unwindow(windows, size, stride, padding, dilation):
    """The adjoint of _windows: every window entry (N, C, OH, OW, KH, KW) added back to its pixel of a zero
    image (N, C, H, W); what falls on the padding is dropped."""
    n, c, oh, ow, kh, kw = windows.shape
    padded = np.zeros((n, c, size[0] + 2 * padding[0], size[1] + 2 * padding[1]))
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            padded[:, :, top:top + stride[0] * (oh - 1) + 1:stride[0],
                   left:left + stride[1] * (ow - 1) + 1:stride[1]] += windows[..., i, j]
    return padded[:, :, padding[0]:padding[0] + size[0], padding[1]:padding[1] + size[1]]


def conv2d(x, w, stride, padding, dilation, groups):
    """PyTorch's conv2d (cross-correlation) of x (N, C, H, W) with w (F, C // groups, KH, KW)."""
    n = x.shape[0]
    f, cg, kh, kw = w.shape
    windows = _windows(x, (kh, kw), stride, padding, dilation, 0.0)
    oh, ow = windows.shape[2], windows.shape[3]
    grouped = windows.reshape(n, groups, cg, oh, ow, kh, kw)
    out = np.einsum("ngcpqij,gfcij->ngfpq", grouped, w.reshape(groups, f // groups, cg, kh, kw))
    return np.ascontiguousarray(out).reshape(n, f, oh, ow)


def conv2d_backward_input(dy, w, size, stride, padding, dilation, groups):
    """conv2d's gradient in x (N, C, H, W), size (H, W)."""
    n, f, oh, ow = dy.shape
    _, cg, kh, kw = w.shape
    upstream = dy.reshape(n, groups, f // groups, oh, ow)
    windows = np.einsum("ngfpq,gfcij->ngcpqij", upstream, w.reshape(groups, f // groups, cg, kh, kw))
    return _unwindow(windows.reshape(n, groups * cg, oh, ow, kh, kw), size, stride, padding, dilation)


def conv2d_backward_weight(x, dy, kernel, stride, padding, dilation, groups):
    """conv2d's gradient in w (F, C // groups, KH, KW), kernel (KH, KW)."""
    n, c = x.shape[0], x.shape[1]
    f, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    windows = _windows(x, kernel, stride, padding, dilation, 0.0).reshape(n, groups, c // groups, oh, ow, *kernel)
    out = np.einsum("ngcpqij,ngfpq->gfcij", windows, dy.reshape(n, groups, f // groups, oh, ow))
    return np.ascontiguousarray(out).reshape(f, c // groups, *kernel)


def _winners(x, kernel, stride, padding):
    """The windows of x padded with -inf, flattened (N, C, OH, OW, KH * KW), and the index of each one's first
    largest entry (np.argmax: a NaN wins)."""
    windows = _windows(x, kernel, stride, padding, (1, 1), -np.inf)
    flat = windows.reshape(windows.shape[:4] + (-1,))
    return flat, np.argmax(flat, axis=-1)[..., None]


def max_pool2d(x, kernel, stride, padding):
    """The largest entry of each window of x (N, C, H, W); the padding is never chosen."""
    return max_pool2d_at(x, x, kernel, stride, padding)


def max_pool2d_backward(x, g, kernel, stride, padding):
    """Each window's upstream gradient goes to its first largest entry of x (summed where windows overlap)."""
    flat, winner = _winners(x, kernel, stride, padding)
    routed = np.zeros(flat.shape)
    np.put_along_axis(routed, winner, g[..., None], axis=-1)
    return _unwindow(routed.reshape(flat.shape[:4] + tuple(kernel)), x.shape[2:], stride, padding, (1, 1))


def max_pool2d_at(x, t, kernel, stride, padding):
    """For each window of x, the entry of t at its first largest entry."""
    _, winner = _winners(x, kernel, stride, padding)
    windows = _windows(t, kernel, stride, padding, (1, 1), 0.0)
    return np.take_along_axis(windows.reshape(windows.shape[:4] + (-1,)), winner, axis=-1)[..., 0]


def avg_pool2d(x, kernel, stride, padding):
    """The mean of each window of x (N, C, H, W), the padding counted as zeros."""
    return _windows(x, kernel, stride, padding, (1, 1), 0.0).mean(axis=(4, 5))


def avg_pool2d_backward(g, size, kernel, stride, padding):
    """avg_pool2d's gradient in x (N, C, H, W): each window's upstream gradient spread evenly over it."""
    share = np.broadcast_to((g / (kernel[0] * kernel[1]))[..., None, None], g.shape + tuple(kernel))
    return _unwindow(share, size, stride, padding, (1, 1))


def sum_channels(a):
    """a (N, C, ...) summed over every axis but the second: (C,)."""
    return a.sum(axis=(0, *range(2, a.ndim)))
