"""How ops print in Python: the `Syntax` forms (infix, call, method, ...) with Python's precedence, and the
table every Python target starts from (`BASE`), op -> how it prints on numbers and on arrays, and the runtime
helper it calls, if any. A target copies the table and overrides only what differs (tinygrad's renderers do the
same).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...ir.graph import Node
from ...ir.ops import Op

# Python's precedence levels, lowest first.
COND, OR, AND, NOT, CMP, ADD, MUL, UNARY, POW, ATOM = range(10)


class Syntax:
    """How one op prints, given its arguments' printer."""

    prec: int = ATOM

    def render(self, node: Node, arg: Callable[[Node, int], str]) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Infix(Syntax):
    """`a + b + c`: left-associative, any number of operands."""

    symbol: str
    prec: int

    def render(self, node, arg):
        first, *rest = node.args
        parts = [arg(first, self.prec)] + [arg(a, self.prec + 1) for a in rest]
        return f" {self.symbol} ".join(parts)


@dataclass(frozen=True)
class Compare(Syntax):
    """`a < b`: comparisons do not chain, so both sides bind tighter."""

    symbol: str
    prec: int = CMP

    def render(self, node, arg):
        a, b = node.args
        return f"{arg(a, CMP + 1)} {self.symbol} {arg(b, CMP + 1)}"


@dataclass(frozen=True)
class Prefix(Syntax):
    symbol: str
    prec: int = UNARY

    def render(self, node, arg):
        (a,) = node.args
        return f"{self.symbol}{arg(a, self.prec + 1)}"


@dataclass(frozen=True)
class Power(Syntax):
    prec: int = POW

    def render(self, node, arg):
        base, exponent = node.args
        if exponent.is_const and exponent.value.is_integer() and abs(exponent.value) < 2**31:
            # an integer exponent stays an integer: Numba turns x**2 into x*x
            exp_text = str(int(exponent.value))
        else:
            exp_text = arg(exponent, UNARY)
        base_text = arg(base, ATOM)
        simple = base_text.isidentifier() and (exp_text.lstrip("-").isalnum())
        return f"{base_text}**{exp_text}" if simple else f"{base_text} ** {exp_text}"


@dataclass(frozen=True)
class Call(Syntax):
    """`math.exp(x)`, `max(x, 0.0)`."""

    function: str

    def render(self, node, arg):
        return f"{self.function}({', '.join(arg(a, COND) for a in node.args)})"


@dataclass(frozen=True)
class LoopCall(Syntax):
    """`rnn_step_scan(h0, X, Wxh)`: a call of a loop the module defines, named after the user's step
    (the node's first attribute, a ScanBody) and `suffix`."""

    suffix: str

    def render(self, node, arg):
        return f"{node.attrs[0].function}{self.suffix}({', '.join(arg(a, COND) for a in node.args)})"


@dataclass(frozen=True)
class Part(Syntax):
    """`scan1[0]`: one result of a tuple-valued node."""

    def render(self, node, arg):
        return f"{arg(node.args[0], ATOM)}[{node.attrs[0]}]"


@dataclass(frozen=True)
class Nested(Syntax):
    """A two-argument NumPy function over any number of arguments: `np.maximum(np.maximum(a, b), c)`."""

    function: str

    def render(self, node, arg):
        text = arg(node.args[0], COND)
        for a in node.args[1:]:
            text = f"{self.function}({text}, {arg(a, COND)})"
        return text


@dataclass(frozen=True)
class CallTemplate(Syntax):
    """A call whose text is built by a format string over the arguments, e.g. a SymPy-printed function."""

    template: str

    def render(self, node, arg):
        return self.template.format(*(arg(a, COND) for a in node.args))


@dataclass(frozen=True)
class Method(Syntax):
    """`x.T`, `x.max()`: a suffix on an operand that binds tightest."""

    suffix: str

    def render(self, node, arg):
        (a,) = node.args
        return arg(a, ATOM) + self.suffix


@dataclass(frozen=True)
class Reshape(Syntax):
    """`x.reshape((N, 3))`; an array that may not be contiguous (an input, an adjoint, a transpose) is made so
    first, since Numba reshapes contiguous arrays only."""

    strided_ops: frozenset[str]  # ops whose results may be strided views; all others make new C-order arrays

    def render(self, node, arg):
        (a,) = node.args
        shape = arg.shape_text(node.attrs[0])
        if a.op in self.strided_ops:
            return f"np.ascontiguousarray({arg(a, COND)}).reshape({shape})"
        return f"{arg(a, ATOM)}.reshape({shape})"


