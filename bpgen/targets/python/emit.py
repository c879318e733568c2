"""From a program to a module's source, for a Python target: name, print, render.

`emit(program, target)` names every value (the user's names first), prints the forward, backward and tangent
lines with the target's syntax table, gathers the runtime helpers the lines call, and renders the module
through the templates. The result is an `Artifact`: the source, the parameters, and what was derived on the
way, which the pictures draw (bpgen/api/draw.py).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

from ...frontend.declaration import Declaration
from ...ir.graph import Node, schedule, viewed
from ...ir.loops import body_schedule
from ...ir.ops import Op
from ...ir.shapes import format_shape
from ...program.build import all_nodes
from ...program.program import Lowered, Program, Reverse, SecondOrderProgram, Tangent, VectorProgram
from ...rules.algebra import Algebra
from ...transforms.reverse import Backward
from .guards import assumption_guards, guard_lines, index_guards, shape_guards
from .loops import name_loops, step_functions
from .naming import assign_names
from .printer import (
    ADD,
    COND,
    ExpressionPrinter,
    FreshReturns,
    PrintedProgram,
    Statement,
    loop_parts,
    print_program,
    print_tangents,
)
from .render import (
    Header,
    Module,
    check_context,
    hvp_context,
    hvp_docstring,
    jvp_context,
    jvp_docstring,
    render,
    reverse_docstring,
    size_lines,
    value_contexts,
    vector_docstring,
)
from .target import Target


@dataclass(frozen=True)
class Emitted:
    """What was derived and named on the way to the source, kept for the pictures (`bpgen.api.draw`)."""

    algebra: Algebra
    inputs: list[Node]
    forward: list[Node]  # the forward schedule
    output: Node
    seed: Node | None  # the output's adjoint when the output is a tensor (vjp's last parameter)
    backward: Backward  # the reverse pass: its steps are the backward lines, in order
    names: dict[int, str]  # node id -> variable name in the generated code
    program: PrintedProgram  # the printed lines
    hints: dict[int, str]  # node id -> the user's name for it (and the output's)
    loops: tuple = ()  # each scan's printed functions (StepFunctions): the pictures draw its step


@dataclass(frozen=True)
class Artifact:
    """A program printed by a target: the module's source and how to call it."""

    program: Program
    target: Target
    source: str
    params: list[str]  # the generated functions' parameters, in order
    emitted: Emitted
    helpers: tuple[str, ...]  # the runtime helpers the module holds, in the order it holds them
    header: Header  # the module's header (name, origin): the one part rendered again for another origin
    rendering: Callable[[Header], str]  # the source for a header

    @property
    def declaration(self) -> Declaration:
        return self.program.declaration

    @property
    def name(self) -> str:
        return self.declaration.name

    @property
    def derivatives(self) -> tuple[str, ...]:
        """The forward-mode functions a module of the value also holds (`bpgen generate --derivatives`)."""
        if self.program.reverse is None:
            return ()
        return tuple(k for k in ("jvp", "hvp", "hessian") if k in self.program.kinds)

    @property
    def functions(self) -> tuple[str, ...]:
        """The functions of the generated module users call."""
        program = self.program
        if program.vector is not None:
            return ("forward", "jvp", "vjp")
        if program.reverse is None:
            return tuple(k for k in ("jvp", "hvp", "hessian") if k in program.kinds)
        if program.reverse.seed is not None:
            return ("forward", "vjp", *self.derivatives)
        batch = ("value_and_grad_batch",) if "batch" in program.kinds else ()
        return ("forward", "value_and_grad", "grad", *batch, *self.derivatives)


def emit(program: Program, target: Target) -> Artifact:
    """The module of `program` as `target` prints it."""
    if program.vector is not None:
        return _vector_module(program, program.vector, target)
    if program.reverse is not None:
        return _reverse_module(program, program.reverse, target)
    return _forward_mode_module(program, target)


