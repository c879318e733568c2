"""The rule table: for every op, how its forward value prints and its local partials.

One entry per op. A rule's `partials(A, args, out)` returns, for each
argument, the local derivative d(out)/d(arg) as an IR node built with the
algebra `A` (which folds constants and drops trivial factors), or None where
the op is not differentiable in that argument (a condition). Partials may use
the op's own output `out`, as sigmoid's `(1 - out) * out` does.

`sympy_function`/`sympy_expr` and `domain` tie each rule to SymPy so the tests
can check every entry against `sympy.diff`, parametrized over this table.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy

from . import functions, shapes
from .ir import Node
from .printer import (
    ADD,
    AND,
    MUL,
    NOT,
    OR,
    ArraySelect,
    AttrCall,
    Call,
    CallTemplate,
    Compare,
    Conditional,
    Infix,
    MatrixProduct,
    Method,
    Power,
    Prefix,
    Reduction,
    Reshape,
    ShapedCall,
    Syntax,
)

Partials = Callable[..., Sequence[Node | None]]


@dataclass(frozen=True)
class Rule:
    op: str
    syntax: Syntax
    partials: Partials | None  # None: not differentiable (comparisons, logic)
    numeric: Callable[..., float] | None = None  # folds constant arguments
    sympy_function: type | None = None  # the SymPy class this op stands for, if one
    sympy_expr: Callable[..., sympy.Expr] | None = None  # builds the op in SymPy (tests)
    domain: tuple[tuple[float, float], ...] = ((-2.0, 2.0),)  # test points inside the domain
    helper: str | Callable[[Node], str | None] | None = None  # a helper function the module must define
    shape: Callable[[tuple, tuple], tuple] | None = None  # result shape; None: elementwise broadcast
    array_syntax: Syntax | None = None  # how it prints on NumPy arrays, when not as on floats
    vjp: Callable[..., Sequence[Node | None]] | None = None  # tensor ops: (A, args, out, g) -> per-arg terms
    array_helper: str | None = None  # helper the array form calls (NumPy lacks a vectorized erf)


# Helper functions emitted into generated modules that use them: numerically
# stable forms that need a branch, written once here rather than inline. The
# array helpers are plain loops: Numba compiles a loop in a fraction of the
# time it needs for the same broadcast array expression.
HELPERS: dict[str, str] = {
    # exp and the logistic pair by polynomials, with no libm call: LLVM inlines them and vectorizes the loops
    # that call them (value_and_grad_batch, the array helpers below), where a libm call per element is 3-6x
    # slower
    "exp_scalar": '''def exp_scalar(x):
    """math.exp(x) in arithmetic LLVM can vectorize. x = k ln2 + r with |r| <= ln2/2; exp(r) = 1 + r + r**2/2
    + r**3 q(r), q to r**10 in pairs (Estrin's scheme: a short dependency chain, so one call is about as fast
    as libm's); 2**k built from IEEE bits in two factors, so subnormal results round once. Within 1 ulp
    (math.exp: 0.5)."""
    v = min(max(float(x), -746.0), 710.0) if x == x else 0.0  # exp is 0 below and inf above: k stays in range
    k = (v * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0  # round(v / ln2): + 1.5 * 2**52
    r = (v - k * 0.6931471803691238) - k * 1.9082149292705877e-10  # ln2 in two parts: r is exact enough
    r2 = r * r
    r4 = r2 * r2
    q = ((1 / 6 + r * (1 / 24)) + r2 * (1 / 120 + r * (1 / 720))) + r4 * (
        ((1 / 5040 + r * (1 / 40320)) + r2 * (1 / 362880 + r * (1 / 3628800)))
        + r4 * ((1 / 39916800 + r * (1 / 479001600)) + r2 * (1 / 6227020800)))  # r**j / j! for j = 3 to 13
    p = 1.0 + (r + (r2 * 0.5 + (r2 * r) * q))
    half = np.int64(k) >> 1
    high = float(np.int64((half + 1023) << 52).view(np.float64))  # float(): plain Python multiplies floats, not
    low = float(np.int64((np.int64(k) - half + 1023) << 52).view(np.float64))  # NumPy scalars, with no warnings
    return p * high * low if x == x else x
''',
    "sigmoid": '''def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for large |x|: t = exp(-|x|), then 1 / (1 + t) or t / (1 + t); one
    exp, and a select rather than a branch. Within 2.5 ulp."""
    t = exp_scalar(-abs(x))
    r = 1.0 / (1.0 + t)
    return r if x >= 0.0 else t * r
''',
    "softplus": '''def softplus(x):
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
''',
}


HELPERS.update({
    "erf_array": '''def erf_array(x):
    """math.erf on every element (NumPy has no vectorized erf)."""
    out = np.empty_like(x)
    for index in np.ndindex(x.shape):
        out[index] = math.erf(x[index])
    return out
''',
    "transpose_matmul": '''def transpose_matmul(a, g):
    """a.T @ g, the gradient of a matrix with more rows than columns. For a tall a (a large batch) it is computed
    as (g.T @ a).T and copied to C order: dgemm then gets the long side of the result as its M dimension, which
    OpenBLAS's AVX-512 kernels run 15-25% faster (its AVX2 kernels about equally fast). For a small batch the
    copy would cost more than it saves."""
    if a.shape[0] < a.shape[1]:
        return a.T @ g
    return np.ascontiguousarray((g.T @ a).T)
''',
    "tall_matmul": '''def tall_matmul(a, b):
    """a @ b for a large b with more rows than columns (a weight, or a wide weight's transpose in dX). For a
    tall a (a large batch) it is computed as (b.T @ a.T).T and copied to C order, for the reason
    transpose_matmul gives (8% faster for 4096 x 784 x 128 here); for a small batch the copy would cost more
    than it saves."""
    if a.shape[0] < a.shape[1]:
        return a @ b
    return np.ascontiguousarray((b.T @ a.T).T)
''',
    "softmax_cross_entropy": '''def softmax_cross_entropy(logits, onehot):
    """Mean over rows of -sum(onehot * log_softmax(logits)); log-sum-exp keeps it finite for huge logits."""
    n, c = logits.shape
    lse = logsumexp_rows(logits)
    total = 0.0
    for i in range(n):
        for j in range(c):
            total += onehot[i, j] * (lse[i, 0] - logits[i, j])
    return total / n
''',
    "softmax": '''def softmax(logits):
    """Row-wise softmax through the log-sum-exp, so exp never overflows."""
    n, c = logits.shape
    lse = logsumexp_rows(logits)
    out = np.empty((n, c))
    for i in range(n):
        for j in range(c):
            out[i, j] = math.exp(logits[i, j] - lse[i, 0])
    return out
''',
    "log_softmax": '''def log_softmax(logits):
    """Row-wise log-softmax: logits minus their log-sum-exp."""
    n, c = logits.shape
    lse = logsumexp_rows(logits)
    out = np.empty((n, c))
    for i in range(n):
        for j in range(c):
            out[i, j] = logits[i, j] - lse[i, 0]
    return out
''',
    "logsumexp_rows": '''def logsumexp_rows(a):
    """log(sum(exp(a), axis=1)) as a column (n, 1), stable for huge entries."""
    n, c = a.shape
    out = np.empty((n, 1))
    for i in range(n):
        m = a[i, 0]
        for j in range(1, c):
            m = max(m, a[i, j])
        s = 0.0
        for j in range(c):
            s += math.exp(a[i, j] - m)
        out[i, 0] = m + math.log(s)
    return out
''',
    "cross_entropy": '''def cross_entropy(logits, labels):
    """Mean over rows of -log_softmax(logits)[i, labels[i]]; log-sum-exp keeps it finite for huge logits."""
    n, c = logits.shape
    lse = logsumexp_rows(logits)
    total = 0.0
    for i in range(n):
        total += lse[i, 0] - logits[i, class_index(labels[i], c)]
    return total / n
''',
    "one_hot": '''def one_hot(labels, c):
    """Rows of c zeros with a 1.0 in column labels[i]."""
    out = np.zeros((labels.shape[0], c))
    for i in range(labels.shape[0]):
        out[i, class_index(labels[i], c)] = 1.0
    return out
''',
    "class_index": '''def class_index(label, c):
    """A label as a column index, checked: indexing out of range would read stray memory under Numba."""
    k = int(label)
    if k != label or k < 0 or k >= c:
        raise ValueError("cross_entropy: every label must be a whole number from 0 to the number of classes - 1")
    return k
''',
    "same_shape": '''def same_shape(a, b):
    """Whether two arrays have one shape (Numba cannot compare shape tuples of different lengths)."""
    if a.ndim != b.ndim:
        return False
    for k in range(a.ndim):
        if a.shape[k] != b.shape[k]:
            return False
    return True
''',
    # reductions over one axis as small loops: Numba compiles them in a fraction of a second, where its
    # sum(axis=...) and np.moveaxis take seconds
    "sum_axis0": '''def sum_axis0(a):
    """a.sum(axis=0)."""
    out = np.zeros(a.shape[1:])
    for i in range(a.shape[0]):
        out += a[i]
    return out
''',
    "sum_last": '''def sum_last(a):
    """a.sum(axis=-1)."""
    out = np.empty(a.shape[:-1])
    for index in np.ndindex(out.shape):
        out[index] = a[index].sum()
    return out
''',
    "max_last": '''def max_last(a):
    """a.max(axis=-1)."""
    out = np.empty(a.shape[:-1])
    for index in np.ndindex(out.shape):
        out[index] = a[index].max()
    return out
''',
    "route_max_last": '''def route_max_last(a, g):
    """The max gate along the last axis: each entry of g goes to the first largest entry of its row of `a`."""
    out = np.zeros_like(a)
    for index in np.ndindex(g.shape):
        out[index + (np.argmax(a[index]),)] = g[index]
    return out
''',
    # the max gate over a middle axis: moveaxis puts it last, so one loop over rows serves any ndim
    "max_along": '''def max_along(a, axis):
    """The largest entry along `axis` (the axis is removed)."""
    b = np.ascontiguousarray(np.moveaxis(a, axis, -1))
    rows = b.reshape((-1, b.shape[-1]))
    out = np.empty(rows.shape[0])
    for r in range(rows.shape[0]):
        out[r] = rows[r].max()
    return out.reshape(b.shape[:-1])
''',
    "route_max": '''def route_max(a, g, axis):
    """The max gate: each entry of g goes to the first largest entry of its slice of `a` along `axis`."""
    b = np.ascontiguousarray(np.moveaxis(a, axis, -1))
    rows = b.reshape((-1, b.shape[-1]))
    upstream = np.ascontiguousarray(g).reshape(-1)
    out = np.zeros_like(rows)
    for r in range(rows.shape[0]):
        out[r, np.argmax(rows[r])] = upstream[r]
    return np.ascontiguousarray(np.moveaxis(out.reshape(b.shape), -1, axis))
''',
    "route_max_all": '''def route_max_all(a, g):
    """The max gate over all of `a`: g goes to its first largest entry."""
    out = np.zeros(a.size)
    out[np.argmax(a)] = g
    return out.reshape(a.shape)
''',
})


# The gamma family: Python's math has lgamma and gamma, but nothing for their derivatives, so digamma and
# polygamma are computed here (Student-t, Poisson and Gamma likelihoods differentiate through them).
HELPERS.update({
    "digamma": '''def digamma(x):
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
        coefficients = (0.9676722454476212, -0.4427631689835921, 0.258499760955651, -0.16394270544240652,
                        0.10782405069126237, -0.07219956125645471, 0.04880428816414311, -0.03316112647484736,
                        0.022597648232218104, -0.01542476590494896, 0.010538791616612175, -0.007204534386356869,
                        0.004926781395729853, -0.003369801655439328, 0.002305126326734928, -0.0015769367714301972,
                        0.0010788252019162967, -0.0007380709389960052, 0.000504953265834602, -0.0003454680251063077,
                        0.00023635601564027053, -0.00016170622091974803, 0.0001106337276874741,
                        -7.569179582195066e-05, 5.178575795222081e-05, -3.5430070947659604e-05,
                        2.424006611860132e-05, -1.6584242271854135e-05, 1.134638458466385e-05,
                        -7.762817668462094e-06, 5.3110609208898636e-06, -3.6336507898010456e-06,
                        2.486022733129538e-06, -1.7008538854332607e-06, 1.1636675363548843e-06,
                        -7.96142543124197e-07, 5.446941930669446e-07, -3.7266161283438227e-07, 2.549626552021554e-07,
                        -1.7443695117727745e-07, 1.1934394829830244e-07, -8.165115189488409e-08)  # psi^(k)(x0) / k!
        total = 0.0
        for k in range(41, -1, -1):
            total = total * h + coefficients[k]
        return result + total * h
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    z = 1.0 / (x * x)
    series = z * (1 / 12 - z * (1 / 120 - z * (1 / 252 - z * (1 / 240 - z * (1 / 132 - z * (691 / 32760
                                                                                              - z * (1 / 12)))))))
    return result + (math.log(x) - 0.5 / x - series)
''',
    "polygamma": '''def polygamma(n, x):
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
''',
    "beta_function": '''def beta_function(a, b):
    """The beta function gamma(a) gamma(b) / gamma(a + b): through lgamma for positive arguments (no overflow),
    through gamma otherwise (its sign)."""
    a = float(a)
    b = float(b)
    if a > 0.0 and b > 0.0:
        return math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    return math.gamma(a) * math.gamma(b) / math.gamma(a + b)
''',
    "polygamma_array": '''def polygamma_array(n, x):
    """polygamma(n, x) on every element of x."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        out[i] = polygamma(n, flat[i])
    return out.reshape(x.shape)
''',
})


def _elementwise_loop(name: str, scalar: str, doc: str) -> str:
    """The source of an array helper that applies the scalar helper `scalar` to every element, in a loop LLVM
    vectorizes once the scalar helper is inlined."""
    return f'''def {name}(x):
    """{doc}"""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape[0])
    for i in range(flat.shape[0]):
        out[i] = {scalar}(flat[i])
    return out.reshape(x.shape)
'''


HELPERS.update({
    "exp_array": _elementwise_loop("exp_array", "exp_scalar", "np.exp(x), as exp_scalar on every element, in a "
                                   "loop LLVM vectorizes (Numba's np.exp calls libm once per\n"
                                   "    element, 3x slower)."),
    "softplus_array": _elementwise_loop("softplus_array", "softplus", "np.logaddexp(0.0, x), as softplus on every "
                                        "element, in a loop LLVM vectorizes."),
    "sigmoid_array": _elementwise_loop("sigmoid_array", "sigmoid", "1 / (1 + np.exp(-x)) without overflow, as "
                                       "sigmoid on every element, in a loop LLVM vectorizes."),
    "lgamma_array": _elementwise_loop("lgamma_array", "math.lgamma", "math.lgamma on every element."),
    "gamma_array": _elementwise_loop("gamma_array", "math.gamma", "math.gamma on every element."),
    "digamma_array": _elementwise_loop("digamma_array", "digamma", "digamma on every element."),
})

# elementwise helpers that loops over points or array elements call: their generated decorators inline them
INLINED_HELPERS = frozenset({"exp_scalar", "sigmoid", "softplus"})

# helpers that call other helpers (directly; the compiler follows the chain)
HELPER_NEEDS = {name: ("logsumexp_rows",) for name in ("log_softmax", "softmax", "softmax_cross_entropy")}
HELPER_NEEDS.update({"cross_entropy": ("logsumexp_rows", "class_index"), "one_hot": ("class_index",),
                     "sigmoid": ("exp_scalar",), "softplus": ("exp_scalar",), "exp_array": ("exp_scalar",),
                     "sigmoid_array": ("sigmoid",), "softplus_array": ("softplus",),
                     "polygamma": ("digamma",), "digamma_array": ("digamma",), "polygamma_array": ("polygamma",)})


def with_needed_helpers(names) -> list[str]:
    """The helpers `names` together with every helper they call, directly or in turn, sorted."""
    used = set(names)
    pending = list(used)
    while pending:
        for needed in HELPER_NEEDS.get(pending.pop(), ()):
            if needed not in used:
                used.add(needed)
                pending.append(needed)
    return sorted(used)


def _helper_function(name: str) -> Callable[[float], float]:
    """The helper's emitted source, run here too, so constant folding uses the very same formula."""

    @functools.cache
    def helper() -> Callable[[float], float]:
        import numpy as np  # the helpers read IEEE bits through NumPy: imported on the first fold, not with bpgen

        namespace = {"math": math, "np": np}
        for needed in with_needed_helpers([name]):
            exec(HELPERS[needed], namespace)  # our own constant source text, not user input
        return namespace[name]

    def numeric(*values: float) -> float:
        return float(helper()(*values))
    return numeric


def _one_minus_square(A, t):
    """1 - t**2 as (1 - t) * (1 + t): for |t| near 1 (tanh's derivative, asin's and acos's) 1 - t is exact, where
    t**2 rounds away the digits 1 - t**2 keeps; and no integer power for Numba to compile."""
    return A.mul(A.sub(A.const(1.0), t), A.add(A.const(1.0), t))


def _quotient_by_divisor(A, args, out):
    """d(a/b)/db. A constant numerator keeps the notes' form, -1.0 / den**2; otherwise -(a/b) / b reuses the
    quotient: one operation and no power less (Numba takes 2-4 ms to compile each integer power)."""
    a, b = args
    if a.is_const:
        return A.div(A.neg(a), A.pow(b, A.const(2)))
    return A.div(A.neg(out), b)


def _others_product(A, args, i):
    return A.mul(*(a for j, a in enumerate(args) if j != i))


def _route(A, args, out, better, tie_ok):
    """Max/Min: the gradient goes to the winner; on a tie, to the first argument."""
    result = []
    for i, a in enumerate(args):
        conds = [A.apply(better, a, b) for b in args[:i]] + [A.apply(tie_ok, a, b) for b in args[i + 1:]]
        result.append(A.select(A.logical_and(*conds), A.const(1.0), A.const(0.0)))
    return result


def _atan2_partials(A, args, out):
    y, x = args
    r2 = A.add(A.pow(x, A.const(2)), A.pow(y, A.const(2)))
    return [A.div(x, r2), A.div(A.neg(y), r2)]


def _pow_partials(A, args, out):
    """d(b**e)/db = e * b**(e - 1); d(b**e)/de = b**e * log(b), whose limit at b = 0 (for e > 0) is 0, as JAX
    and PyTorch take it: the product itself would be 0 * -inf = nan."""
    base, exponent = args
    d_base = A.mul(exponent, A.pow(base, A.sub(exponent, A.const(1.0))))
    d_exponent = A.select(A.apply("eq", base, A.const(0.0)), A.const(0.0), A.mul(out, A.apply("log", base)))
    return [d_base, d_exponent]


def polygamma_of(A, order: int, x):
    """psi^(order)(x): digamma for order 0, so both SymPy spellings print alike."""
    return A.apply("digamma", x) if order == 0 else A.apply("polygamma", A.const(float(order)), x)


def _polygamma_partials(A, args, out):
    order, x = args
    return [None, polygamma_of(A, int(order.value) + 1, x)]


def _beta_partials(A, args, out):
    a, b = args
    both = A.apply("digamma", A.add(a, b))
    return [A.mul(out, A.sub(A.apply("digamma", a), both)), A.mul(out, A.sub(A.apply("digamma", b), both))]


def _cmp(op, symbol, fn, sym):
    return Rule(op, Compare(symbol), None, numeric=fn, sympy_expr=sym, domain=((-2, 2), (-2, 2)))


_RULES = [
    # arithmetic: add distributes, mul swaps
    Rule("add", Infix("+", ADD), lambda A, args, out: [A.const(1.0)] * len(args),
         numeric=lambda *v: math.fsum(v), sympy_expr=lambda a, b, c: a + b + c,
         domain=((-2, 2),) * 3),
    Rule("sub", Infix("-", ADD), lambda A, args, out: [A.const(1.0), A.const(-1.0)],
         numeric=lambda a, b: a - b, sympy_expr=lambda a, b: a - b, domain=((-2, 2),) * 2),
    Rule("neg", Prefix("-"), lambda A, args, out: [A.const(-1.0)],
         numeric=lambda a: -a, sympy_expr=lambda a: -a),
    Rule("mul", Infix("*", MUL), lambda A, args, out: [_others_product(A, args, i) for i in range(len(args))],
         numeric=math.prod, sympy_expr=lambda a, b, c: a * b * c, domain=((-2, 2),) * 3),
    Rule("div", Infix("/", MUL),
         lambda A, args, out: [A.div(A.const(1.0), args[1]), _quotient_by_divisor(A, args, out)],
         numeric=lambda a, b: a / b, sympy_expr=lambda a, b: a / b, domain=((-2, 2), (0.5, 3))),
    Rule("pow", Power(), _pow_partials, numeric=lambda a, b: a**b,
         sympy_expr=lambda a, b: a**b, domain=((0.3, 3), (-2, 2))),
    Rule("sqrt", Call("math.sqrt"), lambda A, args, out: [A.div(A.const(0.5), out)],
         numeric=math.sqrt, sympy_expr=sympy.sqrt, domain=((0.1, 4),),
         array_syntax=Call("np.sqrt")),
    # elementary functions
    Rule("exp", Call("math.exp"), lambda A, args, out: [out],
         numeric=math.exp, sympy_function=sympy.exp,
         array_syntax=Call("exp_array"), array_helper="exp_array"),
    Rule("log", Call("math.log"), lambda A, args, out: [A.div(A.const(1.0), args[0])],
         numeric=math.log, sympy_function=sympy.log, domain=((0.1, 4),),
         array_syntax=Call("np.log")),
    Rule("sin", Call("math.sin"), lambda A, args, out: [A.apply("cos", args[0])],
         numeric=math.sin, sympy_function=sympy.sin,
         array_syntax=Call("np.sin")),
    Rule("cos", Call("math.cos"), lambda A, args, out: [A.neg(A.apply("sin", args[0]))],
         numeric=math.cos, sympy_function=sympy.cos,
         array_syntax=Call("np.cos")),
    Rule("tan", Call("math.tan"), lambda A, args, out: [A.add(A.const(1.0), A.pow(out, A.const(2)))],
         numeric=math.tan, sympy_function=sympy.tan, domain=((-1.2, 1.2),),
         array_syntax=Call("np.tan")),
    Rule("asin", Call("math.asin"),
         lambda A, args, out: [A.div(A.const(1.0), A.apply("sqrt", _one_minus_square(A, args[0])))],
         numeric=math.asin, sympy_function=sympy.asin, domain=((-0.9, 0.9),),
         array_syntax=Call("np.arcsin")),
    Rule("acos", Call("math.acos"),
         lambda A, args, out: [A.div(A.const(-1.0), A.apply("sqrt", _one_minus_square(A, args[0])))],
         numeric=math.acos, sympy_function=sympy.acos, domain=((-0.9, 0.9),),
         array_syntax=Call("np.arccos")),
    Rule("atan", Call("math.atan"),
         lambda A, args, out: [A.div(A.const(1.0), A.add(A.const(1.0), A.pow(args[0], A.const(2))))],
         numeric=math.atan, sympy_function=sympy.atan,
         array_syntax=Call("np.arctan")),
    Rule("atan2", Call("math.atan2"), _atan2_partials, numeric=math.atan2,
         sympy_function=sympy.atan2, domain=((-2, 2), (0.2, 2)),
         array_syntax=Call("np.arctan2")),
    Rule("sinh", Call("math.sinh"), lambda A, args, out: [A.apply("cosh", args[0])],
         numeric=math.sinh, sympy_function=sympy.sinh,
         array_syntax=Call("np.sinh")),
    Rule("cosh", Call("math.cosh"), lambda A, args, out: [A.apply("sinh", args[0])],
         numeric=math.cosh, sympy_function=sympy.cosh,
         array_syntax=Call("np.cosh")),
    Rule("tanh", Call("math.tanh"), lambda A, args, out: [_one_minus_square(A, out)],
         numeric=math.tanh, sympy_function=sympy.tanh,
         array_syntax=Call("np.tanh")),
    Rule("erf", Call("math.erf"),
         lambda A, args, out: [A.mul(A.const(2.0 / math.sqrt(math.pi)),
                                     A.apply("exp", A.neg(A.pow(args[0], A.const(2)))))],
         numeric=math.erf, sympy_function=sympy.erf, array_syntax=Call("erf_array"), array_helper="erf_array"),
    # the gamma family
    Rule("lgamma", Call("math.lgamma"), lambda A, args, out: [A.apply("digamma", args[0])],
         numeric=math.lgamma, sympy_function=sympy.loggamma, domain=((0.2, 6.0),),
         array_syntax=Call("lgamma_array"), array_helper="lgamma_array"),
    Rule("gamma", Call("math.gamma"), lambda A, args, out: [A.mul(out, A.apply("digamma", args[0]))],
         numeric=math.gamma, sympy_function=sympy.gamma, domain=((0.2, 5.0),),
         array_syntax=Call("gamma_array"), array_helper="gamma_array"),
    Rule("digamma", Call("digamma"), lambda A, args, out: [polygamma_of(A, 1, args[0])],
         numeric=_helper_function("digamma"), sympy_function=sympy.digamma, helper="digamma", domain=((0.2, 6.0),),
         array_syntax=Call("digamma_array"), array_helper="digamma_array"),
    Rule("polygamma", Call("polygamma"), _polygamma_partials, numeric=_helper_function("polygamma"),
         sympy_function=sympy.polygamma, sympy_expr=lambda x: sympy.polygamma(2, x), helper="polygamma",
         domain=((0.2, 6.0),), array_syntax=Call("polygamma_array"), array_helper="polygamma_array"),
    Rule("beta", Call("beta_function"), _beta_partials, numeric=_helper_function("beta_function"),
         sympy_function=sympy.beta, helper="beta_function", domain=((0.3, 4.0), (0.3, 4.0))),
    # piecewise-linear gates: max routes, |x|'(0) = 0, relu'(0) = 0
    Rule("abs", Call("abs"),
         lambda A, args, out: [A.select(A.apply("gt", args[0], A.const(0.0)), A.const(1.0),
                                        A.select(A.apply("lt", args[0], A.const(0.0)), A.const(-1.0), A.const(0.0)))],
         numeric=abs, sympy_function=sympy.Abs,
         array_syntax=Call("np.abs")),
    Rule("max", Call("max"), lambda A, args, out: _route(A, args, out, "gt", "ge"),
         numeric=max, sympy_function=sympy.Max, domain=((-2, 2),) * 3),
    Rule("min", Call("min"), lambda A, args, out: _route(A, args, out, "lt", "le"),
         numeric=min, sympy_function=sympy.Min, domain=((-2, 2),) * 3),
    Rule("relu", CallTemplate("max({0}, 0.0)"),
         lambda A, args, out: [A.select(A.apply("gt", args[0], A.const(0.0)), A.const(1.0), A.const(0.0))],
         numeric=lambda a: max(a, 0.0), sympy_function=functions.relu,
         array_syntax=CallTemplate("np.maximum({0}, 0.0)")),
    # the logistic family, in numerically stable forms
    Rule("sigmoid", Call("sigmoid"), lambda A, args, out: [A.mul(A.sub(A.const(1.0), out), out)],
         numeric=_helper_function("sigmoid"), sympy_function=functions.sigmoid, helper="sigmoid",
         array_syntax=Call("sigmoid_array"), array_helper="sigmoid_array"),
    # softplus' = sigmoid = exp(x - softplus(x)): from the output, one exp, and the exponent is never positive
    Rule("softplus", Call("softplus"), lambda A, args, out: [A.apply("exp", A.sub(args[0], out))],
         numeric=_helper_function("softplus"), sympy_function=functions.softplus, helper="softplus",
         array_syntax=Call("softplus_array"), array_helper="softplus_array"),
    # Piecewise lowers to select(cond, a, b): the gradient of the branch taken
    Rule("select", Conditional(),
         lambda A, args, out: [None, A.select(args[0], A.const(1.0), A.const(0.0)),
                               A.select(args[0], A.const(0.0), A.const(1.0))],
         numeric=lambda c, a, b: a if c else b,
         sympy_expr=lambda s, a, b: sympy.Piecewise((a, s > 0), (b, True)),
         domain=((-1, 1), (-2, 2), (-2, 2)),
         array_syntax=ArraySelect()),
    # conditions: not differentiable, their gradient is zero
    _cmp("lt", "<", lambda a, b: float(a < b), lambda a, b: a < b),
    _cmp("le", "<=", lambda a, b: float(a <= b), lambda a, b: a <= b),
    _cmp("gt", ">", lambda a, b: float(a > b), lambda a, b: a > b),
    _cmp("ge", ">=", lambda a, b: float(a >= b), lambda a, b: a >= b),
    _cmp("eq", "==", lambda a, b: float(a == b), sympy.Eq),
    _cmp("ne", "!=", lambda a, b: float(a != b), sympy.Ne),
    Rule("and", Infix("and", AND), None, numeric=lambda *v: float(all(v)), array_syntax=Call("np.logical_and")),
    Rule("or", Infix("or", OR), None, numeric=lambda *v: float(any(v))),
    Rule("not", Prefix("not ", NOT), None, numeric=lambda a: float(not a),
         array_syntax=Call("np.logical_not")),
]



# Tensor ops. Their gradients are vector-Jacobian products at the matrix level
# (vjp(A, args, out, g) -> one term per argument), never a Jacobian.

def _large_and_tall(shape: tuple) -> bool:
    """A weight whose products with a batch are worth tall_matmul (forward) and transpose_matmul (gradient): more
    rows than columns, and large enough (784 x 128 is) for a product to take milliseconds; small ones keep the
    plain form."""
    rows, cols = shape
    return isinstance(rows, int) and isinstance(cols, int) and rows > cols and rows * cols >= 65536


def _matmul_helper(node: Node) -> str | None:
    """A batch times a large tall matrix calls tall_matmul, which picks the faster orientation for dgemm: the
    forward X @ W for a tall weight, and dX = dz @ W.T for a wide one."""
    a, b = node.args
    return "tall_matmul" if len(a.shape) == 2 and len(b.shape) == 2 and _large_and_tall(b.shape) else None


def _matmul_vjp(A, args, out, g):
    a, b = args
    if len(a.shape) == 2 and len(b.shape) == 2:
        return [A.matmul(g, A.transpose(b)),
                A.make("transpose_matmul", (a, g)) if _large_and_tall(b.shape) else A.matmul(A.transpose(a), g)]
    if len(a.shape) == 2:  # matrix @ vector
        return [A.outer(g, b), A.matmul(A.transpose(a), g)]
    if len(b.shape) == 2:  # vector @ matrix
        return [A.matmul(b, g), A.outer(a, g)]
    return [A.mul(g, b), A.mul(g, a)]  # dot product


def _sum_vjp(A, args, out, g):
    (a,) = args
    axis = out.attrs[0]
    if axis is None:
        return [A.fill(g, a.shape)]
    kept = a.shape[:axis] + (1,) + a.shape[axis + 1:]
    return [A.broadcast_to(A.reshape(g, kept), a.shape)]


def _sum_helper(node: Node) -> str | None:
    """Sums over the first or the last axis call small loops: Numba's sum(axis=...) takes seconds to compile."""
    (a,) = node.args
    axis = node.attrs[0]
    if axis is None:
        return None
    return "sum_axis0" if axis == 0 else "sum_last" if axis == len(a.shape) - 1 else None


def _max_vjp(A, args, out, g):
    return [A.make("route_max_last" if out.op == "max_last" else "route_max", (args[0], g), out.attrs)]


def _softmax_rows(A, logits):
    return A.make("softmax", (logits,))


def _softmax_ce_vjp(A, args, out, g):
    """mean_i sum_j Y_ij (lse_i - z_ij): d/dz = (softmax(z) * rowsum(Y) - Y) / N, d/dY = -log_softmax(z) / N."""
    logits, targets = args
    weighted = A.mul(_softmax_rows(A, logits), A.keep_sum_rows(targets))
    return [A.mul(g, A.div(A.sub(weighted, targets), A.rows(logits))),
            A.mul(g, A.div(A.neg(A.make("log_softmax", (logits,))), A.rows(logits)))]


def _one_hot(A, logits, labels):
    return A.make("one_hot", (labels,), (logits.shape[1],))


# ops whose results may be strided views of other arrays (all others make new C-order arrays)
STRIDED_OPS = frozenset({"input", "adj", "transpose", "broadcast_to"})

_TENSOR_RULES = [
    Rule("matmul", MatrixProduct(_matmul_helper), None,
         shape=lambda args, attrs: shapes.matmul(args[0].shape, args[1].shape), vjp=_matmul_vjp,
         helper=_matmul_helper),
    Rule("transpose_matmul", Call("transpose_matmul"), None,
         shape=lambda args, attrs: (args[0].shape[1], args[1].shape[1]), helper="transpose_matmul"),
    Rule("outer", Call("np.outer"), None, shape=lambda args, attrs: args[0].shape + args[1].shape,
         vjp=lambda A, args, out, g: [A.matmul(g, args[1]), A.matmul(args[0], g)]),
    Rule("transpose", Method(".T"), None, shape=lambda args, attrs: args[0].shape[::-1],
         vjp=lambda A, args, out, g: [A.transpose(g)]),
    Rule("reshape", Reshape(STRIDED_OPS), None, shape=lambda args, attrs: attrs[0],
         vjp=lambda A, args, out, g: [A.reshape(g, args[0].shape)]),
    Rule("sum", Reduction("sum", _sum_helper), None, shape=lambda args, attrs: shapes.reduce(args[0].shape, attrs[0]),
         vjp=_sum_vjp, helper=_sum_helper),
    # max reductions: the max gate routes the upstream gradient to the winner (the first one on ties)
    Rule("max_all", Method(".max()"), None, shape=lambda args, attrs: (),
         vjp=lambda A, args, out, g: [A.make("route_max_all", (args[0], g))]),
    Rule("route_max_all", Call("route_max_all"), None, shape=lambda args, attrs: args[0].shape,
         helper="route_max_all"),
    Rule("max_last", Call("max_last"), None, shape=lambda args, attrs: args[0].shape[:-1], helper="max_last",
         vjp=_max_vjp),
    Rule("route_max_last", Call("route_max_last"), None, shape=lambda args, attrs: args[0].shape,
         helper="route_max_last"),
    Rule("max_along", AttrCall("max_along"), None, shape=lambda args, attrs: shapes.reduce(args[0].shape, attrs[0]),
         helper="max_along", vjp=_max_vjp),
    Rule("route_max", AttrCall("route_max"), None, shape=lambda args, attrs: args[0].shape, helper="route_max"),
    Rule("fill", ShapedCall("np.full"), None, shape=lambda args, attrs: attrs[0],
         vjp=lambda A, args, out, g: [A.sum(g, None)]),
    Rule("broadcast_to", ShapedCall("np.broadcast_to", shape_first=False), None, shape=lambda args, attrs: attrs[0],
         vjp=lambda A, args, out, g: [A.sum_to(g, args[0].shape)]),
    Rule("dim", Call("len"), None, shape=lambda args, attrs: ()),  # always named: `N = X.shape[0]`
    # softmax cross-entropy, fused: a log-sum-exp-stable forward and (p * rowsum(Y) - Y) / N backward, right
    # for any targets (one-hot rows sum to 1, soft labels from rounding or weighting need not)
    Rule("softmax_ce", Call("softmax_cross_entropy"), None, shape=lambda args, attrs: (),
         helper="softmax_cross_entropy", vjp=_softmax_ce_vjp),
    # the same with integer labels: (p - one_hot(labels)) / N, and no gradient for the labels
    Rule("cross_entropy", Call("cross_entropy"), None, shape=lambda args, attrs: (), helper="cross_entropy",
         vjp=lambda A, args, out, g: [A.mul(g, A.div(A.sub(_softmax_rows(A, args[0]), _one_hot(A, *args)),
                                                     A.rows(args[0]))), None]),
    Rule("one_hot", AttrCall("one_hot"), None, shape=lambda args, attrs: args[0].shape + attrs, helper="one_hot"),
    Rule("softmax", Call("softmax"), None, shape=lambda args, attrs: args[0].shape, helper="softmax",
         vjp=lambda A, args, out, g: [A.mul(out, A.sub(g, A.keep_sum_rows(A.mul(g, out))))]),
    Rule("log_softmax", Call("log_softmax"), None, shape=lambda args, attrs: args[0].shape, helper="log_softmax",
         vjp=lambda A, args, out, g: [A.sub(g, A.mul(_softmax_rows(A, args[0]), A.keep_sum_rows(g)))]),
    Rule("logsumexp", Call("logsumexp_rows"), None, shape=lambda args, attrs: args[0].shape[:-1] + (1,),
         helper="logsumexp_rows",
         vjp=lambda A, args, out, g: [A.mul(g, _softmax_rows(A, args[0]))]),
]
_RULES += _TENSOR_RULES

RULES: dict[str, Rule] = {rule.op: rule for rule in _RULES}
assert len(RULES) == len(_RULES), "one rule per op"

# Rules made on demand for SymPy functions outside the table (op "call",
# attrs (function class,)): forward printed by SymPy, partials from `sympy.diff`.
GENERIC_RULES: dict[type, Rule] = {}


def rule_for(op: str, attrs: tuple = ()) -> Rule:
    return GENERIC_RULES[attrs[0]] if op == "call" else RULES[op]


def rule_of(node: Node) -> Rule:
    return rule_for(node.op, node.attrs)

# SymPy function class -> op, for lowering.
OP_OF_SYMPY_FUNCTION: dict[type, str] = {
    rule.sympy_function: rule.op for rule in _RULES if rule.sympy_function is not None
}


def sympy_builder(rule: Rule) -> Callable[..., sympy.Expr] | None:
    """How to write this op in SymPy, for checking the rule against `sympy.diff`."""
    return rule.sympy_expr or rule.sympy_function
