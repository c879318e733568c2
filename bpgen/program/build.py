"""The pipeline's one path: `build(declaration, kinds)` lowers a declaration to the IR and derives every kind of
function it asks for, as a target-independent `Program`. A target prints it (bpgen/targets/python/emit.py).

lower -> fuse -> schedule -> reverse / forward / forward over reverse
"""

from __future__ import annotations

import functools
import gc
import os
import sys

from ..errors import BpgenError
from ..frontend.declaration import Declaration
from ..frontend.lower import Lowerer
from ..frontend.names import TANGENT_PREFIX
from ..frontend.tensor import ALGEBRA as TENSOR_ALGEBRA
from ..ir.graph import NO_RULE_OPS, VIEW_OPS, Graph, Node, depends_on, format_program, schedule
from ..ir.ops import Op
from ..ir.shapes import format_shape, size_sources
from ..rules.algebra import Algebra
from ..transforms.chunk import chunk_declaration
from ..transforms.forward import (
    Forward,
    SecondOrder,
    forward_mode,
    forward_over_reverse,
    hessian_columns,
    tangent_expression,
    tangent_of,
)
from ..transforms.fuse import fuse
from ..transforms.reverse import Backward, backward, output_seeds
from ..transforms.scan import tangent_scans
from .program import DERIVATIVES, KINDS, Lowered, Program, Reverse, SecondOrderProgram, Tangent, VectorProgram


def default_kinds(declaration: Declaration) -> tuple[str, ...]:
    """What a declaration's module holds unless asked otherwise: the value and its gradients (a scalar SymPy
    function also loops over points); a vector of outputs, forward mode and the jacobian as well."""
    if declaration.is_vector:
        return ("value", "jvp", "vjp", "jacobian")
    if declaration.is_tensor:
        return ("value", "vjp")
    return ("value", "vjp", "batch")


def kinds_with(declaration: Declaration, derivatives: tuple[str, ...]) -> tuple[str, ...]:
    """The default kinds and the forward-mode `derivatives` (jvp, hvp, hessian: hessian brings hvp along)."""
    unknown = [d for d in derivatives if d not in DERIVATIVES]
    if unknown:
        raise BpgenError(f"unknown derivative {unknown[0]!r}: choose from {', '.join(DERIVATIVES)}")
    if declaration.is_vector and derivatives:
        raise BpgenError(f"{declaration.name}: a vector of outputs has jvp, vjp and jacobian; "
                         f"{', '.join(derivatives)} are for a scalar output")
    extra = [d for d in DERIVATIVES if d in derivatives or (d == "hvp" and "hessian" in derivatives)]
    return (*default_kinds(declaration), *extra)


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
def build(declaration: Declaration, kinds: tuple[str, ...] | None = None, batch: list[int] | None = None) -> Program:
    """The program of a declaration: each kind of function in `kinds` (default: `default_kinds`), derived. The
    kind "chunk" is the declaration rebuilt on one chunk of the rows of the inputs at positions `batch`, with
    its value and gradients (what a cluster's workers run, bpgen/transforms/chunk.py)."""
    if kinds is not None and "chunk" in kinds:
        declaration = chunk_declaration(declaration, list(batch or ()))
        kinds = None
    kinds = default_kinds(declaration) if kinds is None else tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise BpgenError(f"unknown kind of function {unknown[0]!r}: choose from {', '.join(KINDS)}")
    if declaration.is_vector:
        return Program(declaration, kinds, vector=_vector(declaration))
    # each kind is derived from a lowering of its own: the order in which nodes are made decides the order of
    # lines and the fallback names, so each function reads as if it were alone in its module
    reverse = _reverse(declaration) if {"value", "vjp", "batch"} & set(kinds) else None
    jvp = _tangent(declaration) if "jvp" in kinds else None
    hvp = _second_order(declaration, "hessian" in kinds) if {"hvp", "hessian"} & set(kinds) else None
    return Program(declaration, kinds, reverse=reverse, jvp=jvp, hvp=hvp)


