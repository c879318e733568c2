"""The functions of a module's loops: each scan's step (its forward and its staged backward, named after the
user's step and written with its local names) and the two loops that call them (bpgen/core/scan.py).

`rnn_step(h, x, W, U)` returns the new carries and the ys; `rnn_step_backward(h, x, W, U, dh_new, dy)` runs
the step again and its backward lines, returning the gradients of the carries, of the slices and of the
weights the reverse pass wants; `rnn_step_scan` is the forward loop, which stores the carries on the tape,
and `rnn_step_scan_backward` the reversed loop, which adds up the weights' gradients with `+=`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.algebra import Algebra
from ..core.ir import Node
from ..core.ops import Op
from ..core.reverse import backward
from ..core.rules import RUNTIME_NAMES, syntax_of
from ..core.scan import ScanBody, body_schedule
from .naming import Namespace, assign_names
from .printer import ExpressionPrinter, print_program
from .render import backward_lines

MODULE_FUNCTIONS = frozenset({"forward", "value_and_grad", "grad", "value_and_grad_batch", "vjp", "jvp", "hvp",
                              "hessian", "check_arguments"})


def name_loops(scans: list[Node]) -> None:
    """Give each scan's body a stem for its functions, unique in the module (a step named `forward` would
    clash with the module's own)."""
    namespace = Namespace()
    namespace.taken.update(MODULE_FUNCTIONS | RUNTIME_NAMES)
    for scan in scans:
        body: ScanBody = scan.attrs[0]
        stem = body.name if body.name.isidentifier() and body.name != "<lambda>" else "step"
        while True:
            stem = namespace.claim(stem)
            if not {f"{stem}{suffix}" for suffix in ("_backward", "_scan", "_scan_backward")} & namespace.taken:
                break
        namespace.taken.update(f"{stem}{suffix}" for suffix in ("_backward", "_scan", "_scan_backward"))
        body.function = stem


@dataclass
class StepFunctions:
    """The printed parts of one scan's functions, for templates/loops.j2."""

    stem: str
    params: list[str]  # the step's: carries, slices, weights
    dims: list[str]  # N = h.shape[0]: the sizes the step's lines use
    forward: list[str]
    returned: list[str]  # the new carries, then the ys
    backward_params: list[str]  # params, then the seeds of the carries and the ys
    backward_dims: list[str]
    backward: list[str]
    gradients: list[str]  # of the carries, then of the wanted slices and weights
    loop: dict  # the loops' local names and lines
    nodes: list[Node]  # every node the step's functions compute (for the helpers they call)


def step_functions(A: Algebra, scan: Node, mask: tuple[bool, ...] | None, outer: dict[int, str]) -> StepFunctions:
    """Print the step of `scan` and its backward for the arguments `mask` wants (None: no backward)."""
    body: ScanBody = scan.attrs[0]
    forward = body_schedule(body)
    inputs = list(body.placeholders) + list(body.closed)
    outer_closed = scan.args[len(body.placeholders):]  # the values the closed placeholders stand for
    input_names = list(body.param_names) + [outer[c.id] for c in outer_closed]
    dim_sources = _dim_sources(inputs)
    dim_nodes = [A.dim(d) for d in dim_sources]
    names = assign_names(inputs, input_names, forward, dict(body.hints), [], dim_nodes)
    dims = {d: names[n.id] for d, n in zip(dim_sources, dim_nodes)}
    params = [names[n.id] for n in inputs]
    program = print_program(params, forward, body.outputs[0], [], [], names, syntax_of, dims)
    expr = ExpressionPrinter(names, syntax_of, dims)
    returned = [expr(o) for o in body.outputs]
    dim_lines = {d: f"{dims[d]} = {names[node.id]}.shape[{axis}]" for d, (node, axis) in dim_sources.items()}
    forward_lines = [s.code for s in program.forward]
    functions = StepFunctions(body.function, params, _used(dim_lines, forward_lines + returned), forward_lines,
                              returned, [], [], [], [], {}, list(forward))
    if mask is not None:
        _step_backward(A, body, mask, forward, inputs, input_names, dim_sources, functions)
    functions.loop = _loop_names(body, scan, mask, outer)
    return functions


