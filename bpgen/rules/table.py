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

import ast
import functools
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sympy

from ..ir import loops as scan
from ..ir import shapes
from ..ir.graph import Node
from ..ir.ops import Op
from ..targets.python.printer import (
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
    LoopCall,
    MatrixProduct,
    Method,
    Nested,
    Part,
    Power,
    Prefix,
    Reduction,
    Reshape,
    ShapedCall,
    Syntax,
)
from . import sympy_functions

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
    # tensor ops: (A, args, out, tangents) -> per-arg terms of the output's tangent (forward mode), each linear
    # in that argument's tangent (None where the argument has none)
    jvp: Callable[..., Sequence[Node | None]] | None = None

    @property
    def prints_on_arrays(self) -> bool:
        """Whether the op prints as code that works on NumPy arrays: a tensor op, an array form, or an operator
        that is elementwise on arrays as it is on floats (`and`, `or` and calls such as `math.exp` are not)."""
        if self.shape is not None or self.array_syntax is not None:
            return True
        return isinstance(self.syntax, (Infix, Prefix, Power, Compare)) and self.syntax.prec not in (AND, OR, NOT)


# Runtime helpers: the functions of bpgen/runtime.py that generated code calls, emitted into each module that
# uses them, with the helpers they call in turn. Their names are read off the file; the module itself (and
# NumPy with it) is imported on first use, a fold or an emitted module, not with bpgen.
RUNTIME_PATH = Path(__file__).resolve().parent.parent / "runtime.py"
RUNTIME_NAMES = frozenset(node.name for node in ast.parse(RUNTIME_PATH.read_text(encoding="utf-8")).body
                          if isinstance(node, ast.FunctionDef))


# helpers Numba inlines into their callers (inline='always'): the elementwise functions that loops over points
# (value_and_grad_batch) or over array elements call, so that LLVM vectorizes those loops
INLINED_HELPERS = frozenset({"exp_scalar", "sigmoid", "softplus"})


@functools.cache
def runtime_function(name: str) -> Callable:
    from .. import runtime

    return getattr(runtime, name)


def helper_source(name: str) -> str:
    """The source of a runtime helper, as a generated module holds it (without the Numba decorator)."""
    return inspect.getsource(runtime_function(name))


@functools.cache
def _callees(name: str) -> tuple[str, ...]:
    """The runtime helpers a helper calls directly, read off its code."""
    return tuple(sorted(n for n in runtime_function(name).__code__.co_names if n in RUNTIME_NAMES))


