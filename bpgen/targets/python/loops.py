"""The functions of a module's loops: each scan's step (its forward and its staged backward, named after the
user's step and written with its local names) and the two loops that call them (bpgen/ir/loops.py).

`rnn_step(h, x, W, U)` returns the new carries, the ys and the values of its lines its backward reads (the
residuals); `rnn_step_backward(h, x, W, U, h_new, dh_new, dy)` holds the backward lines alone, returning the
gradients of the carries, of the slices and of the weights the reverse pass wants; `rnn_step_scan` is the
forward loop, which stores the carries and the residuals on the tape, and `rnn_step_scan_backward` the
reversed loop, which adds up the weights' gradients with `+=`. All four are inlined into their callers,
but for a call of 30 or more arguments. A tangent scan (jvp) prints its step as the user's lines followed by
forward mode's tangent lines (`rnn_step_jvp`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...frontend.names import sanitize
from ...ir.graph import Node
from ...ir.loops import ScanBody, body_schedule
from ...ir.shapes import size_sources
from ...rules.algebra import Algebra
from ...transforms.forward import forward_mode
from ...transforms.reverse import Backward
from ...transforms.step import CheckpointPlan, checkpoint_plan, residuals_of, step_gradient
from .layout import INDENT, aligned, docstring, wrap
from .naming import Namespace, assign_names
from .printer import ExpressionPrinter, PrintedProgram, print_program, print_tangents
from .render import backward_lines, size_lines, used_size_lines, wrapped
from .target import Target

MODULE_FUNCTIONS = frozenset({"forward", "value_and_grad", "grad", "value_and_grad_batch", "vjp", "jvp", "hvp",
                              "hessian", "check_arguments"})


LOOP_SUFFIXES = ("", "_backward", "_scan", "_scan_backward")  # a scan's functions: step, its backward, the loops
# CPython passes 30 or more arguments of one call as a tuple (CALL_FUNCTION_EX), which Numba cannot inline: a
# function called with that many is compiled on its own instead
MAX_INLINED_ARGUMENTS = 29


def name_loops(scans: list[Node], target: Target, user_names: list[str]) -> set[str]:
    """Give each scan's body a stem for its functions, unique in the module and clear of every name the module's
    functions use (a step named `forward` would clash with the module's own, one named `h` with its carry, one
    named like an input with that input): the set of the loops' function names."""
    namespace = Namespace()
    namespace.taken.update(MODULE_FUNCTIONS | target.runtime_names)
    namespace.taken.update(sanitize(name) for name in user_names)
    for scan in scans:
        namespace.taken.update(sanitize(name) for name in scan.attrs[0].param_names)
    functions: set[str] = set()
    for scan in scans:
        body: ScanBody = scan.attrs[0]
        stem = body.name if body.name.isidentifier() and body.name != "<lambda>" else "step"
        while True:
            stem = namespace.claim(stem)
            if not {f"{stem}{suffix}" for suffix in LOOP_SUFFIXES[1:]} & namespace.taken:
                break
        namespace.taken.update(f"{stem}{suffix}" for suffix in LOOP_SUFFIXES)
        functions.update(f"{stem}{suffix}" for suffix in LOOP_SUFFIXES)
        body.function = stem
    return functions


@dataclass(frozen=True)
class StepProgram:
    """What a picture of one step needs (bpgen/api/draw.py): its nodes, their names, its printed lines, its
    reverse pass (None without one) and the adjoints of its outputs (its backward's seed parameters)."""

    scan: Node
    forward: list[Node]
    names: dict[int, str]
    printed: PrintedProgram
    backward: Backward | None
    seeds: list[Node]


@dataclass
class StepFunctions:
    """The printed parts of one scan's functions, for templates/loops.j2."""

    stem: str
    params: list[str]  # the step's: carries, slices, weights
    dims: list[str]  # N = h.shape[0]: the sizes the step's lines use
    forward: list[str]
    returned: list[str]  # the new carries, the ys, then the residuals (what the backward reads)
    backward_params: list[str]  # params, the residuals, then the seeds of the carries and the ys
    backward_dims: list[str]
    backward: list[str]
    gradients: list[str]  # of the carries, then of the wanted slices and weights
    loop: dict  # the loops' local names and lines
    nodes: list[Node]  # every node the step's functions compute (for the helpers they call)
    doc: str = "One step: the new carries, the ys."
    inline: dict = field(default_factory=dict)  # step, backward, scan, scan_backward -> inlined into its caller
    step: StepProgram | None = None  # for the pictures


