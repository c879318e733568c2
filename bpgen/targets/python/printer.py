"""Print IR expressions and statements as Python source.

A target's syntax table says which `Syntax` each op prints with (bpgen/targets/python/syntax.py); this module
walks expressions with Python's operator precedence and puts parentheses exactly where they are needed.
Named nodes (inputs, forward intermediates, adjoints) print as their names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...ir.graph import READ_OPS, VIEW_OPS, Node, schedule
from ...ir.ops import Op
from .syntax import ADD, ATOM, COND, MUL, UNARY, Syntax


def format_float(value: float) -> str:
    """The shortest literal that reads back as exactly `value`."""
    if math.isnan(value):
        return "math.nan"
    if math.isinf(value):
        return "math.inf" if value > 0 else "-math.inf"
    return repr(float(value))


def _const_prec(value: float) -> int:
    return UNARY if (value < 0 or math.copysign(1.0, value) < 0) else ATOM


class ExpressionPrinter:
    """Prints nodes; `names` maps node ids to the variable that holds them."""

    def __init__(self, names: Mapping[int, str], syntax_of: Callable[[Node], Syntax],
                 dims: Mapping[object, str] | None = None):
        self.names = names
        self.syntax_of = syntax_of
        self.dims = dims or {}  # symbolic dimension -> the variable holding it

    def dim_text(self, d) -> str:
        """An int as itself, a symbolic size as the variable that holds it."""
        return str(d) if isinstance(d, int) else self.dims[d]

    def shape_text(self, shape: tuple) -> str:
        parts = [self.dim_text(d) for d in shape]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    def precedence(self, node: Node) -> int:
        if node.id in self.names:
            return ATOM
        if node.is_const:
            return _const_prec(node.value)
        return self.syntax_of(node).prec

    def __call__(self, node: Node, min_prec: int = COND) -> str:
        name = self.names.get(node.id)
        if name is not None:
            text = name
        elif node.is_const:
            text = format_float(node.value)
        else:
            text = self.syntax_of(node).render(node, self)
        if self.precedence(node) < min_prec:
            return f"({text})"
        return text

    def statement(self, node: Node) -> str:
        """The right-hand side of the forward statement that defines `node`."""
        return self.syntax_of(node).render(node, self)

    def product(self, factor: Node, upstream: Node) -> str:
        """`local * upstream`, the local derivative in parentheses when compound (staged style)."""
        return f"{self(factor, UNARY)} * {self(upstream, MUL + 1)}"


@dataclass(frozen=True)
class Statement:
    """One line of generated code, as data: `target = rhs`, or a later term of an adjoint, `target += rhs`
    (`target = target + rhs` for an array: the first term may be a view of another array)."""

    target: str
    rhs: str
    node: Node  # what the line computes: the forward node, or (backward) the node whose adjoint it adds to
    accumulate: bool = False
    comment: str = ""  # a backward line's: the forward statement it differentiates
    step: Any = None  # a backward line's Contribution from the reverse pass

    @property
    def code(self) -> str:
        if not self.accumulate:
            return f"{self.target} = {self.rhs}"
        if self.node.is_tensor:
            return f"{self.target} = {self.target} + {self.rhs}"
        return f"{self.target} += {self.rhs}"


@dataclass
class PrintedProgram:
    """The generated function's statements, ready for the templates and for the tools that read them."""

    params: list[str]
    forward: list[Statement] = field(default_factory=list)  # sigy = sigmoid(y)
    backward: list[Statement] = field(default_factory=list)  # dx += ((1.0 - sigx) * sigx) * dsigx
    value: str = ""  # the output, as the forward pass names it
    returned_value: str = ""  # the output as returned: a copy where it would share the caller's memory
    gradients: list[str] = field(default_factory=list)


def print_program(params: list[str], forward: list[Node], output: Node, steps, gradients: list[Node],
                  names: Mapping[int, str], syntax_of: Callable[[Node], Syntax],
                  dims: Mapping[object, str] | None = None, wrt: list[Node] | None = None) -> PrintedProgram:
    """Print forward statements, staged backward statements and the returned expressions."""
    expr = ExpressionPrinter(names, syntax_of, dims)
    program = PrintedProgram(params)
    defined: dict[int, Statement] = {}
    for node in forward:
        if node.op in READ_OPS or node.op == Op.TANGENT or (node.op == Op.PART and node.args[0].op == Op.SCAN):
            continue  # a loop's results are named where the loop's call unpacks them; tangents are parameters
        target = _unpacked(node, forward + [s.term for s in steps], names) if node.op == Op.SCAN else names[node.id]
        defined[node.id] = Statement(target, expr.statement(node), node)
        program.forward.append(defined[node.id])
    unpacked: set[int] = set()  # the steps a loop's gradients statement already wrote
    for index, step in enumerate(steps):
        if index in unpacked:
            continue
        whole = step.term.args[0] if step.term.op == Op.PART else None
        if whole is not None and whole.op == Op.SCAN_BACKWARD:  # a loop's gradients, unpacked by name
            program.backward += _loop_gradients(whole, steps, index, unpacked, names, expr, defined)
            continue
        if step.partial is not None and step.term.op == Op.MUL and step.term.args == (step.partial, step.upstream):
            rhs = expr.product(step.partial, step.upstream)  # staged: (local) * upstream
        else:
            rhs = expr(step.term, ADD + 1 if step.target.is_tensor and not step.first else COND)
        if step.seeded:
            comment = "# its seed, as an output"
        elif step.joined:
            comment = f"# {', '.join(names[s.id] for s in step.joined)}: slices of {names[step.target.id]}"
        elif step.source.id in defined:
            comment = f"# {defined[step.source.id].code}"
        else:  # a value no line keeps (the derivative an hvp through loops differentiates): its expression
            comment = f"# of {expr.statement(step.source)}"
        program.backward.append(Statement(names[step.adjoint.id], rhs, step.target, accumulate=not step.first,
                                          comment=comment, step=step))
    fresh = FreshReturns(steps)
    program.value = expr(output)
    program.returned_value = fresh.text(output, expr)
    program.gradients = []
    for k, g in enumerate(gradients):
        shape = wrt[k].shape if wrt else ()
        if shape and g.shape != shape:  # a constant gradient of a tensor input: a full array
            program.gradients.append(f"np.full({expr.shape_text(shape)}, {expr(g)})")
        else:
            program.gradients.append(fresh.text(g, expr))
    return program