def lower(declaration: Declaration) -> Lowered:
    """A declaration as IR. A SymPy declaration gets a graph of its own; tensors live in the tensor graph."""
    if declaration.is_tensor:
        inputs = [t.node for t in declaration.inputs]
        hints = dict(reversed(declaration.hints))  # the first name wins
        output = declaration.output
        if not declaration.is_vector:
            output, hints = fuse(TENSOR_ALGEBRA, output, hints)
        return Lowered(declaration, TENSOR_ALGEBRA, inputs, [t.name for t in declaration.inputs], output,
                       [t.node for t in declaration.wrt], hints, size_sources(inputs))
    graph = Graph()
    A = Algebra(graph)
    inputs = [graph.input(i, s) for i, s in enumerate(declaration.inputs)]
    lowerer = Lowerer(A, dict(zip(declaration.inputs, inputs)), named=(e for e, _ in declaration.hints))
    output = [lowerer.lower(e) for e in declaration.output] if declaration.is_vector \
        else lowerer.lower(declaration.output)
    hints: dict[int, str] = {}
    for expr, hint in declaration.hints:
        node = lowerer.memo.get(expr)
        if node is not None and node.id not in hints:
            hints[node.id] = hint
    wrt = [inputs[declaration.inputs.index(w)] for w in declaration.wrt]
    return Lowered(declaration, A, inputs, [s.name for s in declaration.inputs], output, wrt, hints)


def _reverse(declaration: Declaration) -> Reverse:
    low = lower(declaration)
    A, output = low.A, low.output
    low.hints.setdefault(output.id, declaration.name)
    forward = schedule([output])
    _dump("forward schedule (after lowering, CSE, folding, DCE)", format_program(forward))
    # a tensor output is differentiated along a seed, the output's adjoint, passed in by the caller of vjp
    seed = A.graph.node(Op.ADJ, (output,), shape=output.shape) if output.is_tensor else None
    named = frozenset(i for i in low.hints if i != output.id)  # the output's adjoint, 1, stays folded
    grads = backward(forward, output, low.wrt, A, seed, named)
    _dump("backward steps (target <- term)",
          "\n".join(f"%{s.target.id} {'=' if s.first else '+='} {s.term!r}" for s in grads.printed))
    computed = all_nodes(forward, [s.term for s in grads.printed])  # every node the code computes or inlines
    for n in computed:
        if n.op == Op.DIM and n.attrs[0] not in low.dim_sources:
            raise BpgenError(f"size {n.attrs[0]} is not the size of any input tensor")
    return Reverse(low, forward, seed, grads, [n for n in forward if n.op == Op.SCAN],
                   [n for n in computed if n.op == Op.SCAN_BACKWARD])


def _tangent(declaration: Declaration) -> Tangent:
    low = lower(declaration)
    low.hints.setdefault(low.output.id, declaration.name)
    forward = schedule([low.output])
    scan_tangents = _with_tangent_scans(low, forward)  # a loop runs once, carrying its tangents beside its values
    if scan_tangents:
        forward = schedule([low.output, *scan_tangents.values()])
    return Tangent(low, forward, forward_mode(forward, low.output, low.wrt, low.A, scan_tangents=scan_tangents))


def _with_tangent_scans(low: Lowered, forward: list[Node]) -> dict[int, Node]:
    """Each scan the wrt inputs reach replaced by its tangent scan (bpgen/transforms/scan.py), `low`'s output and
    hints following the nodes made again: the tangent scans' primal results -> their tangents."""
    made, scan_tangents = tangent_scans(low.A, forward, low.wrt)
    low.output = made.get(low.output.id, low.output)
    low.hints = {made[i].id if i in made else i: name for i, name in low.hints.items()}
    return scan_tangents