def with_origin(artifact: Artifact, origin: str) -> Artifact:
    """The same artifact declared elsewhere (a spec file names its functions' origin): only rendered again."""
    header = dataclasses.replace(artifact.header, origin=origin)
    declaration = dataclasses.replace(artifact.declaration, origin=origin)
    return dataclasses.replace(artifact, program=dataclasses.replace(artifact.program, declaration=declaration),
                               source=artifact.rendering(header), header=header)


def _artifact(program: Program, target: Target, module: Module, params: list[str], emitted: Emitted) -> Artifact:
    rendering = functools.partial(_rendered, module)
    return Artifact(program, target, rendering(module.header), params, emitted, tuple(module.helpers), module.header,
                    rendering)


def _rendered(module: Module, header: Header) -> str:
    return render(dataclasses.replace(module, header=header))


def _header(low: Lowered, declaration: Declaration, value: str, names: dict[int, str]) -> Header:
    return Header(declaration.name, declaration.origin, value, [names[n.id] for n in low.wrt])


def _input_checks(declaration: Declaration, low: Lowered, names: dict[int, str], dims: dict) -> list:
    """What check_arguments verifies: a tensor function's sizes, a scalar function's SymPy assumptions."""
    if not declaration.is_tensor:
        return assumption_guards(declaration.name, declaration.inputs, [names[n.id] for n in low.inputs])
    sources = {d: (names[node.id], axis) for d, (node, axis) in low.dim_sources.items()}
    guards = shape_guards(declaration.name, [(names[n.id], n.shape) for n in low.inputs], dims, sources)
    outputs = low.output if isinstance(low.output, list) else [low.output]
    lookups = []  # (ids, the table's name, its number of rows) for each lookup of rows by an input's ids
    for ids, table, rows in _row_lookups(outputs):
        if ids.op == Op.INPUT and ids.id in names:
            lookups.append((names[ids.id], names.get(table.id, "its table"), rows if isinstance(rows, int) else
                            dims[rows]))
    return guards + index_guards(declaration.name, lookups)


def _row_lookups(outputs: list[Node]):
    """(what the ids are a view of, the table, its number of rows) for each lookup of rows (table[ids]) the
    outputs depend on, in a scan's step too, where the ids and the table are read through placeholders: those
    stand for the scan's arguments (its sequences, weights and initial carries)."""
    for node in schedule(outputs):
        if node.op == Op.TAKE_ROWS:
            yield viewed(node.args[1]), node.args[0], node.args[0].shape[0]
        elif node.op == Op.SCAN:
            body = node.attrs[0]
            outside = {p.id: a for p, a in zip(body.carries + body.xs + body.closed, node.args)}
            for inner in body_schedule(body):
                if inner.op == Op.TAKE_ROWS:
                    ids, table = viewed(inner.args[1]), inner.args[0]
                    yield viewed(outside.get(ids.id, ids)), outside.get(table.id, table), table.shape[0]


def _check(declaration: Declaration, params: list[str], checks: list, dim_lines: list[str], target: Target,
           inlined: bool = False) -> dict | None:
    """check_arguments, when there is anything to check. Inlined into a scalar function's loop over points, so
    that the loop stays one body."""
    if not checks:
        return None
    checked = " (their sizes)" if declaration.is_tensor else " (what their symbols assume)"
    return check_context(params, checks, dim_lines, checked, target.decorator(inlined))


