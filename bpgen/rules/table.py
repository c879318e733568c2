"""The rule table: the maths of every op, and nothing about how it prints.

One entry per op. A rule's `partials(A, args, out)` returns, for each
argument, the local derivative d(out)/d(arg) as an IR node built with the
algebra `A` (which folds constants and drops trivial factors), or None where
the op is not differentiable in that argument (a condition). Partials may use
the op's own output `out`, as sigmoid's `(1 - out) * out` does. Tensor ops
give vector-Jacobian products (`vjp`) and Jacobian-vector products (`jvp`)
at the matrix level instead, never a Jacobian.

`sympy_function`/`sympy_expr` and `domain` tie each rule to SymPy so the tests
can check every entry against `sympy.diff`, parametrized over this table. How
each op prints is the business of each target's syntax table
(bpgen/targets/*/syntax.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy

from ..errors import BpgenError
from ..ir import shapes
from ..ir.graph import Node
from ..ir.loops import part_shape
from ..ir.ops import Op
from . import sympy_functions

Partials = Callable[..., Sequence[Node | None]]


@dataclass(frozen=True)
class Rule:
    op: str
    partials: Partials | None  # None: not differentiable (comparisons, logic), or a tensor op (vjp)
    numeric: Callable[..., float] | None = None  # folds constant arguments
    sympy_function: type | None = None  # the SymPy class this op stands for, if one
    sympy_expr: Callable[..., sympy.Expr] | None = None  # builds the op in SymPy (tests)
    domain: tuple[tuple[float, float], ...] = ((-2.0, 2.0),)  # test points inside the domain
    shape: Callable[[tuple, tuple], tuple] | None = None  # result shape; None: elementwise broadcast
    vjp: Callable[..., Sequence[Node | None]] | None = None  # tensor ops: (A, args, out, g) -> per-arg terms
    # tensor ops: (A, args, out, tangents) -> per-arg terms of the output's tangent (forward mode), each linear
    # in that argument's tangent (None where the argument has none)
    jvp: Callable[..., Sequence[Node | None]] | None = None
    elementwise: bool = True  # a scalar op that applies elementwise to tensors (beta has no array form)


def _runtime_numeric(name: str) -> Callable[..., float]:
    """A runtime helper (bpgen/runtime.py) as a number-valued function, for constant folding with the very
    formula the generated code uses. The module (and NumPy with it) is imported on first use."""

    def numeric(*values: float) -> float:
        from .. import runtime

        return float(getattr(runtime, name)(*values))

    numeric.__name__ = name
    return numeric


def _one_minus_square(A, t):
    """1 - t**2 as (1 - t) * (1 + t): for |t| near 1 (tanh's derivative, asin's and acos's) 1 - t is exact, where
    t**2 rounds away the digits 1 - t**2 keeps."""
    return A.mul(A.sub(A.const(1.0), t), A.add(A.const(1.0), t))


def _quotient_by_divisor(A, args, out):
    """d(a/b)/db. A constant numerator keeps the notes' form, -1.0 / den**2; otherwise -(a/b) / b reuses the
    quotient: one operation and no power less."""
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
    d_exponent = A.select(A.apply(Op.EQ, base, A.const(0.0)), A.const(0.0), A.mul(out, A.apply(Op.LOG, base)))
    return [d_base, d_exponent]


def polygamma_of(A, order: int, x):
    """psi^(order)(x): digamma for order 0, so both SymPy spellings print alike."""
    return A.apply(Op.DIGAMMA, x) if order == 0 else A.apply(Op.POLYGAMMA, A.const(float(order)), x)


def _polygamma_partials(A, args, out):
    order, x = args
    return [None, polygamma_of(A, int(order.value) + 1, x)]


def _beta_partials(A, args, out):
    a, b = args
    both = A.apply(Op.DIGAMMA, A.add(a, b))
    return [A.mul(out, A.sub(A.apply(Op.DIGAMMA, a), both)), A.mul(out, A.sub(A.apply(Op.DIGAMMA, b), both))]


def _cmp(op, fn, sym):
    return Rule(op, None, numeric=fn, sympy_expr=sym, domain=((-2, 2), (-2, 2)))


_RULES = [
    # arithmetic: add distributes, mul swaps
    Rule(Op.ADD, lambda A, args, out: [A.const(1.0)] * len(args),
         numeric=lambda *v: math.fsum(v), sympy_expr=lambda a, b, c: a + b + c,
         domain=((-2, 2),) * 3),
    Rule(Op.SUB, lambda A, args, out: [A.const(1.0), A.const(-1.0)],
         numeric=lambda a, b: a - b, sympy_expr=lambda a, b: a - b, domain=((-2, 2),) * 2),
    Rule(Op.NEG, lambda A, args, out: [A.const(-1.0)],
         numeric=lambda a: -a, sympy_expr=lambda a: -a),
    Rule(Op.MUL, lambda A, args, out: [_others_product(A, args, i) for i in range(len(args))],
         numeric=math.prod, sympy_expr=lambda a, b, c: a * b * c, domain=((-2, 2),) * 3),
    Rule(Op.DIV,
         lambda A, args, out: [A.div(A.const(1.0), args[1]), _quotient_by_divisor(A, args, out)],
         numeric=lambda a, b: a / b, sympy_expr=lambda a, b: a / b, domain=((-2, 2), (0.5, 3))),
    Rule(Op.POW, _pow_partials, numeric=lambda a, b: a**b,
         sympy_expr=lambda a, b: a**b, domain=((0.3, 3), (-2, 2))),
    Rule(Op.SQRT, lambda A, args, out: [A.div(A.const(0.5), out)],
         numeric=math.sqrt, sympy_expr=sympy.sqrt, domain=((0.1, 4),)),
    # elementary functions
    Rule(Op.EXP, lambda A, args, out: [out],
         numeric=math.exp, sympy_function=sympy.exp),
    Rule(Op.LOG, lambda A, args, out: [A.div(A.const(1.0), args[0])],
         numeric=math.log, sympy_function=sympy.log, domain=((0.1, 4),)),
    Rule(Op.SIN, lambda A, args, out: [A.apply(Op.COS, args[0])],
         numeric=math.sin, sympy_function=sympy.sin),
    Rule(Op.COS, lambda A, args, out: [A.neg(A.apply(Op.SIN, args[0]))],
         numeric=math.cos, sympy_function=sympy.cos),
    Rule(Op.TAN, lambda A, args, out: [A.add(A.const(1.0), A.pow(out, A.const(2)))],
         numeric=math.tan, sympy_function=sympy.tan, domain=((-1.2, 1.2),)),
    Rule(Op.ASIN,
         lambda A, args, out: [A.div(A.const(1.0), A.apply(Op.SQRT, _one_minus_square(A, args[0])))],
         numeric=math.asin, sympy_function=sympy.asin, domain=((-0.9, 0.9),)),
    Rule(Op.ACOS,
         lambda A, args, out: [A.div(A.const(-1.0), A.apply(Op.SQRT, _one_minus_square(A, args[0])))],
         numeric=math.acos, sympy_function=sympy.acos, domain=((-0.9, 0.9),)),
    Rule(Op.ATAN,
         lambda A, args, out: [A.div(A.const(1.0), A.add(A.const(1.0), A.pow(args[0], A.const(2))))],
         numeric=math.atan, sympy_function=sympy.atan),
    Rule(Op.ATAN2, _atan2_partials, numeric=math.atan2,
         sympy_function=sympy.atan2, domain=((-2, 2), (0.2, 2))),
    Rule(Op.SINH, lambda A, args, out: [A.apply(Op.COSH, args[0])],
         numeric=math.sinh, sympy_function=sympy.sinh),
    Rule(Op.COSH, lambda A, args, out: [A.apply(Op.SINH, args[0])],
         numeric=math.cosh, sympy_function=sympy.cosh),
    Rule(Op.TANH, lambda A, args, out: [_one_minus_square(A, out)],
         numeric=math.tanh, sympy_function=sympy.tanh),
    Rule(Op.ERF,
         lambda A, args, out: [A.mul(A.const(2.0 / math.sqrt(math.pi)),
                                     A.apply(Op.EXP, A.neg(A.pow(args[0], A.const(2)))))],
         numeric=math.erf, sympy_function=sympy.erf),
    # the gamma family
    Rule(Op.LGAMMA, lambda A, args, out: [A.apply(Op.DIGAMMA, args[0])],
         numeric=math.lgamma, sympy_function=sympy.loggamma, domain=((0.2, 6.0),)),
    Rule(Op.GAMMA, lambda A, args, out: [A.mul(out, A.apply(Op.DIGAMMA, args[0]))],
         numeric=math.gamma, sympy_function=sympy.gamma, domain=((0.2, 5.0),)),
    Rule(Op.DIGAMMA, lambda A, args, out: [polygamma_of(A, 1, args[0])],
         numeric=_runtime_numeric("digamma"), sympy_function=sympy.digamma, domain=((0.2, 6.0),)),
    Rule(Op.POLYGAMMA, _polygamma_partials, numeric=_runtime_numeric("polygamma"),
         sympy_function=sympy.polygamma, sympy_expr=lambda x: sympy.polygamma(2, x),
         domain=((0.2, 6.0),)),
    Rule(Op.BETA, _beta_partials, numeric=_runtime_numeric("beta_function"),
         sympy_function=sympy.beta, domain=((0.3, 4.0), (0.3, 4.0)), elementwise=False),
    # piecewise-linear gates: max routes, |x|'(0) = 0, relu'(0) = 0
    Rule(Op.ABS,
         lambda A, args, out: [A.select(A.apply(Op.GT, args[0], A.const(0.0)), A.const(1.0),
                                        A.select(A.apply(Op.LT, args[0], A.const(0.0)), A.const(-1.0), A.const(0.0)))],
         numeric=abs, sympy_function=sympy.Abs),
    Rule(Op.MAX, lambda A, args, out: _route(A, args, out, Op.GT, Op.GE),
         numeric=max, sympy_function=sympy.Max, domain=((-2, 2),) * 3),
    Rule(Op.MIN, lambda A, args, out: _route(A, args, out, Op.LT, Op.LE),
         numeric=min, sympy_function=sympy.Min, domain=((-2, 2),) * 3),
    Rule(Op.RELU,
         lambda A, args, out: [A.select(A.apply(Op.GT, args[0], A.const(0.0)), A.const(1.0), A.const(0.0))],
         numeric=lambda a: max(a, 0.0), sympy_function=sympy_functions.relu),
    # the logistic family, in numerically stable forms
    Rule(Op.SIGMOID, lambda A, args, out: [A.mul(A.sub(A.const(1.0), out), out)],
         numeric=_runtime_numeric("sigmoid"), sympy_function=sympy_functions.sigmoid),
    # softplus' = sigmoid = exp(x - softplus(x)): from the output, one exp, and the exponent is never positive
    Rule(Op.SOFTPLUS, lambda A, args, out: [A.apply(Op.EXP, A.sub(args[0], out))],
         numeric=_runtime_numeric("softplus"), sympy_function=sympy_functions.softplus),
    # Piecewise lowers to select(cond, a, b): the gradient of the branch taken
    Rule(Op.SELECT,
         lambda A, args, out: [None, A.select(args[0], A.const(1.0), A.const(0.0)),
                               A.select(args[0], A.const(0.0), A.const(1.0))],
         numeric=lambda c, a, b: a if c else b,
         sympy_expr=lambda s, a, b: sympy.Piecewise((a, s > 0), (b, True)),
         domain=((-1, 1), (-2, 2), (-2, 2))),
    # conditions: not differentiable, their gradient is zero
    _cmp(Op.LT, lambda a, b: float(a < b), lambda a, b: a < b),
    _cmp(Op.LE, lambda a, b: float(a <= b), lambda a, b: a <= b),
    _cmp(Op.GT, lambda a, b: float(a > b), lambda a, b: a > b),
    _cmp(Op.GE, lambda a, b: float(a >= b), lambda a, b: a >= b),
    _cmp(Op.EQ, lambda a, b: float(a == b), sympy.Eq),
    _cmp(Op.NE, lambda a, b: float(a != b), sympy.Ne),
    Rule(Op.AND, None, numeric=lambda *v: float(all(v))),
    Rule(Op.OR, None, numeric=lambda *v: float(any(v))),
    Rule(Op.NOT, None, numeric=lambda a: float(not a)),
]



def _no_forward_mode(A, args, out, tangents):
    # a loop has no tangent rule of its own: forward mode replaces it by its tangent scan beforehand
    # (bpgen/transforms/scan.py's tangent_scans), so reaching this is a path that forgot to
    raise BpgenError("forward mode reached a bpgen.scan without its tangent scan (tangent_scans)")


# Tensor ops. Their gradients are vector-Jacobian products at the matrix level
# (vjp(A, args, out, g) -> one term per argument), never a Jacobian.

def _matmul_vjp(A, args, out, g):
    a, b = args
    if len(a.shape) > 2:  # a stack times a matrix (flat_matmul), or two stacks with one batch shape
        if len(b.shape) == 2:
            return [A.matmul(g, A.transpose(b)), A.flat_transpose_matmul(a, g)]
        return [A.matmul(g, A.swap_last(b)), A.matmul(A.swap_last(a), g)]
    if len(a.shape) == 2 and len(b.shape) == 2:
        return [A.matmul(g, A.transpose(b)), A.matmul(A.transpose(a), g)]
    if len(a.shape) == 2:  # matrix @ vector
        return [A.outer(g, b), A.matmul(A.transpose(a), g)]
    if len(b.shape) == 2:  # vector @ matrix
        return [A.matmul(b, g), A.outer(a, g)]
    return [A.mul(g, b), A.mul(g, a)]  # dot product


def _affine_vjp(A, args, out, g):
    """x @ W + b: the product's gradients, and b's the sum of g over the stack's rows."""
    x, w, bias = args
    return [A.matmul(g, A.transpose(w)), A.flat_transpose_matmul(x, g), A.sum_to(g, bias.shape)]


def _affine_jvp(A, args, out, t):
    """Bilinear in (x, W) and linear in b: tx @ W + x @ tW + tb."""
    x, w, _ = args
    return [None if t[0] is None else A.matmul(t[0], w), None if t[1] is None else A.matmul(x, t[1]),
            None if t[2] is None else A.broadcast_to(t[2], out.shape)]


def _same_op_jvp(A, args, out, t):
    """The JVP of an op linear in each argument, attrs and all (a convolution and its gradients): per argument,
    the op with that argument's tangent in its place."""
    return [None if t[i] is None else A.make(out.op, tuple(t[i] if j == i else a for j, a in enumerate(args)),
                                             out.attrs) for i in range(len(args))]


def _conv2d_vjp(A, args, out, g):
    """dx = conv2d_backward_input(dy, w, (H, W), ...), dw = conv2d_backward_weight(x, dy, (KH, KW), ...)."""
    x, w = args
    return [A.make(Op.CONV2D_BACKWARD_INPUT, (g, w), (tuple(x.shape[2:]), *out.attrs)),
            A.make(Op.CONV2D_BACKWARD_WEIGHT, (x, g), (tuple(w.shape[2:]), *out.attrs))]


def _conv2d_shape(args, attrs):
    (x, w), (stride, padding, dilation, _) = args, attrs
    return (x.shape[0], w.shape[0], *shapes.conv_output(x.shape[2:], w.shape[2:], stride, padding, dilation))


def _pooled_shape(args, attrs):
    kernel, stride, padding = attrs
    return (*args[0].shape[:2], *shapes.conv_output(args[0].shape[2:], kernel, stride, padding, (1, 1)))


def _sum_vjp(A, args, out, g):
    (a,) = args
    axis = out.attrs[0]
    if axis is None:
        return [A.fill(g, a.shape)]
    kept = a.shape[:axis] + (1,) + a.shape[axis + 1:]
    return [A.broadcast_to(A.reshape(g, kept), a.shape)]


def _bilinear_jvp(make):
    """The JVP of an op linear in each argument (a matrix product, an outer product): per argument, the op with
    that argument's tangent in its place."""
    return lambda A, args, out, t: [
        None if t[i] is None else make(A, *(t[i] if j == i else a for j, a in enumerate(args)))
        for i in range(len(args))]


def _linear_jvp(apply):
    """The JVP of an op linear in its one argument (a transpose, a sum, a reshape): the op applied to the
    tangent."""
    return lambda A, args, out, t: [apply(A, t[0], out)]


def _routed_jvp(op):
    """The JVP of an op linear in its last argument, whose other arguments only route it (the max gates)."""
    return lambda A, args, out, t: [None] * (len(args) - 1) + [
        None if t[-1] is None else A.make(op, (*args[:-1], t[-1]), out.attrs)]


def _scalar_loss_jvp(vjp):
    """The JVP of a scalar-valued op from its VJP: sum(vjp_i(1) * t_i), the gradient dotted with the tangent."""
    def jvp(A, args, out, t):
        gradients = vjp(A, args, out, A.const(1.0))
        return [None if ti is None or gi is None else A.sum(A.mul(gi, ti), None) for gi, ti in zip(gradients, t)]
    return jvp


def _max_jvp(A, args, out, t):
    """The max gate in forward mode: the tangent at the winner (the first one on ties)."""
    a = args[0]
    if out.op == Op.MAX_ALL:
        return [A.make(Op.AT_MAX_ALL, (a, t[0]))]
    if out.op == Op.MAX_LAST:
        return [A.make(Op.AT_MAX_LAST, (a, t[0]))]
    return [A.make(Op.AT_MAX, (a, t[0]), out.attrs)]


def _max_vjp(A, args, out, g):
    return [A.make(Op.ROUTE_MAX_LAST if out.op == Op.MAX_LAST else "route_max", (args[0], g), out.attrs)]


def _softmax_rows(A, logits):
    return A.make(Op.SOFTMAX, (logits,))


def _softmax_ce_vjp(A, args, out, g):
    """mean_i sum_j Y_ij (lse_i - z_ij): d/dz = (softmax(z) * rowsum(Y) - Y) / N, d/dY = -log_softmax(z) / N."""
    logits, targets = args
    weighted = A.mul(_softmax_rows(A, logits), A.keep_sum_rows(targets))
    return [A.mul(g, A.div(A.sub(weighted, targets), A.rows(logits))),
            A.mul(g, A.div(A.neg(A.make(Op.LOG_SOFTMAX, (logits,))), A.rows(logits)))]


def _softmax_jvp(A, args, out, t):
    return [A.make(Op.SOFTMAX_JVP, (out, t[0]))]


def _softmax_jvp_jvp(A, args, out, t):
    """softmax_jvp(s, u) = s * u - s * rowsum(s * u): bilinear in (s, u)."""
    s, u = args
    ds, du = t
    return [None if ds is None else A.sub(A.mul(ds, A.sub(u, A.keep_sum_rows(A.mul(s, u)))),
                                          A.mul(s, A.keep_sum_rows(A.mul(ds, u)))),
            None if du is None else A.make(Op.SOFTMAX_JVP, (s, du))]


def _log_softmax_jvp(A, args, out, t):
    return [A.sub(t[0], A.keep_sum_rows(A.mul(_softmax_rows(A, args[0]), t[0])))]


def _logsumexp_jvp(A, args, out, t):
    return [A.keep_sum_rows(A.mul(_softmax_rows(A, args[0]), t[0]))]


def _cross_entropy_vjp(A, args, out, g):
    return [A.mul(g, A.div(A.sub(_softmax_rows(A, args[0]), _one_hot(A, *args)), A.rows(args[0]))), None]


def _one_hot(A, logits, labels):
    return A.make(Op.ONE_HOT, (labels,), (logits.shape[1],))


def _row_mean(A, a):
    """The mean of each row (the last axis), kept as an axis of 1."""
    return A.div(A.keep_sum_rows(a), A.dim(a.shape[-1]))


def _channel_mean(A, a):
    """The mean of each channel of a (N, C, H, W) over N, H and W, kept as (1, C, 1, 1)."""
    n, c, h, w = a.shape
    return A.reshape(A.div(A.sum_channels(a), A.mul(A.dim(n), A.const(float(h * w)))), (1, c, 1, 1))


def _normalized_vjp_jvp(normalize: str, normalize_vjp: str, mean):
    """The tangent of a normalization's gradient, the groups it normalizes averaged by `mean` (a row, a channel):
    f = normalize_vjp(x, g) = r (g - m(g) - xhat m(g xhat)), m a group's mean, xhat = normalize(x), r = 1 / std,
    is linear in g (its own form), and along a tangent tx of x, with u = normalize_vjp(x, tx):
    df = -r m(xhat tx) f - r (u m(g xhat) + xhat m(g u))."""
    def jvp(A, args, out, t):
        x, g = args
        tx, tg = t
        terms = [None, None if tg is None else A.make(normalize_vjp, (x, tg), out.attrs)]
        if tx is not None:
            xhat = A.make(normalize, (x,), out.attrs)
            centered = A.sub(x, mean(A, x))
            r = A.div(A.const(1.0), A.apply(Op.SQRT, A.add(mean(A, A.mul(centered, centered)), A.const(out.attrs[0]))))
            u = A.make(normalize_vjp, (x, tx), out.attrs)
            inner = A.add(A.mul(u, mean(A, A.mul(g, xhat))), A.mul(xhat, mean(A, A.mul(g, u))))
            terms[0] = A.neg(A.mul(r, A.add(A.mul(mean(A, A.mul(xhat, tx)), out), inner)))
        return terms
    return jvp


def _normalization(normalize: str, normalize_vjp: str, mean) -> list[Rule]:
    """A normalization fused into one pass per group each way. Its Jacobian is symmetric, so its gradient
    and its tangent are one op."""
    return [_tensor(normalize, _same_shape, lambda A, args, out, g: [A.make(normalize_vjp, (args[0], g), out.attrs)],
                    lambda A, args, out, t: [A.make(normalize_vjp, (args[0], t[0]), out.attrs)]),
            _tensor(normalize_vjp, lambda args, attrs: args[1].shape,
                    jvp=_normalized_vjp_jvp(normalize, normalize_vjp, mean))]


def _sliced_shape(args, attrs):
    axis, start, stop = attrs
    shape = args[0].shape
    return shape[:axis] + (stop - start,) + shape[axis + 1:]


def _resized(shape: tuple, axis: int, size) -> tuple:
    return shape[:axis] + (size,) + shape[axis + 1:]


def _embedded_shape(args, attrs):
    axis, _, size = attrs
    shape = args[0].shape
    return shape[:axis] + (size,) + shape[axis + 1:]


def _concatenated_shape(args, attrs):
    (axis,) = attrs
    first = args[0].shape
    return first[:axis] + (sum(a.shape[axis] for a in args),) + first[axis + 1:]


def _concat_vjp(A, args, out, g):
    (axis,) = out.attrs
    parts, start = [], 0
    for a in args:
        parts.append(A.slice_axis(g, axis, start, start + a.shape[axis]))
        start += a.shape[axis]
    return parts


def _concat_jvp(A, args, out, t):
    """Per argument with a tangent, that tangent in zeros at the argument's place: together, the tangents
    joined."""
    (axis,) = out.attrs
    terms, start = [], 0
    for a, tangent in zip(args, t):
        terms.append(None if tangent is None else A.embed_axis(tangent, axis, start, out.shape[axis]))
        start += a.shape[axis]
    return terms


def _tensor(op: str, shape: Callable[[tuple, tuple], tuple], vjp=None, jvp=None) -> Rule:
    """A tensor op: its result's shape from (args, attrs), its VJP and its JVP."""
    return Rule(op, None, shape=shape, vjp=vjp, jvp=jvp)


def _same_shape(args, attrs):
    return args[0].shape


def _reduced(args, attrs):
    return shapes.reduce(args[0].shape, attrs[0])


def _scalar(args, attrs):
    return ()


_TENSOR_RULES = [
    _tensor(Op.MATMUL, lambda args, attrs: shapes.matmul(args[0].shape, args[1].shape), _matmul_vjp,
            _bilinear_jvp(lambda A, a, b: A.matmul(a, b))),
    # sum over a's batch axes of a[i].T @ g[i] (flat_matmul's gradient in its matrix): bilinear
    _tensor(Op.FLAT_TRANSPOSE_MATMUL, lambda args, attrs: args[0].shape[-1:] + args[1].shape[-1:],
            lambda A, args, out, g: [A.matmul(args[1], A.transpose(g)), A.matmul(args[0], g)],
            _bilinear_jvp(lambda A, a, g: A.flat_transpose_matmul(a, g))),
    _tensor(Op.AFFINE, lambda args, attrs: args[0].shape[:-1] + args[1].shape[-1:], _affine_vjp, _affine_jvp),
    _tensor(Op.CONV2D, _conv2d_shape, _conv2d_vjp, _same_op_jvp),
    _tensor(Op.CONV2D_BACKWARD_INPUT,
            lambda args, attrs: (args[0].shape[0], args[1].shape[1] * attrs[4], *attrs[0]), jvp=_same_op_jvp),
    _tensor(Op.CONV2D_BACKWARD_WEIGHT,
            lambda args, attrs: (args[1].shape[1], args[0].shape[1] // attrs[4], *attrs[0]), jvp=_same_op_jvp),
    # the max pool's gates: linear in the upstream gradient (tangent), routed by x
    _tensor(Op.MAX_POOL2D, _pooled_shape,
            lambda A, args, out, g: [A.make(Op.MAX_POOL2D_BACKWARD, (args[0], g), out.attrs)],
            lambda A, args, out, t: [A.make(Op.MAX_POOL2D_AT, (args[0], t[0]), out.attrs)]),
    _tensor(Op.MAX_POOL2D_BACKWARD, _same_shape, jvp=_routed_jvp(Op.MAX_POOL2D_BACKWARD)),
    _tensor(Op.MAX_POOL2D_AT, _pooled_shape, jvp=_routed_jvp(Op.MAX_POOL2D_AT)),
    _tensor(Op.AVG_POOL2D, _pooled_shape,
            lambda A, args, out, g: [A.make(Op.AVG_POOL2D_BACKWARD, (g,), (tuple(args[0].shape[2:]), *out.attrs))],
            _same_op_jvp),
    _tensor(Op.AVG_POOL2D_BACKWARD, lambda args, attrs: (*args[0].shape[:2], *attrs[0]), jvp=_same_op_jvp),
    _tensor(Op.OUTER, lambda args, attrs: args[0].shape + args[1].shape,
            lambda A, args, out, g: [A.matmul(g, args[1]), A.matmul(args[0], g)],
            _bilinear_jvp(lambda A, a, b: A.outer(a, b))),
    _tensor(Op.TRANSPOSE, lambda args, attrs: args[0].shape[::-1], lambda A, args, out, g: [A.transpose(g)],
            _linear_jvp(lambda A, t, out: A.transpose(t))),
    # axes permuted (NumPy's transpose(axes)): the gradient goes back through the inverse permutation
    _tensor(Op.PERMUTE, lambda args, attrs: tuple(args[0].shape[i] for i in attrs[0]),
            lambda A, args, out, g: [A.permute(g, shapes.inverse_permutation(out.attrs[0]))],
            _linear_jvp(lambda A, t, out: A.permute(t, out.attrs[0]))),
    # a range of one axis, x[..., start:stop] (a view): its gradient is the upstream one embedded in zeros
    _tensor(Op.SLICE_AXIS, _sliced_shape,
            lambda A, args, out, g: [A.embed_axis(g, out.attrs[0], out.attrs[1], args[0].shape[out.attrs[0]])],
            _linear_jvp(lambda A, t, out: A.slice_axis(t, *out.attrs))),
    # every step-th entry of an axis, x[::2]: its gradient is the upstream one spread back into zeros
    _tensor(Op.STRIDE_AXIS, lambda args, attrs: _resized(args[0].shape, attrs[0], attrs[3]),
            lambda A, args, out, g: [A.spread_axis(g, *out.attrs[:3], args[0].shape[out.attrs[0]])],
            _linear_jvp(lambda A, t, out: A.stride_axis(t, *out.attrs))),
    _tensor(Op.SPREAD_AXIS, lambda args, attrs: _resized(args[0].shape, attrs[0], attrs[3]),
            lambda A, args, out, g: [A.stride_axis(g, *out.attrs[:3], args[0].shape[out.attrs[0]])],
            _linear_jvp(lambda A, t, out: A.spread_axis(t, *out.attrs))),
    # one entry, x[i, j]: its gradient is the upstream number at that place in zeros
    _tensor(Op.ELEMENT, _scalar, lambda A, args, out, g: [A.at_index(g, out.attrs[0], args[0].shape)],
            _linear_jvp(lambda A, t, out: A.element(t, out.attrs[0]))),
    _tensor(Op.AT_INDEX, lambda args, attrs: attrs[1], lambda A, args, out, g: [A.element(g, out.attrs[0])],
            _linear_jvp(lambda A, t, out: A.at_index(t, *out.attrs))),
    _tensor(Op.EMBED_AXIS, _embedded_shape,
            lambda A, args, out, g: [A.slice_axis(g, out.attrs[0], out.attrs[1],
                                                  out.attrs[1] + args[0].shape[out.attrs[0]])],
            _linear_jvp(lambda A, t, out: A.embed_axis(t, *out.attrs))),
    # rows picked by integer ids (an embedding lookup): the gradient adds each upstream row at its id, so
    # repeated ids accumulate; the ids get none
    _tensor(Op.TAKE_ROWS, lambda args, attrs: args[1].shape + args[0].shape[1:],
            lambda A, args, out, g: [A.make(Op.ADD_ROWS, (args[1], g), (args[0].shape,)), None],
            lambda A, args, out, t: [None if t[0] is None else A.make(Op.TAKE_ROWS, (t[0], args[1])), None]),
    _tensor(Op.ADD_ROWS, lambda args, attrs: attrs[0],
            lambda A, args, out, g: [None, A.make(Op.TAKE_ROWS, (g, args[0]))],
            lambda A, args, out, t: [None, None if t[1] is None else A.make(Op.ADD_ROWS, (args[0], t[1]), out.attrs)]),
    # arrays joined along an axis: each one's gradient is its range of the upstream one
    _tensor(Op.CONCAT, _concatenated_shape, _concat_vjp, _concat_jvp),
    _tensor(Op.RESHAPE, lambda args, attrs: attrs[0], lambda A, args, out, g: [A.reshape(g, args[0].shape)],
            _linear_jvp(lambda A, t, out: A.reshape(t, out.shape))),
    _tensor(Op.SUM_CHANNELS, lambda args, attrs: args[0].shape[1:2],
            lambda A, args, out, g: [A.broadcast_to(A.reshape(g, g.shape + (1,) * (len(args[0].shape) - 2)),
                                                    args[0].shape)],
            _linear_jvp(lambda A, t, out: A.sum_channels(t))),
    _tensor(Op.SUM, _reduced, _sum_vjp, _linear_jvp(lambda A, t, out: A.make(Op.SUM, (t,), out.attrs))),
    # max reductions: the max gate routes the upstream gradient to the winner (the first one on ties)
    _tensor(Op.MAX_ALL, _scalar, lambda A, args, out, g: [A.make(Op.ROUTE_MAX_ALL, (args[0], g))], _max_jvp),
    _tensor(Op.ROUTE_MAX_ALL, _same_shape, jvp=_routed_jvp(Op.ROUTE_MAX_ALL)),
    _tensor(Op.AT_MAX_ALL, _scalar, jvp=_routed_jvp(Op.AT_MAX_ALL)),
    _tensor(Op.MAX_LAST, lambda args, attrs: args[0].shape[:-1], _max_vjp, _max_jvp),
    _tensor(Op.ROUTE_MAX_LAST, _same_shape, jvp=_routed_jvp(Op.ROUTE_MAX_LAST)),
    _tensor(Op.AT_MAX_LAST, lambda args, attrs: args[0].shape[:-1], jvp=_routed_jvp(Op.AT_MAX_LAST)),
    _tensor(Op.MAX_ALONG, _reduced, _max_vjp, _max_jvp),
    _tensor(Op.ROUTE_MAX, _same_shape, jvp=_routed_jvp(Op.ROUTE_MAX)),
    _tensor(Op.AT_MAX, _reduced, jvp=_routed_jvp(Op.AT_MAX)),
    _tensor(Op.FILL, lambda args, attrs: attrs[0], lambda A, args, out, g: [A.sum(g, None)],
            _linear_jvp(lambda A, t, out: A.fill(t, out.shape))),
    _tensor(Op.BROADCAST_TO, lambda args, attrs: attrs[0], lambda A, args, out, g: [A.sum_to(g, args[0].shape)],
            _linear_jvp(lambda A, t, out: A.broadcast_to(t, out.shape))),
    _tensor(Op.DIM, _scalar),  # a symbolic size, read off an input's shape
    # softmax cross-entropy, fused: a log-sum-exp-stable forward and (p * rowsum(Y) - Y) / N backward, right
    # for any targets (one-hot rows sum to 1, soft labels from rounding or weighting need not)
    _tensor(Op.SOFTMAX_CE, _scalar, _softmax_ce_vjp, _scalar_loss_jvp(_softmax_ce_vjp)),
    # the same with integer labels: (p - one_hot(labels)) / N, and no gradient for the labels
    _tensor(Op.CROSS_ENTROPY, _scalar, _cross_entropy_vjp, _scalar_loss_jvp(_cross_entropy_vjp)),
    _tensor(Op.ONE_HOT, lambda args, attrs: args[0].shape + attrs,
            jvp=lambda A, args, out, t: [None]),  # of integer labels: no tangent
    # the Jacobian of a softmax is symmetric: its gradient is its tangent's one pass over the rows, along g
    _tensor(Op.SOFTMAX, _same_shape, lambda A, args, out, g: [A.make(Op.SOFTMAX_JVP, (out, g))], _softmax_jvp),
    _tensor(Op.SOFTMAX_JVP, _same_shape, jvp=_softmax_jvp_jvp),
    _tensor(Op.LOG_SOFTMAX, _same_shape,
            lambda A, args, out, g: [A.sub(g, A.mul(_softmax_rows(A, args[0]), A.keep_sum_rows(g)))],
            _log_softmax_jvp),
    _tensor(Op.LOGSUMEXP, lambda args, attrs: args[0].shape[:-1] + (1,),
            lambda A, args, out, g: [A.mul(g, _softmax_rows(A, args[0]))], _logsumexp_jvp),
    # layer normalization without its scale and shift, per row; batch normalization's, per channel
    *_normalization(Op.NORMALIZE, Op.NORMALIZE_VJP, _row_mean),
    *_normalization(Op.NORMALIZE_CHANNELS, Op.NORMALIZE_CHANNELS_VJP, _channel_mean),
    # loops: the reverse pass differentiates a scan as a whole (bpgen/transforms/scan.py), from its parts' adjoints
    _tensor(Op.SCAN, _scalar, jvp=_no_forward_mode),
    _tensor(Op.SCAN_BACKWARD, _scalar, jvp=_no_forward_mode),
    _tensor(Op.PART, part_shape, jvp=_no_forward_mode),
]
_RULES += _TENSOR_RULES

RULES: dict[str, Rule] = {rule.op: rule for rule in _RULES}
assert len(RULES) == len(_RULES), "one rule per op"

# Rules made on demand for SymPy functions outside the table (op "call",
# attrs (function class,)): partials from `sympy.diff`; each target prints them with SymPy's printers.
GENERIC_RULES: dict[type, Rule] = {}


def rule_for(op: str, attrs: tuple = ()) -> Rule:
    return GENERIC_RULES[attrs[0]] if op == Op.CALL else RULES[op]


def rule_of(node: Node) -> Rule:
    return rule_for(node.op, node.attrs)



# SymPy function class -> op, for lowering.
OP_OF_SYMPY_FUNCTION: dict[type, str] = {
    rule.sympy_function: rule.op for rule in _RULES if rule.sympy_function is not None
}


def sympy_builder(rule: Rule) -> Callable[..., sympy.Expr] | None:
    """How to write this op in SymPy, for checking the rule against `sympy.diff`."""
    return rule.sympy_expr or rule.sympy_function
