"""Lower SymPy expressions to the IR.

The walk is iterative and memoized on each subexpression, so an expression
is visited as a DAG (each distinct subexpression once), never as a tree, and
deep compositions do not hit the recursion limit. Unevaluated SymPy
(`sympy.evaluate(False)`) is taken as it is: `a - b` (an Add of a negated
term) becomes `sub`, a product with negative powers becomes `div`, `x**(1/2)`
becomes `sqrt`. Functions outside the rule table get a rule made on demand
from `sympy.diff`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import sympy
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

from ..errors import BpgenError
from ..ir.graph import Node
from ..ir.ops import Op
from ..rules.algebra import Algebra
from ..rules.idioms import recognize
from ..rules.table import GENERIC_RULES, OP_OF_SYMPY_FUNCTION, Rule, polygamma_of

_RELATIONS = {
    sympy.StrictLessThan: "lt",
    sympy.LessThan: "le",
    sympy.StrictGreaterThan: "gt",
    sympy.GreaterThan: "ge",
    sympy.Equality: "eq",
    sympy.Unequality: "ne",
}

_SUPPORTED = (sympy.Atom, sympy.logic.boolalg.BooleanAtom,
              sympy.Add, sympy.Mul, sympy.Pow, sympy.Piecewise, sympy.core.relational.Relational,
              sympy.And, sympy.Or, sympy.Not, sympy.Function, sympy.Max, sympy.Min)

_UNSUPPORTED_HINT = ("bpgen supports arithmetic, powers, elementary functions, Piecewise "
                     "and SymPy functions it can differentiate and print")


def _describe(expr: sympy.Basic) -> str:
    text = str(expr)
    return text if len(text) <= 80 else text[:77] + "..."


class Lowerer:
    """Turns SymPy expressions into nodes; `leaves` maps symbols (or any subexpression) to nodes.

    `named` are the subexpressions the user gave a name (`invden = 1 / den`): each keeps a node of its own,
    which its users take as it is. A sum does not pull a named negative term apart (`out = quad + t1` for
    `t1 = -2 * exp(x)`), a product does not turn a named reciprocal into a division (`f = num * invden`), and
    idioms (sigmoid spelled with exp) are recognized only over unnamed parts.
    """

    def __init__(self, algebra: Algebra, leaves: Mapping[sympy.Basic, Node], named=()):
        self.A = algebra
        self.memo: dict[sympy.Basic, Node] = dict(leaves)
        self.named = frozenset(named)  # their nodes, once lowered, go into the algebra's `keep`

    def lower(self, expr: sympy.Basic) -> Node:
        memo = self.memo
        stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
        while stack:
            e, ready = stack.pop()
            if e in memo:
                continue
            if ready:
                memo[e] = self._lower_one(e)
                if e in self.named:
                    self.A.keep.add(memo[e].id)
                continue
            if not isinstance(e, _SUPPORTED):
                raise BpgenError(f"cannot differentiate {type(e).__name__} in {_describe(e)}: {_UNSUPPORTED_HINT}")
            stack.append((e, True))
            for child in reversed(self._children(e)):
                if child not in memo:
                    stack.append((child, False))
        return memo[expr]

    @staticmethod
    def _children(e: sympy.Basic) -> tuple:
        if isinstance(e, sympy.Piecewise):
            return tuple(part for pair in e.args for part in pair.args)
        if isinstance(e, (sympy.Symbol, sympy.Number, sympy.NumberSymbol)):
            return ()
        return e.args

    # one SymPy node, its children already lowered -------------------------

    def _lower_one(self, e: sympy.Basic) -> Node:
        A, memo = self.A, self.memo
        if isinstance(e, sympy.Symbol):
            raise BpgenError(f"symbol {e.name!r} is not among the inputs; list it in inputs=[...]")
        if isinstance(e, sympy.Atom) and not isinstance(e, sympy.logic.boolalg.BooleanAtom):
            return self._constant(e)  # numbers, pi, E, oo, and I (rejected)
        if e is sympy.true or e is sympy.false:
            return A.const(1.0 if e is sympy.true else 0.0)
        if isinstance(e, sympy.Add):
            return self._add([memo[a] for a in e.args], [a in self.named for a in e.args])
        if isinstance(e, sympy.Mul):
            return recognize(A, self._mul(e))
        if isinstance(e, sympy.Pow):
            return recognize(A, self._pow(e))
        if isinstance(e, sympy.Piecewise):
            return self._piecewise(e)
        op = _RELATIONS.get(type(e))
        if op is not None:
            return A.apply(op, memo[e.args[0]], memo[e.args[1]])
        if isinstance(e, sympy.And):
            return A.logical_and(*(memo[a] for a in e.args))
        if isinstance(e, sympy.Or):
            return A.apply(Op.OR, *(memo[a] for a in e.args))
        if isinstance(e, sympy.Not):
            return A.apply(Op.NOT, memo[e.args[0]])
        if getattr(type(e), "is_scan_result", False):
            from .scan import lower_sympy_scan  # a loop's result (bpgen.scan in a SymPy function)

            return lower_sympy_scan(self, e)
        op = OP_OF_SYMPY_FUNCTION.get(type(e))  # exp, sin, Max, sigmoid, ...
        if op == Op.POLYGAMMA:
            return polygamma_of(A, self._order(e), memo[e.args[1]])
        if op is not None:
            return A.apply(op, *(memo[a] for a in e.args))
        if isinstance(e, sympy.Function):
            return self._generic(e, [memo[a] for a in e.args])
        raise BpgenError(f"cannot differentiate {type(e).__name__} in {_describe(e)}: {_UNSUPPORTED_HINT}")

    @staticmethod
    def _order(e: sympy.Basic) -> int:
        """polygamma's order: a whole number from 0 (SymPy writes digamma(x) as polygamma(0, x))."""
        order = e.args[0]
        if not (order.is_number and order.is_integer and order >= 0):
            raise BpgenError(f"polygamma's order must be a whole number from 0, not {order}, in {_describe(e)}")
        return int(order)

    def _constant(self, e: sympy.Basic) -> Node:
        if e is sympy.nan or e is sympy.zoo or not (e.is_extended_real or e.is_infinite):
            raise BpgenError(f"constant {e} is not a real number")
        if e is sympy.oo or e is sympy.S.NegativeInfinity:
            return self.A.const(math.inf if e is sympy.oo else -math.inf)
        return self.A.const(float(e))

    def _add(self, terms: list[Node], named: list[bool]) -> Node:
        """A sum with its negated terms pulled out: a + b - c  ->  sub(add(a, b), c); a named term stays whole."""
        A = self.A
        plus, minus = [], []
        for t, is_named in zip(terms, named):
            if is_named:
                plus.append(t)
            elif t.op == Op.NEG:
                minus.append(t.args[0])
            elif t.op == Op.MUL and t.args[0].is_const and t.args[0].value < 0:
                minus.append(A.mul(A.const(-t.args[0].value), *t.args[1:]))
            elif t.is_const and t.value < 0:
                minus.append(A.const(-t.value))
            else:
                plus.append(t)
        if not minus:
            return A.add(*plus)
        if not plus:
            return A.neg(A.add(*minus))
        return A.sub(A.add(*plus), A.add(*minus))

    def _mul(self, e: sympy.Mul) -> Node:
        """A product with its negative powers as a divisor: x * y**-1  ->  div(x, y)."""
        A, memo = self.A, self.memo
        numerator, denominator = [], []
        for factor in e.args:
            if isinstance(factor, sympy.Pow) and factor.exp.is_Number and factor.exp < 0 \
                    and factor not in self.named:
                positive = -factor.exp
                base = memo[factor.base]
                denominator.append(base if positive == 1 else self._power(base, positive))
            else:
                numerator.append(memo[factor])
        top = A.mul(*numerator) if numerator else A.const(1.0)
        if not denominator:
            return top
        return A.div(top, A.mul(*denominator))

    def _pow(self, e: sympy.Pow) -> Node:
        A, memo = self.A, self.memo
        base, exponent = e.args
        if base is sympy.E:
            return A.apply(Op.EXP, memo[exponent])
        if exponent.is_Number:
            if exponent < 0:
                return A.div(A.const(1.0), self._power(memo[base], -exponent))
            return self._power(memo[base], exponent)
        return A.pow(memo[base], memo[exponent])

    def _power(self, base: Node, exponent: sympy.Number) -> Node:
        if exponent == sympy.Rational(1, 2):
            return self.A.apply(Op.SQRT, base)
        return self.A.pow(base, self.A.const(float(exponent)))

    def _piecewise(self, e: sympy.Piecewise) -> Node:
        """Nested selects; both branches are computed, the gradient follows the branch taken."""
        A, memo = self.A, self.memo
        result = A.const(math.nan)  # SymPy's value when no condition holds
        for pair in reversed(e.args):
            result = A.select(memo[pair.cond], memo[pair.expr], result)
        return result

    def _generic(self, e: sympy.Function, args: list[Node]) -> Node:
        func = type(e)
        if func not in GENERIC_RULES:
            rule = _generic_rule(func, len(args), e)
            if rule is None:
                # no printable form: a rewrite into known functions (sec -> 1/cos) may have one
                for target in _REWRITE_TARGETS:
                    rewritten = e.rewrite(target)
                    if rewritten != e and not rewritten.has(func) and not rewritten.has(sympy.I):
                        return self.lower(rewritten)
                raise BpgenError(f"cannot generate code for function {_function_name(func)!r} in {_describe(e)}: "
                                 "no Numba-compatible form is known")
            GENERIC_RULES[func] = rule
        return self.A.apply(Op.CALL, *args, attrs=(func,))


