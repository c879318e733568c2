"""The pipeline, from a declaration to a compiled function, and the object users get back.

declare -> lower -> graph -> reverse -> name -> print -> render -> load
"""

from __future__ import annotations

import functools
import gc
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import sympy

from .algebra import Algebra
from .errors import BpgenError
from .guards import assumption_guards, shape_guards
from .ir import Graph, Node, format_program, schedule
from .load import load_source, write_atomic
from .lower import Lowerer, symbols_in
from .naming import assign_names, sanitize
from .printer import PrintedProgram, print_program
from .render import Header, render_module
from .reverse import Backward, backward
from .rules import rule_of, with_needed_helpers
from .shapes import format_shape

API_FUNCTIONS = ("forward", "value_and_grad", "grad", "value_and_grad_batch", "vjp")


@dataclass(frozen=True)
class Declaration:
    """What the user declared: an output expression, its inputs, and what to differentiate."""

    output: sympy.Expr
    inputs: tuple[sympy.Symbol, ...]
    wrt: tuple[sympy.Symbol, ...]
    name: str
    origin: str  # where the declaration came from, for the generated header
    hints: tuple[tuple[sympy.Basic, str], ...] = ()  # (subexpression, the user's name for it)


@dataclass(frozen=True)
class Emitted:
    """What `_emit` derived on the way to the source, kept for `bpgen.graph` (which draws it)."""

    algebra: Algebra
    inputs: list[Node]
    forward: list[Node]  # the forward schedule
    output: Node
    seed: Node | None  # the output's adjoint when the output is a tensor (vjp's last parameter)
    backward: Backward  # the reverse pass: its steps are the backward lines, in order
    names: dict[int, str]  # node id -> variable name in the generated code
    program: PrintedProgram  # the printed lines
    hints: dict[int, str]  # node id -> the user's name for it (and the output's)


class CompiledFunction:
    """Value and gradient code for one declared function.

    `forward`, `value_and_grad`, `grad` and `value_and_grad_batch` (a scalar
    output), or `forward` and `vjp` (a tensor output), are the generated
    module's functions (Numba dispatchers unless jit=False); the module is
    written and imported on first use, compiled on first call.
    """

    def __init__(self, declaration: Declaration, source: str, params: list[str], jit: bool):
        self.declaration = declaration
        self.source = source
        self.params = params
        self.jit = jit
        self._module: ModuleType | None = None

    @property
    def name(self) -> str:
        return self.declaration.name

    @property
    def inputs(self) -> tuple[sympy.Symbol, ...]:
        return self.declaration.inputs

    @property
    def wrt(self) -> tuple[sympy.Symbol, ...]:
        return self.declaration.wrt

    @property
    def module(self) -> ModuleType:
        if self._module is None:
            self._module = load_source(self.source, self.name)
        return self._module

    def __getattr__(self, attr: str):
        if attr in API_FUNCTIONS:
            function = getattr(self.module, attr, None)
            if function is None:
                raise AttributeError(self._missing(attr))
            function = self._checked(attr, function)
            setattr(self, attr, function)  # later lookups skip __getattr__
            return function
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def _checked(self, attr: str, function):
        """The generated function, taking float64 at full speed and converting (or refusing) anything else."""
        from .arguments import checked
        from .parameters import Parameter, output_shape, parameters

        seed = None
        if attr == "vjp":
            code = getattr(function, "py_func", function).__code__  # vjp's last parameter is the seed
            seed = Parameter(code.co_varnames[code.co_argcount - 1], output_shape(self), "real")
        return checked(function, f"{self.name}.{attr}", parameters(self), batch=attr == "value_and_grad_batch",
                       seed=seed)

    def _missing(self, attr: str) -> str:
        output = self.declaration.output
        if getattr(output, "shape", ()) != ():
            return (f"{self.name} has a tensor output of shape {format_shape(output.shape)}: it has forward and "
                    f"vjp(..., seed), not {attr}")
        if attr == "vjp":
            return f"{self.name} has a scalar output: use value_and_grad (vjp is for tensor outputs)"
        return f"{self.name} is a tensor function: {attr} is for scalar SymPy functions"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the generated module to `path` (atomically)."""
        return write_atomic(path, self.source)

    def graph(self, **point):
        """The computation graph at `point` (inputs by name, the rest random) with its values and gradients:
        a graphviz.Digraph, shown inline in Jupyter. Options (sizes, --max-nodes) via bpgen.graph.graph."""
        from .graph import graph

        return graph(self, point)

    def _repr_html_(self) -> str:
        """Jupyter shows the generated module, highlighted."""
        import html

        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        return (f"<p><code>{html.escape(repr(self))}</code></p>"
                + highlight(self.source, PythonLexer(), HtmlFormatter(noclasses=True)))

    def __repr__(self) -> str:
        return (f"<bpgen function {self.name}({', '.join(self.params)}), "
                f"gradients w.r.t. {', '.join(s.name for s in self.wrt)}>")


def compile(target, inputs: Sequence[sympy.Symbol] | None = None, wrt: Sequence[sympy.Symbol] | None = None,
            name: str | None = None, *, jit: bool | None = None, origin: str | None = None) -> CompiledFunction:
    """Generate value and gradient code for a SymPy expression (or re-target a compiled function).

    inputs: the positional parameters, in order (default: the free symbols sorted by name).
    wrt: the inputs to differentiate with respect to, in the order gradients are returned (default: all).
    jit: compile with Numba (default), or give plain Python functions to step through in a debugger.
    """
    from .tensor import Tensor

    inputs = None if inputs is None else tuple(inputs)  # a generator is read once, here
    wrt = None if wrt is None else tuple(wrt)
    if isinstance(target, Tensor) or any(isinstance(i, Tensor) for i in (inputs or ())):
        return build_tensor(declare_tensor(target, inputs, wrt, name, origin or "a tensor expression"),
                            True if jit is None else jit)
    if isinstance(target, CompiledFunction):
        declaration = target.declaration
        if inputs is not None and tuple(inputs) != declaration.inputs:
            raise BpgenError(f"{declaration.name}: the inputs of an already declared function cannot change")
        jit = target.jit if jit is None else jit
        if wrt is None and name is None and origin is None and jit == target.jit:
            return target
        tensor = isinstance(declaration, TensorDeclaration)
        check_wrt, rebuild = (_check_tensor_wrt, build_tensor) if tensor else (_check_wrt, build)
        declaration = replace(
            declaration,
            wrt=check_wrt(declaration.inputs, wrt) if wrt is not None else declaration.wrt,
            name=sanitize(name) if name else declaration.name,
            origin=origin or declaration.origin,
        )
        return rebuild(declaration, jit)
    return build(declare(target, inputs, wrt, name, origin or "a SymPy expression"), True if jit is None else jit)


def declare(expr, inputs, wrt, name, origin, hints=()) -> Declaration:
    """Check what the user passed and make a Declaration of it."""
    expr = as_output(expr)
    if not isinstance(expr, sympy.Expr):
        kind = type(expr).__name__
        raise BpgenError(f"the output must be a scalar SymPy expression, not {kind}")
    if isinstance(expr, sympy.MatrixBase) or getattr(expr, "is_Matrix", False):
        raise BpgenError("the output must be a scalar, not a matrix")
    if inputs is None:
        inputs = symbols_in(expr)
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


def _without_gc(build_function):
    """Builds allocate many small objects and free none: Python's cycle collector only slows them down."""
    @functools.wraps(build_function)
    def wrapper(*args, **kwargs):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return build_function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return wrapper


