"""A Python target: its syntax table, the runtime modules its helpers come from, and its decorators.

The generated module holds the source of every runtime helper its code calls (and of the helpers those call),
so it imports nothing of bpgen. A target looks a helper up in its own runtime modules first, then in the
shared one (bpgen/runtime.py).
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ...ir.graph import NO_RULE_OPS, Node
from ...ir.ops import Op
from .syntax import Printing, Syntax, sympy_printing

SHARED_RUNTIME = "bpgen.runtime"


@dataclass(frozen=True)
class Target:
    name: str  # "numba", "numpy": what `backend=` and `--backend` take
    syntax: Mapping[str, Printing]  # op -> how it prints
    runtimes: tuple[str, ...] = (SHARED_RUNTIME,)  # modules of helpers, the first that defines a name wins
    jit_decorator: str = ""  # above each generated function ("" for none)
    inlined_decorator: str = ""  # above a function that callers inline (loops over points, elements)
    inlined_helpers: frozenset[str] = frozenset()  # helpers that callers inline
    jit: bool = False  # whether the module's functions are compiled when it is imported
    # a module whose compiled_helpers(version, *helpers) returns bpgen's compiled copies of a generated module's
    # helpers, cached once per machine ("" for none), and the version (digest) this target's helpers have
    compiled_runtime: str = ""
    runtime_version: str = ""
    # module-level names helpers use -> the plain (undecorated) helper whose value each is: a module holding a
    # helper that uses the name holds `name = helper()` after that helper's source
    bindings: Mapping[str, str] = field(default_factory=dict)

    def printing(self, node: Node) -> Printing:
        if node.op == Op.CALL:  # a SymPy function outside the table, printed as SymPy prints it
            return sympy_printing(node.attrs[0], len(node.args))
        return self.syntax[node.op]

    def syntax_of(self, node: Node) -> Syntax:
        """How a node prints: its array form on arrays, when it has one."""
        return self.printing(node).syntax(node)

    def decorator(self, inlined: bool = False) -> str:
        return self.inlined_decorator if inlined else self.jit_decorator

    def helper_decorator(self, name: str) -> str:
        if name in self.bound_by:
            return ""
        return self.decorator(name in self.inlined_helpers)

    @functools.cached_property
    def bound_by(self) -> dict[str, str]:
        """The plain helpers that make the module's bound names: helper -> the name it binds."""
        return {helper: name for name, helper in self.bindings.items()}

    @functools.cached_property
    def runtime_names(self) -> frozenset[str]:
        """Every helper name generated code may call: never a local's name."""
        return frozenset(name for module in self.runtimes for name in _functions_of(module))

    def helper_function(self, name: str) -> Callable:
        for module in self.runtimes:
            if name in _functions_of(module):
                return getattr(importlib.import_module(module), name)
        raise KeyError(f"{self.name} target: no runtime helper {name!r}")

    def helper_source(self, name: str) -> str:
        """The source of a runtime helper, as a generated module holds it (without a decorator); a binding helper's
        is followed by the line that binds its name."""
        source = inspect.getsource(self.helper_function(name))
        if name in self.bound_by:
            source = f"{source.rstrip()}\n\n\n{self.bound_by[name]} = {name}()\n"
        return source

    def helpers_used(self, nodes: Iterable[Node], also: Iterable[str] = ()) -> list[str]:
        """The helpers the printed code of `nodes` calls (and `also` those), with the helpers they call in turn:
        each after the ones it calls, otherwise in alphabetical order, so that a module lists them in one
        stable order."""
        used = set(also)
        for node in nodes:
            if node.op not in NO_RULE_OPS:
                helper = self.printing(node).helper_of(node)
                if helper:
                    used.add(helper)
        return self.with_callees(used)

    def with_callees(self, names: Iterable[str]) -> list[str]:
        ordered: list[str] = []

        def visit(name: str) -> None:
            if name not in ordered:
                for callee in self._callees(name):
                    visit(callee)
                ordered.append(name)

        for name in sorted(set(names)):
            visit(name)
        return ordered

    def _callees(self, name: str) -> tuple[str, ...]:
        """The helpers a helper calls, in its body or in a comprehension or lambda inside it."""
        found: set[str] = set()
        codes = [self.helper_function(name).__code__]
        while codes:
            code = codes.pop()
            found.update(n for n in code.co_names if n in self.runtime_names)
            found.update(self.bindings[n] for n in code.co_names if n in self.bindings)
            codes.extend(c for c in code.co_consts if hasattr(c, "co_names"))
        return tuple(sorted(found))


@functools.cache
def _functions_of(module: str) -> frozenset[str]:
    """The functions a runtime module defines, read off its source: the module (and NumPy with it) is imported
    only when a helper's source or value is needed."""
    spec = importlib.util.find_spec(module)
    with open(spec.origin, encoding="utf-8") as file:
        tree = ast.parse(file.read())
    return frozenset(node.name for node in tree.body if isinstance(node, ast.FunctionDef))
