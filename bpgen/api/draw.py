"""Pictures of a compiled function: its computation graph with the values and gradients at one point.

One node per operation of the generated code, labelled with its variable and
the statement that computes it; edges follow the data flow. The edge from `a`
to a user `b` carries a's value (green) and the gradient flowing back along
it (red): the term that the backward line for `b` adds to a's adjoint, so a
node's gradient (shown in the node) is the sum of the red numbers on its
outgoing edges. Tensors show their shapes and the norms of values and
gradients. Intermediates the user did not name are boxed with the user's
statement they belong to (`z1 = X @ W1 + b1`); beyond `max_nodes`, those
statements collapse into one node each, then the part farthest from the
output into one box.

The numbers are the generated code's own: the plain-Python module
(`jit=False`) runs once under a trace hook that keeps the locals of
value_and_grad (or vjp) at its return, and each backward line's right-hand
side is evaluated among those locals (the adjoint it reads is final by then).
Constant contributions that the code folds away (`loss = data + penalty`
gives `dpenalty = 1`, which is never stored) are recovered from the rule
table, as the reverse pass derived them.
"""

from __future__ import annotations

import builtins
import html
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BpgenError
from ..ir.graph import READ_OPS, Node, depends_on
from ..ir.ops import Op
from ..ir.shapes import format_shape
from ..rules.table import rule_of
from ..targets import generate
from ..targets import target as target_of
from ..targets.load import write_atomic
from ..targets.python.emit import Artifact
from ..targets.python.printer import ExpressionPrinter

DEFAULT_MAX_NODES = 50
VALUE_COLOR = "#1a7f37"  # forward values
GRADIENT_COLOR = "#c62828"  # gradients
MUTED_COLOR = "#666666"
FONT = "Helvetica,Arial,sans-serif"
CODE_FONT = "Courier,monospace"
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": None, ".gv": None}
TRIES = 20  # random points tried before giving up on finding one where the function is finite
OP_TEXT_MAX = 48  # characters of a statement shown in a node
CLUSTER_TEXT_MAX = 72


class DotNotFound(BpgenError):
    """Graphviz's `dot` is not installed: the .dot file was written instead of the picture."""

    def __init__(self, written: Path, requested: Path):
        self.written = written
        self.requested = requested
        super().__init__(f"dot not found: wrote {written}; install Graphviz (apt-get install graphviz, "
                         f"brew install graphviz) to render .svg/.png/.pdf")


# evaluation: the generated code's own numbers ------------------------------------------------------------------------


@dataclass
class Evaluation:
    """The plain-Python value_and_grad (or vjp) run once at a point, with everything the picture needs."""

    fn: object  # the compiled function drawn (its plain-Python code, the same statements, is what ran)
    point: dict[str, object]  # parameter name -> argument
    given: set[str]  # parameters the caller gave (the rest were drawn at random)
    seed: int  # of the random draws
    locals: dict[str, object]  # the function's locals at its return
    value: dict[int, object]  # node id -> forward value
    gradient: dict[int, object]  # node id -> total gradient (absent: no gradient reaches it)
    flow: dict[tuple[int, int], object]  # (user id, argument index) -> gradient flowing back along that edge
    adjoint_name: dict[int, str] = field(default_factory=dict)  # node id -> its adjoint variable, when stored
    steps: dict[int, StepEvaluation] = field(default_factory=dict)  # scan node id -> the step drawn


@dataclass
class StepEvaluation:
    """One step of a loop, as the generated step function and its backward computed it during the call."""

    loop: object  # the scan's printed functions (StepFunctions): its step's nodes, names and lines
    index: int  # which step: 0 to steps - 1
    count: int  # the loop's number of steps at this point
    value: dict[int, object] = field(default_factory=dict)
    gradient: dict[int, object] = field(default_factory=dict)
    flow: dict[tuple[int, int], object] = field(default_factory=dict)
    adjoint_name: dict[int, str] = field(default_factory=dict)


def _plain(fn) -> Artifact:
    """The pipeline's artifact of a compiled function's plain-Python code, which the picture runs and reads."""
    artifact = getattr(fn, "artifact", None)
    if not isinstance(artifact, Artifact):
        raise BpgenError(f"bpgen.graph draws compiled functions (bpgen.compile, @bpgen.function), not {fn!r}")
    if fn.declaration.is_vector:
        raise BpgenError(f"{fn.name} has a vector of outputs: pictures draw one output (a scalar or a tensor) so far")
    return generate(fn.declaration, jit=False) if fn.jit or fn.backend != "numba" \
        else artifact


