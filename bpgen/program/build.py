"""The pipeline, from a declaration to the generated module's source: one function per hop.

lower -> graph -> reverse -> name -> print -> render

`build` returns a frozen Artifact (the source, the parameters, and what was derived on the way, which
`bpgen.api.draw` draws); the compiled object users hold is made from it one floor up (`compiled.py`).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import BpgenError
from ..frontend.declaration import Declaration
from ..frontend.lower import Lowerer
from ..frontend.tensor import ALGEBRA as TENSOR_ALGEBRA
from ..ir.algebra import Algebra
from ..ir.graph import NO_RULE_OPS, Graph, Node, depends_on, format_program, schedule
from ..ir.ops import Op
from ..ir.shapes import format_shape, size_sources
from ..rules.table import rule_of, syntax_of, with_needed_helpers
from ..targets.python.guards import assumption_guards, guard_lines, shape_guards
from ..targets.python.loops import name_loops, step_functions
from ..targets.python.naming import assign_names
from ..targets.python.printer import (
    ADD,
    COND,
    VIEW_OPS,
    ExpressionPrinter,
    FreshReturns,
    PrintedProgram,
    Statement,
    print_program,
    print_tangents,
)
from ..targets.python.render import (
    Header,
    hvp_context,
    jvp_context,
    render_function_module,
    render_module,
    render_vector_module,
    size_lines,
)
from ..transforms.forward import forward_mode, forward_over_reverse
from ..transforms.reverse import Backward, backward, output_seeds


@dataclass(frozen=True)
class Emitted:
    """What `_emit` derived on the way to the source, kept for the pictures (`bpgen.api.draw`)."""

    algebra: Algebra
    inputs: list[Node]
    forward: list[Node]  # the forward schedule
    output: Node
    seed: Node | None  # the output's adjoint when the output is a tensor (vjp's last parameter)
    backward: Backward  # the reverse pass: its steps are the backward lines, in order
    names: dict[int, str]  # node id -> variable name in the generated code
    program: PrintedProgram  # the printed lines
    hints: dict[int, str]  # node id -> the user's name for it (and the output's)


@dataclass(frozen=True)
class Artifact:
    """What the pipeline makes of a declaration: the module's source and how to call it."""

    declaration: Declaration
    source: str
    params: list[str]  # the generated functions' parameters, in order
    emitted: Emitted
    helpers: tuple[str, ...]  # the runtime helpers the module holds, in the order it holds them
    header: Header  # the module's header (name, origin): the one part rendered again for another origin
    rendering: Callable[[Header], str]  # the source for a header
    mode: str = "reverse"  # "jvp", "hvp": a forward-mode module of one function; "vector": several outputs
    function: dict | None = None  # a forward-mode module's function, as its template takes it
    derivatives: tuple[str, ...] = ()  # forward-mode functions the (reverse) module also holds

    @property
    def functions(self) -> tuple[str, ...]:
        """The functions of the generated module users call."""
        if self.mode in ("jvp", "hvp"):
            return (self.mode,)
        if self.mode == "vector":
            return ("forward", "jvp", "vjp")
        if self.emitted.seed is not None:
            return ("forward", "vjp", *self.derivatives)
        batch = () if self.declaration.is_tensor else ("value_and_grad_batch",)
        return ("forward", "value_and_grad", "grad", *batch, *self.derivatives)

    @property
    def name(self) -> str:
        return self.declaration.name


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


DERIVATIVES = ("jvp", "hvp", "hessian")  # what `bpgen generate --derivatives` can add to a module


def build(declaration: Declaration, jit: bool = True, derivatives: tuple[str, ...] = ()) -> Artifact:
    """The generated module of a declaration (plain Python functions when jit is False), with the forward-mode
    functions `derivatives` names."""
    if declaration.is_tensor:
        artifact = _build_tensor(declaration, jit)
        return _with_derivatives(artifact, tuple(derivatives), jit) if derivatives else artifact
    if declaration.is_vector:
        if derivatives:
            raise BpgenError(f"{declaration.name}: a vector of outputs has jvp, vjp and jacobian; "
                             f"{', '.join(derivatives)} are for a scalar output")
        return _build_vector(declaration, jit)
    artifact = _build_scalar(declaration, jit)
    return _with_derivatives(artifact, tuple(derivatives), jit) if derivatives else artifact