def loop_parts(nodes: list[Node]) -> dict[int, dict[int, Node]]:
    """The results of each loop (scan or scan_backward) that the nodes read: loop id -> {index: part node}."""
    parts: dict[int, dict[int, Node]] = {}
    for node in schedule(nodes):
        if node.op == Op.PART:
            parts.setdefault(node.args[0].id, {})[node.attrs[0]] = node
    return parts


def _unpacked(scan: Node, nodes: list[Node], names: Mapping[int, str]) -> str:
    """`h, elman_tape`: the names of a loop's results as its call unpacks them, `_` for those nothing reads."""
    used = loop_parts(nodes).get(scan.id, {})
    count = len(scan.attrs[0].result_shapes())
    return ", ".join(names[used[k].id] if k in used and used[k].id in names else "_" for k in range(count))


def _loop_gradients(whole: Node, steps, index: int, unpacked: set[int], names: Mapping[int, str],
                    expr: ExpressionPrinter, defined: dict[int, Statement]) -> list[Statement]:
    """`dWxh, dWhh, dbh = elman_scan_backward(...)`: the reversed loop's call, unpacked into the adjoints it starts
    (or into names of their own, added to adjoints that other lines started)."""
    mine = {}
    for k in range(index, len(steps)):
        term = steps[k].term
        if term.op == Op.PART and term.args[0] is whole:
            mine[term.attrs[0]] = k
            unpacked.add(k)
    scan = next(a.args[0] for a in whole.args if a.op == Op.PART and a.args[0].op == Op.SCAN)
    comment = f"# {defined[scan.id].code}"
    count = sum(whole.attrs[1])  # one result per argument the reverse pass wants
    targets = [("_" if j not in mine else names[steps[mine[j]].adjoint.id] if steps[mine[j]].first
                else names[steps[mine[j]].term.id]) for j in range(count)]
    lines = [Statement(", ".join(targets), expr.statement(whole), whole, comment=comment)]
    for _, k in sorted(mine.items()):
        step = steps[k]
        if not step.first:
            lines.append(Statement(names[step.adjoint.id], names[step.term.id], step.target, accumulate=True,
                                   comment=comment, step=step))
    return lines


VARIABLE_OPS = frozenset({Op.ADJ, Op.TANGENT})  # adjoints and tangents: the parameters' ones are the caller's


class FreshReturns:
    """Returned arrays never share memory with the caller's arrays or with each other: a caller who updates
    a gradient in place must not change its input, its seed or another gradient. Arrays that may (an input
    or the seed passed through, a view of one, one gradient returned twice) are returned as copies; the
    others are new arrays already, and copying them would cost time for nothing."""

    CALLER = -1  # the memory of an argument

    def __init__(self, steps):
        terms: dict[int, list[Node]] = {}
        for step in steps:  # the reverse pass's adjoints, or forward mode's tangents
            variable = step.tangent if hasattr(step, "tangent") else step.adjoint
            terms.setdefault(variable.id, []).append(step.term)
        self.terms = terms
        self.returned: set[int] = set()

    def memory(self, node: Node) -> int:
        """The node whose array `node`'s value lives in (CALLER for an argument's)."""
        while True:
            if node.op in VIEW_OPS:
                node = node.args[0]
            elif node.op in VARIABLE_OPS and len(self.terms.get(node.id, ())) == 1:  # `dz = dh`: the same array
                node = self.terms[node.id][0]
            elif node.op == Op.INPUT or (node.op in VARIABLE_OPS and node.id not in self.terms):  # a seed, a tangent
                return self.CALLER
            else:
                return node.id

    def text(self, node: Node, expr: ExpressionPrinter) -> str:
        if not node.is_tensor:
            return expr(node)
        memory = self.memory(node)
        if memory == self.CALLER or memory in self.returned:
            return f"{expr(node, ATOM)}.copy()"
        self.returned.add(memory)
        return expr(node)


def print_tangents(steps, names: Mapping[int, str], syntax_of: Callable[[Node], Syntax],
                   forward: list[Statement], dims: Mapping[object, str] | None = None) -> list[Statement]:
    """Forward mode's staged lines: `tnum = tx`, `tden += ((1.0 - sigx) * sigx) * tsigx`, each with the forward
    statement it differentiates as its comment."""
    expr = ExpressionPrinter(names, syntax_of, dims)
    defined = {statement.node.id: statement for statement in forward}
    lines = []
    for step in steps:
        if step.term.op == Op.MUL and step.term.args == (step.partial, step.upstream):
            rhs = expr.product(step.partial, step.upstream)
        else:
            rhs = expr(step.term, ADD + 1 if step.target.is_tensor and not step.first else COND)
        lines.append(Statement(names[step.tangent.id], rhs, step.target, accumulate=not step.first,
                               comment=f"# {defined[step.target.id].code}", step=step))
    return lines