def _inlined(functions: StepFunctions) -> dict[str, bool]:
    """Which of the scan's functions are inlined into their callers: those whose calls are short enough."""
    L = functions.loop
    counts = {"step": len(functions.params), "backward": len(functions.backward_params),
              "scan": len(L["params"]),
              "scan_backward": len(L["params"]) + 1 + len(L.get("grads", {}).get("finals", []))
              + len(L.get("grads", {}).get("stacks", []))}
    return {kind: count <= MAX_INLINED_ARGUMENTS for kind, count in counts.items()}


def step_functions(A: Algebra, scan: Node, mask: tuple[bool, ...] | None, outer: dict[int, str],
                   target: Target) -> StepFunctions:
    """Print the step of `scan` and its backward for the arguments `mask` wants (None: no backward). The step
    also returns the values of its own lines that the backward reads (the residuals), which the forward loop
    stores, so that the backward does not compute them again."""
    body: ScanBody = scan.attrs[0]
    forward = body_schedule(body)
    inputs = list(body.placeholders) + list(body.closed)
    outer_closed = scan.args[len(body.placeholders):]  # the values the closed placeholders stand for
    input_names = list(body.param_names) + [outer[c.id] for c in outer_closed]
    dim_sources = size_sources(inputs)
    dim_nodes = [A.dim(d) for d in dim_sources]
    if body.primal is not None and mask is None:
        return _tangent_step_functions(A, scan, inputs, input_names, dim_sources, dim_nodes, outer, target)
    grads, seeds, wrt = step_gradient(A, body, mask, forward) if mask is not None else (None, [], [])
    adjoints = [] if grads is None else \
        seeds + sorted((s.adjoint for s in grads.printed if s.first), key=lambda n: n.args[0].id)
    names = assign_names(inputs, input_names, forward, dict(body.hints), adjoints, dim_nodes)
    dims = {d: names[n.id] for d, n in zip(dim_sources, dim_nodes)}
    params = [names[n.id] for n in inputs]
    program = print_program(params, forward, body.outputs[0], [] if grads is None else grads.printed,
                            [] if grads is None else grads.gradients, names, target.syntax_of, dims, wrt)
    expr = ExpressionPrinter(names, target.syntax_of, dims)
    residuals = [] if grads is None else residuals_of(forward, [s.term for s in grads.printed])
    outputs = {o.id for o in body.outputs}
    # a residual that is also a new carry or a y (a tanh's output) is returned once: the loop saves its result
    returned = [expr(o) for o in body.outputs] + [names[r.id] for r in residuals if r.id not in outputs]
    dim_lines = size_lines(dim_sources, names, dims)
    forward_lines = [s.code for s in program.forward]
    functions = StepFunctions(body.function, params, used_size_lines(dim_lines, forward_lines + returned),
                              wrapped(forward_lines), returned, [], [], [], [], {}, list(forward),
                              "One step: the new carries, the ys"
                              + (", and the values its backward reads." if residuals else "."))
    if grads is not None:
        lines = backward_lines(program)
        functions.backward_params = params + [names[r.id] for r in residuals] + [names[s.id] for s in seeds]
        functions.backward = lines
        functions.gradients = program.gradients
        functions.backward_dims = used_size_lines(dim_lines, lines + program.gradients)
        functions.nodes += [s.term for s in grads.printed]
    functions.step = StepProgram(scan, list(forward), names, program, grads, seeds)
    functions.loop = _loop_names(body, scan, mask, outer, residuals, names)
    plan = checkpoint_plan(body)
    functions.loop["forward_lines"] = forward_loop(functions.loop, plan, body.function)
    # no reversed loop when no gradient flows through the scan (a preprocessing scan over the data)
    functions.loop["backward_lines"] = [] if mask is None else backward_loop(functions.loop, plan, body.function)
    functions.inline = _inlined(functions)
    return functions