@_without_gc
def _build_vector(declaration: Declaration, jit: bool) -> Artifact:
    """A vector of scalar outputs: forward -> their array; jvp -> (values, tangents); vjp(*inputs, *seeds) ->
    (values, gradients of sum(seed * values)), one seed parameter per output, named as its adjoint."""
    A, input_nodes, outputs, wrt_nodes, hints = _lower_scalar(declaration)
    for k, o in enumerate(outputs):
        hints.setdefault(o.id, f"{declaration.name}{k}")
    forward = schedule(outputs)
    if any(n.op == Op.SCAN for n in forward):  # its module holds jvp, and forward mode has no loops yet
        raise BpgenError(f"{declaration.name}: a vector of outputs through bpgen.scan is not available yet: "
                         "return one output (value_and_grad), or declare the outputs as one tensor (vjp)")
    seeds, by_output = output_seeds(A, outputs)
    grads = backward(forward, outputs[0], wrt_nodes, A, None, frozenset(hints), by_output)
    tangents = forward_mode(forward, outputs, wrt_nodes, A)
    adjoints = seeds + sorted((s.adjoint for s in grads.printed if s.first), key=lambda n: n.args[0].id)
    variables = tangents.seeds + [s.tangent for s in tangents.steps if s.first]
    names = assign_names(input_nodes, [s.name for s in declaration.inputs], forward, hints, adjoints, (), variables)
    params = [names[n.id] for n in input_nodes]
    program = print_program(params, forward, outputs[0], grads.printed, grads.gradients, names, syntax_of)
    expr = ExpressionPrinter(names, syntax_of)
    values = "np.array([" + ", ".join(expr(o) for o in outputs) + "])"
    program.returned_value = values  # what vjp returns with the gradients (bpgen show --backward-only)
    lines = print_tangents(tangents.steps, names, syntax_of, program.forward)
    helpers = _helpers_used(_all_nodes(forward, [s.term for s in grads.printed + tangents.steps]))
    header = Header(declaration.name, declaration.origin, values, [names[n.id] for n in wrt_nodes])
    rendering = functools.partial(
        render_vector_module, program, lines, helpers=helpers, jit=jit, values=values,
        tangent_values="np.array([" + ", ".join(expr(t) for t in tangents.output_tangents) + "])",
        tangent_params=[names[s.id] for s in tangents.seeds], seed_params=[names[s.id] for s in seeds],
        checks=assumption_guards(declaration.name, declaration.inputs, params))
    emitted = Emitted(A, input_nodes, forward, outputs[0], None, grads, names, program, hints)
    return Artifact(declaration, rendering(header), params, emitted, tuple(helpers), header, rendering, "vector")


def _with_derivatives(artifact: Artifact, derivatives: tuple[str, ...], jit: bool) -> Artifact:
    unknown = [d for d in derivatives if d not in DERIVATIVES]
    if unknown:
        raise BpgenError(f"unknown derivative {unknown[0]!r}: choose from {', '.join(DERIVATIVES)}")
    kinds = [d for d in DERIVATIVES if d in derivatives or (d == "hvp" and "hessian" in derivatives)]
    parts = {kind: (build_jvp if kind == "jvp" else build_hvp)(artifact.declaration, jit)
             for kind in kinds if kind != "hessian"}
    helpers = with_needed_helpers([*artifact.helpers, *(h for part in parts.values() for h in part.helpers)])
    blocks = [(kind, parts["hvp" if kind == "hessian" else kind].function) for kind in kinds]
    rendering = functools.partial(artifact.rendering, helpers=helpers, derivatives=blocks)
    return dataclasses.replace(artifact, source=rendering(artifact.header), helpers=tuple(helpers),
                               rendering=rendering, derivatives=tuple(kinds))