def _run_traced(function, args, watched: dict | None = None) -> tuple[object, dict[str, object]]:
    """Call `function(*args)` and return its result and its locals at the return (a sys.settrace hook); the
    locals of every call of the functions whose code objects key `watched` are appended to its lists."""
    code = function.__code__
    captured: dict[str, object] = {}
    watched = {} if watched is None else watched

    def local(frame, event, arg):
        if event == "return":
            captured.update(frame.f_locals)
        return local

    def call_of(calls: list):
        def at_return(frame, event, arg):
            if event == "return":
                calls.append(dict(frame.f_locals))
            return at_return
        return at_return

    def tracer(frame, event, arg):
        if frame.f_code in watched:
            return call_of(watched[frame.f_code])
        return local if frame.f_code is code else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = function(*args)
    finally:
        sys.settrace(previous)
    return result, captured


def _arguments(fn, point: dict, dims: dict[str, int], rng: np.random.Generator, positive: bool) -> dict:
    """Arguments by parameter name: the given ones (numbers, arrays), the others random as `bpgen check` draws."""
    from .parameters import concrete_dim, parameters

    args = {}
    for p in parameters(fn):
        if p.name in point:
            args[p.name] = point[p.name]
        else:
            args[p.name] = p.random(dims, rng, positive)
            if p.kind == "real" and p.shape:
                args[p.name] = np.ascontiguousarray(args[p.name], dtype=np.float64)
        if p.shape:
            shape = tuple(concrete_dim(d, dims) for d in p.shape)
            if np.shape(args[p.name]) != shape:
                raise BpgenError(f"{p.name} must have shape {format_shape(p.shape)} = {shape}, "
                                 f"not {np.shape(args[p.name])}")
    return args


def _given(fn, point: dict, dims: dict[str, int]) -> tuple[dict, dict[str, int]]:
    """The caller's arguments, checked and converted; symbolic sizes completed from the arrays given."""
    from .parameters import describe, parameters, symbolic_dims

    params = parameters(fn)
    seed = fn.emitted.seed
    seed_name = None if seed is None else fn.emitted.names[seed.id]
    names = [p.name for p in params]
    unknown = sorted(set(point) - set(names) - {seed_name})
    if unknown:
        raise BpgenError(f"{fn.name} has no input {unknown[0]!r} (its inputs: {', '.join(names)})")
    sizes = symbolic_dims(fn)
    bad = sorted(set(dims) - set(sizes))
    if bad:
        raise BpgenError(f"--dims sets {bad[0]}, which is not a symbolic size of {fn.name} "
                         f"(its sizes: {', '.join(sizes) or 'none'})")
    dims = dict(dims)
    converted = {}
    for p in params:
        if p.name not in point:
            continue
        value = point[p.name]
        if not p.shape:
            if np.ndim(value) != 0:
                raise BpgenError(f"{p.name} is a number, not an array of shape {np.shape(value)}")
            converted[p.name] = float(value)
            continue
        if np.ndim(value) == 0:
            raise BpgenError(f"--at gives {p.name} a number, but {p.name} is a tensor of shape "
                             f"{format_shape(p.shape)}")
        array = np.ascontiguousarray(value, dtype=p.dtype)
        if array.ndim != len(p.shape):
            raise BpgenError(f"{describe(p)}: got an array of shape {array.shape}")
        for d, n in zip(p.shape, array.shape):
            if not isinstance(d, int):
                if dims.setdefault(str(d), n) != n:
                    raise BpgenError(f"{p.name} has {d} = {n}, but {d} = {dims[str(d)]} elsewhere")
        converted[p.name] = array
    if seed_name in point:
        converted[seed_name] = np.ascontiguousarray(point[seed_name], dtype=np.float64)
    return converted, dims


def _finite(value) -> bool:
    try:
        return bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64))))
    except (TypeError, ValueError):
        return True