@dataclass(frozen=True)
class Permute(Syntax):
    """`np.transpose(x, (0, 2, 1))`: the axes of x in a new order (a view)."""

    def render(self, node, arg):
        (a,) = node.args
        return f"np.transpose({arg(a, COND)}, {node.attrs[0]!r})"


@dataclass(frozen=True)
class SliceAxis(Syntax):
    """`x[:, 2:5]`: a range of one axis (a view)."""

    def render(self, node, arg):
        (a,) = node.args
        axis, start, stop = node.attrs
        return f"{arg(a, ATOM)}[{':, ' * axis}{start}:{stop}]"


@dataclass(frozen=True)
class StrideAxis(Syntax):
    """`x[:, 1::2]` or `x[::-1]`: every step-th entry of one axis (a view)."""

    def render(self, node, arg):
        (a,) = node.args
        axis, start, step, count = node.attrs
        stop = start + step * count
        end = "" if stop < 0 or stop > a.shape[axis] else str(stop)  # past either end: to the end
        return f"{arg(a, ATOM)}[{':, ' * axis}{start}:{end}:{step}]"


@dataclass(frozen=True)
class Element(Syntax):
    """`x[1, 2]`: one entry, a number."""

    def render(self, node, arg):
        (a,) = node.args
        return f"{arg(a, ATOM)}[{', '.join(str(i) for i in node.attrs[0])}]"


@dataclass(frozen=True)
class AtIndex(Syntax):
    """`at_index((1, 2), (3, 4), g)`: zeros holding the number g at one index (an entry's gradient)."""

    def render(self, node, arg):
        (g,) = node.args
        index, shape = node.attrs
        index_text = "(" + ", ".join(str(i) for i in index) + ("," if len(index) == 1 else "") + ")"
        return f"at_index({index_text}, {arg.shape_text(shape)}, {arg(g, COND)})"


@dataclass(frozen=True)
class AddRows(Syntax):
    """`add_rows(ids, g, (V, d))`: zeros of the table's shape, each row of g added at its id (an embedding's
    gradient)."""

    def render(self, node, arg):
        ids, g = node.args
        return f"add_rows({arg(ids, COND)}, {arg(g, COND)}, {arg.shape_text(node.attrs[0])})"


@dataclass(frozen=True)
class EmbedAxis(Syntax):
    """`np.concatenate((np.zeros((N, 2)), g, np.zeros((N, 3))), axis=1)`: `g` in zeros along one axis (a slice's
    gradient)."""

    def render(self, node, arg):
        (g,) = node.args
        axis, start, size = node.attrs
        shape = g.shape
        parts = [arg(g, COND)]
        if start:
            parts.insert(0, f"np.zeros({arg.shape_text(shape[:axis] + (start,) + shape[axis + 1:])})")
        after = size - start - shape[axis]
        if after:
            parts.append(f"np.zeros({arg.shape_text(shape[:axis] + (after,) + shape[axis + 1:])})")
        return f"np.concatenate(({', '.join(parts)}), axis={axis})"


@dataclass(frozen=True)
class Concatenate(Syntax):
    """`np.concatenate((a, b), axis=1)`."""

    def render(self, node, arg):
        return f"np.concatenate(({', '.join(arg(a, COND) for a in node.args)}), axis={node.attrs[0]})"


@dataclass(frozen=True)
class AttrCall(Syntax):
    """`max_along(x, 1)`, `one_hot(labels, C)`, `normalize_last(x, 1e-05)`: a helper call given the op's
    attributes (an axis, a size, a number) after its arguments."""

    function: str

    def render(self, node, arg):
        parts = [arg(a, COND) for a in node.args] + [
            repr(v) if isinstance(v, float) else arg.shape_text(v) if isinstance(v, tuple) else arg.dim_text(v)
            for v in node.attrs]
        return f"{self.function}({', '.join(parts)})"


