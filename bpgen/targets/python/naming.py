"""Every naming decision: user names first, readable fallbacks, the `d` prefix, uniqueness, safety.

Names live in one namespace per generated function. Reserved words (Python
keywords and builtins, the modules and functions the generated code uses)
are never handed out; the user's names are claimed first, generated names
take what is left, so a user's `dx` stays `dx` and the adjoint of `x` becomes
`dx_1`. Any user string is reduced to an ASCII identifier before it can
reach generated code.
"""

from __future__ import annotations

import builtins
import keyword
from collections.abc import Iterable, Mapping

from ...frontend.names import TANGENT_PREFIX, sanitize
from ...ir.graph import READ_OPS, Node
from ...ir.ops import Op
from ..numba.options import BINDINGS, BLAS_RUNTIME
from .target import SHARED_RUNTIME, _functions_of

ADJOINT_PREFIX = "d"  # dx is the adjoint (gradient) of x
SUFFIX = "{name}_{k}"  # x_1, x_2 ... when x is taken
FALLBACK = "{op}{k}"  # exp1, add2 ... for intermediates the user did not name

# Names the generated module defines or uses itself: a local of the same name would hide them.
MODULE_NAMES = ("math", "np", "numpy", "numba", "forward", "value_and_grad", "grad", "value_and_grad_batch",
                "vjp", "jvp", "hvp", "hessian", "check_arguments", "compiled_helpers", "gradients",
                *sorted(_functions_of(SHARED_RUNTIME)), *sorted(_functions_of(BLAS_RUNTIME)), *sorted(BINDINGS))

RESERVED = (frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
            | frozenset(MODULE_NAMES))


class Namespace:
    """Hands out unique identifiers, never a reserved one."""

    def __init__(self, taken: frozenset[str] | set[str] = RESERVED):
        self.taken = set(taken)
        # the suffix to try next for a base name: names are never given back, so every smaller suffix is taken,
        # and a local reassigned 20,000 times costs 20,000 tries, not 20,000**2 / 2
        self.next_suffix: dict[str, int] = {}

    def claim(self, preferred: str) -> str:
        """`preferred` made safe, or with the smallest free suffix (x_1, x_2, ...) when that is taken."""
        base = sanitize(preferred)
        name = base
        if name in self.taken:
            k = self.next_suffix.get(base, 1)
            name = SUFFIX.format(name=base, k=k)
            while name in self.taken:
                k += 1
                name = SUFFIX.format(name=base, k=k)
            self.next_suffix[base] = k + 1
        self.taken.add(name)
        return name


class FallbackNames:
    """Generated names for unnamed intermediates: op name and a counter per op."""

    def __init__(self, namespace: Namespace):
        self.namespace = namespace
        self.counters: dict[str, int] = {}

    def next(self, op: str) -> str:
        op = sanitize(op)
        while True:
            k = self.counters.get(op, 0) + 1
            self.counters[op] = k
            candidate = FALLBACK.format(op=op, k=k)
            if candidate not in self.namespace.taken:
                return self.namespace.claim(candidate)


def adjoint_name(namespace: Namespace, forward_name: str) -> str:
    return namespace.claim(ADJOINT_PREFIX + forward_name)


# fallback names read as the user's function, not the variant
LABELS = {Op.MAX_ALL: "max", Op.MAX_ALONG: "max", Op.MAX_LAST: "max"}


def _label(node: Node) -> str:
    if node.op == Op.CALL:
        return getattr(node.attrs[0], "__name__", "call").lower()
    return LABELS.get(node.op, node.op)


def assign_names(inputs: list[Node], input_names: list[str], forward: list[Node],
                 hints: dict[int, str], adjoints: list[Node], dims: list[Node] = (),
                 tangents: list[Node] = (), extra: list[tuple[Node, str]] = (),
                 reserved: Iterable[str] = (), scan_tangents: Mapping[int, Node] | None = None) -> dict[int, str]:
    """Names for inputs, symbolic sizes ("dim" nodes), forward intermediates and adjoints, keyed by node id;
    `extra`: other values the code names, with the name each prefers (a loop's tape); `reserved`: names of
    the module's own functions no local may take (a loop's functions); `scan_tangents`: a tangent scan's results
    (node id) with their tangents, named after them (`th` for `h`)."""
    namespace = Namespace()
    namespace.taken.update(reserved)
    names: dict[int, str] = {}
    for node, name in zip(inputs, input_names):
        names[node.id] = namespace.claim(name)
    for node in dims:
        names[node.id] = namespace.claim(str(node.attrs[0]))
    scan_tangents = scan_tangents or {}
    named_after = {t.id for t in scan_tangents.values()}
    statements = [n for n in forward if n.op not in READ_OPS and n.op != Op.TANGENT and n.id not in named_after]
    for node in statements:  # the user's names win
        if node.id in hints and node.id not in names:
            names[node.id] = namespace.claim(hints[node.id])
    fallback = FallbackNames(namespace)
    for node in statements:
        if node.id not in names:
            names[node.id] = fallback.next(_label(node))
    for adj in adjoints:
        if adj.args[0].id in names:
            names[adj.id] = adjoint_name(namespace, names[adj.args[0].id])
    for tangent in tangents:
        names[tangent.id] = namespace.claim(TANGENT_PREFIX + names[tangent.args[0].id])
    for primal, tangent in scan_tangents.items():
        names[tangent.id] = namespace.claim(TANGENT_PREFIX + names[primal])
    for adj in adjoints:  # the adjoint of a tangent (hvp through a loop differentiates jvp's program)
        if adj.id not in names:
            names[adj.id] = adjoint_name(namespace, names[adj.args[0].id])
    for node, preferred in extra:
        names[node.id] = namespace.claim(preferred)
    return names