def _reverse_module(program: Program, part: Reverse, target: Target) -> Artifact:
    """The module of the value and its gradients: forward, value_and_grad, grad (and the loop over points), or
    forward and vjp for a tensor output; with the forward-mode functions the program also holds."""
    declaration, low = program.declaration, part.lowered
    A, output, forward, grads, seed = low.A, low.output, part.forward, part.backward, part.seed
    bodies = {scan.attrs[0] for scan in part.scans}
    # jvp's and hvp's tangent scans are functions of the module too (a scan no input reaches is the same loop)
    others = [p.forward for p in (program.jvp, program.hvp) if p is not None]
    extra_scans = [n for nodes in others for n in nodes if n.op == Op.SCAN and n.attrs[0] not in bodies]
    loop_functions = name_loops(part.scans + extra_scans, target, [*low.input_names, *low.hints.values()])
    dim_nodes = [A.dim(d) for d in low.dim_sources]
    adjoints = sorted((s.adjoint for s in grads.printed if s.first), key=lambda n: n.args[0].id)
    if seed is not None:
        adjoints.insert(0, seed)  # named first: the parameter `dY` of vjp(..., dY)
    names = assign_names(low.inputs, low.input_names, forward, low.hints, adjoints, dim_nodes,
                         extra=_loop_values(part.scans, grads), reserved=loop_functions)
    params = [names[n.id] for n in low.inputs]
    dims = {d: names[n.id] for d, n in zip(low.dim_sources, dim_nodes)}
    printed = print_program(params, forward, output, grads.printed, grads.gradients, names, target.syntax_of, dims,
                            low.wrt)
    masks = {n.attrs[0]: n.attrs[1] for n in part.gradient_loops}
    loops = [step_functions(A, scan, masks.get(scan.attrs[0]), names, target) for scan in part.scans]
    nodes = all_nodes(forward, [s.term for s in grads.printed]) + [node for loop in loops for node in loop.nodes]
    helpers = target.helpers_used(nodes, also=() if seed is None else ("same_shape",))  # vjp checks its seed
    header = _header(low, declaration, printed.value, names)
    checks = _input_checks(declaration, low, names, dims)
    dim_lines = size_lines(low.dim_sources, names, dims)
    batch = "batch" in program.kinds
    functions = value_contexts(printed, header, target, dims=dim_lines, batch=batch,
                               seed=None if seed is None else names[seed.id], checks=bool(checks),
                               output_shape=format_shape(output.shape))
    derivatives = [k for k in ("jvp", "hvp", "hessian") if k in program.kinds]
    if program.jvp is not None:
        _, function, jvp_helpers, _, jvp_loops = _jvp_function(program.jvp, target, loop_functions)
        functions.append(("jvp", function))
        helpers += jvp_helpers
        loops += _new_loops(loops, jvp_loops)
    if program.hvp is not None:
        _, function, hvp_helpers, _, hvp_loops = _hvp_function(program.hvp, target, loop_functions)
        functions += [(kind, function) for kind in ("hvp", "hessian") if kind in program.kinds]
        helpers += hvp_helpers
        loops += _new_loops(loops, hvp_loops)
    module = Module(header, reverse_docstring(header, printed, None if seed is None else names[seed.id], batch,
                                              derivatives),
                    target, target.with_callees(helpers), functions,
                    _check(declaration, params, checks, dim_lines, target, inlined=batch), loops)
    emitted = Emitted(A, low.inputs, forward, output, seed, grads, names, printed, low.hints,
                      tuple(loop for loop in loops if loop.step is not None and loop.step.scan in part.scans))
    return _artifact(program, target, module, params, emitted)
def _new_loops(loops: list, more: list) -> list:
    """The loops of `more` the module does not print yet (a scan no input reaches is the same loop in every
    function)."""
    printed = {loop.stem for loop in loops}
    return [loop for loop in more if loop.stem not in printed]


def _loop_values(scans: list[Node], grads: Backward) -> list[tuple[Node, str]]:
    """The values of loops that the code names beyond the forward lines: each scan's tape (which the loop's call
    unpacks and the reversed loop reads), and a loop's gradient that adds to an adjoint other lines started."""
    tapes = loop_parts([s.term for s in grads.printed]) if scans else {}
    values = []
    for scan in scans:
        body = scan.attrs[0]
        tape = tapes.get(scan.id, {}).get(body.tape_index)
        if tape is not None:
            values.append((tape, f"{body.function}_tape"))
    for step in grads.printed:
        if step.term.op == Op.PART and step.term.args[0].op == Op.SCAN_BACKWARD and not step.first:
            values.append((step.term, f"{step.term.args[0].attrs[0].function}_gradient"))
    return values


