"""The runtime helpers generated modules call: numerically careful scalar functions and small array loops.

These are ordinary Python functions, linted and unit-tested here, and run as they are when bpgen folds
constants. A generated module gets the source of each helper it uses (and of the helpers those call), after
the user's functions, each under a Numba decorator: the module stays self-contained, with no import of bpgen.
They use only `math` and `numpy`, and only what Numba compiles: loops over elements compile in a fraction of
the time Numba needs for broadcast array expressions, and LLVM vectorizes them once the scalar helpers are
inlined into them.
"""

import math

import numpy as np


def exp_parts(v):
    """exp(v) as (k, e) with exp(v) = 2**k * (1 + e), for v in [-746, 710]. v = k ln2 + r with |r| <= ln2/2;
    e = exp(r) - 1 = r + r**2/2 + r**3 q(r), q to r**10 in pairs (Estrin's scheme: a short dependency chain, so
    one call is about as fast as libm's)."""
    k = (v * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0  # round(v / ln2): + 1.5 * 2**52
    r = (v - k * 0.6931471803691238) - k * 1.9082149292705877e-10  # ln2 in two parts: r is exact enough
    r2 = r * r
    r4 = r2 * r2
    q = ((1 / 6 + r * (1 / 24)) + r2 * (1 / 120 + r * (1 / 720))) + r4 * (
        ((1 / 5040 + r * (1 / 40320)) + r2 * (1 / 362880 + r * (1 / 3628800)))
        + r4 * ((1 / 39916800 + r * (1 / 479001600)) + r2 * (1 / 6227020800))
    )  # r**j / j! for j = 3 to 13
    return k, r + (r2 * 0.5 + (r2 * r) * q)


def exp_scalar(x):
    """math.exp(x) in arithmetic LLVM can vectorize: 2**k (1 + e) from exp_parts, 2**k built from IEEE bits in
    two factors, so subnormal results round once. Within 1 ulp (math.exp: 0.5)."""
    v = min(max(float(x), -746.0), 710.0) if x == x else 0.0  # exp is 0 below and inf above: k stays in range
    k, e = exp_parts(v)
    p = 1.0 + e
    half = np.int64(k) >> 1
    high = float(np.int64((half + 1023) << 52).view(np.float64))  # float(): plain Python multiplies floats, not
    low = float(np.int64((np.int64(k) - half + 1023) << 52).view(np.float64))  # NumPy scalars, with no warnings
    return p * high * low if x == x else x


def tanh_scalar(x):
    """math.tanh(x) in arithmetic LLVM can vectorize: with m = exp(2|x|) - 1, tanh|x| = m / (m + 2), the sign put
    back. m is exp_parts' e itself when 2|x| reduces to k = 0, so a small x keeps its digits. Within 3 ulp
    (math.tanh: 1)."""
    a = min(abs(float(x)), 20.0) if x == x else 0.0  # tanh is 1.0 in double precision beyond 19.1
    k, e = exp_parts(2.0 * a)
    scale = float(np.int64((np.int64(k) + 1023) << 52).view(np.float64))  # 2**k, k <= 58
    m = e if k == 0.0 else (1.0 + e) * scale - 1.0
    return math.copysign(m / (m + 2.0), x) if x == x else x


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for large |x|: t = exp(-|x|), then 1 / (1 + t) or t / (1 + t); one
    exp, and a select rather than a branch. Within 2.5 ulp."""
    t = exp_scalar(-abs(x))
    r = 1.0 / (1.0 + t)
    return r if x >= 0.0 else t * r


def softplus(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(t) with t = exp(-|x|), without overflow, in arithmetic LLVM can
    vectorize (as exp_scalar). With u = 1 + t rounded, log1p(t) = log(u) + (t - (u - 1)) / u; log(u) =
    e ln2 + 2 atanh(s), s = (m - 1) / (m + 1) for u = 2**e m, m in [sqrt(1/2), sqrt(2)], by atanh's series to
    s**23. Within 4 ulp (np.logaddexp: 1.4)."""
    t = exp_scalar(-abs(x))
    u = 1.0 + t
    big = u > 1.4142135623730951
    m = 0.5 * u if big else u
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    q = 1 / 23  # atanh(s) / s = sum of z**j / (2j + 1), by Horner's rule from j = 11 down
    q = 1 / 21 + z * q
    q = 1 / 19 + z * q
    q = 1 / 17 + z * q
    q = 1 / 15 + z * q
    q = 1 / 13 + z * q
    q = 1 / 11 + z * q
    q = 1 / 9 + z * q
    q = 1 / 7 + z * q
    q = 1 / 5 + z * q
    q = 1 / 3 + z * q
    log_m = 2.0 * s * (1.0 + z * q)
    log_u = 0.6931471803691238 + (log_m + 1.9082149292705877e-10) if big else log_m  # ln2 in two parts
    return max(float(x), 0.0) + (log_u + (t - (u - 1.0)) / u)  # log1p(t): u's rounding added back


def erf_array(x):
    """math.erf on every element (NumPy has no vectorized erf)."""
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = math.erf(x[index])
    return out


def matmul(a, b):
    """a @ b, as a function: compiled in bpgen's runtime once per machine for each layout of its operands."""
    return a @ b


def transpose_matmul(a, g):
    """a.T @ g, the gradient of a matrix with more rows than columns. For a tall a (a large batch) it is computed
    as (g.T @ a).T and copied to C order: dgemm then gets the long side of the result as its M dimension, which
    OpenBLAS's AVX-512 kernels run 15-25% faster (its AVX2 kernels about equally fast). For a small batch the
    copy would cost more than it saves."""
    if a.shape[0] < a.shape[1]:
        return a.T @ g
    return np.ascontiguousarray((g.T @ a).T)


def rows_of(a):
    """The leading axes of `a` flattened into rows, (..., c) -> (rows, c): a view when `a` is C-contiguous."""
    return np.ascontiguousarray(a).reshape((-1, a.shape[-1]))


def flat_matmul(a, b):
    """a @ b for a stack of matrices `a` (three or more axes) and a matrix `b`: one product of a's rows."""
    return (rows_of(a) @ b).reshape(a.shape[:-1] + (b.shape[1],))


def affine(x, w, bias):
    """x @ w + bias for a stack of matrices x, a matrix w and a bias row: a linear layer."""
    return flat_matmul(x, w) + bias


def batch_matmul(a, b):
    """a @ b for stacks of matrices with one batch shape (bpgen broadcasts them first): a product per matrix."""
    n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
    left = np.ascontiguousarray(a).reshape((-1, n, k))
    right = np.ascontiguousarray(b).reshape((-1, k, m))
    out = np.empty((left.shape[0], n, m))
    for i in range(left.shape[0]):
        np.dot(left[i], right[i], out[i])
    return out.reshape(a.shape[:-2] + (n, m))


def flat_transpose_matmul(a, g):
    """The sum over the batch axes of a[i].T @ g[i]: the gradient of the matrix b in flat_matmul(a, b)."""
    return transpose_matmul(rows_of(a), rows_of(g))


def take_rows(table, ids):
    """table[ids] for an integer array ids (checked against the rows by the generated code): the rows it names."""
    flat = np.ascontiguousarray(ids).reshape(-1)
    rows = np.ascontiguousarray(table).reshape((table.shape[0], -1))
    out = np.empty((flat.size, rows.shape[1]))
    for i in range(flat.size):
        if flat[i] < 0 or flat[i] >= rows.shape[0]:  # never read stray memory, whatever reached here
            raise ValueError("take_rows: an id is not a row of the table")
        out[i] = rows[flat[i]]
    return out.reshape(ids.shape + table.shape[1:])


def add_rows(ids, g, shape):
    """Zeros of a table's `shape`, each row of g (ids' shape, then a row's) added at its id: take_rows's gradient,
    where a repeated id accumulates."""
    flat = np.ascontiguousarray(ids).reshape(-1)
    out = np.zeros(shape)
    rows = out.reshape((shape[0], -1))
    upstream = np.ascontiguousarray(g).reshape((flat.size, rows.shape[1]))
    for i in range(flat.size):
        if flat[i] < 0 or flat[i] >= rows.shape[0]:
            raise ValueError("add_rows: an id is not a row of the table")
        rows[flat[i]] += upstream[i]
    return out


def softmax_cross_entropy(logits, onehot):
    """Mean over rows of -sum(onehot * log_softmax(logits)); log-sum-exp keeps it finite for huge logits."""
    n, c = logits.shape
    lse = logsumexp_rows(logits)
    total = 0.0
    for i in range(n):
        for j in range(c):
            total += onehot[i, j] * (lse[i, 0] - logits[i, j])
    return total / n


def softmax(logits):
    """Softmax along the last axis (each row): exp(x - max) over its sum, so exp never overflows; one exp per
    entry, and 0 for an entry below 1e-304 (e**-700) of the row's largest."""
    rows = rows_of(logits)
    n, c = rows.shape
    out = np.empty((n, c))
    for i in range(n):
        m = rows[i, 0]
        for j in range(1, c):
            m = max(m, rows[i, j])
        # a loop of its own, which LLVM vectorizes; below e**-700 an entry is 0, so that no lane makes a
        # subnormal number (each a slow microcode assist: masked -inf logits made the loop 2x slower)
        for j in range(c):
            d = rows[i, j] - m
            clamped = -700.0 if d < -700.0 else d  # a NaN stays NaN
            out[i, j] = 0.0 if d <= -700.0 else exp_scalar(clamped)
        total = 0.0
        for j in range(c):
            total += out[i, j]
        inverse = 1.0 / total
        for j in range(c):
            out[i, j] *= inverse
    return out.reshape(logits.shape)


def softmax_jvp(s, t):
    """The tangent of a softmax s (along the last axis) along the tangent t of its logits: s * (t - rowsum(s * t)).
    The softmax's Jacobian is symmetric: with an upstream gradient for t, the gradient of the logits too."""
    s_rows, t_rows = rows_of(s), rows_of(t)
    n, c = s_rows.shape
    out = np.empty((n, c))
    for i in range(n):
        dot = 0.0
        for j in range(c):
            dot += s_rows[i, j] * t_rows[i, j]
        for j in range(c):
            out[i, j] = s_rows[i, j] * (t_rows[i, j] - dot)
    return out.reshape(s.shape)


def select_value(cond, a, value):
    """np.where(cond, a, value) for a number `value` and arrays of one shape (a broadcast mask among them): a loop
    over rows, several times faster than Numba's np.where on views."""
    out = np.empty(a.shape)
    for index in np.ndindex(a.shape[:-1]):
        chosen, given, row = cond[index], a[index], out[index]
        for j in range(row.shape[0]):
            row[j] = given[j] if chosen[j] else value
    return out


def select_arrays(cond, a, b):
    """np.where(cond, a, b) for arrays of one shape (broadcast views among them): a loop over rows."""
    out = np.empty(a.shape)
    for index in np.ndindex(a.shape[:-1]):
        chosen, given, other, row = cond[index], a[index], b[index], out[index]
        for j in range(row.shape[0]):
            row[j] = given[j] if chosen[j] else other[j]
    return out


def log_softmax(logits):
    """Log-softmax along the last axis: each row less its log-sum-exp."""
    rows = rows_of(logits)
    n, c = rows.shape
    lse = logsumexp_rows(rows)
    out = np.empty((n, c))
    for i in range(n):
        for j in range(c):
            out[i, j] = rows[i, j] - lse[i, 0]
    return out.reshape(logits.shape)


def logsumexp_rows(a):
    """log(sum(exp(a), axis=-1)) with the last axis kept as a 1 (a column (n, 1) of a matrix), stable for huge
    entries."""
    rows = rows_of(a)
    n, c = rows.shape
    out = np.empty((n, 1))
    for i in range(n):
        m = rows[i, 0]
        for j in range(1, c):
            m = max(m, rows[i, j])
        s = 0.0
        for j in range(c):
            s += math.exp(rows[i, j] - m)
        out[i, 0] = m + math.log(s)
    return out.reshape(a.shape[:-1] + (1,))


def _row_moments(rows, i, eps):
    """The mean of row i and 1 / its standard deviation (the mean square deviation, eps added)."""
    c = rows.shape[1]
    mean = 0.0
    for j in range(c):
        mean += rows[i, j]
    mean /= c
    var = 0.0
    for j in range(c):
        d = rows[i, j] - mean
        var += d * d
    return mean, 1.0 / math.sqrt(var / c + eps)


def normalize_last(x, eps):
    """Each row (the last axis) less its mean, over its standard deviation: layer normalization before its
    scale and shift."""
    rows = rows_of(x)
    n, c = rows.shape
    out = np.empty((n, c))
    for i in range(n):
        mean, rstd = _row_moments(rows, i, eps)
        for j in range(c):
            out[i, j] = (rows[i, j] - mean) * rstd
    return out.reshape(x.shape)


def normalize_last_vjp(x, g, eps):
    """normalize_last's gradient along g, row by row: rstd * (g - mean(g) - xhat * mean(g * xhat))."""
    rows, upstream = rows_of(x), rows_of(g)
    n, c = rows.shape
    out = np.empty((n, c))
    for i in range(n):
        mean, rstd = _row_moments(rows, i, eps)
        g_mean = 0.0
        gx_mean = 0.0
        for j in range(c):
            g_mean += upstream[i, j]
            gx_mean += upstream[i, j] * (rows[i, j] - mean) * rstd
        g_mean /= c
        gx_mean /= c
        for j in range(c):
            out[i, j] = rstd * (upstream[i, j] - g_mean - (rows[i, j] - mean) * rstd * gx_mean)
    return out.reshape(x.shape)


def _channel_moments(x, k, eps):
    """The mean of channel k of x (N, C, H, W) over N, H and W, and 1 / its standard deviation (the mean square
    deviation, eps added)."""
    n, _, h, w = x.shape
    count = n * h * w
    mean = 0.0
    for i in range(n):
        for p in range(h):
            for q in range(w):
                mean += x[i, k, p, q]
    mean /= count
    var = 0.0
    for i in range(n):
        for p in range(h):
            for q in range(w):
                d = x[i, k, p, q] - mean
                var += d * d
    return mean, 1.0 / math.sqrt(var / count + eps)


def normalize_channels(x, eps):
    """Each channel of x (N, C, H, W) less its mean over N, H and W, over its standard deviation: batch
    normalization (training mode) before its scale and shift."""
    n, c, h, w = x.shape
    out = np.empty((n, c, h, w))
    for k in range(c):
        mean, rstd = _channel_moments(x, k, eps)
        for i in range(n):
            for p in range(h):
                for q in range(w):
                    out[i, k, p, q] = (x[i, k, p, q] - mean) * rstd
    return out


def normalize_channels_vjp(x, g, eps):
    """normalize_channels' gradient along g, channel by channel: rstd * (g - mean(g) - xhat * mean(g * xhat))."""
    n, c, h, w = x.shape
    count = n * h * w
    out = np.empty((n, c, h, w))
    for k in range(c):
        mean, rstd = _channel_moments(x, k, eps)
        g_mean = 0.0
        gx_mean = 0.0
        for i in range(n):
            for p in range(h):
                for q in range(w):
                    g_mean += g[i, k, p, q]
                    gx_mean += g[i, k, p, q] * (x[i, k, p, q] - mean) * rstd
        g_mean /= count
        gx_mean /= count
        for i in range(n):
            for p in range(h):
                for q in range(w):
                    xhat = (x[i, k, p, q] - mean) * rstd
                    out[i, k, p, q] = rstd * (g[i, k, p, q] - g_mean - xhat * gx_mean)
    return out


def cross_entropy(logits, labels):
    """Mean over rows of -log_softmax(logits)[i, labels[i]]; log-sum-exp keeps it finite for huge logits."""
    n, c = logits.shape
    lse = logsumexp_rows(logits)
    total = 0.0
    for i in range(n):
        total += lse[i, 0] - logits[i, class_index(labels[i], c)]
    return total / n


def one_hot(labels, c):
    """Rows of c zeros with a 1.0 in column labels[i]."""
    out = np.zeros((labels.shape[0], c))
    for i in range(labels.shape[0]):
        out[i, class_index(labels[i], c)] = 1.0
    return out


def class_index(label, c):
    """A label as a column index, checked: indexing out of range would read stray memory under Numba."""
    k = int(label)
    if k != label or k < 0 or k >= c:
        raise ValueError("cross_entropy: every label must be a whole number from 0 to the number of classes - 1")
    return k


def conv_size(size, kernel, stride, padding, dilation):
    """How many positions a kernel takes along one axis: PyTorch's and NumPy's floor rule."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def im2col(x, kernel, stride, padding, dilation, cols):
    """The patches of one image x (C, H, W) as the columns of `cols` (C * KH * KW, OH * OW): row (c, i, j) of
    column (p, q) holds x[c, p * stride + i * dilation - padding, ...], 0 outside the image."""
    c, h, w = x.shape
    kh, kw = kernel
    oh, ow = conv_size(h, kh, stride[0], padding[0], dilation[0]), conv_size(w, kw, stride[1], padding[1], dilation[1])
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                row = (ci * kh + i) * kw + j
                for p in range(oh):
                    y = p * stride[0] + i * dilation[0] - padding[0]
                    for q in range(ow):
                        z = q * stride[1] + j * dilation[1] - padding[1]
                        cols[row, p * ow + q] = x[ci, y, z] if 0 <= y < h and 0 <= z < w else 0.0


def col2im_add(cols, kernel, stride, padding, dilation, x):
    """im2col's adjoint: each column entry of `cols` added back to the pixel of x (C, H, W) it was read from."""
    c, h, w = x.shape
    kh, kw = kernel
    oh, ow = conv_size(h, kh, stride[0], padding[0], dilation[0]), conv_size(w, kw, stride[1], padding[1], dilation[1])
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                row = (ci * kh + i) * kw + j
                for p in range(oh):
                    y = p * stride[0] + i * dilation[0] - padding[0]
                    if 0 <= y < h:
                        for q in range(ow):
                            z = q * stride[1] + j * dilation[1] - padding[1]
                            if 0 <= z < w:
                                x[ci, y, z] += cols[row, p * ow + q]


def product_into(a, b, out, accumulate):
    """out = a @ b, or out += a @ b when accumulate, for matrices."""
    if accumulate:
        out += a @ b
    else:
        out[:, :] = a @ b


def conv2d(x, w, stride, padding, dilation, groups):
    """PyTorch's conv2d (cross-correlation) of x (N, C, H, W) with w (F, C // groups, KH, KW): per image and
    group, the kernel rows times the image's patches (im2col), one matrix product."""
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    oh, ow = conv_size(h, kh, stride[0], padding[0], dilation[0]), conv_size(wd, kw, stride[1], padding[1], dilation[1])
    fg = f // groups
    weights = np.ascontiguousarray(w).reshape((groups, fg, cg * kh * kw))
    out = np.empty((n, groups, fg, oh * ow))
    cols = np.empty((cg * kh * kw, oh * ow))
    for i in range(n):
        for g in range(groups):
            first, last = g * cg, (g + 1) * cg  # the group's channels
            im2col(x[i, first:last], (kh, kw), stride, padding, dilation, cols)
            product_into(weights[g], cols, out[i, g], False)
    return out.reshape((n, f, oh, ow))


def conv2d_backward_input(dy, w, size, stride, padding, dilation, groups):
    """conv2d's gradient in x (N, C, H, W), size (H, W): per image and group, the kernel rows transposed times
    the upstream gradient, added back to the pixels each patch read (col2im)."""
    n, f, oh, ow = dy.shape
    _, cg, kh, kw = w.shape
    fg = f // groups
    weights = np.ascontiguousarray(w).reshape((groups, fg, cg * kh * kw))
    upstream = np.ascontiguousarray(dy).reshape((n, groups, fg, oh * ow))
    out = np.zeros((n, groups * cg, size[0], size[1]))
    cols = np.empty((cg * kh * kw, oh * ow))
    for i in range(n):
        for g in range(groups):
            first, last = g * cg, (g + 1) * cg
            product_into(weights[g].T, upstream[i, g], cols, False)
            col2im_add(cols, (kh, kw), stride, padding, dilation, out[i, first:last])
    return out


def conv2d_backward_weight(x, dy, kernel, stride, padding, dilation, groups):
    """conv2d's gradient in w (F, C // groups, KH, KW), kernel (KH, KW): the sum over images of the upstream
    gradient times the image's patches transposed."""
    n, c, h, wd = x.shape
    f, oh, ow = dy.shape[1], dy.shape[2], dy.shape[3]
    kh, kw = kernel
    cg, fg = c // groups, f // groups
    upstream = np.ascontiguousarray(dy).reshape((n, groups, fg, oh * ow))
    out = np.zeros((groups, fg, cg * kh * kw))
    cols = np.empty((cg * kh * kw, oh * ow))
    for i in range(n):
        for g in range(groups):
            first, last = g * cg, (g + 1) * cg
            im2col(x[i, first:last], kernel, stride, padding, dilation, cols)
            product_into(upstream[i, g], cols.T, out[g], True)
    return out.reshape((f, cg, kh, kw))


def _window_winner(x, i, c, p, q, kernel, stride, padding):
    """(row, column) of the first largest entry of window (p, q) of x[i, c] (a NaN wins), padding excluded."""
    h, w = x.shape[2], x.shape[3]
    top, left = p * stride[0] - padding[0], q * stride[1] - padding[1]
    best, at_y, at_z = -np.inf, -1, -1
    for y in range(max(top, 0), min(top + kernel[0], h)):
        for z in range(max(left, 0), min(left + kernel[1], w)):
            v = x[i, c, y, z]
            if at_y < 0 or (best == best and (v > best or v != v)):
                best, at_y, at_z = v, y, z
    return at_y, at_z


def max_pool2d(x, kernel, stride, padding):
    """The largest entry of each window of x (N, C, H, W); the padding is never chosen (PyTorch's -inf)."""
    return max_pool2d_at(x, x, kernel, stride, padding)


def max_pool2d_backward(x, g, kernel, stride, padding):
    """The max pool's gate: each window's upstream gradient goes to its first largest entry of x (summed where
    windows overlap)."""
    n, c, oh, ow = g.shape
    out = np.zeros(x.shape)
    for i in range(n):
        for ci in range(c):
            for p in range(oh):
                for q in range(ow):
                    y, z = _window_winner(x, i, ci, p, q, kernel, stride, padding)
                    out[i, ci, y, z] += g[i, ci, p, q]
    return out


def max_pool2d_at(x, t, kernel, stride, padding):
    """Forward mode's max pool gate: for each window of x, the entry of t at its first largest entry."""
    n, c, h, w = x.shape
    oh, ow = conv_size(h, kernel[0], stride[0], padding[0], 1), conv_size(w, kernel[1], stride[1], padding[1], 1)
    out = np.empty((n, c, oh, ow))
    for i in range(n):
        for ci in range(c):
            for p in range(oh):
                for q in range(ow):
                    y, z = _window_winner(x, i, ci, p, q, kernel, stride, padding)
                    out[i, ci, p, q] = t[i, ci, y, z]
    return out


def avg_pool2d(x, kernel, stride, padding):
    """The mean of each window of x (N, C, H, W), the padding counted as zeros (PyTorch's default)."""
    n, c, h, w = x.shape
    oh, ow = conv_size(h, kernel[0], stride[0], padding[0], 1), conv_size(w, kernel[1], stride[1], padding[1], 1)
    scale = 1.0 / (kernel[0] * kernel[1])
    out = np.empty((n, c, oh, ow))
    for i in range(n):
        for ci in range(c):
            for p in range(oh):
                top = p * stride[0] - padding[0]
                for q in range(ow):
                    left = q * stride[1] - padding[1]
                    total = 0.0
                    for y in range(max(top, 0), min(top + kernel[0], h)):
                        for z in range(max(left, 0), min(left + kernel[1], w)):
                            total += x[i, ci, y, z]
                    out[i, ci, p, q] = total * scale
    return out


def avg_pool2d_backward(g, size, kernel, stride, padding):
    """avg_pool2d's gradient in x (N, C, H, W), size (H, W): each window's upstream gradient spread evenly over
    its pixels, padding included (what falls on the padding is dropped)."""
    n, c, oh, ow = g.shape
    h, w = size
    scale = 1.0 / (kernel[0] * kernel[1])
    out = np.zeros((n, c, h, w))
    for i in range(n):
        for ci in range(c):
            for p in range(oh):
                top = p * stride[0] - padding[0]
                for q in range(ow):
                    left = q * stride[1] - padding[1]
                    share = g[i, ci, p, q] * scale
                    for y in range(max(top, 0), min(top + kernel[0], h)):
                        for z in range(max(left, 0), min(left + kernel[1], w)):
                            out[i, ci, y, z] += share
    return out


def same_shape(a, b):
    """Whether two arrays have one shape (Numba cannot compare shape tuples of different lengths)."""
    if a.ndim != b.ndim:
        return False
    for k in range(a.ndim):
        if a.shape[k] != b.shape[k]:
            return False
    return True


def move_axis(a, source, destination):
    """np.moveaxis(a, source, destination) (axes from 0) as a C-contiguous array, by swapping neighbouring axes:
    Numba before 0.62 has no np.moveaxis."""
    b = np.swapaxes(a, 0, 0)  # a view of any layout: the type every swap below keeps
    for j in range(source, destination):
        b = np.swapaxes(b, j, j + 1)
    for j in range(source, destination, -1):
        b = np.swapaxes(b, j, j - 1)
    return np.ascontiguousarray(b)


def spread_axis(g, axis, start, step, size):
    """Zeros of g's shape but `size` along `axis`, holding g's entries from `start` on, `step` apart: the
    gradient of x[start::step] along that axis."""
    moved = move_axis(g, axis, 0)
    out = np.zeros((size,) + moved.shape[1:])
    for i in range(moved.shape[0]):
        out[start + step * i] = moved[i]
    return move_axis(out, 0, axis)


def at_index(index, shape, value):
    """Zeros of `shape` holding `value` at `index` (a tuple of ints): the gradient of one entry, x[i, j]."""
    out = np.zeros(shape)
    out[index] = value
    return out


def sum_all(a):
    """a.sum(), as a function: compiled in bpgen's runtime once per machine for each array type."""
    return a.sum()


def sum_axis0(a):
    """a.sum(axis=0)."""
    out = np.zeros(a.shape[1:])
    for i in range(a.shape[0]):
        out += a[i]
    return out


def sum_channels(a):
    """a (N, C, ...) summed over every axis but the second: each channel's total, (C,)."""
    n, c = a.shape[0], a.shape[1]
    rows = np.ascontiguousarray(a).reshape((n, c, -1))
    out = np.zeros(c)
    for i in range(n):
        for j in range(c):
            total = 0.0
            for k in range(rows.shape[2]):
                total += rows[i, j, k]
            out[j] += total
    return out


def sum_last(a):
    """a.sum(axis=-1)."""
    out = np.empty(a.shape[:-1])
    for index in np.ndindex(out.shape):
        out[index] = a[index].sum()
    return out


def max_last(a):
    """a.max(axis=-1)."""
    out = np.empty(a.shape[:-1])
    for index in np.ndindex(out.shape):
        out[index] = a[index].max()
    return out


def route_max_last(a, g):
    """The max gate along the last axis: each entry of g goes to the first largest entry of its row of `a`."""
    out = np.zeros_like(a)
    for index in np.ndindex(g.shape):
        out[index + (np.argmax(a[index]),)] = g[index]
    return out


def max_along(a, axis):
    """The largest entry along `axis` (the axis is removed)."""
    b = move_axis(a, axis, a.ndim - 1)
    rows = b.reshape((-1, b.shape[-1]))
    out = np.empty(rows.shape[0])
    for r in range(rows.shape[0]):
        out[r] = rows[r].max()
    return out.reshape(b.shape[:-1])


def route_max(a, g, axis):
    """The max gate: each entry of g goes to the first largest entry of its slice of `a` along `axis`."""
    b = move_axis(a, axis, a.ndim - 1)
    rows = b.reshape((-1, b.shape[-1]))
    upstream = np.ascontiguousarray(g).reshape(-1)
    out = np.zeros_like(rows)
    for r in range(rows.shape[0]):
        out[r, np.argmax(rows[r])] = upstream[r]
    return move_axis(out.reshape(b.shape), b.ndim - 1, axis)


def route_max_all(a, g):
    """The max gate over all of `a`: g goes to its first largest entry."""
    out = np.zeros(a.size)
    out[np.argmax(a)] = g
    return out.reshape(a.shape)


def at_max_all(a, t):
    """Forward mode's max gate over all of `a`: the entry of t at the first largest entry of `a`."""
    return np.ascontiguousarray(t).reshape(-1)[np.argmax(a)]


def at_max_last(a, t):
    """Forward mode's max gate along the last axis: for each row of `a`, the entry of t at its first largest."""
    out = np.empty(a.shape[:-1])
    for index in np.ndindex(out.shape):
        out[index] = t[index][np.argmax(a[index])]
    return out


def at_max(a, t, axis):
    """Forward mode's max gate along `axis`: for each slice of `a`, the entry of t at its first largest."""
    b = move_axis(a, axis, a.ndim - 1)
    rows = b.reshape((-1, b.shape[-1]))
    tangents = move_axis(t, axis, t.ndim - 1).reshape((-1, b.shape[-1]))
    out = np.empty(rows.shape[0])
    for r in range(rows.shape[0]):
        out[r] = tangents[r, np.argmax(rows[r])]
    return out.reshape(b.shape[:-1])


def digamma(x):
    """psi(x) = d/dx log(gamma(x)). Shifted up to x >= 10 by psi(x) = psi(x + 1) - 1/x, then the asymptotic series
    log(x) - 1/(2x) - sum B2k / (2k x**2k) to k = 7. Between 0 and 2.9, where that sum cancels near the zero
    x0 = 1.4616..., one step of the recurrence and the Taylor series about x0. At or below 0 by reflection,
    psi(x) = psi(1 - x) - pi / tan(pi x); nan at the poles 0, -1, -2, ... Within 8 ulp of the exact value for
    x > 0."""
    x = float(x)
    if x != x or x == -math.inf:
        return math.nan
    if x == math.inf:
        return math.inf
    result = 0.0
    if x <= 0.0:
        nearest = x - math.floor(x + 0.5)  # x less its nearest whole number, exactly: tan(pi x) = tan(pi nearest)
        if nearest == 0.0:
            return math.nan  # a pole
        result = -math.pi / math.tan(math.pi * nearest)
        x = 1.0 - x
    if 0.0 < x < 2.9:  # psi(x) = psi(x + 1) - 1/x = psi(x - 1) + 1/(x - 1): one step to x0 - 0.5 < x < x0 + 0.5
        if x < 0.9616321449683622:
            result -= 1.0 / x
            x += 1.0
        elif x > 1.9616321449683622:
            x -= 1.0
            result += 1.0 / x
        h = (x - 1.4616321449683622) - 9.549995429965697e-17  # from the zero x0 of psi, given in two parts
        coefficients = (
            0.9676722454476212,
            -0.4427631689835921,
            0.258499760955651,
            -0.16394270544240652,
            0.10782405069126237,
            -0.07219956125645471,
            0.04880428816414311,
            -0.03316112647484736,
            0.022597648232218104,
            -0.01542476590494896,
            0.010538791616612175,
            -0.007204534386356869,
            0.004926781395729853,
            -0.003369801655439328,
            0.002305126326734928,
            -0.0015769367714301972,
            0.0010788252019162967,
            -0.0007380709389960052,
            0.000504953265834602,
            -0.0003454680251063077,
            0.00023635601564027053,
            -0.00016170622091974803,
            0.0001106337276874741,
            -7.569179582195066e-05,
            5.178575795222081e-05,
            -3.5430070947659604e-05,
            2.424006611860132e-05,
            -1.6584242271854135e-05,
            1.134638458466385e-05,
            -7.762817668462094e-06,
            5.3110609208898636e-06,
            -3.6336507898010456e-06,
            2.486022733129538e-06,
            -1.7008538854332607e-06,
            1.1636675363548843e-06,
            -7.96142543124197e-07,
            5.446941930669446e-07,
            -3.7266161283438227e-07,
            2.549626552021554e-07,
            -1.7443695117727745e-07,
            1.1934394829830244e-07,
            -8.165115189488409e-08,
        )  # psi^(k)(x0) / k!
        total = 0.0
        for k in range(41, -1, -1):
            total = total * h + coefficients[k]
        return result + total * h
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    z = 1.0 / (x * x)
    series = z * (
        1 / 12 - z * (1 / 120 - z * (1 / 252 - z * (1 / 240 - z * (1 / 132 - z * (691 / 32760 - z * (1 / 12))))))
    )
    return result + (math.log(x) - 0.5 / x - series)


def polygamma(n, x):
    """psi^(n)(x), the n-th derivative of digamma, for a whole order n >= 0: shifted up to x >= 20 + n by
    psi^(n)(x) = psi^(n)(x + 1) - (-1)**n n! / x**(n + 1), then the asymptotic series (-1)**(n + 1) ((n - 1)! / x**n
    + n! / (2 x**(n + 1)) + sum B2k (2k + n - 1)! / ((2k)! x**(2k + n))) to k = 8. nan at the poles."""
    order = int(n)
    if order == 0:
        return digamma(x)
    x = float(x)
    if x != x or order < 0 or order != n:
        return math.nan
    if x <= 0.0 and x == math.floor(x):
        return math.nan  # a pole
    if x == math.inf:
        return 0.0
    sign = -1.0 if order % 2 == 0 else 1.0  # (-1)**(n + 1)
    factorial = math.gamma(order + 1.0)
    shifted = 0.0  # sum of 1 / (x + k)**(n + 1) over the shift
    while x < 20.0 + order:
        shifted += 1.0 / x ** (order + 1.0)  # a float power: libm's pow, in Numba as in Python
        x += 1.0
    z = 1.0 / (x * x)
    # B2k / (2k)! * (2k + n - 1)! / (n - 1)!, k = 1..8, built up term by term
    bernoulli = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)
    total = 0.0
    power = 1.0
    ratio = 1.0  # (2k + n - 1)! / ((2k)! (n - 1)!)
    for k in range(1, 9):
        ratio *= (2 * k + order - 2) * (2 * k + order - 1) / ((2 * k - 1) * (2 * k))
        power *= z
        total += bernoulli[k - 1] * ratio * power
    tail = math.gamma(float(order)) / x ** float(order) * (1.0 + order / (2.0 * x) + total)
    return sign * (tail + factorial * shifted)