_REWRITE_TARGETS = (sympy.cos, sympy.sin, sympy.exp, sympy.log, sympy.sqrt, sympy.tanh, sympy.atan)


def _function_name(func: type) -> str:
    return getattr(func, "__name__", str(func))


def _generic_rule(func: type, nargs: int, example: sympy.Basic) -> Rule | None:
    """A rule for a SymPy function outside the table, printed by SymPy and differentiated by `sympy.diff`.

    None when SymPy has no Numba-compatible printed form for it.
    """
    name = _function_name(func)
    params = sympy.symbols(f"_bpgen_arg0:{nargs}", real=True)
    applied = func(*params)
    partials: list[sympy.Expr | None] = []
    for p in params:
        d = sympy.diff(applied, p)
        known = not (d.has(sympy.Derivative) or d.has(sympy.Subs))
        partials.append(d if known else None)
    constant_args = [i for i, a in enumerate(example.args) if a.is_number]
    if all(d is None for i, d in enumerate(partials) if i not in constant_args):
        raise BpgenError(f"cannot differentiate function {name!r} in {_describe(example)}: "
                         "SymPy knows no derivative for it")
    # every target is Python: a function enters the IR when SymPy prints it with `math` (the targets print it
    # so too, bpgen/targets/python/syntax.py), elementwise on arrays when NumPy has it as well
    try:
        text = PythonCodePrinter({"fully_qualified_modules": True, "strict": True}).doprint(applied)
    except Exception:
        return None
    if not text.startswith("math."):
        return None
    try:
        elementwise = NumPyPrinter({"strict": True}).doprint(applied).startswith("numpy.")
    except Exception:
        elementwise = False

    def partials_of(A: Algebra, node_args, out):
        leaves = {p: a for p, a in zip(params, node_args)}
        leaves[applied] = out
        lowerer = Lowerer(A, leaves)
        result = []
        for d, arg in zip(partials, node_args):
            if d is None and not arg.is_const:
                raise BpgenError(f"cannot differentiate function {name!r} in its argument number "
                                 f"{len(result) + 1}: SymPy knows no derivative for it")
            try:
                result.append(None if d is None else lowerer.lower(d))
            except BpgenError:  # said with the user's arguments, not bpgen's placeholders
                said = d.subs(dict(zip(params, example.args)))
                raise BpgenError(f"cannot differentiate {_describe(example)}: its derivative {_describe(said)} "
                                 "has no Numba-compatible form") from None
        return result

    def numeric(*values):
        return float(func(*values).evalf())

    return Rule(f"call:{name}", partials_of, numeric=numeric, sympy_function=func, domain=((-2.0, 2.0),) * nargs,
                elementwise=elementwise)


def symbols_in(expr: sympy.Basic) -> list[sympy.Symbol]:
    """The free symbols of `expr`, found by a DAG walk (SymPy's own walks the tree), sorted by name."""
    seen: set[int] = set()
    found: dict[sympy.Symbol, None] = {}
    stack = [expr]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, sympy.Symbol):
            found[e] = None
        else:
            stack.extend(Lowerer._children(e))
    return sorted(found, key=lambda s: (s.name, str(s.assumptions0)))