@dataclass(frozen=True)
class _Named:
    """What jvp and hvp share once named: the printed forward program and the texts of sizes and checks."""

    names: dict[int, str]
    params: list[str]
    printed: PrintedProgram
    expr: ExpressionPrinter
    dims: dict  # symbolic size -> the variable holding it
    dim_lines: list[str]  # N = X.shape[0]
    checks: list  # Guards of the inputs (sizes, or what their symbols assume)
    tangent_checks: list[str]  # lines checking the tangents' sizes (tensors)


def _name_tangents(declaration: Declaration, low: Lowered, forward: list[Node], adjoints: list[Node],
                   variables: list[Node], seeds: list[Node], grads: Backward | None, target: Target,
                   scan_tangents: dict[int, Node] | None = None, reserved: set[str] = frozenset(),
                   extra: list[tuple[Node, str]] = ()) -> _Named:
    A = low.A
    dim_nodes = [A.dim(d) for d in low.dim_sources]
    names = assign_names(low.inputs, low.input_names, forward, low.hints, adjoints, dim_nodes, variables,
                         extra=extra, reserved=reserved, scan_tangents=scan_tangents or {})
    params = [names[n.id] for n in low.inputs]
    dims = {d: names[n.id] for d, n in zip(low.dim_sources, dim_nodes)}
    printed = print_program(params, forward, low.output, grads.printed if grads else [],
                            grads.gradients if grads else [], names, target.syntax_of, dims, low.wrt)
    checks = _input_checks(declaration, low, names, dims)
    if not declaration.is_tensor:
        return _Named(names, params, printed, ExpressionPrinter(names, target.syntax_of), dims, [], checks, [])
    sources = {d: (names[node.id], axis) for d, (node, axis) in low.dim_sources.items()}
    tangent_checks = guard_lines(shape_guards(declaration.name, [(names[s.id], w.shape) for s, w in
                                                                 zip(seeds, low.wrt)], dims, sources))
    return _Named(names, params, printed, ExpressionPrinter(names, target.syntax_of, dims), dims,
                  size_lines(low.dim_sources, names, dims), checks, tangent_checks)


def _returned(node: Node, shape: tuple, fresh: FreshReturns, expr: ExpressionPrinter) -> str:
    """A returned tangent: a new array (a copy where it would share a caller's memory), zeros where none flows."""
    if shape and node.shape != shape:
        return f"np.full({expr.shape_text(shape)}, {expr(node)})"
    return fresh.text(node, expr)


def _jvp_function(part: Tangent, target: Target, loop_functions: set[str] | None = None) -> tuple:
    """(named, the jvp function's context, its helpers, emitted, its loops): jvp(*inputs, *tangents) -> (value,
    tangent). A scan is its tangent scan, printed as functions of the module; `loop_functions`: their names when
    the module's other functions named the loops (None: jvp names them)."""
    low, forward, tangents = part.lowered, part.forward, part.tangents
    declaration = low.declaration
    scans = [n for n in forward if n.op == Op.SCAN]
    if loop_functions is None:
        loop_functions = name_loops(scans, target, [*low.input_names, *low.hints.values()])
    variables = tangents.seeds + [s.tangent for s in tangents.steps if s.first]
    named = _name_tangents(declaration, low, forward, [], variables, tangents.seeds, None, target,
                           tangents.scan_tangents, loop_functions)
    names, printed, expr = named.names, named.printed, named.expr
    lines = print_tangents(tangents.steps, names, target.syntax_of, printed.forward, named.dims)
    loops = [step_functions(low.A, scan, None, names, target) for scan in scans]
    helpers = target.helpers_used(all_nodes(forward, [s.term for s in tangents.steps])
                                  + [node for loop in loops for node in loop.nodes])
    output_tangent = _returned(tangents.output_tangent, low.output.shape, FreshReturns(tangents.steps), expr)
    function = jvp_context(printed, lines, target, [names[s.id] for s in tangents.seeds], bool(named.checks),
                           output_tangent, named.dim_lines, named.tangent_checks)
    emitted = Emitted(low.A, low.inputs, forward, low.output, None, Backward([], []), names, printed, low.hints)
    return named, function, helpers, emitted, loops