def beta_function(a, b):
    """The beta function gamma(a) gamma(b) / gamma(a + b): through lgamma for positive arguments (no overflow),
    through gamma otherwise (its sign)."""
    a = float(a)
    b = float(b)
    if a > 0.0 and b > 0.0:
        return math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    return math.gamma(a) * math.gamma(b) / math.gamma(a + b)


def polygamma_array(n, x):
    """polygamma(n, x) on every element of x."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        out[i] = polygamma(n, flat[i])
    return out.reshape(x.shape)


def exp_array(x):
    """np.exp(x), as exp_scalar on every element, in a loop LLVM vectorizes (Numba's np.exp calls libm once per
    element, 3x slower)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        out[i] = exp_scalar(flat[i])
    return out.reshape(x.shape)


def tanh_array(x):
    """np.tanh(x), as tanh_scalar on every element, in a loop LLVM vectorizes (Numba's np.tanh calls libm once
    per element)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        out[i] = tanh_scalar(flat[i])
    return out.reshape(x.shape)


def softplus_array(x):
    """np.logaddexp(0.0, x), as softplus on every element, in a loop LLVM vectorizes."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        out[i] = softplus(flat[i])
    return out.reshape(x.shape)


def sigmoid_array(x):
    """1 / (1 + np.exp(-x)) without overflow, as sigmoid on every element, in a loop LLVM vectorizes."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        out[i] = sigmoid(flat[i])
    return out.reshape(x.shape)


def lgamma_array(x):
    """math.lgamma on every element."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        out[i] = math.lgamma(flat[i])
    return out.reshape(x.shape)


def gamma_array(x):
    """math.gamma on every element."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        out[i] = math.gamma(flat[i])
    return out.reshape(x.shape)


def digamma_array(x):
    """digamma on every element."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        out[i] = digamma(flat[i])
    return out.reshape(x.shape)