@_without_gc
def build(declaration: Declaration, jit: bool = True) -> CompiledFunction:
    graph = Graph()
    A = Algebra(graph)
    input_nodes = [graph.input(i, s) for i, s in enumerate(declaration.inputs)]
    lowerer = Lowerer(A, dict(zip(declaration.inputs, input_nodes)), named=(e for e, _ in declaration.hints))
    output = lowerer.lower(declaration.output)

    hints: dict[int, str] = {}
    for expr, hint in declaration.hints:
        node = lowerer.memo.get(expr)
        if node is not None and node.id not in hints:
            hints[node.id] = hint
    wrt_nodes = [input_nodes[declaration.inputs.index(w)] for w in declaration.wrt]
    return _emit(declaration, A, input_nodes, [s.name for s in declaration.inputs], output, wrt_nodes, hints, jit)


def _emit(declaration, A: Algebra, input_nodes: list[Node], input_names: list[str], output: Node,
          wrt_nodes: list[Node], hints: dict[int, str], jit: bool, dim_sources: dict | None = None) -> CompiledFunction:
    """From the output node to the compiled object: schedule, reverse, name, print, render.

    dim_sources maps each symbolic size to the (input node, axis) it is read from (tensors only).
    """
    dim_sources = dim_sources or {}
    hints.setdefault(output.id, declaration.name)
    forward = schedule([output])
    _dump("forward schedule (after lowering, CSE, folding, DCE)", format_program(forward))
    # a tensor output is differentiated along a seed, the output's adjoint, passed in by the caller of vjp
    seed = A.graph.node("adj", (output,), shape=output.shape) if output.is_tensor else None
    named = frozenset(i for i in hints if i != output.id)  # the output's adjoint, 1, stays folded
    grads = backward(forward, output, wrt_nodes, A, seed, named)
    _dump("backward steps (target <- term)",
          "\n".join(f"%{s.target.id} {'=' if s.first else '+='} {s.term!r}" for s in grads.steps))
    printed = _all_nodes(forward, [s.term for s in grads.steps])  # every node the code computes or inlines
    for n in printed:
        if n.op == "dim" and n.attrs[0] not in dim_sources:
            raise BpgenError(f"size {n.attrs[0]} is not the size of any input tensor")
    dim_nodes = [A.dim(d) for d in dim_sources]

    adjoints = sorted((s.adjoint for s in grads.steps if s.first), key=lambda n: n.args[0].id)
    if seed is not None:
        adjoints.insert(0, seed)  # named first: the parameter `dY` of vjp(..., dY)
    names = assign_names(input_nodes, input_names, forward, hints, adjoints, dim_nodes)
    params = [names[n.id] for n in input_nodes]
    dims = {d: names[n.id] for d, n in zip(dim_sources, dim_nodes)}
    program = print_program(params, forward, output, grads.steps, grads.gradients, names, _syntax_of, dims,
                            wrt_nodes)
    dim_lines = [f"{dims[d]} = {names[node.id]}.shape[{axis}]" for d, (node, axis) in dim_sources.items()]
    header = Header(declaration.name, declaration.origin, program.value, [names[n.id] for n in wrt_nodes])
    helpers = _helpers_used(printed) if seed is None else sorted({*_helpers_used(printed), "same_shape"})
    if isinstance(declaration, Declaration):
        checks = assumption_guards(declaration.name, declaration.inputs, params)
    else:
        sources = {d: (names[node.id], axis) for d, (node, axis) in dim_sources.items()}
        checks = shape_guards(declaration.name, [(names[n.id], n.shape) for n in input_nodes], dims, sources)
    source = render_module(program, header, helpers, jit, dims=dim_lines,
                           batch=isinstance(declaration, Declaration),  # batch loop: scalar functions
                           seed=None if seed is None else names[seed.id], checks=checks,
                           output_shape=format_shape(output.shape))
    compiled = CompiledFunction(declaration, source, params, jit)
    compiled.emitted = Emitted(A, input_nodes, forward, output, seed, grads, names, program, hints)  # bpgen.graph
    return compiled