def _hvp_function(part: SecondOrderProgram, target: Target, loop_functions: set[str] | None = None) -> tuple:
    """(named, the hvp function's context, its helpers, emitted, its loops): hvp(*inputs, *vectors) -> (value,
    gradients, Hessian times the vectors), the backward pass followed by its tangent lines; with a scalar
    function's Hessian columns, the lines of each. `loop_functions` as for jvp."""
    low, forward, grads, second = part.lowered, part.forward, part.backward, part.second
    declaration = low.declaration
    adjoints = sorted((s.adjoint for s in grads.printed if s.first), key=lambda n: n.args[0].id)
    variables = second.forward.seeds + [s.tangent for s in second.forward.steps if s.first] \
        + [s.tangent for s in second.steps if s.first]
    for column in part.columns:  # a column's tangents are the hvp's, but a column may use one hvp does not
        variables += [s.tangent for s in column.forward.steps + column.steps if s.first and s.tangent not in variables]
    terms = [s.term for s in grads.printed] + [s.term for s in second.forward.steps + second.steps]
    terms += [s.term for column in part.columns for s in column.forward.steps + column.steps]
    # through loops, hvp is the reverse pass of jvp's program (bpgen/program/build.py): its scans are tangent
    # scans, reversed like any scan
    scans = [n for n in forward if n.op == Op.SCAN]
    if loop_functions is None:
        loop_functions = name_loops(scans, target, [*low.input_names, *low.hints.values()])
    named = _name_tangents(declaration, low, forward, adjoints, variables, second.forward.seeds, grads, target,
                           second.forward.scan_tangents, loop_functions, _loop_values(scans, grads))
    names, printed, expr = named.names, named.printed, named.expr
    lines = _second_order_lines(second, named, target)
    masks = {n.attrs[0]: n.attrs[1] for n in all_nodes(forward, terms) if n.op == Op.SCAN_BACKWARD}
    loops = [step_functions(low.A, scan, masks.get(scan.attrs[0]), names, target) for scan in scans]
    helpers = target.helpers_used(all_nodes(forward, terms) + [node for loop in loops for node in loop.nodes])
    header = _header(low, declaration, printed.value, names)
    # H v is a tangent, or, through loops, an adjoint of the reverse pass
    fresh = FreshReturns(second.forward.steps + second.steps + (grads.printed if scans else []))
    hv = [_returned(h, w.shape, fresh, expr) for h, w in zip(second.hv, low.wrt)]
    columns = [(_second_order_lines(column, named, target), [expr(h) for h in column.hv]) for column in part.columns]
    function = hvp_context(printed, lines, header, target, [names[s.id] for s in second.forward.seeds],
                           bool(named.checks), hv, named.dim_lines, named.tangent_checks,
                           [w.shape for w in low.wrt] if declaration.is_tensor else None, columns,
                           set(names.values()), _through_loops(second, names) if scans else
                           "forward mode over the reverse pass")
    emitted = Emitted(low.A, low.inputs, forward, low.output, None, grads, names, printed, low.hints)
    return named, function, helpers, emitted, loops


def _through_loops(second, names: dict[int, str]) -> str:
    """What the docstring of an hvp through loops says of its method (bpgen/program/build.py)."""
    tangents = ", ".join(names[s.id] for s in second.forward.seeds)
    return (f"the reverse pass over forward mode: the gradient of the derivative along ({tangents}) is the Hessian "
            "times them along the inputs, and the gradient itself along the tangents")