def _second_order(declaration: Declaration, hessian: bool = False) -> SecondOrderProgram:
    low = lower(declaration)
    A, output = low.A, low.output
    if output.is_tensor:
        raise BpgenError(f"{declaration.name}: hvp is for a scalar output, and this one has shape "
                         f"{format_shape(output.shape)}")
    low.hints.setdefault(output.id, declaration.name)
    forward = schedule([output])
    if any(n.op == Op.SCAN for n in forward):
        return _second_order_through_loops(low, forward)
    grads = backward(forward, output, low.wrt, A, None, frozenset(i for i in low.hints if i != output.id))
    second = forward_over_reverse(forward, output, low.wrt, grads, A)
    # a scalar function's Hessian column by column, from constant seeds (a tensor's, in blocks, calls hvp)
    columns = tuple(hessian_columns(forward, output, low.wrt, grads, A)) if hessian and not output.shape \
        and not declaration.is_tensor else ()
    terms = [s.term for s in grads.printed] + [s.term for s in second.forward.steps + second.steps]
    forward = schedule([output, *_shared_by_lines(forward, terms)])
    return SecondOrderProgram(low, forward, grads, second, columns)


def _second_order_through_loops(low: Lowered, forward: list[Node]) -> SecondOrderProgram:
    """hvp through loops, as the reverse pass of forward mode: H v is the gradient of the directional derivative
    t = grad(f) . v, which jvp's program computes with one tangent scan per loop, and the gradient of t with
    respect to v is grad(f). One reverse pass over jvp's program gives both; it reverses the tangent scans as it
    reverses any scan (checkpointing included), their reversed steps holding the second-order lines."""
    A = low.A
    scan_tangents = _with_tangent_scans(low, forward)
    output, hints = low.output, low.hints
    seeds = [tangent_of(A, w) for w in low.wrt]
    memo: dict[int, Node] = {}
    directional = tangent_expression(A, output, {**{w.id: s for w, s in zip(low.wrt, seeds)}, **scan_tangents},
                                     memo)
    for node_id, name in list(hints.items()):  # the tangent lines read as forward mode's: `th` beside `h`
        t = memo.get(node_id)
        if t is not None and not t.is_const and t.op != Op.TANGENT and t.id not in hints:
            hints[t.id] = TANGENT_PREFIX + name
    both = schedule([output, directional])
    full = backward(both, directional, [*low.wrt, *seeds], A, None, frozenset(hints) - {output.id})
    count = len(low.wrt)
    second = SecondOrder(Forward([], seeds, [directional], scan_tangents), [], [], full.gradients[:count])
    # the lines print the value and what the backward lines read; not the directional derivative itself
    scheduled = {n.id for n in both}
    read = [n for n in schedule([s.term for s in full.printed]) if n.id in scheduled and n is not directional]
    return SecondOrderProgram(low, schedule([output, *read]), Backward(full.steps, full.gradients[count:]), second)


def _vector(declaration: Declaration) -> VectorProgram:
    """A vector of scalar outputs: forward -> their array; jvp -> (values, tangents); vjp(*inputs, *seeds) ->
    (values, gradients of sum(seed * values)), one seed parameter per output."""
    low = lower(declaration)
    A, outputs = low.A, low.output
    for k, o in enumerate(outputs):
        low.hints.setdefault(o.id, f"{declaration.name}{k}")
    forward = schedule(outputs)
    if any(n.op == Op.SCAN for n in forward):  # its module holds jvp, and forward mode has no loops yet
        raise BpgenError(f"{declaration.name}: a vector of outputs through bpgen.scan is not available yet: "
                         "return one output (value_and_grad), or declare the outputs as one tensor (vjp)")
    seeds, by_output = output_seeds(A, outputs)
    grads = backward(forward, outputs[0], low.wrt, A, None, frozenset(low.hints), by_output)
    return VectorProgram(low, forward, seeds, grads, forward_mode(forward, outputs, low.wrt, A))


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


def all_nodes(forward: list[Node], terms: list[Node]) -> list[Node]:
    """Every node the forward schedule and the terms compute or read."""
    return schedule([*forward, *terms])


def _dump(title: str, text: str) -> None:
    """With BPGEN_DUMP=1, show the program after each pass (for debugging bpgen itself)."""
    if os.environ.get("BPGEN_DUMP"):
        print(f"--- {title}\n{text}", file=sys.stderr)