@_without_gc
def _build_scalar(declaration: Declaration, jit: bool = True) -> Artifact:
    A, input_nodes, output, wrt_nodes, hints = _lower_scalar(declaration)
    return _emit(declaration, A, input_nodes, [s.name for s in declaration.inputs], output, wrt_nodes, hints, jit)


def _lower_scalar(declaration: Declaration) -> tuple:
    """A scalar declaration as IR: (algebra, input nodes, output, wrt nodes, the user's names by node id)."""
    graph = Graph()
    A = Algebra(graph)
    input_nodes = [graph.input(i, s) for i, s in enumerate(declaration.inputs)]
    lowerer = Lowerer(A, dict(zip(declaration.inputs, input_nodes)), named=(e for e, _ in declaration.hints))
    output = [lowerer.lower(e) for e in declaration.output] if declaration.is_vector \
        else lowerer.lower(declaration.output)

    hints: dict[int, str] = {}
    for expr, hint in declaration.hints:
        node = lowerer.memo.get(expr)
        if node is not None and node.id not in hints:
            hints[node.id] = hint
    wrt_nodes = [input_nodes[declaration.inputs.index(w)] for w in declaration.wrt]
    return A, input_nodes, output, wrt_nodes, hints


@dataclass
class _Lowered:
    """A scalar or tensor declaration as IR, with what naming and printing need of it."""

    A: Algebra
    inputs: list[Node]
    input_names: list[str]
    output: Node
    wrt: list[Node]
    hints: dict[int, str]  # node id -> the user's name for it
    dim_sources: dict  # symbolic size -> the (input node, axis) it is read from (tensors)


def _lower(declaration: Declaration) -> _Lowered:
    if not declaration.is_tensor:
        A, inputs, output, wrt, hints = _lower_scalar(declaration)
        return _Lowered(A, inputs, [s.name for s in declaration.inputs], output, wrt, hints, {})
    inputs = [t.node for t in declaration.inputs]
    return _Lowered(TENSOR_ALGEBRA, inputs, [t.name for t in declaration.inputs], declaration.output,
                    [t.node for t in declaration.wrt], dict(reversed(declaration.hints)),  # the first name wins
                    size_sources(inputs))


@dataclass(frozen=True)
class _Tangents:
    """What jvp and hvp share once named: the printed forward program and the texts of sizes and checks."""

    names: dict[int, str]
    params: list[str]
    program: PrintedProgram
    expr: ExpressionPrinter
    dims: dict  # symbolic size -> the variable holding it
    dim_lines: list[str]  # N = X.shape[0]
    checks: list  # Guards of the inputs (sizes, or what their symbols assume)
    tangent_checks: list[str]  # lines checking the tangents' sizes (tensors)


def _name_tangents(declaration: Declaration, low: _Lowered, forward: list[Node], adjoints: list[Node],
                   variables: list[Node], seeds: list[Node], grads: Backward | None) -> _Tangents:
    A = low.A
    dim_nodes = [A.dim(d) for d in low.dim_sources]
    names = assign_names(low.inputs, low.input_names, forward, low.hints, adjoints, dim_nodes, variables)
    params = [names[n.id] for n in low.inputs]
    dims = {d: names[n.id] for d, n in zip(low.dim_sources, dim_nodes)}
    program = print_program(params, forward, low.output, grads.printed if grads else [],
                            grads.gradients if grads else [], names, syntax_of, dims, low.wrt)
    checks = _input_checks(declaration, low.inputs, names, dims, low.dim_sources)
    if not declaration.is_tensor:
        return _Tangents(names, params, program, ExpressionPrinter(names, syntax_of), dims, [], checks, [])
    sources = {d: (names[node.id], axis) for d, (node, axis) in low.dim_sources.items()}
    tangent_checks = guard_lines(shape_guards(declaration.name, [(names[s.id], w.shape) for s, w in
                                                                 zip(seeds, low.wrt)], dims, sources))
    return _Tangents(names, params, program, ExpressionPrinter(names, syntax_of, dims), dims,
                     size_lines(low.dim_sources, names, dims), checks, tangent_checks)