def _dump(title: str, text: str) -> None:
    """With BPGEN_DUMP=1, show the program after each pass (for debugging bpgen itself)."""
    if os.environ.get("BPGEN_DUMP"):
        print(f"--- {title}\n{text}", file=sys.stderr)


def _helpers_used(printed: list[Node]) -> list[str]:
    """Helper functions the printed code calls, with the helpers they call in turn."""
    used = set()
    for node in printed:
        if node.op in ("input", "const", "adj", "dim"):
            continue
        rule = rule_of(node)
        # on arrays an op prints its array form, which calls the array helper, if any
        helper = rule.array_helper if node.is_tensor and rule.array_syntax is not None else rule.helper
        if callable(helper):  # a helper that depends on the node (sum over the first or the last axis)
            helper = helper(node)
        if helper:
            used.add(helper)
    return with_needed_helpers(used)


# tensors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorDeclaration:
    """A tensor function: its output node, input tensors and the ones to differentiate."""

    output: Node
    inputs: tuple  # Tensor inputs, in parameter order
    wrt: tuple
    name: str
    origin: str
    hints: tuple[tuple[int, str], ...] = ()  # (node id, the user's name for it)


def declare_tensor(output, inputs, wrt, name, origin, hints=()) -> TensorDeclaration:
    from .tensor import Tensor, as_node

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
        if n.op == "input" and n.id not in known:
            raise BpgenError(f"tensor {n.attrs[1][1]!r} is used by the output but is not among the inputs")
    wrt = inputs if wrt is None else _check_tensor_wrt(inputs, wrt)
    return TensorDeclaration(node, inputs, wrt, sanitize(name or "loss"), origin, tuple(hints))


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
    return wrt


@_without_gc
def build_tensor(declaration: TensorDeclaration, jit: bool = True) -> CompiledFunction:
    from .tensor import ALGEBRA as A

    input_nodes = [t.node for t in declaration.inputs]
    # symbolic sizes are read off the first input that has them: N = X.shape[0]
    dim_sources: dict = {}
    for node in input_nodes:
        for axis, d in enumerate(node.shape):
            if not isinstance(d, int) and d not in dim_sources:
                dim_sources[d] = (node, axis)
    hints = dict(reversed(declaration.hints))  # the first name given to a node wins
    return _emit(declaration, A, input_nodes, [t.name for t in declaration.inputs], declaration.output,
                 [t.node for t in declaration.wrt], hints, jit, dim_sources)


def _syntax_of(node: Node):
    rule = rule_of(node)
    return rule.array_syntax if node.is_tensor and rule.array_syntax is not None else rule.syntax


def _all_nodes(forward: list[Node], terms: list[Node]) -> list[Node]:
    seen: dict[int, Node] = {}
    stack = list(forward) + list(terms)
    while stack:
        n = stack.pop()
        if n.id not in seen:
            seen[n.id] = n
            stack.extend(n.args)
    return list(seen.values())