def _tangent_step_functions(A: Algebra, scan: Node, inputs: list[Node], input_names: list[str], dim_sources,
                            dim_nodes: list[Node], outer: dict[int, str], target: Target) -> StepFunctions:
    """A tangent scan's step (`rnn_step_jvp`), printed as the user's step followed by its tangent lines in forward
    mode's staged style (`ta = matmul(tx, W)`, `ta += ...`), returning the new carries, the tangents of those
    that have one, the ys, then the tangents of theirs, as its loop unpacks them."""
    body: ScanBody = scan.attrs[0]
    primal = body.primal
    forward = body_schedule(primal)
    wrt, seeds = [p for p, _ in body.tangent_params], [t for _, t in body.tangent_params]
    tangents = forward_mode(forward, list(primal.outputs), wrt, A, seeds)
    variables = [s.tangent for s in tangents.steps if s.first]
    names = assign_names(inputs, input_names, forward, dict(primal.hints), [], dim_nodes, variables)
    dims = {d: names[n.id] for d, n in zip(dim_sources, dim_nodes)}
    params = [names[n.id] for n in inputs]
    program = print_program(params, forward, primal.outputs[0], [], [], names, target.syntax_of, dims)
    lines = print_tangents(tangents.steps, names, target.syntax_of, program.forward, dims)
    expr = ExpressionPrinter(names, target.syntax_of, dims)

    def tangent(k: int) -> str:
        t = tangents.output_tangents[k]
        shape = primal.outputs[k].shape
        return expr(A.fill(t, shape) if shape and t.shape != shape else t)

    count = len(primal.carries)
    moving = [k for k in body.tangent_outputs if k < count]
    flowing = [k for k in body.tangent_outputs if k >= count]
    returned = [expr(o) for o in primal.carry_out] + [tangent(k) for k in moving] \
        + [expr(y) for y in primal.ys] + [tangent(k) for k in flowing]
    code = [s.code for s in program.forward]
    dim_lines = size_lines(dim_sources, names, dims)
    functions = StepFunctions(body.function, params, used_size_lines(dim_lines, code + [s.code for s in lines]
                                                                     + returned),
                              wrapped(code) + aligned([(s.code, s.comment) for s in lines]), returned, [], [], [],
                              [], {}, list(forward) + [s.term for s in tangents.steps],
                              "One step and its tangent: the new carries, their tangents, the ys, theirs.")
    functions.loop = _loop_names(body, scan, None, outer, [], names)
    functions.loop["forward_lines"] = forward_loop(functions.loop, checkpoint_plan(body), body.function)
    functions.loop["backward_lines"] = []
    functions.inline = _inlined(functions)
    return functions