def _input_checks(declaration: Declaration, inputs: list[Node], names: dict[int, str], dims: dict,
                  dim_sources: dict) -> list:
    """What check_arguments verifies: a tensor function's sizes, a scalar function's SymPy assumptions."""
    if not declaration.is_tensor:
        return assumption_guards(declaration.name, declaration.inputs, [names[n.id] for n in inputs])
    sources = {d: (names[node.id], axis) for d, (node, axis) in dim_sources.items()}
    return shape_guards(declaration.name, [(names[n.id], n.shape) for n in inputs], dims, sources)


def _returned(node: Node, shape: tuple, fresh: FreshReturns, expr: ExpressionPrinter) -> str:
    """A returned tangent: a new array (a copy where it would share a caller's memory), zeros where none flows."""
    if shape and node.shape != shape:
        return f"np.full({expr.shape_text(shape)}, {expr(node)})"
    return fresh.text(node, expr)


@_without_gc
def build_jvp(declaration: Declaration, jit: bool = True) -> Artifact:
    """The forward-mode module of a declaration: jvp(*inputs, *tangents) -> (value, tangent)."""
    low = _lower(declaration)
    A, output = low.A, low.output
    low.hints.setdefault(output.id, declaration.name)
    forward = schedule([output])
    tangents = forward_mode(forward, output, low.wrt, A)
    variables = tangents.seeds + [s.tangent for s in tangents.steps if s.first]
    named = _name_tangents(declaration, low, forward, [], variables, tangents.seeds, None)
    names, program, expr = named.names, named.program, named.expr
    lines = print_tangents(tangents.steps, names, syntax_of, program.forward, named.dims)
    helpers = _helpers_used(_all_nodes(forward, [s.term for s in tangents.steps]))
    header = Header(declaration.name, declaration.origin, program.value, [names[n.id] for n in low.wrt])
    output_tangent = _returned(tangents.output_tangent, output.shape, FreshReturns(tangents.steps), expr)
    function = jvp_context(program, lines, header, helpers, jit, [names[s.id] for s in tangents.seeds],
                           named.checks, output_tangent, named.dim_lines, named.tangent_checks)
    rendering = functools.partial(render_function_module, "jvp.py.j2", function)
    emitted = Emitted(A, low.inputs, forward, output, None, Backward([], []), names, program, low.hints)
    return Artifact(declaration, rendering(header), named.params, emitted, tuple(helpers), header, rendering,
                    "jvp", function)