def evaluate(fn, point: dict | None = None, dims: dict[str, int] | None = None, seed: int = 0,
             step: int | None = None) -> Evaluation:
    """Run the generated value_and_grad (vjp for a tensor output) in plain Python at `point` and collect the
    value of every node, the gradient of every node and the gradient flowing back along every edge; for each
    loop, the same of its step number `step` (default: the last; -1 the last, -2 the one before)."""
    from .parameters import DEFAULT_DIM, output_shape, parameters

    plain = _plain(fn)
    e = plain.emitted
    given, dims = _given(plain, dict(point or {}), dict(dims or {}))
    namespace: dict[str, object] = {"__name__": f"bpgen_graph_{plain.name}"}
    exec(builtins.compile(plain.source, f"<bpgen graph: {plain.name}>", "exec"), namespace)
    seed_name = None if e.seed is None else e.names[e.seed.id]
    function = namespace["vjp" if seed_name else "value_and_grad"]
    params = [p.name for p in parameters(plain)]
    order = params + ([seed_name] if seed_name else [])
    rng = np.random.default_rng(seed)
    for attempt in range(TRIES):
        args = _arguments(plain, given, dims, rng, positive=attempt >= TRIES // 2)
        if seed_name:
            shape = tuple(d if isinstance(d, int) else dims.get(str(d), DEFAULT_DIM) for d in output_shape(plain))
            args[seed_name] = given.get(seed_name, np.ones(shape))
        watched = _loop_calls(e.loops, namespace)
        try:
            result, captured = _run_traced(function, [args[name] for name in order], watched)
        except Exception as exc:
            raise BpgenError(f"{plain.name} raised {type(exc).__name__} at this point: {exc}") from None
        if _finite(result[0]) or all(name in given for name in params):
            break  # a finite value, or nothing random to draw again
    evaluation = Evaluation(fn, args, set(given), seed, captured, {}, {}, {})
    _collect(evaluation, namespace)
    for loop in e.loops:
        evaluation.steps[loop.step.scan.id] = _collect_step(plain.name, loop, watched, namespace, step)
    return evaluation


def _loop_calls(loops, namespace: dict) -> dict:
    """The code objects of each loop's forward loop, step and step backward, each with a list for its calls."""
    watched = {}
    for loop in loops:
        for suffix in ("_scan", "", "_backward"):
            function = namespace.get(f"{loop.stem}{suffix}")
            if function is not None:
                watched[function.__code__] = []
    return watched


def _collect_step(name: str, loop, watched: dict, namespace: dict, step: int | None) -> StepEvaluation:
    """The values and gradients of one step of a loop, from the calls of its step and its backward: the forward
    loop calls the step once per step in order (a checkpointed backward calls it again, later), the reversed
    loop calls the backward once per step from the last."""
    def calls(suffix: str) -> list:
        function = namespace.get(f"{loop.stem}{suffix}")
        return [] if function is None else watched[function.__code__]

    count = calls("_scan")[0][loop.loop["steps"]]
    index = count - 1 if step is None else step + count if step < 0 else step
    if not 0 <= index < count:
        raise BpgenError(f"{name}: the loop {loop.stem} has {count} steps: --step {step} is not one of them "
                         f"(0 to {count - 1}, or -1 for the last)")
    program = loop.step
    ev = StepEvaluation(loop, index, count)
    forward, names = calls("")[index], program.names
    body = program.scan.attrs[0]
    _values(ev, [*body.placeholders, *body.closed, *program.forward], names, forward)
    backward_calls = calls("_backward")
    if program.backward is None or not backward_calls:
        return ev
    local = backward_calls[count - 1 - index]
    for seed in program.seeds:  # what flows into the step from the next one and from its y
        output = seed.args[0]
        ev.gradient[output.id] = ev.gradient.get(output.id, 0.0) + local[names[seed.id]]
    _contributions(ev, program.backward.steps, program.printed.backward, names, namespace, local)
    return ev


def _values(ev, nodes: list[Node], names: dict[int, str], local: dict) -> None:
    """The value of each node: a constant's own, else its variable's among the function's locals."""
    for node in nodes:
        if node.op == Op.CONST:
            ev.value[node.id] = node.value
        elif names.get(node.id) in local:
            ev.value[node.id] = local[names[node.id]]


def _contributions(ev, steps, printed: list, names: dict[int, str], namespace: dict, local: dict) -> None:
    """Every contribution of a reverse pass (a function's, or one step's): the edge it runs along and the term it
    adds, evaluated from its backward line among the function's locals at its return, or the constant it was
    folded into (no line computes it); each target's gradient and adjoint name. An output's seed added to its
    adjoint runs along no edge (its gradient counts it)."""
    taken: set[tuple[int, int]] = set()
    lines = {id(statement.step): statement for statement in printed}
    for step in steps:
        source, target = step.source, step.target
        index = next((i for i, a in enumerate(source.args) if a.id == target.id and (source.id, i) not in taken),
                     None)
        if index is None:
            continue
        taken.add((source.id, index))
        if step.folded:
            ev.flow[(source.id, index)] = ev.gradient[target.id] = step.term.value
            continue
        adjoint = names[step.adjoint.id]
        if id(step) in lines:
            ev.flow[(source.id, index)] = eval(lines[id(step)].rhs, namespace, dict(local))
        else:  # a loop's gradient, unpacked from its reversed loop's call into the adjoint or a name of its own
            ev.flow[(source.id, index)] = local[adjoint if step.first else names[step.term.id]]
        ev.gradient[target.id] = local[adjoint]
        ev.adjoint_name[target.id] = adjoint


def _wrt_nodes(fn) -> list[Node]:
    declaration, e = fn.declaration, fn.emitted
    if declaration.is_tensor:
        return [t.node for t in declaration.wrt]
    return [e.inputs[declaration.inputs.index(w)] for w in declaration.wrt]


def _collect(ev: Evaluation, namespace: dict) -> None:
    e = ev.fn.emitted
    names, loc = e.names, ev.locals
    _values(ev, [*e.inputs, *e.forward], names, loc)
    # the output's gradient: 1, or the seed of vjp
    ev.gradient[e.output.id] = 1.0 if e.seed is None else loc[names[e.seed.id]]
    if e.seed is not None:
        ev.adjoint_name[e.output.id] = names[e.seed.id]
    _contributions(ev, e.backward.steps, e.program.backward, names, namespace, loc)
    wrt = _wrt_nodes(ev.fn)
    needed = depends_on(e.forward, wrt)
    # structural zeros: an argument that leads to a wrt input but gets no term from a differentiable user
    # (a condition, such as Piecewise's, is not differentiated: its edges carry no gradient)
    for node in e.forward:
        if node.id not in ev.gradient or not node.args:
            continue
        rule = rule_of(node)
        if rule.partials is None and rule.vjp is None:
            continue
        partials = rule.partials(e.algebra, node.args, node) if rule.vjp is None else [True] * len(node.args)
        for i, a in enumerate(node.args):
            if a.id in needed and (node.id, i) not in ev.flow and partials[i] is not None:
                ev.flow[(node.id, i)] = 0.0
                ev.gradient.setdefault(a.id, 0.0)
    for node in wrt:  # an input the output does not depend on: value_and_grad returns 0 for it
        ev.gradient.setdefault(node.id, np.zeros(ev.value[node.id].shape) if node.is_tensor else 0.0)


# the picture -------------------------------------------------------------------------------------------------------


def _number(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    v = float(v)
    return f"{v:.5g}" if math.isfinite(v) or math.isnan(v) else ("inf" if v > 0 else "-inf")


def _norm(v) -> float:
    return float(np.sqrt(np.sum(np.square(np.asarray(v, dtype=np.float64)))))


def describe_value(v) -> str:
    """A scalar to 5 significant digits; an array by its Frobenius norm."""
    return f"‖v‖={_number(_norm(v))}" if np.ndim(v) else _number(v)


def describe_gradient(v) -> str:
    return f"‖g‖={_number(_norm(v))}" if np.ndim(v) else _number(v)


def _font(text: str, color: str | None = None, size: int | None = None, face: str | None = None) -> str:
    attrs = "".join(f' {k}="{v}"' for k, v in (("color", color), ("point-size", size), ("face", face)) if v)
    return f"<font{attrs}>{html.escape(text)}</font>" if attrs else html.escape(text)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass
class _Unit:
    """A node of the picture: one operation, one user statement collapsed, or the collapsed rest."""

    key: str
    members: list[Node]
    head: Node
    kind: str  # "node", "statement" or "rest"


def graph(fn, point: dict | None = None, *, dims: dict[str, int] | None = None,
          max_nodes: int = DEFAULT_MAX_NODES, seed: int = 0, step: int | None = None):
    """The computation graph of `fn` at `point` (inputs by name; the others random, from `seed`; symbolic
    sizes from `dims`, else the arrays given, else 5) as a graphviz.Digraph. A loop (bpgen.scan) is one node,
    beside a box holding its step's own graph with the values and gradients of step `step` (default: the
    last)."""
    try:
        import graphviz
    except ImportError:
        raise BpgenError("bpgen graph needs the graphviz Python package: pip install graphviz") from None
    if max_nodes < 2:
        raise BpgenError(f"max_nodes must be at least 2, not {max_nodes}")
    ev = evaluate(fn, point, dims, seed, step)
    return _draw(graphviz, ev, max_nodes)


def _statement_text(e) -> dict[int, str]:
    """node id -> the right-hand side of the forward statement that computes it."""
    return {statement.node.id: statement.rhs for statement in e.program.forward}


def _groups(e, visible: list[Node], users: dict[int, list[Node]]) -> dict[int, int]:
    """node id -> the id of the user-named statement it belongs to (an unnamed intermediate all of whose users
    are in one statement joins it); inputs and named statements head their own."""
    heads = set(e.hints) | {e.output.id}
    group: dict[int, int] = {}
    for node in reversed(visible):
        if node.op == Op.INPUT or node.id in heads:
            group[node.id] = node.id
            continue
        owners = {group.get(u.id) for u in users.get(node.id, ())}
        group[node.id] = owners.pop() if len(owners) == 1 and None not in owners else node.id
    return group


def _statement_label(e, head: Node, members: set[int]) -> str:
    """`z1 = X @ W1 + b1`: the head's statement with the other members inlined, as the user wrote it."""
    names = {k: v for k, v in e.names.items() if k not in members}
    dims = {n.attrs[0]: e.names[n.id] for n in e.forward if n.op == Op.DIM and n.id in e.names}
    for node in e.inputs:
        for d in node.shape:
            if not isinstance(d, int) and d not in dims:
                dims[d] = e.names.get(e.algebra.dim(d).id, str(d))
    try:
        # NumPy's spelling (`X @ W1`), not Numba's helper calls: a picture shows the maths as the user wrote it
        printer = ExpressionPrinter(names, target_of("numpy").syntax_of, dims)
        return f"{e.names[head.id]} = {printer.statement(head)}"
    except Exception:  # a label is a nicety: the name alone will do
        return e.names[head.id]


def _draw(graphviz, ev: Evaluation, max_nodes: int):
    e = ev.fn.emitted
    names = e.names
    visible = list(e.inputs) + [n for n in e.forward if n.op not in READ_OPS]
    if e.output.op == Op.CONST:
        visible.append(e.output)
    order = {n.id: k for k, n in enumerate(visible)}
    users: dict[int, list[Node]] = {}
    for node in visible:
        for a in node.args:
            users.setdefault(a.id, []).append(node)
    group = _groups(e, visible, users)
    members_of: dict[int, list[Node]] = {}
    for node in visible:
        members_of.setdefault(group[node.id], []).append(node)
    statements = [n for n in visible if n.op != Op.INPUT]
    structured = not any(len(m) == len(statements) for m in members_of.values()) or len(statements) <= 1
    clusters = {h: m for h, m in members_of.items() if len(m) > 1} if structured else {}
    by_id = {n.id: n for n in visible}

    # units: one per node, then collapsed statements, then the rest collapsed
    unit_of: dict[int, _Unit] = {n.id: _Unit(f"n{n.id}", [n], n, "node") for n in visible}
    collapsed_statements = False
    if len(visible) > max_nodes and clusters:
        collapsed_statements = True
        for head, members in clusters.items():
            unit = _Unit(f"s{head}", members, by_id[head], "statement")
            for m in members:
                unit_of[m.id] = unit
    units = list({id(u): u for u in (unit_of[n.id] for n in visible)}.values())
    rest: _Unit | None = None
    if len(units) > max_nodes:
        distance = {e.output.id: 0}
        for node in reversed(visible):
            for a in node.args:
                if node.id in distance:
                    distance[a.id] = min(distance.get(a.id, 1 << 30), distance[node.id] + 1)
        rank = sorted(units, key=lambda u: (min(distance.get(m.id, 1 << 30) for m in u.members),
                                            -order[u.head.id]))
        kept, dropped = rank[:max_nodes - 1], rank[max_nodes - 1:]
        rest = _Unit("rest", [m for u in dropped for m in u.members], dropped[-1].head, "rest")
        for m in rest.members:
            unit_of[m.id] = rest
        units = [*kept, rest]

    dot = graphviz.Digraph(name=ev.fn.name, graph_attr={
        "rankdir": "LR", "fontname": FONT, "labelloc": "t", "fontsize": "16", "nodesep": "0.5", "ranksep": "0.8",
        "label": _title(ev, rest is not None or collapsed_statements), "newrank": "true",
    }, node_attr={"fontname": FONT, "fontsize": "12", "shape": "box", "style": "rounded,filled",
                  "fillcolor": "white", "color": "#444444", "margin": "0.12,0.06"},
        edge_attr={"fontname": FONT, "fontsize": "10", "color": "#555555", "arrowsize": "0.7"})

    statement_text = _statement_text(e)
    drawn_clusters = {h: m for h, m in clusters.items() if not collapsed_statements}
    in_cluster = {m.id: h for h, ms in drawn_clusters.items() for m in ms if unit_of[m.id].kind == "node"}
    for head, members in drawn_clusters.items():
        shown = [m for m in members if unit_of[m.id].kind == "node"]
        if len(shown) < 2:
            continue
        with dot.subgraph(name=f"cluster_{head}") as sub:
            label = _shorten(_statement_label(e, by_id[head], {m.id for m in members} - {head}), CLUSTER_TEXT_MAX)
            sub.attr(label=label, fontname=CODE_FONT, fontsize="11", style="rounded,dashed", color="#8a8a8a",
                     fontcolor=MUTED_COLOR, labeljust="l")
            for m in shown:
                _node(sub, ev, unit_of[m.id], statement_text)
    for unit in units:
        if unit.kind != "node" or unit.head.id not in in_cluster or len(
                [m for m in drawn_clusters[in_cluster[unit.head.id]] if unit_of[m.id].kind == "node"]) < 2:
            _node(dot, ev, unit, statement_text)

    # edges: one per argument of each operation, merged where they enter a collapsed unit
    edges: dict[tuple, list] = {}
    for node in visible:
        for i, a in enumerate(node.args):
            if a.id not in unit_of:
                continue  # constants and sizes are part of the statement's text
            ua, ub = unit_of[a.id], unit_of[node.id]
            if ua is ub:
                continue
            key = (ua.key, a.id, ub.key) if ub.kind != "node" else (ua.key, a.id, ub.key, i)
            edges.setdefault(key, []).append(ev.flow.get((node.id, i)))
    for key, flows in edges.items():
        ua_key, a_id, ub_key = key[:3]
        a = by_id[a_id]
        source = unit_of[a_id]
        known = [f for f in flows if f is not None]
        flow = None if not known else (known[0] if len(known) == 1 else sum(known))
        lines = []
        if a.op == Op.SCAN:  # a loop's results each have their own node, with their values
            dot.edge(ua_key, ub_key, style="dashed")
            continue
        if source.kind != "node" and a.id != source.head.id or source.kind == "rest":
            lines.append(_font(names[a.id], MUTED_COLOR, face=CODE_FONT))
        lines.append(_font(describe_value(ev.value.get(a.id, math.nan)), VALUE_COLOR))
        if flow is not None:
            lines.append(_font(describe_gradient(flow), GRADIENT_COLOR))
        dot.edge(ua_key, ub_key, label=f"<{'<br/>'.join(lines)}>")
    # the output's wire
    out = e.output
    dot.node("output", label="", shape="point", width="0.08", color="#444444")
    lines = [_font(describe_value(ev.value.get(out.id, math.nan)), VALUE_COLOR),
             _font(describe_gradient(ev.gradient[out.id]), GRADIENT_COLOR)]
    dot.edge(unit_of[out.id].key if out.id in unit_of else "output", "output", label=f"<{'<br/>'.join(lines)}>")
    for scan_id, step in ev.steps.items():
        if scan_id in unit_of:
            _draw_step(dot, step, unit_of[scan_id].key, max_nodes, names)
    return dot


def _draw_step(dot, ev: StepEvaluation, loop_key: str, max_nodes: int, outer_names: dict[int, str]) -> None:
    """A loop's step as a box of its own beside the loop's node: the step's parameters (the carries, the slices
    of the sequences, the weights) and its operations, with the values and gradients of step `ev.index`."""
    program = ev.loop.step
    body = program.scan.attrs[0]
    names = program.names
    statements = {statement.node.id: statement.rhs for statement in program.printed.forward}
    sequences = program.scan.args[len(body.carries):len(body.placeholders)]
    roles = {**{p.id: "carry" for p in body.carries},
             **{p.id: f"slice {ev.index} of {outer_names.get(s.id, 'a sequence')}" for p, s in zip(body.xs, sequences)},
             **{p.id: "weight (read by every step)" for p in body.closed}}
    outputs: dict[int, list[str]] = {}
    for o in body.carry_out:
        outputs.setdefault(o.id, []).append("new carry")
    for o in body.ys:
        outputs.setdefault(o.id, []).append("y (stacked)")
    shown = [*body.placeholders, *body.closed, *(n for n in program.forward if n.op not in READ_OPS)]
    key = {n.id: f"step{program.scan.id}_{n.id}" for n in shown}
    with dot.subgraph(name=f"cluster_step_{program.scan.id}") as sub:
        sub.attr(label=f"{ev.loop.stem}: step {ev.index} of 0 to {ev.count - 1}, its values and gradients",
                 fontname=CODE_FONT, fontsize="11", style="rounded,dashed", color="#8a8a8a", fontcolor=MUTED_COLOR,
                 labeljust="l")
        if len(shown) > max_nodes:
            count = len(shown)
            sub.node(f"step{program.scan.id}", label=f"<{_font(f'{count} operations', MUTED_COLOR)}<br/>"
                     f"{_font('(raise max_nodes / --max-nodes to see them)', MUTED_COLOR, 9)}>",
                     style="rounded,dashed,filled", fillcolor="#f4f4f4")
            dot.edge(loop_key, f"step{program.scan.id}", style="dashed", arrowhead="none")
            return
        for node in shown:
            lines = [f"<b>{html.escape(names.get(node.id, f'%{node.id}'))}</b>"]
            attrs = {}
            if node.id in roles:
                lines.append(_font(roles[node.id], MUTED_COLOR, 10))
                attrs = {"fillcolor": "#e8f0fe"}
            elif node.id in statements:
                lines.append(_font(_shorten(statements[node.id], OP_TEXT_MAX), "#333333", 10, CODE_FONT))
            if node.id in outputs:
                lines.append(_font(", ".join(outputs[node.id]), MUTED_COLOR, 10))
                attrs = {"fillcolor": "#fff4e0", "peripheries": "2"}
            if node.shape:
                value = ev.value.get(node.id)
                lines.append(_font(f"shape {format_shape(node.shape)}"
                                   + ("" if value is None else f" = {format_shape(np.shape(value))}"), MUTED_COLOR, 10))
            if node.id in ev.gradient:
                lines.append(_gradient_label(ev.gradient[node.id], ev.adjoint_name.get(node.id)))
            sub.node(key[node.id], label=f"<{'<br/>'.join(lines)}>", **attrs)
        for node in shown:
            for i, a in enumerate(node.args):
                if a.id not in key or node.id not in key:
                    continue
                lines = [_font(describe_value(ev.value.get(a.id, math.nan)), VALUE_COLOR)]
                flow = ev.flow.get((node.id, i))
                if flow is not None:
                    lines.append(_font(describe_gradient(flow), GRADIENT_COLOR))
                sub.edge(key[a.id], key[node.id], label=f"<{'<br/>'.join(lines)}>")
    # the loop runs the step: a dashed line from the loop's node to the step's first parameter
    dot.edge(loop_key, key[shown[0].id], style="dashed", arrowhead="none", label=_font_label("runs"))


def _font_label(text: str) -> str:
    return f"<{_font(text, MUTED_COLOR, 9)}>"


def _title(ev: Evaluation, collapsed: bool) -> str:
    """The function at the point, its value, and the legend under it."""
    from .parameters import parameters, symbolic_dims

    e = ev.fn.emitted
    params = parameters(ev.fn)
    parts = [f"{p.name}={_number(ev.point[p.name])}" for p in params if not p.shape]
    sizes = [f"{d}={ev.locals[d]}" for d in symbolic_dims(ev.fn) if d in ev.locals]
    random = [p.name for p in params if p.shape and p.name not in ev.given]
    text = f"{ev.fn.name}({', '.join(parts)})" if parts else ev.fn.name
    notes = sizes + ([f"random {', '.join(random)} (seed {ev.seed})"] if random else [])
    title = f"{text} = {describe_value(ev.value.get(e.output.id, math.nan))}"
    if notes:
        title += f" ({'; '.join(notes)})"
    rows = [f'<tr><td colspan="2"><font point-size="16">{html.escape(title)}</font></td></tr>']
    for key, meaning in _legend(ev, collapsed):
        rows.append(f'<tr><td align="right">{key}</td><td align="left">{_font(meaning, size=11)}</td></tr>')
    return (f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">{"".join(rows)}</table>>')


def _node(dot, ev: Evaluation, unit: _Unit, statement_text: dict[int, str]) -> None:
    e = ev.fn.emitted
    node = unit.head
    name = e.names.get(node.id, describe_value(node.value) if node.op == Op.CONST else
                       f"{node.attrs[0].function}_scan" if node.op == Op.SCAN else f"%{node.id}")
    lines = [f"<b>{html.escape(name)}</b>"]
    attrs = {}
    if unit.kind == "rest":
        count = len(unit.members)
        lines = [_font(f"{count} more node{'s' if count != 1 else ''}", MUTED_COLOR),
                 _font("(collapsed: raise max_nodes / --max-nodes to see them)", MUTED_COLOR, 9)]
        dot.node(unit.key, label=f"<{'<br/>'.join(lines)}>", style="rounded,dashed,filled", fillcolor="#f4f4f4")
        return
    if node.op == Op.INPUT:
        lines.append(_font("input", MUTED_COLOR, 10))
        attrs = {"fillcolor": "#e8f0fe"}
    elif unit.kind == "statement":
        statement = _statement_label(e, node, {m.id for m in unit.members} - {node.id})
        rhs = statement.partition(" = ")[2]
        if rhs:
            lines.append(_font(_shorten(rhs, OP_TEXT_MAX), "#333333", 10, CODE_FONT))
        lines.append(_font(f"{len(unit.members)} operations", MUTED_COLOR, 10))
        attrs = {"style": "rounded,dashed,filled", "fillcolor": "#fafafa"}
    elif node.id in statement_text:
        lines.append(_font(_shorten(statement_text[node.id], OP_TEXT_MAX), "#333333", 10, CODE_FONT))
    if node.shape:
        shape = format_shape(node.shape)
        value = ev.value.get(node.id)
        concrete = "" if value is None or shape == format_shape(np.shape(value)) else \
            f" = {format_shape(np.shape(value))}"
        lines.append(_font(f"shape {shape}{concrete}", MUTED_COLOR, 10))
    if node.id in ev.gradient:
        lines.append(_gradient_label(ev.gradient[node.id], ev.adjoint_name.get(node.id)))
    if node.id == e.output.id:
        attrs = {"fillcolor": "#fff4e0", "peripheries": "2"}
    dot.node(unit.key, label=f"<{'<br/>'.join(lines)}>", **attrs)


def _gradient_label(g, adjoint: str | None) -> str:
    """A node's gradient: `dx = 0.5`, or the norm of a tensor's, `‖dW‖ = 3.1`."""
    text = f"‖{adjoint or 'g'}‖ = {_number(_norm(g))}" if np.ndim(g) else f"{adjoint or 'grad'} = {_number(g)}"
    return _font(text, GRADIENT_COLOR, 11)


def _legend(ev: Evaluation, collapsed: bool) -> list[tuple[str, str]]:
    tensors = any(np.ndim(v) for v in ev.value.values())
    rows = [
        (_font("value", VALUE_COLOR, 10), "on an edge: the value flowing forward from the source"),
        (_font("gradient", GRADIENT_COLOR, 10),
         "on an edge: the gradient flowing back along it, the term its backward line adds to the source's adjoint"),
        (_font("dname = ...", GRADIENT_COLOR, 10),
         "in a node: its gradient (adjoint), the sum of the red numbers on its outgoing edges"),
    ]
    if tensors:
        rows.append((_font("‖v‖ ‖g‖", MUTED_COLOR, 10), "Frobenius norms of a tensor value and gradient"))
    if ev.fn.emitted.seed is not None:
        rows.append((_font("seed", GRADIENT_COLOR, 10), "the output's gradient is the vjp seed (ones unless given)"))
    if collapsed:
        rows.append((_font("dashed", MUTED_COLOR, 10),
                     "collapsed operations; a grey name on an edge says which one the value leaves"))
    return rows


# writing ----------------------------------------------------------------------------------------------------------


def picture_format(path: str | os.PathLike) -> str | None:
    """Graphviz's output format for a file name (None: the DOT source itself)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise BpgenError(f"{path}: unknown picture format {suffix or '(no extension)'}; "
                         f"use .svg, .png, .pdf or .dot")
    return FORMATS[suffix]


def write(picture, path: str | os.PathLike) -> Path:
    """Write a graph to `path` (.svg, .png, .pdf rendered by Graphviz's dot; .dot/.gv the source), atomically.
    Without dot, writes the .dot next to it and raises DotNotFound."""
    import graphviz

    path = Path(path)
    fmt = picture_format(path)
    if fmt is None:
        return write_atomic(path, picture.source)
    try:
        data = picture.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        dot_path = path.with_suffix(".dot")
        write_atomic(dot_path, picture.source)
        raise DotNotFound(dot_path, path) from None
    except graphviz.CalledProcessError as exc:
        raise BpgenError(f"dot could not render {path}: {exc}") from None
    return write_atomic(path, data)