def _loop_names(body: ScanBody, scan: Node, mask, outer: dict[int, str], residuals: list[Node],
                step_names: dict[int, str]) -> dict:
    """The loops' parameters and locals, clear of each other: the running carries take the step's names."""
    namespace = Namespace()
    namespace.taken.update(f"{body.function}{suffix}" for suffix in LOOP_SUFFIXES)  # the functions the loops call
    carries = [namespace.claim(n) for n in body.param_names[:len(body.carries)]]
    inits = [namespace.claim(f"{n}_init") for n in body.param_names[:len(body.carries)]]
    slice_names = body.param_names[len(body.carries):]
    seqs = [namespace.claim(f"{n}s") for n in slice_names]
    closed = [namespace.claim(outer[c.id]) for c in scan.args[len(body.placeholders):]]
    # no gradient flows through the scan (a tangent scan, a scan over the data alone): no tape to keep
    tapes = [] if mask is None else [namespace.claim(f"tape_{c}") for c in carries]
    ys = [namespace.claim(f"y{k}") for k in range(len(body.ys))]
    stacks = [namespace.claim(f"ys{k}") for k in range(len(body.ys))]
    # a residual the step also returns as a new carry or a y is saved from the loop's variable for it
    results = {o.id: name for o, name in zip(body.outputs, carries + ys)}
    values = [results[r.id] if r.id in results else namespace.claim(step_names[r.id]) for r in residuals]
    saved = [namespace.claim(f"saved_{step_names[r.id]}") for r in residuals]
    local = {key: namespace.claim(key) for key in ("steps", "t", "s", "start", "stop", "tape")}
    k = body.checkpoint or 1
    steps = f"{seqs[0]}.shape[0]" if seqs else str(body.length)
    # sizes in the loops' terms: each symbolic size read off a parameter that has it
    sources: dict = {}
    for node, name in [*zip(body.carries, inits), *zip(body.xs, seqs), *zip(body.closed, closed)]:
        offset = 1 if node in body.xs else 0  # a sequence has the steps first
        for axis, d in enumerate(node.shape):
            sources.setdefault(d, f"{name}.shape[{axis + offset}]")

    def shape_of(shape: tuple, first: str) -> str:
        parts = [first] + [str(d) if isinstance(d, int) else sources[d] for d in shape]
        return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"

    tape_length = local["steps"] if k == 1 else f"({local['steps']} - 1) // {k} + 1"
    loop = {"carries": carries, "inits": inits, "seqs": seqs, "closed": closed, "tapes": tapes, "ys": ys,
            "step_out": carries + ys + [v for v, r in zip(values, residuals) if r.id not in results],
            "stacks": stacks, "residuals": values, "saved": saved, "scalar": [not c.shape for c in body.carries],
            "steps_value": steps, **local, "params": inits + seqs + closed,
            "slices": [f"{s}[{local['t']}]" for s in seqs],
            "tape_shapes": [shape_of(c.shape, tape_length) for c in body.carries],
            "stack_shapes": [shape_of(y.shape, local["steps"]) for y in body.ys],
            # residuals: stored at every step by the forward loop, or, checkpointed, for one segment at a time
            "saved_shapes": [shape_of(r.shape, local["steps"] if k == 1 else str(k)) for r in residuals]}
    loop["forward_call"] = ", ".join(carries + loop["slices"] + closed)
    loop["forward_doc"] = docstring("The forward loop: the final carries and the stacked ys." if not tapes else
                                    "The forward loop: the final carries, the stacked ys, and the tape: the carries"
                                    + (f" at every {k}th step" if k > 1 else "")
                                    + (" and the step's values its backward reads" if residuals and k == 1 else "")
                                    + ".")
    loop["backward_doc"] = docstring("The reversed loop: each step's backward from the tape"
                                     + (f", every {k} steps recomputed from a stored carry" if k > 1 else "")
                                     + "; the weights' gradients add up.")
    if mask is not None:
        count = len(body.carries)
        wanted_seqs = list(mask[count:count + len(seqs)])
        wanted_closed = list(mask[count + len(seqs):])
        grads = {"carries": [namespace.claim(f"d{c}") for c in carries],
                 "finals": [namespace.claim(f"d{c}_final") for c in carries],
                 "stacks": [namespace.claim(f"d{s}") for s in stacks],
                 "seqs": [namespace.claim(f"d{s}") for s in seqs],
                 "slices": [namespace.claim(f"d{s}") for s in slice_names],
                 "closed": [namespace.claim(f"d{c}") for c in closed],
                 "closed_step": [namespace.claim(f"d{c}_step") for c in closed],
                 "segments": [namespace.claim(f"segment_{c}") for c in carries]}
        loop.update(grads=grads, wanted_seqs=wanted_seqs, wanted_closed=wanted_closed,
                    closed_scalar=[not c.shape for c in body.closed],
                    segment_shapes=[shape_of(c.shape, str(k)) for c in body.carries],
                    # what the step's backward returns: every carry's gradient, the wanted slices' and weights'
                    step_results=grads["carries"] + [d for d, w in zip(grads["slices"], wanted_seqs) if w]
                    + [d for d, w in zip(grads["closed_step"], wanted_closed) if w],
                    backward_call=", ".join([f"{tape}[{local['t']}]" for tape in tapes] + loop["slices"] + closed
                                            + [f"{v}[{local['t']}]" for v in saved] + grads["carries"]
                                            + [f"{d}[{local['t']}]" for d in grads["stacks"]]),
                    segment_backward_call=", ".join(
                        [f"{seg}[{local['t']} - {local['start']}]" for seg in grads["segments"]] + loop["slices"]
                        + closed + [f"{v}[{local['t']} - {local['start']}]" for v in saved] + grads["carries"]
                        + [f"{d}[{local['t']}]" for d in grads["stacks"]]),
                    returned=[d for d, w in zip(grads["carries"], mask[:count]) if w]
                    + [d for d, w in zip(grads["seqs"], wanted_seqs) if w]
                    + [d for d, w in zip(grads["closed"], wanted_closed) if w])
    return loop


def _tuple_target(names: list[str]) -> str:
    return ", ".join(names) + ("," if len(names) == 1 else "")


def _statement(code: str, depth: int) -> list[str]:
    """A statement at `depth` loop levels inside the function's body, wrapped to the line length."""
    pad = INDENT * depth
    return [pad + line for line in wrap(code, 4 + len(pad))]