def _step_backward(A: Algebra, body: ScanBody, mask, forward, inputs, input_names, dim_sources,
                   functions: StepFunctions) -> None:
    outputs = list(body.outputs)
    seeds = [A.graph.node(Op.ADJ, (o,), ("seed", k), shape=o.shape) for k, o in enumerate(outputs)]
    by_output: dict[int, Node] = {}
    for o, s in zip(outputs, seeds):
        by_output[o.id] = A.add(by_output[o.id], s) if o.id in by_output else s
    carries = len(body.carries)
    rest = list(body.xs) + list(body.closed)
    wrt = list(body.carries) + [node for node, wanted in zip(rest, mask[carries:]) if wanted]
    grads = backward(forward, outputs[0], wrt, A, None, frozenset(body.hints), by_output)
    adjoints = seeds + sorted((s.adjoint for s in grads.printed if s.first), key=lambda n: n.args[0].id)
    dim_nodes = [A.dim(d) for d in dim_sources]
    names = assign_names(inputs, input_names, forward, dict(body.hints), adjoints, dim_nodes)
    dims = {d: names[n.id] for d, n in zip(dim_sources, dim_nodes)}
    params = [names[n.id] for n in inputs]
    program = print_program(params, forward, outputs[0], grads.printed, grads.gradients, names, syntax_of, dims,
                            wrt)
    dim_lines = {d: f"{dims[d]} = {names[node.id]}.shape[{axis}]" for d, (node, axis) in dim_sources.items()}
    lines = backward_lines(program)
    functions.backward_params = params + [names[s.id] for s in seeds]
    functions.backward = [s.code for s in program.forward] + lines
    functions.gradients = program.gradients
    functions.backward_dims = _used(dim_lines, functions.backward + program.gradients)
    functions.nodes += [s.term for s in grads.printed]


def _loop_names(body: ScanBody, scan: Node, mask, outer: dict[int, str]) -> dict:
    """The loops' parameters and locals, clear of each other: the running carries take the step's names."""
    namespace = Namespace()
    carries = [namespace.claim(n) for n in body.param_names[:len(body.carries)]]
    inits = [namespace.claim(f"{n}_init") for n in body.param_names[:len(body.carries)]]
    slice_names = body.param_names[len(body.carries):]
    seqs = [namespace.claim(f"{n}s") for n in slice_names]
    closed = [namespace.claim(outer[c.id]) for c in scan.args[len(body.placeholders):]]
    tapes = [namespace.claim(f"tape_{c}") for c in carries]
    ys = [namespace.claim(f"y{k}") for k in range(len(body.ys))]
    stacks = [namespace.claim(f"ys{k}") for k in range(len(body.ys))]
    local = {key: namespace.claim(key) for key in ("steps", "t", "s", "start", "stop")}
    scalar = [not c.shape for c in body.carries]
    y_scalar = [not y.shape for y in body.ys]
    k = body.checkpoint or 1
    steps = f"{seqs[0]}.shape[0]" if seqs else str(body.length)
    loop = {"carries": carries, "inits": inits, "seqs": seqs, "closed": closed, "tapes": tapes, "ys": ys,
            "stacks": stacks, "scalar": scalar, "y_scalar": y_scalar, "k": k, "steps_value": steps, **local,
            "params": inits + seqs + closed, "slices": [f"{s}[{local['t']}]" for s in seqs],
            "first_slices": [f"{s}[0]" for s in seqs],
            "tape_length": local["steps"] if k == 1 else f"({local['steps']} - 1) // {k} + 1"}
    if mask is not None:
        count = len(body.carries)
        wanted_init = list(mask[:count])
        wanted_seqs = list(mask[count:count + len(seqs)])
        wanted_closed = list(mask[count + len(seqs):])
        grads = {"carries": [namespace.claim(f"d{c}") for c in carries],
                 "finals": [namespace.claim(f"d{c}_final") for c in carries],
                 "stacks": [namespace.claim(f"d{s}") for s in stacks],
                 "seqs": [namespace.claim(f"d{s}") for s in seqs],
                 "slices": [namespace.claim(f"d{s}") for s in slice_names],
                 "closed": [namespace.claim(f"d{c}") for c in closed],
                 "closed_step": [namespace.claim(f"d{c}_step") for c in closed],
                 "segments": [namespace.claim(f"segment_{c}") for c in carries],
                 "next": [namespace.claim(f"{c}_next") for c in carries],
                 "unused": [namespace.claim(f"y{k}_unused") for k in range(len(body.ys))]}
        loop["backward_params"] = loop["params"] + tapes + grads["finals"] + grads["stacks"]
        loop["grads"] = grads
        loop["wanted_init"] = wanted_init
        loop["wanted_seqs"] = wanted_seqs
        loop["wanted_closed"] = wanted_closed
        loop["closed_scalar"] = [not c.shape for c in body.closed]
        # what the step's backward returns, in order: every carry's gradient, then the wanted slices and weights
        loop["step_results"] = grads["carries"] + [d for d, w in zip(grads["slices"], wanted_seqs) if w] \
            + [d for d, w in zip(grads["closed_step"], wanted_closed) if w]
        loop["returned"] = [d for d, w in zip(grads["carries"], wanted_init) if w] \
            + [d for d, w in zip(grads["seqs"], wanted_seqs) if w] \
            + [d for d, w in zip(grads["closed"], wanted_closed) if w]
    return loop


def _dim_sources(inputs: list[Node]) -> dict:
    sources: dict = {}
    for node in inputs:
        for axis, d in enumerate(node.shape):
            if not isinstance(d, int) and d not in sources:
                sources[d] = (node, axis)
    return sources


def _used(dim_lines: dict, code: list[str]) -> list[str]:
    import re

    text = "\n".join(code)
    return [line for line in dim_lines.values() if re.search(rf"\b{re.escape(line.split(' = ')[0])}\b", text)]