def _second_order_lines(second, named: _Named, target: Target) -> list[Statement]:
    """The tangent lines of the forward lines, then of the backward lines, each citing the line it
    differentiates."""
    names, printed, expr = named.names, named.printed, named.expr
    lines = print_tangents(second.forward.steps, names, target.syntax_of, printed.forward, named.dims)
    for step, index in zip(second.steps, second.lines):  # each cites the backward line it differentiates
        line = printed.backward[index]
        lines.append(Statement(names[step.tangent.id], expr(step.term, ADD + 1 if not step.first else COND),
                               step.target, accumulate=not step.first, comment=f"# {line.code}", step=step))
    return lines


def _forward_mode_module(program: Program, target: Target) -> Artifact:
    """A module of the forward-mode functions alone: jvp, or hvp (and hessian)."""
    declaration = program.declaration
    loops = []
    if program.jvp is not None:
        named, function, helpers, emitted, loops = _jvp_function(program.jvp, target)
        functions = [("jvp", function)]
        header = _header(program.jvp.lowered, declaration, named.printed.value, named.names)
        docstring = jvp_docstring(header, named.params, function["tangent_params"])
    else:
        named, function, helpers, emitted, loops = _hvp_function(program.hvp, target)
        functions = [(kind, function) for kind in ("hvp", "hessian") if kind in program.kinds]
        header = _header(program.hvp.lowered, declaration, named.printed.value, named.names)
        docstring = hvp_docstring(header, named.params, function["tangent_params"], "hessian" in program.kinds)
    module = Module(header, docstring, target, helpers, functions,
                    _check(declaration, named.params, named.checks, named.dim_lines, target), loops)
    return _artifact(program, target, module, named.params, emitted)


def _vector_module(program: Program, part: VectorProgram, target: Target) -> Artifact:
    """A vector of scalar outputs: forward -> their array; jvp -> (values, tangents); vjp(*inputs, *seeds) ->
    (values, gradients of sum(seed * values)), one seed parameter per output, named as its adjoint."""
    declaration, low = program.declaration, part.lowered
    outputs, forward, grads, tangents, seeds = low.output, part.forward, part.backward, part.tangents, part.seeds
    adjoints = seeds + sorted((s.adjoint for s in grads.printed if s.first), key=lambda n: n.args[0].id)
    variables = tangents.seeds + [s.tangent for s in tangents.steps if s.first]
    names = assign_names(low.inputs, low.input_names, forward, low.hints, adjoints, (), variables)
    params = [names[n.id] for n in low.inputs]
    printed = print_program(params, forward, outputs[0], grads.printed, grads.gradients, names, target.syntax_of)
    expr = ExpressionPrinter(names, target.syntax_of)
    values = "np.array([" + ", ".join(expr(o) for o in outputs) + "])"
    printed.returned_value = values  # what vjp returns with the gradients (bpgen show --backward-only)
    lines = print_tangents(tangents.steps, names, target.syntax_of, printed.forward)
    helpers = target.helpers_used(all_nodes(forward, [s.term for s in grads.printed + tangents.steps]))
    header = Header(declaration.name, declaration.origin, values, [names[n.id] for n in low.wrt])
    checks = assumption_guards(declaration.name, declaration.inputs, params)
    tangent_params, seed_params = [names[s.id] for s in tangents.seeds], [names[s.id] for s in seeds]
    jvp = jvp_context(printed, lines, target, tangent_params, bool(checks),
                      "np.array([" + ", ".join(expr(t) for t in tangents.output_tangents) + "])")
    functions = value_contexts(printed, header, target, dims=[], batch=False, seed=None, checks=bool(checks),
                               output_shape="()")[:2]  # forward, and the reverse pass as vjp
    functions[0][1]["returned"] = values
    functions[1][1].update(function="vjp", extra_params=seed_params, decorator=target.decorator())
    functions.insert(1, ("jvp", jvp))
    module = Module(header, vector_docstring(header, params, tangent_params, seed_params, printed.gradients),
                    target, helpers, functions, _check(declaration, params, checks, [], target))
    emitted = Emitted(low.A, low.inputs, forward, outputs[0], None, grads, names, printed, low.hints)
    return _artifact(program, target, module, params, emitted)