@_without_gc
def build_hvp(declaration: Declaration, jit: bool = True) -> Artifact:
    """The forward-over-reverse module of a declaration with a scalar output: hvp(*inputs, *vectors) -> (value,
    gradients, Hessian times the vectors), the backward pass followed by its tangent lines."""
    low = _lower(declaration)
    A, output = low.A, low.output
    if output.is_tensor:
        raise BpgenError(f"{declaration.name}: hvp is for a scalar output, and this one has shape "
                         f"{format_shape(output.shape)}")
    low.hints.setdefault(output.id, declaration.name)
    forward = schedule([output])
    grads = backward(forward, output, low.wrt, A, None, frozenset(i for i in low.hints if i != output.id))
    second = forward_over_reverse(forward, output, low.wrt, grads, A)
    terms = [s.term for s in grads.printed] + [s.term for s in second.forward.steps + second.steps]
    forward = schedule([output, *_shared_by_lines(forward, terms)])
    adjoints = sorted((s.adjoint for s in grads.printed if s.first), key=lambda n: n.args[0].id)
    variables = second.forward.seeds + [s.tangent for s in second.forward.steps if s.first] \
        + [s.tangent for s in second.steps if s.first]
    named = _name_tangents(declaration, low, forward, adjoints, variables, second.forward.seeds, grads)
    names, program, expr = named.names, named.program, named.expr
    lines = print_tangents(second.forward.steps, names, syntax_of, program.forward, named.dims)
    for step, index in zip(second.steps, second.lines):  # each cites the backward line it differentiates
        line = program.backward[index]
        lines.append(Statement(names[step.tangent.id], expr(step.term, ADD + 1 if not step.first else COND),
                               step.target, accumulate=not step.first, comment=f"# {line.code}", step=step))
    helpers = _helpers_used(_all_nodes(forward, terms))
    header = Header(declaration.name, declaration.origin, program.value, [names[n.id] for n in low.wrt])
    fresh = FreshReturns(second.forward.steps + second.steps)
    hv = [_returned(h, w.shape, fresh, expr) for h, w in zip(second.hv, low.wrt)]
    function = hvp_context(program, lines, header, helpers, jit, [names[s.id] for s in second.forward.seeds],
                           named.checks, hv, named.dim_lines, named.tangent_checks,
                           [w.shape for w in low.wrt] if declaration.is_tensor else None)
    rendering = functools.partial(render_function_module, "hvp.py.j2", function)
    emitted = Emitted(A, low.inputs, forward, output, None, grads, names, program, low.hints)
    return Artifact(declaration, rendering(header), named.params, emitted, tuple(helpers), header, rendering,
                    "hvp", function)


def _shared_by_lines(forward: list[Node], terms: list[Node]) -> list[Node]:
    """Arrays of forward values alone that several backward or tangent lines compute (a sigmoid as
    `exp_array(z - softplus1)`, a softmax), so that a forward line computes each once and the lines read its
    name. Views are left inline: they cost nothing."""
    scheduled = {n.id for n in forward}
    everything = schedule(terms)
    # what an adjoint or a tangent flows into is not a forward value
    tainted = depends_on(everything, [n for n in everything if n.op in (Op.ADJ, Op.TANGENT)])

    lines_using: dict[int, int] = {}
    nodes: dict[int, Node] = {}
    for term in terms:
        seen: set[int] = set()
        stack = [term]
        while stack:
            node = stack.pop()
            if node.id in seen or node.id in scheduled or node.op in NO_RULE_OPS:
                continue
            seen.add(node.id)
            if node.is_tensor and node.op not in VIEW_OPS and node.id not in tainted:
                lines_using[node.id] = lines_using.get(node.id, 0) + 1
                nodes[node.id] = node
            stack.extend(node.args)
    return [nodes[i] for i, count in lines_using.items() if count > 1]


@_without_gc
def _build_tensor(declaration: Declaration, jit: bool = True) -> Artifact:
    low = _lower(declaration)
    return _emit(declaration, low.A, low.inputs, low.input_names, low.output, low.wrt, low.hints, jit,
                 low.dim_sources)


