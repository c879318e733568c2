"""`bpgen.scan(step, init, xs=None, length=None)`: a loop whose gradient is a loop.

JAX's convention: `step(carry, x) -> (new_carry, y)` is a plain Python function, traced once on
placeholders for one carry and one slice of the sequences; `carry` is a Tensor (a number is a 0-d one) or a
tuple of them, the same structure in and out; `ys` stacks the ys along a new leading axis. The step may read
tensors of the enclosing function (weights shared across steps); gradients reach them, `init` and `xs`.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable

import sympy

from ..errors import BpgenError
from ..ir.graph import Node
from ..ir.loops import ScanBody, body_schedule, closed_values, substitute
from ..ir.ops import Op
from ..ir.shapes import format_shape
from .tensor import ALGEBRA, GRAPH, Tensor, as_node
from .trace import trace

_SCANS = itertools.count()


def scan(step: Callable, init, xs=None, length: int | None = None, *, checkpoint: int | None = None):
    """(carry, ys): run `step` over the leading axis of `xs` (or `length` times), carrying `carry`.

    checkpoint=k stores every k-th carry instead of every one and recomputes the others in the backward loop:
    memory O(steps / k + k) carries for the same gradient, bit for bit.
    """
    name = getattr(step, "__name__", "step")
    if not callable(step):
        raise BpgenError(f"scan: step must be a function (carry, x) -> (carry, y), not {type(step).__name__}")
    if checkpoint is not None:
        if not _whole(checkpoint):
            raise BpgenError(f"scan {name}: checkpoint must be a whole number of steps >= 1, not {checkpoint!r}")
        checkpoint = int(checkpoint)
    values = list(init) if isinstance(init, (tuple, list)) else [init]
    numbers_only = xs is None and bool(values) and all(_is_number(v) for v in values)
    if numbers_only:  # a carry started from a number: a SymPy scan, unless the step computes with tensors
        try:
            _steps(name, [], length)
            return _sympy_scan(step, name, [sympy.sympify(v) for v in values], isinstance(init, (tuple, list)),
                               length, checkpoint)
        except (BpgenError, TypeError):
            pass
    if values and any(isinstance(v, sympy.Expr) and not isinstance(v, sympy.Number) for v in values) \
            and not any(isinstance(v, Tensor) for v in values):
        if xs is not None:
            raise BpgenError(f"scan {name}: in a SymPy function there are no sequences to scan over: use "
                             "length= (or declare the function with shapes= for tensors)")
        _steps(name, [], length)
        return _sympy_scan(step, name, [sympy.sympify(v) for v in values], isinstance(init, (tuple, list)),
                           length, checkpoint)
    init_tensors, carry_is_tuple = _tensors(init, "scan: init")
    seqs, xs_is_tuple = ([], False) if xs is None else _tensors(xs, "scan: xs")
    steps = _steps(name, seqs, length)

    uid = next(_SCANS)
    carries = [_placeholder(uid, "carry", k, t.shape) for k, t in enumerate(init_tensors)]
    slices = [_placeholder(uid, "x", k, t.shape[1:]) for k, t in enumerate(seqs)]
    carry_arg = tuple(carries) if carry_is_tuple else carries[0]
    x_arg = None if xs is None else (tuple(slices) if xs_is_tuple else slices[0])
    result, hints = _trace_step(step, carry_arg, x_arg)
    new_carry, y = _carry_and_y(name, result)
    out_tensors, out_is_tuple = _tensors(new_carry, f"scan {name}: the new carry")
    if out_is_tuple != carry_is_tuple or len(out_tensors) != len(init_tensors):
        raise BpgenError(f"scan {name}: the new carry must have the structure of init ({len(init_tensors)} "
                         f"{'tensors in a tuple' if carry_is_tuple else 'tensor'})")
    for k, (before, after) in enumerate(zip(init_tensors, out_tensors)):
        if before.shape != after.shape:
            raise BpgenError(f"scan {name}: carry {k} has shape {format_shape(before.shape)} in and "
                             f"{format_shape(after.shape)} out")
    ys, ys_is_tuple = ([], False) if y is None else _tensors(y, f"scan {name}: y")

    node = scan_node(ALGEBRA, uid, name, [c.node for c in carries], [x.node for x in slices],
                     [t.node for t in out_tensors], [t.node for t in ys], [t.node for t in init_tensors],
                     [t.node for t in seqs], steps, checkpoint,
                     _param_names(step, len(carries), len(slices), carry_is_tuple, xs_is_tuple), hints)
    outputs = out_tensors + ys
    parts = [Tensor._wrap(ALGEBRA.make(Op.PART, (node,), (k,))) for k in range(len(outputs))]
    carry_result = tuple(parts[:len(carries)]) if carry_is_tuple else parts[0]
    if y is None:
        return carry_result, None
    stacked = parts[len(carries):]
    return carry_result, (tuple(stacked) if ys_is_tuple else stacked[0])


def scan_node(A, uid: int, name: str, carries: list[Node], slices: list[Node], carry_out: list[Node],
              ys: list[Node], init: list[Node], seqs: list[Node], steps, checkpoint, params: tuple,
              hints: list) -> Node:
    """The scan node of a traced step: its body, with what it reads from outside behind placeholders."""
    placeholders = carries + slices
    outputs = carry_out + ys
    closed = closed_values(outputs, placeholders)
    # the step sees the values it reads from outside through placeholders of its own, so that no rewrite of
    # its gradient reaches past them (the transpose of a W.T read in the step is not the outer W)
    stand_ins = [A.graph.input(-1, ("scan", uid, "closed", k), c.shape) for k, c in enumerate(closed)]
    rebuilt = substitute(A.graph, outputs, {c.id: p for c, p in zip(closed, stand_ins)})
    hints_by_id = {rebuilt[node.id].id: local for node, local in hints if node.id in rebuilt}
    new_outputs = [rebuilt[o.id] for o in outputs]
    # a tuple the step unpacks (`a, b, c = carry`) names its entries
    params = tuple(hints_by_id.get(p.id, default) for p, default in zip(placeholders, params))
    body = ScanBody(name, tuple(carries), tuple(slices), tuple(stand_ins), tuple(new_outputs[:len(carry_out)]),
                    tuple(new_outputs[len(carry_out):]), steps, checkpoint, params, hints_by_id)
    if any(node.op == Op.SCAN for node in body_schedule(body)):
        raise BpgenError(f"step {name}: a bpgen.scan inside a step is not supported yet; scan over the inner loop "
                         "in the enclosing function, or unroll it in the step")
    return A.make(Op.SCAN, [*init, *seqs, *closed], (body,))


class ScanCarry(sympy.Function):
    """A final carry of a scan in a SymPy function: `scan_layer_0(k, *init, *closed)`; its class holds the
    traced step (`spec`), which the lowering turns into a scan node (`lower_sympy_scan`)."""

    spec: dict = {}
    is_scan_result = True  # what the lowering looks for (it cannot import this module: a cycle)

    def _eval_derivative(self, s):
        raise BpgenError("a scan's result is differentiated by bpgen, not by sympy.diff")


def _sympy_scan(step: Callable, name: str, init: list, carry_is_tuple: bool, length, checkpoint):
    """scan in a SymPy function: the carries are SymPy scalars and there are no sequences (use length=)."""
    uid = next(_SCANS)
    symbols = [sympy.Symbol(f"_carry{k}_scan{uid}", real=True) for k in range(len(init))]
    result, hints = _trace_step(step, tuple(symbols) if carry_is_tuple else symbols[0], None, frozenset(symbols))
    new_carry, y = _carry_and_y(name, result)
    if y is not None:
        raise BpgenError(f"scan {name}: in a SymPy function the step returns y=None (stacked ys are arrays: "
                         "declare the function with shapes= to have them)")
    outputs = list(new_carry) if isinstance(new_carry, (tuple, list)) else [new_carry]
    if isinstance(new_carry, (tuple, list)) != carry_is_tuple or len(outputs) != len(init):
        raise BpgenError(f"scan {name}: the new carry must have the structure of init ({len(init)} "
                         f"{'values in a tuple' if carry_is_tuple else 'value'})")
    outputs = [sympy.sympify(o) for o in outputs]
    closed = sorted(set().union(*(o.free_symbols for o in outputs)) - set(symbols), key=lambda s: s.name)
    spec = {"uid": uid, "name": name, "symbols": symbols, "outputs": outputs, "closed": closed, "hints": hints,
            "length": length, "checkpoint": checkpoint, "params": _param_names(step, len(init), 0, carry_is_tuple,
                                                                                False)}
    cls = type(f"scan_{name}_{uid}", (ScanCarry,), {"spec": spec})
    results = [cls(sympy.Integer(k), *init, *closed) for k in range(len(init))]
    return (tuple(results) if carry_is_tuple else results[0]), None


def lower_sympy_scan(lowerer, e: ScanCarry) -> Node:
    """The part of a scan node that `e` stands for, the scan lowered once per lowering (and per scan)."""
    spec = type(e).spec
    scans = lowerer.__dict__.setdefault("scans", {})
    if spec["uid"] not in scans:
        A = lowerer.A
        count = len(spec["symbols"])
        init = [lowerer.memo[a] for a in e.args[1:1 + count]]
        carries = [A.graph.input(-1, ("scan", spec["uid"], "carry", k), ()) for k in range(count)]
        leaves = dict(zip(spec["symbols"], carries))
        leaves.update((s, lowerer.memo[s]) for s in spec["closed"])
        inner = type(lowerer)(A, leaves, named=(expr for expr, _ in spec["hints"]))  # the step's own lowering
        outputs = [inner.lower(o) for o in spec["outputs"]]
        hints = [(leaves[expr] if expr in leaves else inner.memo[expr], local) for expr, local in spec["hints"]
                 if expr in leaves or expr in inner.memo]
        scans[spec["uid"]] = scan_node(A, spec["uid"], spec["name"], carries, [], outputs, [], init, [],
                                       spec["length"], spec["checkpoint"], spec["params"], hints)
    return lowerer.A.make(Op.PART, (scans[spec["uid"]],), (int(e.args[0]),))


def _tensors(value, what: str) -> tuple[list[Tensor], bool]:
    """A Tensor, a number or a SymPy number, or a tuple/list of them: (the tensors, whether a tuple)."""
    if isinstance(value, (tuple, list)):
        if not value:
            raise BpgenError(f"{what} is an empty tuple")
        return [_tensor(v, what) for v in value], True
    return [_tensor(value, what)], False


def _tensor(value, what: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float, sympy.Number)) and not isinstance(value, bool):
        return Tensor._wrap(as_node(value))
    raise BpgenError(f"{what} must be a bpgen.Tensor, a number or a tuple of them, not {type(value).__name__}")


def _is_number(value) -> bool:
    """A plain real number (Python's, NumPy's, SymPy's), not a bool."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)) or isinstance(value, sympy.Number)


def _whole(value) -> bool:
    """A whole number >= 1 of any integer type (Python's, NumPy's), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1  # np.bool_ is no Integral


def _steps(name: str, seqs: list[Tensor], length):
    if not seqs:
        if length is None:
            raise BpgenError(f"scan {name}: give xs or length")
        if not _whole(length):
            raise BpgenError(f"scan {name}: length must be a whole number >= 1, not {length!r}")
        return int(length)
    for t in seqs:
        if not t.shape:
            raise BpgenError(f"scan {name}: xs must have a leading axis to scan over, not shape ()")
    first = seqs[0].shape[0]
    for t in seqs[1:]:
        if t.shape[0] != first:
            raise BpgenError(f"scan {name}: the sequences have {first} and {t.shape[0]} steps")
    if length is not None and length != first:
        raise BpgenError(f"scan {name}: length={length} but xs has {first} steps")
    return first


def _placeholder(uid: int, role: str, k: int, shape: tuple) -> Tensor:
    return Tensor._wrap(GRAPH.input(-1, ("scan", uid, role, k), tuple(shape)))


def _trace_step(step: Callable, carry, x, named_atoms=frozenset()) -> tuple:
    """Run the step once on the placeholders (x is None without xs), recording its local names."""
    code = getattr(step, "__code__", None)
    if code is None:
        return step(carry, x), []
    if code.co_argcount != 2:
        raise BpgenError(f"scan {step.__name__}: the step takes (carry, x), x being None without xs; it has "
                         f"{code.co_argcount} parameters")
    return trace(step, [carry, x], named_atoms)


def _carry_and_y(name: str, result) -> tuple:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise BpgenError(f"scan {name}: the step must return (new_carry, y), not {type(result).__name__}")
    return tuple(result)


def _param_names(step: Callable, carries: int, slices: int, carry_is_tuple: bool, xs_is_tuple: bool) -> tuple:
    """Names for the placeholders: the step's parameter names (`h`, `x`), numbered for tuples (`c0`, `c1`)."""
    code = getattr(step, "__code__", None)
    names = list(code.co_varnames[:code.co_argcount]) if code is not None else ["carry", "x"]
    carry = names[0] if names else "carry"
    x = names[1] if len(names) > 1 else "x"
    carry_names = [f"{carry}{k}" for k in range(carries)] if carry_is_tuple else [carry]
    x_names = [f"{x}{k}" for k in range(slices)] if xs_is_tuple else [x] * slices
    return tuple(carry_names + x_names)

