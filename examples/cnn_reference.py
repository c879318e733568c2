"""Hand-written Numba gradients of LeNet-5 and of a ResNet basic block: the reference that
examples/benchmark_layers.py times bpgen's generated code against.

Written as a person would write them with Numba: im2col per image and one `@` per layer (Numba's products, SciPy's
OpenBLAS), the backward pass by hand in the same order, batch norm's gradient in its closed form. The same
losses as the benchmark's: LeNet-5's mean softmax cross-entropy of one-hot labels, and sum(block(X) * R).
"""

import numba
import numpy as np


@numba.njit(cache=True)
def im2col(x, k, pad, cols):
    """The k x k patches of one image x (C, H, W), padded by `pad`, stride 1, as the columns of cols."""
    c, h, w = x.shape
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    for ci in range(c):
        for i in range(k):
            for j in range(k):
                row = (ci * k + i) * k + j
                for p in range(oh):
                    y = p + i - pad
                    for q in range(ow):
                        z = q + j - pad
                        cols[row, p * ow + q] = x[ci, y, z] if 0 <= y < h and 0 <= z < w else 0.0


@numba.njit(cache=True)
def col2im(cols, k, pad, x):
    """im2col's adjoint: the columns added back into the image x (C, H, W)."""
    c, h, w = x.shape
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    for ci in range(c):
        for i in range(k):
            for j in range(k):
                row = (ci * k + i) * k + j
                for p in range(oh):
                    y = p + i - pad
                    if 0 <= y < h:
                        for q in range(ow):
                            z = q + j - pad
                            if 0 <= z < w:
                                x[ci, y, z] += cols[row, p * ow + q]


@numba.njit(cache=True)
def conv_forward(x, w, b, pad):
    n, c, h, wd = x.shape
    f, k = w.shape[0], w.shape[2]
    oh, ow = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
    kernels = w.reshape((f, c * k * k))
    out = np.empty((n, f, oh, ow))
    cols = np.empty((c * k * k, oh * ow))
    for i in range(n):
        im2col(x[i], k, pad, cols)
        out[i] = (kernels @ cols).reshape((f, oh, ow))
        for j in range(f):
            out[i, j] += b[j]
    return out


@numba.njit(cache=True)
def conv_backward(x, w, dout, pad):
    """(dx, dw, db) of conv_forward along dout."""
    n, c, h, wd = x.shape
    f, k = w.shape[0], w.shape[2]
    oh, ow = dout.shape[2], dout.shape[3]
    kernels = w.reshape((f, c * k * k))
    dx = np.zeros(x.shape)
    dkernels = np.zeros((f, c * k * k))
    db = np.zeros(f)
    cols = np.empty((c * k * k, oh * ow))
    for i in range(n):
        upstream = dout[i].reshape((f, oh * ow))
        im2col(x[i], k, pad, cols)
        dkernels += upstream @ cols.T
        col2im(kernels.T @ upstream, k, pad, dx[i])
        for j in range(f):
            db[j] += upstream[j].sum()
    return dx, dkernels.reshape(w.shape), db


