"""Tracing a declaration: run the user's function on symbols or tensors, recording the local names its values
take (in it, and in the helpers its file defines), which become the names of the intermediates in generated
code. A value keeps the first name it takes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import sympy


def trace(fn: Callable, symbols: list, named_atoms=frozenset()) -> tuple[sympy.Basic, list[tuple[sympy.Basic, str]]]:
    """Run `fn` on `symbols`; return its result and (value, local name) pairs in assignment order. Symbols are
    not named (they have names), except `named_atoms` (a scan's carries, named as the step unpacks them)."""
    hints: dict[sympy.Basic, str] = {}
    code = fn.__code__

    from .tensor import ALGEBRA, LOCAL_NAMES, Tensor

    def record(frame) -> None:
        for local, value in frame.f_locals.items():
            if isinstance(value, Tensor):
                if value.name is None and value.node not in hints:
                    hints[value.node] = local
                    # while the function runs: rewrites keep the tensors it names (a helper's names only label:
                    # its log of a softmax stays a log-softmax, as before it named anything), errors use the name
                    if frame.f_code is code:
                        ALGEBRA.keep.add(value.node.id)
                    LOCAL_NAMES[value.node.id] = local
            elif isinstance(value, sympy.Expr) and (not value.is_Atom or value in named_atoms) and value not in hints:
                hints[value] = local

    def local_tracer(frame, event, arg):
        if event in ("line", "return"):
            record(frame)
        return local_tracer

    # the helpers the function's file defines (a model's layers) name values too; code made by exec has no file
    helpers_file = None if code.co_filename.startswith("<") else code.co_filename

    def global_tracer(frame, event, arg):
        return local_tracer if frame.f_code is code or frame.f_code.co_filename == helpers_file else None

    previous = sys.gettrace()
    kept, local_names = set(ALGEBRA.keep), dict(LOCAL_NAMES)
    sys.settrace(global_tracer)
    try:
        with sympy.evaluate(False):
            result = fn(*symbols)
    finally:
        sys.settrace(previous)
        ALGEBRA.keep.intersection_update(kept)  # another function's names are its own
        LOCAL_NAMES.clear()
        LOCAL_NAMES.update(local_names)
    return result, list(hints.items())