@dataclass(frozen=True)
class KeywordCall(Syntax):
    """`conv2d(X, W, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1)`: a helper call given the op's
    attributes, the last ones by the names in `keywords` (the helper's own parameter names)."""

    function: str
    keywords: tuple[str, ...]

    def render(self, node, arg):
        def text(v):
            return arg.shape_text(v) if isinstance(v, tuple) else arg.dim_text(v)

        named = len(node.attrs) - len(self.keywords)
        parts = [arg(a, COND) for a in node.args] + [text(v) for v in node.attrs[:named]] + [
            f"{k}={text(v)}" for k, v in zip(self.keywords, node.attrs[named:])]
        return f"{self.function}({', '.join(parts)})"


@dataclass(frozen=True)
class ShapedCall(Syntax):
    """`np.full((N, 3), x)`, `np.broadcast_to(x, (N, 3))`: a call that takes the op's target shape (attrs[0])."""

    function: str
    shape_first: bool = True

    def render(self, node, arg):
        parts = [arg(a, COND) for a in node.args]
        shape = arg.shape_text(node.attrs[0])
        parts = [shape, *parts] if self.shape_first else [*parts, shape]
        return f"{self.function}({', '.join(parts)})"


@dataclass(frozen=True)
class Reduction(Syntax):
    """`x.sum()` or `x.sum(axis=1)` for an op whose attrs[0] is the axis (None for all), or a helper call
    `sum_axis0(x)` where `helper_of(node)` names one."""

    method: str
    helper_of: Callable[[Node], str | None] | None = None

    def render(self, node, arg):
        (a,) = node.args
        helper = self.helper_of(node) if self.helper_of else None
        if helper:
            return f"{helper}({arg(a, COND)})"
        axis = node.attrs[0]
        inside = "" if axis is None else f"axis={axis}"
        return f"{arg(a, ATOM)}.{self.method}({inside})"


@dataclass(frozen=True)
class MatrixProduct(Syntax):
    """`a @ b`, or a helper call where `helper_of(node)` chooses one: (helper name, its operands), such as
    `transpose_matmul(x, g)` for `x.T @ g`."""

    helper_of: Callable[[Node], tuple[str, tuple[Node, ...]] | None] | None = None
    prec: int = MUL  # the product's; a helper call binds tighter, so this only ever adds parentheses

    def render(self, node, arg):
        chosen = self.helper_of(node) if self.helper_of else None
        if chosen:
            helper, operands = chosen
            return f"{helper}({', '.join(arg(o, COND) for o in operands)})"
        a, b = node.args
        return f"{arg(a, MUL)} @ {arg(b, MUL + 1)}"


@dataclass(frozen=True)
class ArraySelect(Syntax):
    """select(cond, a, b) on arrays: `np.where(cond, a, b)`, or `a * (cond)` when b is 0.

    The product is the staged form of a gate (`dz = dh * (z > 0.0)`) and compiles in a fraction of
    np.where's time under Numba; it differs only where `a` is inf or NaN and the gate is closed.
    """

    prec: int = MUL  # the product's; np.where(...) binds tighter, so this only ever adds parentheses

    def render(self, node, arg):
        cond, a, b = node.args
        if b.is_const and b.value == 0.0:
            return f"{arg(a, MUL)} * {arg(cond, MUL + 1)}"
        return f"np.where({arg(cond, COND)}, {arg(a, COND)}, {arg(b, COND)})"


@dataclass(frozen=True)
class Conditional(Syntax):
    """`a if cond else b` for the op select(cond, a, b)."""

    prec: int = COND

    def render(self, node, arg):
        cond, a, b = node.args
        return f"{arg(a, OR)} if {arg(cond, OR)} else {arg(b, COND)}"


Helper = str | Callable[[Node], str | None] | None  # a runtime helper's name, or one chosen per node


@dataclass(frozen=True)
class Printing:
    """How one op prints: on numbers, on arrays when that differs, and the runtime helpers each form calls."""

    scalar: Syntax
    array: Syntax | None = None
    helper: Helper = None  # a helper the scalar form (or a tensor op's one form) calls
    array_helper: Helper = None

    def syntax(self, node: Node) -> Syntax:
        return self.array if node.is_tensor and self.array is not None else self.scalar

    def helper_of(self, node: Node) -> str | None:
        helper = self.array_helper if node.is_tensor and self.array is not None else self.helper
        return helper(node) if callable(helper) else helper


def _math(name: str, numpy_name: str | None = None) -> Printing:
    """A function of `math`, and of NumPy on arrays (np.sin, or NumPy's own name: np.arcsin)."""
    return Printing(Call(f"math.{name}"), Call(f"np.{numpy_name or name}"))


