"""`@bpgen.function`: declare a function in plain Python, keeping the user's names.

The decorated function is called once with SymPy symbols for its parameters,
under `sympy.evaluate(False)` so the expression DAG mirrors the statements as
written (SymPy's automatic evaluation would distribute constants over sums
and blow deep compositions up). A line tracer watches the function's frame
and records, for every SymPy value a local variable takes, the variable's
name: those names become the names of the intermediates in generated code.
"""

from __future__ import annotations

import inspect
import os
import traceback
from collections.abc import Callable

import sympy

from ..errors import BpgenError
from ..frontend.declaration import declare, declare_tensor, derivative_kinds
from ..frontend.trace import trace
from .compiled import CompiledFunction, artifact


def function(fn: Callable | None = None, *, wrt: list[str] | None = None, name: str | None = None,
             jit: bool = True, shapes: dict | None = None, derivatives: str | tuple[str, ...] = (),
             backend: str = "numba", batch_axes: dict | None = None
             ) -> CompiledFunction | Callable[[Callable], CompiledFunction]:
    """Declare a differentiable function; returns its CompiledFunction (same object as `bpgen.compile` gives).

    Each parameter becomes a real SymPy symbol of the same name, or, with
    `shapes={"X": ("N", 784), "W": (784, 10), "b": (10,)}`, a bpgen.Tensor of
    that shape (strings are symbolic sizes). `wrt` names the parameters to
    differentiate with respect to (default: all). `derivatives` ("jvp",
    "hvp", "hessian") are functions its generated module also holds, as
    `bpgen generate --derivatives` adds them. `backend="numpy"` prints a module that needs only NumPy.
    `batch_axes={"X": 1}` says which axis of a tensor input holds its rows when it is passed as a Dask array
    (by default, the symbolic size the Dask inputs share that no scan runs over).
    """
    if fn is None:
        return lambda f: function(f, wrt=wrt, name=name, jit=jit, shapes=shapes, derivatives=derivatives,
                                  backend=backend, batch_axes=batch_axes)
    if batch_axes is not None and shapes is None:
        raise BpgenError(f"{fn.__name__}: batch_axes is for tensor functions (declared with shapes=)")
    derivatives = derivative_kinds(derivatives)
    signature = inspect.signature(fn)
    for p in signature.parameters.values():
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            raise BpgenError(f"{fn.__name__}: parameter {p.name!r} must be a plain positional parameter")
    if shapes is not None:
        return _tensor_function(fn, list(signature.parameters), shapes, wrt, name, jit, derivatives, backend,
                                batch_axes)
    symbols = [sympy.Symbol(p, real=True) for p in signature.parameters]
    by_name = dict(zip(signature.parameters, symbols))
    wrt_symbols = None
    if wrt is not None:
        wrt = [getattr(w, "name", w) for w in wrt]  # a symbol or tensor for a parameter stands for its name
        unknown = [w for w in wrt if w not in by_name]
        if unknown:
            raise BpgenError(f"{fn.__name__}: wrt entry {unknown[0]!r} is not a parameter")
        wrt_symbols = [by_name[w] for w in wrt]
    output, hints = _run(fn, symbols, tensors=False)
    if isinstance(output, bool):
        raise BpgenError(f"{fn.__name__} must return a SymPy expression, not the boolean {output}")
    if isinstance(output, (int, float)):
        output = sympy.Float(output)
    if not isinstance(output, (sympy.Expr, tuple, list, sympy.MatrixBase)):
        raise BpgenError(f"{fn.__name__} must return a SymPy expression (or a tuple of them), not "
                         f"{type(output).__name__}")
    declaration = declare(output, symbols, wrt_symbols, name or fn.__name__, _origin(fn), hints)
    return CompiledFunction(artifact(declaration, derivatives, backend, jit))


# What SymPy says when a declaration uses Python control flow or math on a symbol, and what to write instead
_MISTAKES = {
    "cannot determine truth value of Relational": "`if`, `while`, `and`/`or` or `min`/`max` on a comparison of "
    "symbols cannot be decided while the function is declared: write the branch with sympy.Piecewise, sympy.Max, "
    "sympy.Min or bpgen.relu",
    "Cannot convert expression to float": "a function of the math module (math.exp, math.log, ...) needs a number, "
    "and gets a symbol while the function is declared: use sympy.exp, bpgen.exp and the like",
}


# what array code says when it runs on the numbers of a function declared without shapes=
_MISSING_SHAPES = ("for @: '", "in a tensor expression", "object has no attribute")


def _run(fn: Callable, args: list, tensors: bool = True) -> tuple:
    """trace(fn, args), with the mistakes users make in a declaration said in one line, at their line. `tensors`:
    the parameters are tensors (shapes= was given); else numbers, and array code on them means shapes= is missing."""
    try:
        return trace(fn, args)
    except (TypeError, AttributeError, BpgenError) as exc:
        if not tensors and any(text in str(exc) for text in _MISSING_SHAPES):
            example = ", ".join(f"{str(a)!r}: (...)" for a in args[:2])
            hint = (f"{exc}: without shapes= the parameters are numbers (SymPy symbols); for arrays, declare "
                    f"their shapes, e.g. @bpgen.function(shapes={{{example}}})")
        else:
            hint = next((hint for text, hint in _MISTAKES.items() if text in str(exc)), None)
        if hint is None:
            raise
        line = next((frame.lineno for frame in reversed(traceback.extract_tb(exc.__traceback__))
                     if frame.filename == fn.__code__.co_filename), None)
        where = f"{fn.__name__}" + (f", line {line}" if line else "")
        raise BpgenError(f"{where}: {hint}") from None


def _origin(fn: Callable) -> str:
    try:
        path = inspect.getsourcefile(fn) or "<unknown>"
    except TypeError:
        path = "<unknown>"
    try:
        path = os.path.relpath(path)
    except ValueError:
        pass
    if path.startswith(".."):
        path = os.path.basename(path)
    return f"{path}:{fn.__qualname__}"


def _tensor_function(fn, params, shapes, wrt, name, jit, derivatives=(), backend="numba", batch_axes=None):
    from ..frontend.tensor import Tensor

    missing = [p for p in params if p not in shapes]
    if missing:
        raise BpgenError(f"{fn.__name__}: shapes gives no shape for parameter {missing[0]!r}")
    extra = [k for k in shapes if k not in params]
    if extra:
        raise BpgenError(f"{fn.__name__}: shapes names {extra[0]!r}, which is not a parameter")
    tensors = [Tensor(p, shapes[p]) for p in params]
    by_name = dict(zip(params, tensors))
    if wrt is not None:
        wrt = [getattr(w, "name", w) for w in wrt]  # a symbol or tensor for a parameter stands for its name
        unknown = [w for w in wrt if w not in by_name]
        if unknown:
            raise BpgenError(f"{fn.__name__}: wrt entry {unknown[0]!r} is not a parameter")
    output, hints = _run(fn, tensors)
    if not isinstance(output, Tensor):
        raise BpgenError(f"{fn.__name__} must return a Tensor, not {type(output).__name__}")
    # the names of tensors; a local holding a SymPy constant or Lambda (no IR node) names nothing
    names = [(node.id, local) for node, local in hints if not isinstance(node, sympy.Basic)]
    declaration = declare_tensor(output, tensors, None if wrt is None else [by_name[w] for w in wrt],
                                 name or fn.__name__, _origin(fn), names, batch_axes)
    return CompiledFunction(artifact(declaration, derivatives, backend, jit))