def forward_loop(L: dict, plan: CheckpointPlan, stem: str) -> list[str]:
    """The forward loop's body: the tape's and stacks' arrays, then each step, storing what the plan keeps."""
    t, k = L["t"], plan.every
    lines = [f"{L['steps']} = {L['steps_value']}"]
    lines += [f"{tape} = np.empty({shape})" for tape, shape in zip(L["tapes"], L["tape_shapes"])]
    lines += [f"{stack} = np.empty({shape})" for stack, shape in zip(L["stacks"], L["stack_shapes"])]
    if plan.residuals_on_tape:
        lines += [f"{saved} = np.empty({shape})" for saved, shape in zip(L["saved"], L["saved_shapes"])]
    lines += [f"{c} = {init}" + ("" if scalar else ".copy()")
              for c, init, scalar in zip(L["carries"], L["inits"], L["scalar"])]
    lines.append(f"for {t} in range({L['steps']}):")
    if plan.checkpointed and L["tapes"]:
        lines.append(f"{INDENT}if {t} % {k} == 0:")
        lines += [f"{INDENT * 2}{tape}[{t} // {k}] = {c}" for tape, c in zip(L["tapes"], L["carries"])]
    else:
        lines += [f"{INDENT}{tape}[{t}] = {c}" for tape, c in zip(L["tapes"], L["carries"])]
    lines += _statement(f"{', '.join(L['step_out'])} = {stem}({L['forward_call']})", 1)
    lines += [f"{INDENT}{stack}[{t}] = {y}" for y, stack in zip(L["ys"], L["stacks"])]
    if plan.residuals_on_tape:
        lines += [f"{INDENT}{saved}[{t}] = {value}" for value, saved in zip(L["residuals"], L["saved"])]
    tape = L["tapes"] + (L["saved"] if plan.residuals_on_tape else [])
    lines += _statement(f"return {', '.join(L['carries'] + L['stacks'])}, ({_tuple_target(tape) if tape else ''})",
                        0)
    return lines


def backward_loop(L: dict, plan: CheckpointPlan, stem: str) -> list[str]:
    """The reversed loop's body: each step's backward in reverse, from the tape or from a recomputed segment, the
    slices' gradients stacked and the weights' gradients added up."""
    G, t, k = L["grads"], L["t"], plan.every
    tape = L["tapes"] + (L["saved"] if plan.residuals_on_tape else [])
    lines = [f"{L['steps']} = {L['steps_value']}", *_statement(f"{_tuple_target(tape)} = {L['tape']}", 0)]
    lines += [f"{d} = {final}" + ("" if scalar else ".copy()")
              for d, final, scalar in zip(G["carries"], G["finals"], L["scalar"])]
    lines += [f"{d} = np.empty({seq}.shape)" for d, seq, wanted in zip(G["seqs"], L["seqs"], L["wanted_seqs"])
              if wanted]
    lines += [f"{d} = " + ("0.0" if scalar else f"np.zeros({w}.shape)")
              for d, w, wanted, scalar in zip(G["closed"], L["closed"], L["wanted_closed"], L["closed_scalar"])
              if wanted]
    results = ", ".join(L["step_results"])
    if plan.checkpointed:
        start, stop, s = L["start"], L["stop"], L["s"]
        lines += [f"{segment} = np.empty({shape})" for segment, shape in zip(G["segments"], L["segment_shapes"])]
        lines += [f"{saved} = np.empty({shape})" for saved, shape in zip(L["saved"], L["saved_shapes"])]
        lines += [f"for {s} in range(({L['steps']} - 1) // {k}, -1, -1):", f"{INDENT}{start} = {s} * {k}",
                  f"{INDENT}{stop} = min({start} + {k}, {L['steps']})"]
        lines += [f"{INDENT}{c} = {tape}[{s}]" for c, tape in zip(L["carries"], L["tapes"])]
        lines.append(f"{INDENT}for {t} in range({start}, {stop}):  # the segment's steps again, keeping what their "
                     "backward reads")
        lines += [f"{INDENT * 2}{segment}[{t} - {start}] = {c}" for segment, c in zip(G["segments"], L["carries"])]
        lines += _statement(f"{', '.join(L['step_out'])} = {stem}({L['forward_call']})", 2)
        lines += [f"{INDENT * 2}{saved}[{t} - {start}] = {value}" for value, saved in zip(L["residuals"], L["saved"])]
        lines.append(f"{INDENT}for {t} in range({stop} - 1, {start} - 1, -1):")
        lines += _statement(f"{results} = {stem}_backward({L['segment_backward_call']})", 2)
        depth = 2
    else:
        lines.append(f"for {t} in range({L['steps']} - 1, -1, -1):")
        lines += _statement(f"{results} = {stem}_backward({L['backward_call']})", 1)
        depth = 1
    lines += [f"{INDENT * depth}{d}[{t}] = {dslice}"
              for d, dslice, wanted in zip(G["seqs"], G["slices"], L["wanted_seqs"]) if wanted]
    lines += [f"{INDENT * depth}{d} += {dstep}"
              for d, dstep, wanted in zip(G["closed"], G["closed_step"], L["wanted_closed"]) if wanted]
    lines += _statement(f"return {', '.join(L['returned'])}", 0)
    return lines