def with_needed_helpers(names) -> list[str]:
    """The helpers `names` together with every helper they call, directly or in turn: each after the ones it
    calls, and otherwise in alphabetical order, so that a module lists them in one stable order."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name not in ordered:
            for callee in _callees(name):
                visit(callee)
            ordered.append(name)

    for name in sorted(set(names)):
        visit(name)
    return ordered


def _helper_function(name: str) -> Callable[..., float]:
    """A runtime helper as a number-valued function, for constant folding with the very formula the
    generated code uses."""

    def numeric(*values: float) -> float:
        return float(runtime_function(name)(*values))

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


def _cmp(op, symbol, fn, sym):
    return Rule(op, Compare(symbol), None, numeric=fn, sympy_expr=sym, domain=((-2, 2), (-2, 2)))


_RULES = [
    # arithmetic: add distributes, mul swaps
    Rule(Op.ADD, Infix("+", ADD), lambda A, args, out: [A.const(1.0)] * len(args),
         numeric=lambda *v: math.fsum(v), sympy_expr=lambda a, b, c: a + b + c,
         domain=((-2, 2),) * 3),
    Rule(Op.SUB, Infix("-", ADD), lambda A, args, out: [A.const(1.0), A.const(-1.0)],
         numeric=lambda a, b: a - b, sympy_expr=lambda a, b: a - b, domain=((-2, 2),) * 2),
    Rule(Op.NEG, Prefix("-"), lambda A, args, out: [A.const(-1.0)],
         numeric=lambda a: -a, sympy_expr=lambda a: -a),
    Rule(Op.MUL, Infix("*", MUL), lambda A, args, out: [_others_product(A, args, i) for i in range(len(args))],
         numeric=math.prod, sympy_expr=lambda a, b, c: a * b * c, domain=((-2, 2),) * 3),
    Rule(Op.DIV, Infix("/", MUL),
         lambda A, args, out: [A.div(A.const(1.0), args[1]), _quotient_by_divisor(A, args, out)],
         numeric=lambda a, b: a / b, sympy_expr=lambda a, b: a / b, domain=((-2, 2), (0.5, 3))),
    Rule(Op.POW, Power(), _pow_partials, numeric=lambda a, b: a**b,
         sympy_expr=lambda a, b: a**b, domain=((0.3, 3), (-2, 2))),
    Rule(Op.SQRT, Call("math.sqrt"), lambda A, args, out: [A.div(A.const(0.5), out)],
         numeric=math.sqrt, sympy_expr=sympy.sqrt, domain=((0.1, 4),),
         array_syntax=Call("np.sqrt")),
    # elementary functions
    Rule(Op.EXP, Call("math.exp"), lambda A, args, out: [out],
         numeric=math.exp, sympy_function=sympy.exp,
         array_syntax=Call("exp_array"), array_helper="exp_array"),
    Rule(Op.LOG, Call("math.log"), lambda A, args, out: [A.div(A.const(1.0), args[0])],
         numeric=math.log, sympy_function=sympy.log, domain=((0.1, 4),),
         array_syntax=Call("np.log")),
    Rule(Op.SIN, Call("math.sin"), lambda A, args, out: [A.apply(Op.COS, args[0])],
         numeric=math.sin, sympy_function=sympy.sin,
         array_syntax=Call("np.sin")),
    Rule(Op.COS, Call("math.cos"), lambda A, args, out: [A.neg(A.apply(Op.SIN, args[0]))],
         numeric=math.cos, sympy_function=sympy.cos,
         array_syntax=Call("np.cos")),
    Rule(Op.TAN, Call("math.tan"), lambda A, args, out: [A.add(A.const(1.0), A.pow(out, A.const(2)))],
         numeric=math.tan, sympy_function=sympy.tan, domain=((-1.2, 1.2),),
         array_syntax=Call("np.tan")),
    Rule(Op.ASIN, Call("math.asin"),
         lambda A, args, out: [A.div(A.const(1.0), A.apply(Op.SQRT, _one_minus_square(A, args[0])))],
         numeric=math.asin, sympy_function=sympy.asin, domain=((-0.9, 0.9),),
         array_syntax=Call("np.arcsin")),
    Rule(Op.ACOS, Call("math.acos"),
         lambda A, args, out: [A.div(A.const(-1.0), A.apply(Op.SQRT, _one_minus_square(A, args[0])))],
         numeric=math.acos, sympy_function=sympy.acos, domain=((-0.9, 0.9),),
         array_syntax=Call("np.arccos")),
    Rule(Op.ATAN, Call("math.atan"),
         lambda A, args, out: [A.div(A.const(1.0), A.add(A.const(1.0), A.pow(args[0], A.const(2))))],
         numeric=math.atan, sympy_function=sympy.atan,
         array_syntax=Call("np.arctan")),
    Rule(Op.ATAN2, Call("math.atan2"), _atan2_partials, numeric=math.atan2,
         sympy_function=sympy.atan2, domain=((-2, 2), (0.2, 2)),
         array_syntax=Call("np.arctan2")),
    Rule(Op.SINH, Call("math.sinh"), lambda A, args, out: [A.apply(Op.COSH, args[0])],
         numeric=math.sinh, sympy_function=sympy.sinh,
         array_syntax=Call("np.sinh")),
    Rule(Op.COSH, Call("math.cosh"), lambda A, args, out: [A.apply(Op.SINH, args[0])],
         numeric=math.cosh, sympy_function=sympy.cosh,
         array_syntax=Call("np.cosh")),
    Rule(Op.TANH, Call("math.tanh"), lambda A, args, out: [_one_minus_square(A, out)],
         numeric=math.tanh, sympy_function=sympy.tanh,
         array_syntax=Call("np.tanh")),
    Rule(Op.ERF, Call("math.erf"),
         lambda A, args, out: [A.mul(A.const(2.0 / math.sqrt(math.pi)),
                                     A.apply(Op.EXP, A.neg(A.pow(args[0], A.const(2)))))],
         numeric=math.erf, sympy_function=sympy.erf, array_syntax=Call("erf_array"), array_helper="erf_array"),
    # the gamma family
    Rule(Op.LGAMMA, Call("math.lgamma"), lambda A, args, out: [A.apply(Op.DIGAMMA, args[0])],
         numeric=math.lgamma, sympy_function=sympy.loggamma, domain=((0.2, 6.0),),
         array_syntax=Call("lgamma_array"), array_helper="lgamma_array"),
    Rule(Op.GAMMA, Call("math.gamma"), lambda A, args, out: [A.mul(out, A.apply(Op.DIGAMMA, args[0]))],
         numeric=math.gamma, sympy_function=sympy.gamma, domain=((0.2, 5.0),),
         array_syntax=Call("gamma_array"), array_helper="gamma_array"),
    Rule(Op.DIGAMMA, Call("digamma"), lambda A, args, out: [polygamma_of(A, 1, args[0])],
         numeric=_helper_function("digamma"), sympy_function=sympy.digamma, helper="digamma", domain=((0.2, 6.0),),
         array_syntax=Call("digamma_array"), array_helper="digamma_array"),
    Rule(Op.POLYGAMMA, Call("polygamma"), _polygamma_partials, numeric=_helper_function("polygamma"),
         sympy_function=sympy.polygamma, sympy_expr=lambda x: sympy.polygamma(2, x), helper="polygamma",
         domain=((0.2, 6.0),), array_syntax=Call("polygamma_array"), array_helper="polygamma_array"),
    Rule(Op.BETA, Call("beta_function"), _beta_partials, numeric=_helper_function("beta_function"),
         sympy_function=sympy.beta, helper="beta_function", domain=((0.3, 4.0), (0.3, 4.0))),
    # piecewise-linear gates: max routes, |x|'(0) = 0, relu'(0) = 0
    Rule(Op.ABS, Call("abs"),
         lambda A, args, out: [A.select(A.apply(Op.GT, args[0], A.const(0.0)), A.const(1.0),
                                        A.select(A.apply(Op.LT, args[0], A.const(0.0)), A.const(-1.0), A.const(0.0)))],
         numeric=abs, sympy_function=sympy.Abs,
         array_syntax=Call("np.abs")),
    Rule(Op.MAX, Call("max"), lambda A, args, out: _route(A, args, out, Op.GT, Op.GE),
         numeric=max, sympy_function=sympy.Max, domain=((-2, 2),) * 3, array_syntax=Nested("np.maximum")),
    Rule(Op.MIN, Call("min"), lambda A, args, out: _route(A, args, out, Op.LT, Op.LE),
         numeric=min, sympy_function=sympy.Min, domain=((-2, 2),) * 3, array_syntax=Nested("np.minimum")),
    Rule(Op.RELU, CallTemplate("max({0}, 0.0)"),
         lambda A, args, out: [A.select(A.apply(Op.GT, args[0], A.const(0.0)), A.const(1.0), A.const(0.0))],
         numeric=lambda a: max(a, 0.0), sympy_function=sympy_functions.relu,
         array_syntax=CallTemplate("np.maximum({0}, 0.0)")),
    # the logistic family, in numerically stable forms
    Rule(Op.SIGMOID, Call("sigmoid"), lambda A, args, out: [A.mul(A.sub(A.const(1.0), out), out)],
         numeric=_helper_function("sigmoid"), sympy_function=sympy_functions.sigmoid, helper="sigmoid",
         array_syntax=Call("sigmoid_array"), array_helper="sigmoid_array"),
    # softplus' = sigmoid = exp(x - softplus(x)): from the output, one exp, and the exponent is never positive
    Rule(Op.SOFTPLUS, Call("softplus"), lambda A, args, out: [A.apply(Op.EXP, A.sub(args[0], out))],
         numeric=_helper_function("softplus"), sympy_function=sympy_functions.softplus, helper="softplus",
         array_syntax=Call("softplus_array"), array_helper="softplus_array"),
    # Piecewise lowers to select(cond, a, b): the gradient of the branch taken
    Rule(Op.SELECT, Conditional(),
         lambda A, args, out: [None, A.select(args[0], A.const(1.0), A.const(0.0)),
                               A.select(args[0], A.const(0.0), A.const(1.0))],
         numeric=lambda c, a, b: a if c else b,
         sympy_expr=lambda s, a, b: sympy.Piecewise((a, s > 0), (b, True)),
         domain=((-1, 1), (-2, 2), (-2, 2)),
         array_syntax=ArraySelect()),
    # conditions: not differentiable, their gradient is zero
    _cmp(Op.LT, "<", lambda a, b: float(a < b), lambda a, b: a < b),
    _cmp(Op.LE, "<=", lambda a, b: float(a <= b), lambda a, b: a <= b),
    _cmp(Op.GT, ">", lambda a, b: float(a > b), lambda a, b: a > b),
    _cmp(Op.GE, ">=", lambda a, b: float(a >= b), lambda a, b: a >= b),
    _cmp(Op.EQ, "==", lambda a, b: float(a == b), sympy.Eq),
    _cmp(Op.NE, "!=", lambda a, b: float(a != b), sympy.Ne),
    Rule(Op.AND, Infix("and", AND), None, numeric=lambda *v: float(all(v)), array_syntax=Nested("np.logical_and")),
    Rule(Op.OR, Infix("or", OR), None, numeric=lambda *v: float(any(v)), array_syntax=Nested("np.logical_or")),
    Rule(Op.NOT, Prefix("not ", NOT), None, numeric=lambda a: float(not a),
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
                A.make(Op.TRANSPOSE_MATMUL, (a, g)) if _large_and_tall(b.shape) else A.matmul(A.transpose(a), g)]
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


# ops whose results may be strided views of other arrays (all others make new C-order arrays)
STRIDED_OPS = frozenset({Op.INPUT, Op.ADJ, Op.TRANSPOSE, Op.BROADCAST_TO})

_TENSOR_RULES = [
    Rule(Op.MATMUL, MatrixProduct(_matmul_helper), None,
         shape=lambda args, attrs: shapes.matmul(args[0].shape, args[1].shape), vjp=_matmul_vjp,
         helper=_matmul_helper, jvp=_bilinear_jvp(lambda A, a, b: A.matmul(a, b))),
    Rule(Op.TRANSPOSE_MATMUL, Call("transpose_matmul"), None,
         shape=lambda args, attrs: (args[0].shape[1], args[1].shape[1]), helper="transpose_matmul",
         jvp=_bilinear_jvp(lambda A, a, g: A.make(Op.TRANSPOSE_MATMUL, (a, g)))),
    Rule(Op.OUTER, Call("np.outer"), None, shape=lambda args, attrs: args[0].shape + args[1].shape,
         vjp=lambda A, args, out, g: [A.matmul(g, args[1]), A.matmul(args[0], g)],
         jvp=_bilinear_jvp(lambda A, a, b: A.outer(a, b))),
    Rule(Op.TRANSPOSE, Method(".T"), None, shape=lambda args, attrs: args[0].shape[::-1],
         vjp=lambda A, args, out, g: [A.transpose(g)], jvp=_linear_jvp(lambda A, t, out: A.transpose(t))),
    Rule(Op.RESHAPE, Reshape(STRIDED_OPS), None, shape=lambda args, attrs: attrs[0],
         vjp=lambda A, args, out, g: [A.reshape(g, args[0].shape)],
         jvp=_linear_jvp(lambda A, t, out: A.reshape(t, out.shape))),
    Rule(Op.SUM, Reduction("sum", _sum_helper), None, shape=lambda args, attrs: shapes.reduce(args[0].shape, attrs[0]),
         vjp=_sum_vjp, helper=_sum_helper, jvp=_linear_jvp(lambda A, t, out: A.make(Op.SUM, (t,), out.attrs))),
    # max reductions: the max gate routes the upstream gradient to the winner (the first one on ties)
    Rule(Op.MAX_ALL, Method(".max()"), None, shape=lambda args, attrs: (),
         vjp=lambda A, args, out, g: [A.make(Op.ROUTE_MAX_ALL, (args[0], g))], jvp=_max_jvp),
    Rule(Op.ROUTE_MAX_ALL, Call("route_max_all"), None, shape=lambda args, attrs: args[0].shape,
         helper="route_max_all", jvp=_routed_jvp(Op.ROUTE_MAX_ALL)),
    Rule(Op.AT_MAX_ALL, Call("at_max_all"), None, shape=lambda args, attrs: (), helper="at_max_all",
         jvp=_routed_jvp(Op.AT_MAX_ALL)),
    Rule(Op.MAX_LAST, Call("max_last"), None, shape=lambda args, attrs: args[0].shape[:-1], helper="max_last",
         vjp=_max_vjp, jvp=_max_jvp),
    Rule(Op.ROUTE_MAX_LAST, Call("route_max_last"), None, shape=lambda args, attrs: args[0].shape,
         helper="route_max_last", jvp=_routed_jvp(Op.ROUTE_MAX_LAST)),
    Rule(Op.AT_MAX_LAST, Call("at_max_last"), None, shape=lambda args, attrs: args[0].shape[:-1],
         helper="at_max_last", jvp=_routed_jvp(Op.AT_MAX_LAST)),
    Rule(Op.MAX_ALONG, AttrCall("max_along"), None, shape=lambda args, attrs: shapes.reduce(args[0].shape, attrs[0]),
         helper="max_along", vjp=_max_vjp, jvp=_max_jvp),
    Rule(Op.ROUTE_MAX, AttrCall("route_max"), None, shape=lambda args, attrs: args[0].shape, helper="route_max",
         jvp=_routed_jvp(Op.ROUTE_MAX)),
    Rule(Op.AT_MAX, AttrCall("at_max"), None, shape=lambda args, attrs: shapes.reduce(args[0].shape, attrs[0]),
         helper="at_max", jvp=_routed_jvp(Op.AT_MAX)),
    Rule(Op.FILL, ShapedCall("np.full"), None, shape=lambda args, attrs: attrs[0],
         vjp=lambda A, args, out, g: [A.sum(g, None)], jvp=_linear_jvp(lambda A, t, out: A.fill(t, out.shape))),
    Rule(Op.BROADCAST_TO, ShapedCall("np.broadcast_to", shape_first=False), None, shape=lambda args, attrs: attrs[0],
         vjp=lambda A, args, out, g: [A.sum_to(g, args[0].shape)],
         jvp=_linear_jvp(lambda A, t, out: A.broadcast_to(t, out.shape))),
    Rule(Op.DIM, Call("len"), None, shape=lambda args, attrs: ()),  # always named: `N = X.shape[0]`
    # softmax cross-entropy, fused: a log-sum-exp-stable forward and (p * rowsum(Y) - Y) / N backward, right
    # for any targets (one-hot rows sum to 1, soft labels from rounding or weighting need not)
    Rule(Op.SOFTMAX_CE, Call("softmax_cross_entropy"), None, shape=lambda args, attrs: (),
         helper="softmax_cross_entropy", vjp=_softmax_ce_vjp, jvp=_scalar_loss_jvp(_softmax_ce_vjp)),
    # the same with integer labels: (p - one_hot(labels)) / N, and no gradient for the labels
    Rule(Op.CROSS_ENTROPY, Call("cross_entropy"), None, shape=lambda args, attrs: (), helper="cross_entropy",
         vjp=_cross_entropy_vjp, jvp=_scalar_loss_jvp(_cross_entropy_vjp)),
    Rule(Op.ONE_HOT, AttrCall("one_hot"), None, shape=lambda args, attrs: args[0].shape + attrs, helper="one_hot",
         jvp=lambda A, args, out, t: [None]),  # of integer labels: no tangent
    Rule(Op.SOFTMAX, Call("softmax"), None, shape=lambda args, attrs: args[0].shape, helper="softmax",
         vjp=lambda A, args, out, g: [A.mul(out, A.sub(g, A.keep_sum_rows(A.mul(g, out))))], jvp=_softmax_jvp),
    Rule(Op.SOFTMAX_JVP, Call("softmax_jvp"), None, shape=lambda args, attrs: args[0].shape, helper="softmax_jvp",
         jvp=_softmax_jvp_jvp),
    Rule(Op.LOG_SOFTMAX, Call("log_softmax"), None, shape=lambda args, attrs: args[0].shape, helper="log_softmax",
         vjp=lambda A, args, out, g: [A.sub(g, A.mul(_softmax_rows(A, args[0]), A.keep_sum_rows(g)))],
         jvp=_log_softmax_jvp),
    Rule(Op.LOGSUMEXP, Call("logsumexp_rows"), None, shape=lambda args, attrs: args[0].shape[:-1] + (1,),
         helper="logsumexp_rows",
         vjp=lambda A, args, out, g: [A.mul(g, _softmax_rows(A, args[0]))], jvp=_logsumexp_jvp),
    # loops: the reverse pass differentiates a scan as a whole (bpgen/ir/loops.py), from its parts' adjoints
    Rule(Op.SCAN, LoopCall("_scan"), None, shape=lambda args, attrs: (), jvp=scan.no_forward_mode),
    Rule(Op.SCAN_BACKWARD, LoopCall("_scan_backward"), None, shape=lambda args, attrs: (),
         jvp=scan.no_forward_mode),
    Rule(Op.PART, Part(), None, shape=scan.part_shape, jvp=scan.no_forward_mode),
]
_RULES += _TENSOR_RULES

RULES: dict[str, Rule] = {rule.op: rule for rule in _RULES}
assert len(RULES) == len(_RULES), "one rule per op"

# Rules made on demand for SymPy functions outside the table (op "call",
# attrs (function class,)): forward printed by SymPy, partials from `sympy.diff`.
GENERIC_RULES: dict[type, Rule] = {}


def rule_for(op: str, attrs: tuple = ()) -> Rule:
    return GENERIC_RULES[attrs[0]] if op == Op.CALL else RULES[op]


def rule_of(node: Node) -> Rule:
    return rule_for(node.op, node.attrs)


def syntax_of(node: Node) -> Syntax:
    """How a node prints: its rule's array form on arrays, when it has one."""
    rule = rule_of(node)
    return rule.array_syntax if node.is_tensor and rule.array_syntax is not None else rule.syntax

# SymPy function class -> op, for lowering.
OP_OF_SYMPY_FUNCTION: dict[type, str] = {
    rule.sympy_function: rule.op for rule in _RULES if rule.sympy_function is not None
}


def sympy_builder(rule: Rule) -> Callable[..., sympy.Expr] | None:
    """How to write this op in SymPy, for checking the rule against `sympy.diff`."""
    return rule.sympy_expr or rule.sympy_function