def _emit(declaration, A: Algebra, input_nodes: list[Node], input_names: list[str], output: Node,
          wrt_nodes: list[Node], hints: dict[int, str], jit: bool, dim_sources: dict | None = None) -> Artifact:
    """From the output node to the artifact: schedule, reverse, name, print, render.

    dim_sources maps each symbolic size to the (input node, axis) it is read from (tensors only).
    """
    dim_sources = dim_sources or {}
    hints.setdefault(output.id, declaration.name)
    forward = schedule([output])
    _dump("forward schedule (after lowering, CSE, folding, DCE)", format_program(forward))
    # a tensor output is differentiated along a seed, the output's adjoint, passed in by the caller of vjp
    seed = A.graph.node(Op.ADJ, (output,), shape=output.shape) if output.is_tensor else None
    named = frozenset(i for i in hints if i != output.id)  # the output's adjoint, 1, stays folded
    grads = backward(forward, output, wrt_nodes, A, seed, named)
    _dump("backward steps (target <- term)",
          "\n".join(f"%{s.target.id} {'=' if s.first else '+='} {s.term!r}" for s in grads.printed))
    printed = _all_nodes(forward, [s.term for s in grads.printed])  # every node the code computes or inlines
    scans = [n for n in forward if n.op == Op.SCAN]
    gradient_loops = [n for n in printed if n.op == Op.SCAN_BACKWARD]  # one per scan the gradient goes through
    if scans:
        name_loops(scans)
    for n in printed:
        if n.op == Op.DIM and n.attrs[0] not in dim_sources:
            raise BpgenError(f"size {n.attrs[0]} is not the size of any input tensor")
    dim_nodes = [A.dim(d) for d in dim_sources]

    adjoints = sorted((s.adjoint for s in grads.printed if s.first), key=lambda n: n.args[0].id)
    if seed is not None:
        adjoints.insert(0, seed)  # named first: the parameter `dY` of vjp(..., dY)
    names = assign_names(input_nodes, input_names, forward, hints, adjoints, dim_nodes,
                         extra=[(n, f"{n.attrs[0].function}_gradients") for n in gradient_loops])
    params = [names[n.id] for n in input_nodes]
    dims = {d: names[n.id] for d, n in zip(dim_sources, dim_nodes)}
    program = print_program(params, forward, output, grads.printed, grads.gradients, names, syntax_of, dims,
                            wrt_nodes)
    masks = {n.attrs[0]: n.attrs[1] for n in gradient_loops}
    loops = [step_functions(A, scan, masks.get(scan.attrs[0]), names) for scan in scans]
    printed += [node for loop in loops for node in loop.nodes]
    header = Header(declaration.name, declaration.origin, program.value, [names[n.id] for n in wrt_nodes])
    helpers = _helpers_used(printed, also=() if seed is None else ("same_shape",))  # vjp checks its seed
    checks = _input_checks(declaration, input_nodes, names, dims, dim_sources)
    rendering = functools.partial(render_module, program, helpers=helpers, jit=jit,
                                  dims=size_lines(dim_sources, names, dims),
                                  batch=not declaration.is_tensor,  # a batch loop over points: scalar functions
                                  seed=None if seed is None else names[seed.id], checks=checks,
                                  output_shape=format_shape(output.shape), loops=loops)
    return Artifact(declaration, rendering(header), params,
                    Emitted(A, input_nodes, forward, output, seed, grads, names, program, hints), tuple(helpers),
                    header, rendering)


def with_origin(artifact: Artifact, origin: str) -> Artifact:
    """The same artifact declared elsewhere (a spec file names its functions' origin): only rendered again."""
    header = dataclasses.replace(artifact.header, origin=origin)
    return dataclasses.replace(artifact, declaration=dataclasses.replace(artifact.declaration, origin=origin),
                               source=artifact.rendering(header), header=header)


def _dump(title: str, text: str) -> None:
    """With BPGEN_DUMP=1, show the program after each pass (for debugging bpgen itself)."""
    if os.environ.get("BPGEN_DUMP"):
        print(f"--- {title}\n{text}", file=sys.stderr)


def _helpers_used(printed: list[Node], also: tuple[str, ...] = ()) -> list[str]:
    """Helper functions the printed code calls (and `also` those), with the helpers they call in turn."""
    used = set(also)
    for node in printed:
        if node.op in NO_RULE_OPS:
            continue
        rule = rule_of(node)
        # on arrays an op prints its array form, which calls the array helper, if any
        helper = rule.array_helper if node.is_tensor and rule.array_syntax is not None else rule.helper
        if callable(helper):  # a helper that depends on the node (sum over the first or the last axis)
            helper = helper(node)
        if helper:
            used.add(helper)
    return with_needed_helpers(used)


def _all_nodes(forward: list[Node], terms: list[Node]) -> list[Node]:
    seen: dict[int, Node] = {}
    stack = list(forward) + list(terms)
    while stack:
        n = stack.pop()
        if n.id not in seen:
            seen[n.id] = n
            stack.extend(n.args)
    return list(seen.values())
