"""Declarations: what the user declared, checked, as one record the pipeline takes.

A scalar declaration holds a SymPy output over symbol inputs, a tensor declaration an IR node over
`bpgen.Tensor` inputs; both carry the function's name, where it was declared (for the generated header) and
the user's names for intermediates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import sympy

from ..errors import BpgenError
from ..ir.graph import Node, schedule
from ..ir.ops import Op
from .lower import symbols_in
from .names import sanitize
from .tensor import Tensor, as_node


@dataclass(frozen=True)
class Declaration:
    """What the user declared: an output over its inputs, the inputs to differentiate, a name, and where it was
    declared. A scalar function's output is a SymPy expression over symbols; a tensor function's an IR node over
    bpgen.Tensor inputs."""

    output: sympy.Expr | Node
    inputs: tuple  # symbols, or tensors, in parameter order
    wrt: tuple
    name: str
    origin: str  # where the declaration came from, for the generated header
    hints: tuple = ()  # (subexpression, or node id for a tensor function; the user's name for it)
    batch_axes: tuple = ()  # (input name, axis): where a tensor input's batch axis is, for Dask (else inferred)

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.output, Node)

    @property
    def is_vector(self) -> bool:
        """Several scalar outputs (a sympy.Matrix vector, or a tuple returned): forward gives their array."""
        return isinstance(self.output, tuple)


def declare(expr, inputs, wrt, name, origin, hints=()) -> Declaration:
    """Check what the user passed and make a Declaration of it. The output is a SymPy expression, or several:
    a column or row sympy.Matrix, a list or a tuple of expressions."""
    expr = _outputs(expr)
    if inputs is None:
        inputs = symbols_in(sympy.Tuple(*expr) if isinstance(expr, tuple) else expr)
    inputs = tuple(inputs)
    for s in inputs:
        if not isinstance(s, sympy.Symbol):
            raise BpgenError(f"inputs must be SymPy symbols; {s!r} is a {type(s).__name__}")
    seen = set()
    for s in inputs:
        if s in seen:
            raise BpgenError(f"input {s.name!r} is listed twice")
        seen.add(s)
    if not inputs:
        raise BpgenError("the function has no inputs to differentiate with respect to")
    wrt = inputs if wrt is None else _check_wrt(inputs, wrt)
    return Declaration(expr, inputs, wrt, sanitize(name or "f"), origin, tuple(hints))


def _outputs(value):
    """One scalar output, or a tuple of them."""
    if isinstance(value, sympy.MatrixBase) or getattr(value, "is_Matrix", False):
        if 1 not in value.shape:
            raise BpgenError(f"the output must be a scalar or a vector, not a {value.shape[0]} x {value.shape[1]} "
                             "matrix")
        value = tuple(value)
    if isinstance(value, (list, tuple)):
        if not value:
            raise BpgenError("the output is an empty list: give at least one expression")
        return tuple(_one_output(v) for v in value)
    return _one_output(value)


def _one_output(value):
    value = as_output(value)
    if not isinstance(value, sympy.Expr):
        raise BpgenError(f"the output must be a scalar SymPy expression, not {type(value).__name__}")
    return value


def as_output(value):
    """A plain number returned as the output becomes a SymPy number; a boolean is a mistake, not 1 or 0."""
    if isinstance(value, bool):
        raise BpgenError(f"the output must be a scalar SymPy expression, not the boolean {value}")
    if isinstance(value, (int, float)):
        return sympy.Float(value)
    return value


def _by_name(inputs, wrt, name_of) -> tuple:
    """wrt entries given as names (`wrt=["x"]`) stand for the inputs of those names."""
    names = {name_of(i): i for i in inputs}
    return tuple(names.get(w, w) if isinstance(w, str) else w for w in wrt)


def _check_wrt(inputs, wrt) -> tuple[sympy.Symbol, ...]:
    wrt = _by_name(inputs, wrt, lambda s: s.name)
    if not wrt:
        raise BpgenError("wrt is empty: name at least one input to differentiate with respect to")
    for w in wrt:
        if w not in inputs:
            label = w.name if isinstance(w, sympy.Symbol) else w if isinstance(w, str) else repr(w)
            raise BpgenError(f"wrt entry {label!r} is not one of the inputs ({', '.join(s.name for s in inputs)})")
    if len(set(wrt)) != len(wrt):
        raise BpgenError("wrt lists an input twice")
    return wrt


def declare_tensor(output, inputs, wrt, name, origin, hints=(), batch_axes=None) -> Declaration:
    if inputs is None:
        raise BpgenError("a tensor function needs inputs=[...]: the tensors its code takes, in order")
    inputs = tuple(inputs)
    for t in inputs:
        if not isinstance(t, Tensor) or t.name is None:
            raise BpgenError(f"inputs must be declared tensors (bpgen.Tensor(name, shape)), not {t!r}")
    names = [t.name for t in inputs]
    for n in names:
        if names.count(n) > 1:
            raise BpgenError(f"input {n!r} is listed twice")
    node = as_node(output)
    known = {t.node.id for t in inputs}
    for n in schedule([node]):
        if n.op == Op.INPUT and n.id not in known:
            raise BpgenError(f"tensor {n.attrs[1][1]!r} is used by the output but is not among the inputs")
    wrt = tuple(t for t in inputs if t.dtype == "float64") if wrt is None else _check_tensor_wrt(inputs, wrt)
    return Declaration(node, inputs, wrt, sanitize(name or "loss"), origin, tuple(hints),
                       _check_batch_axes(inputs, batch_axes or {}))


def _check_batch_axes(inputs, batch_axes: dict) -> tuple:
    """`batch_axes={"X": 1}`: for each named tensor input, the axis its rows are on (a symbolic size)."""
    if not isinstance(batch_axes, dict):
        raise BpgenError(f"batch_axes must be a dict of input name -> axis, not {type(batch_axes).__name__}")
    by_name = {t.name: t for t in inputs}
    for input_name, axis in batch_axes.items():
        t = by_name.get(input_name)
        if t is None:
            raise BpgenError(f"batch_axes names {input_name!r}, which is not an input")
        if isinstance(axis, bool) or not isinstance(axis, int) or not -len(t.shape) <= axis < len(t.shape):
            raise BpgenError(f"batch_axes: {input_name} has shape {tuple(t.shape)}, so {axis!r} is not one of its "
                             "axes")
        if isinstance(t.shape[axis], int):
            raise BpgenError(f"batch_axes: axis {axis} of {input_name} has the fixed size {t.shape[axis]}; the batch "
                             "axis has a symbolic size such as 'N'")
    return tuple((n, a % len(by_name[n].shape)) for n, a in sorted(batch_axes.items()))


def _check_tensor_wrt(inputs, wrt) -> tuple:
    wrt = _by_name(inputs, wrt, lambda t: t.name)
    if not wrt:
        raise BpgenError("wrt is empty: name at least one input to differentiate with respect to")
    ids = [t.node.id for t in inputs]
    for w in wrt:
        if getattr(w, "node", None) is None or w.node.id not in ids:
            raise BpgenError(f"wrt entry {getattr(w, 'name', w)!r} is not one of the inputs")
    if len({w.node.id for w in wrt}) != len(wrt):
        raise BpgenError("wrt lists an input twice")
    for w in wrt:
        if w.dtype != "float64":
            raise BpgenError(f"wrt entry {w.name!r} holds {w.dtype} values, which have no gradient")
    return wrt


def retarget(declaration: Declaration, wrt=None, name: str | None = None,
             origin: str | None = None) -> Declaration:
    """The same function with other gradients, another name or another origin."""
    check_wrt = _check_tensor_wrt if declaration.is_tensor else _check_wrt
    return replace(
        declaration,
        wrt=check_wrt(declaration.inputs, wrt) if wrt is not None else declaration.wrt,
        name=sanitize(name) if name else declaration.name,
        origin=origin or declaration.origin,
    )


def derivative_kinds(derivatives: str | tuple[str, ...]) -> tuple[str, ...]:
    """"jvp,hvp" or ("jvp", "hvp") as a tuple of names (build says which it does not know)."""
    if isinstance(derivatives, str):
        derivatives = derivatives.split(",")
    return tuple(d.strip() for d in derivatives if d.strip())