@numba.njit(cache=True)
def pool_forward(x):
    n, c, h, w = x.shape
    out = np.empty((n, c, h // 2, w // 2))
    for i in range(n):
        for j in range(c):
            for p in range(h // 2):
                for q in range(w // 2):
                    out[i, j, p, q] = max(max(x[i, j, 2 * p, 2 * q], x[i, j, 2 * p, 2 * q + 1]),
                                          max(x[i, j, 2 * p + 1, 2 * q], x[i, j, 2 * p + 1, 2 * q + 1]))
    return out


@numba.njit(cache=True)
def pool_backward(x, dout):
    """The 2 x 2 max pool's gate: each window's gradient to its first largest entry."""
    n, c, h, w = x.shape
    dx = np.zeros(x.shape)
    for i in range(n):
        for j in range(c):
            for p in range(h // 2):
                for q in range(w // 2):
                    best, by, bz = x[i, j, 2 * p, 2 * q], 2 * p, 2 * q
                    for y, z in ((2 * p, 2 * q + 1), (2 * p + 1, 2 * q), (2 * p + 1, 2 * q + 1)):
                        if x[i, j, y, z] > best:
                            best, by, bz = x[i, j, y, z], y, z
                    dx[i, j, by, bz] += dout[i, j, p, q]
    return dx


@numba.njit(cache=True)
def lenet_value_and_grad(X, C1, c1, C2, c2, W3, b3, W4, b4, W5, b5, Y):
    n = X.shape[0]
    z1 = conv_forward(X, C1, c1, 2)
    a1 = np.maximum(z1, 0.0)
    p1 = pool_forward(a1)
    z2 = conv_forward(p1, C2, c2, 0)
    a2 = np.maximum(z2, 0.0)
    p2 = pool_forward(a2)
    flat = p2.reshape((n, 400))
    z3 = flat @ W3.T + b3
    a3 = np.maximum(z3, 0.0)
    z4 = a3 @ W4.T + b4
    a4 = np.maximum(z4, 0.0)
    logits = a4 @ W5.T + b5
    probabilities = np.empty(logits.shape)
    loss = 0.0
    for i in range(n):
        m = logits[i].max()
        e = np.exp(logits[i] - m)
        total = e.sum()
        probabilities[i] = e / total
        loss -= (Y[i] * (logits[i] - m - np.log(total))).sum()
    dlogits = (probabilities - Y) / n
    dW5, db5 = dlogits.T @ a4, dlogits.sum(axis=0)
    dz4 = (dlogits @ W5) * (z4 > 0.0)
    dW4, db4 = dz4.T @ a3, dz4.sum(axis=0)
    dz3 = (dz4 @ W4) * (z3 > 0.0)
    dW3, db3 = dz3.T @ flat, dz3.sum(axis=0)
    dp2 = (dz3 @ W3).reshape(p2.shape)
    dz2 = pool_backward(a2, dp2) * (z2 > 0.0)
    dp1, dC2, dc2 = conv_backward(p1, C2, dz2, 0)
    dz1 = pool_backward(a1, dp1) * (z1 > 0.0)
    _, dC1, dc1 = conv_backward(X, C1, dz1, 2)
    return loss / n, (dC1, dc1, dC2, dc2, dW3, db3, dW4, db4, dW5, db5)


@numba.njit(cache=True)
def batch_norm_forward(z, gamma, beta):
    """(out, normalized, 1 / std) of training-mode batch norm over (N, H, W)."""
    n, c, h, w = z.shape
    count = n * h * w
    normalized = np.empty(z.shape)
    out = np.empty(z.shape)
    inverse_std = np.empty(c)
    for j in range(c):
        channel = z[:, j]
        mean = channel.sum() / count
        var = ((channel - mean) ** 2).sum() / count
        inverse_std[j] = 1.0 / np.sqrt(var + 1e-5)
        normalized[:, j] = (channel - mean) * inverse_std[j]
        out[:, j] = normalized[:, j] * gamma[j] + beta[j]
    return out, normalized, inverse_std


@numba.njit(cache=True)
def batch_norm_backward(dout, normalized, inverse_std, gamma):
    """(dz, dgamma, dbeta): dz = gamma / std * (dout - mean(dout) - normalized * mean(dout * normalized))."""
    n, c, h, w = dout.shape
    count = n * h * w
    dz = np.empty(dout.shape)
    dgamma, dbeta = np.empty(c), np.empty(c)
    for j in range(c):
        g, xhat = dout[:, j], normalized[:, j]
        dbeta[j] = g.sum()
        dgamma[j] = (g * xhat).sum()
        dz[:, j] = gamma[j] * inverse_std[j] * (g - dbeta[j] / count - xhat * (dgamma[j] / count))
    return dz, dgamma, dbeta


@numba.njit(cache=True)
def block_value_and_grad(X, W1, g1, be1, W2, g2, be2, R):
    zero = np.zeros(W1.shape[0])
    z1 = conv_forward(X, W1, zero, 1)
    n1, xhat1, inv1 = batch_norm_forward(z1, g1, be1)
    h = np.maximum(n1, 0.0)
    z2 = conv_forward(h, W2, zero, 1)
    n2, xhat2, inv2 = batch_norm_forward(z2, g2, be2)
    s = n2 + X
    out = np.maximum(s, 0.0)
    loss = (out * R).sum()
    ds = R * (s > 0.0)
    dz2, dg2, dbe2 = batch_norm_backward(ds, xhat2, inv2, g2)
    dh, dW2, _ = conv_backward(h, W2, dz2, 1)
    dz1, dg1, dbe1 = batch_norm_backward(dh * (n1 > 0.0), xhat1, inv1, g1)
    dX, dW1, _ = conv_backward(X, W1, dz1, 1)
    return loss, (dX + ds, dW1, dg1, dbe1, dW2, dg2, dbe2)