def _compare(symbol: str) -> Printing:
    return Printing(Compare(symbol))


def _helper(name: str, array_name: str | None = None) -> Printing:
    """A runtime helper on numbers, and its loop over array elements, if one."""
    return Printing(Call(name), Call(array_name) if array_name else None, name, array_name)


def _tensor_helper(name: str, syntax: type = Call) -> Printing:
    """A tensor op printed as a runtime helper of the same name."""
    return Printing(syntax(name), helper=name)


# ops whose results may be strided views of other arrays (all others make new C-order arrays); an adjoint or a
# tangent variable may hold one (the tangent of a slice is a slice)
STRIDED_OPS = frozenset({Op.INPUT, Op.ADJ, Op.TANGENT, Op.TRANSPOSE, Op.PERMUTE, Op.SLICE_AXIS, Op.STRIDE_AXIS,
                         Op.BROADCAST_TO})

BASE: dict[str, Printing] = {
    Op.ADD: Printing(Infix("+", ADD)),
    Op.SUB: Printing(Infix("-", ADD)),
    Op.NEG: Printing(Prefix("-")),
    Op.MUL: Printing(Infix("*", MUL)),
    Op.DIV: Printing(Infix("/", MUL)),
    Op.POW: Printing(Power()),
    Op.SQRT: _math("sqrt"),
    Op.EXP: _math("exp"),
    Op.LOG: _math("log"),
    Op.SIN: _math("sin"),
    Op.COS: _math("cos"),
    Op.TAN: _math("tan"),
    Op.ASIN: _math("asin", "arcsin"),
    Op.ACOS: _math("acos", "arccos"),
    Op.ATAN: _math("atan", "arctan"),
    Op.ATAN2: _math("atan2", "arctan2"),
    Op.SINH: _math("sinh"),
    Op.COSH: _math("cosh"),
    Op.TANH: _math("tanh"),
    Op.ERF: _math("erf"),  # NumPy has no erf: each target says how it prints on arrays
    Op.LGAMMA: _math("lgamma"),
    Op.GAMMA: _math("gamma"),
    Op.DIGAMMA: _helper("digamma", "digamma_array"),
    Op.POLYGAMMA: _helper("polygamma", "polygamma_array"),
    Op.BETA: _helper("beta_function"),
    Op.ABS: Printing(Call("abs"), Call("np.abs")),
    Op.MAX: Printing(Call("max"), Nested("np.maximum")),
    Op.MIN: Printing(Call("min"), Nested("np.minimum")),
    Op.RELU: Printing(CallTemplate("max({0}, 0.0)"), CallTemplate("np.maximum({0}, 0.0)")),
    Op.SIGMOID: _helper("sigmoid", "sigmoid_array"),
    Op.SOFTPLUS: _helper("softplus", "softplus_array"),
    Op.SELECT: Printing(Conditional(), ArraySelect()),
    Op.LT: _compare("<"),
    Op.LE: _compare("<="),
    Op.GT: _compare(">"),
    Op.GE: _compare(">="),
    Op.EQ: _compare("=="),
    Op.NE: _compare("!="),
    Op.AND: Printing(Infix("and", AND), Nested("np.logical_and")),
    Op.OR: Printing(Infix("or", OR), Nested("np.logical_or")),
    Op.NOT: Printing(Prefix("not ", NOT), Call("np.logical_not")),
    # tensor ops
    Op.MATMUL: Printing(MatrixProduct()),
    Op.FLAT_TRANSPOSE_MATMUL: _tensor_helper("flat_transpose_matmul"),
    Op.AFFINE: _tensor_helper("affine"),
    Op.SUM_CHANNELS: _tensor_helper("sum_channels"),
    **{op: Printing(KeywordCall(op.value, ("stride", "padding", "dilation", "groups")), helper=op.value)
       for op in (Op.CONV2D, Op.CONV2D_BACKWARD_INPUT, Op.CONV2D_BACKWARD_WEIGHT)},
    **{op: Printing(KeywordCall(op.value, ("stride", "padding")), helper=op.value)
       for op in (Op.MAX_POOL2D, Op.MAX_POOL2D_BACKWARD, Op.MAX_POOL2D_AT, Op.AVG_POOL2D, Op.AVG_POOL2D_BACKWARD)},
    Op.OUTER: Printing(Call("np.outer")),
    Op.TRANSPOSE: Printing(Method(".T")),
    Op.PERMUTE: Printing(Permute()),
    Op.SLICE_AXIS: Printing(SliceAxis()),
    Op.STRIDE_AXIS: Printing(StrideAxis()),
    Op.SPREAD_AXIS: _tensor_helper("spread_axis", AttrCall),
    Op.ELEMENT: Printing(Element()),
    Op.AT_INDEX: Printing(AtIndex(), helper="at_index"),
    Op.EMBED_AXIS: Printing(EmbedAxis()),
    Op.CONCAT: Printing(Concatenate()),
    Op.TAKE_ROWS: _tensor_helper("take_rows"),
    Op.ADD_ROWS: Printing(AddRows(), helper="add_rows"),
    Op.RESHAPE: Printing(Reshape(STRIDED_OPS)),
    Op.SUM: Printing(Reduction("sum")),
    Op.MAX_ALL: Printing(Method(".max()")),
    Op.ROUTE_MAX_ALL: _tensor_helper("route_max_all"),
    Op.AT_MAX_ALL: _tensor_helper("at_max_all"),
    Op.MAX_LAST: _tensor_helper("max_last"),
    Op.ROUTE_MAX_LAST: _tensor_helper("route_max_last"),
    Op.AT_MAX_LAST: _tensor_helper("at_max_last"),
    Op.MAX_ALONG: _tensor_helper("max_along", AttrCall),
    Op.ROUTE_MAX: _tensor_helper("route_max", AttrCall),
    Op.AT_MAX: _tensor_helper("at_max", AttrCall),
    Op.FILL: Printing(ShapedCall("np.full")),
    Op.BROADCAST_TO: Printing(ShapedCall("np.broadcast_to", shape_first=False)),
    Op.DIM: Printing(Call("len")),  # always named: `N = X.shape[0]`
    Op.SOFTMAX_CE: _tensor_helper("softmax_cross_entropy"),
    Op.CROSS_ENTROPY: _tensor_helper("cross_entropy"),
    Op.ONE_HOT: _tensor_helper("one_hot", AttrCall),
    Op.SOFTMAX: _tensor_helper("softmax"),
    Op.SOFTMAX_JVP: _tensor_helper("softmax_jvp"),
    Op.LOG_SOFTMAX: _tensor_helper("log_softmax"),
    Op.LOGSUMEXP: Printing(Call("logsumexp_rows"), helper="logsumexp_rows"),
    Op.NORMALIZE: _tensor_helper("normalize_last", AttrCall),
    Op.NORMALIZE_VJP: _tensor_helper("normalize_last_vjp", AttrCall),
    Op.NORMALIZE_CHANNELS: _tensor_helper("normalize_channels", AttrCall),
    Op.NORMALIZE_CHANNELS_VJP: _tensor_helper("normalize_channels_vjp", AttrCall),
    # loops: calls of the functions the module defines for each scan (bpgen/targets/python/loops.py)
    Op.SCAN: Printing(LoopCall("_scan")),
    Op.SCAN_BACKWARD: Printing(LoopCall("_scan_backward")),
    Op.PART: Printing(Part()),
}


def _template(text: str, params) -> str:
    """A printed call with its arguments as format fields: math.asinh(_bpgen_arg0) -> math.asinh({0})."""
    template = text.replace("{", "{{").replace("}", "}}")
    for i, p in reversed(list(enumerate(params))):
        template = template.replace(p.name, f"{{{i}}}")
    return template


def sympy_printing(function: type, nargs: int) -> Printing:
    """A SymPy function outside the table (op "call"), printed as SymPy prints it: `math.asinh({0})` on numbers
    and NumPy's name on arrays, when SymPy knows one."""
    import sympy
    from sympy.printing.numpy import NumPyPrinter
    from sympy.printing.pycode import PythonCodePrinter

    params = sympy.symbols(f"_bpgen_arg0:{nargs}", real=True)
    applied = function(*params)
    scalar = PythonCodePrinter({"fully_qualified_modules": True, "strict": True}).doprint(applied)
    try:
        array_text = NumPyPrinter({"strict": True}).doprint(applied)
    except Exception:
        array_text = ""
    array = CallTemplate(_template(array_text.replace("numpy.", "np."), params)) \
        if array_text.startswith("numpy.") else None
    return Printing(CallTemplate(_template(scalar, params)), array)
