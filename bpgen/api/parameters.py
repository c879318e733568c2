"""What a compiled function's parameters are: names, shapes, and the kind of values they take.

The gradient checker draws random arguments from this description and the
precompiler turns it into Numba signatures. Most parameters are real
numbers or float arrays; two losses say more of theirs: `cross_entropy` takes
integer class labels, and `softmax_cross_entropy` targets whose rows are
usually distributions, which is what the gradient check draws for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import BpgenError
from ..ir.graph import schedule, viewed
from ..ir.ops import Op
from ..ir.shapes import format_shape

if TYPE_CHECKING:  # a compiled function or the pipeline's artifact: both have .declaration and .params
    from ..program.build import Artifact

DEFAULT_DIM = 5  # a symbolic size the user did not set


@dataclass(frozen=True)
class Parameter:
    name: str  # as in the generated code
    shape: tuple  # ints and SymPy symbols; () for a number
    # "real"; "labels" (integers 0..classes-1); "distribution" (rows summing to 1, as targets usually are);
    # "index" (integers 0..classes-1 picking rows of a table, classes its rows); "mask" (booleans)
    kind: str
    classes: int | str | None = None  # for labels, indices and distributions: the number of classes or rows
    differentiable: bool = True

    @property
    def dtype(self) -> str:
        """The NumPy dtype the generated code takes for this parameter."""
        return "int64" if self.kind in ("labels", "index") else "bool" if self.kind == "mask" else "float64"

    def concrete_shape(self, dims: dict[str, int]) -> tuple[int, ...]:
        return tuple(concrete_dim(d, dims) for d in self.shape)

    def random(self, dims: dict[str, int], rng, positive: bool):
        """A random value for the parameter: a float, or an array of its shape and kind (a gradient check's point,
        a picture's inputs)."""
        shape = self.concrete_shape(dims)
        if self.kind in ("labels", "index"):
            return rng.integers(0, concrete_dim(self.classes, dims), size=shape)
        if self.kind == "mask":
            return rng.uniform(size=shape) < 0.7
        if self.kind == "distribution":
            rows = rng.uniform(0.1, 1.0, size=shape)
            return rows / rows.sum(axis=-1, keepdims=True)
        if not shape:
            return float(rng.uniform(0.1, 2.0)) if positive else float(rng.normal())
        return rng.uniform(0.1, 2.0, size=shape) if positive else rng.normal(size=shape)


def concrete_dim(d, dims: dict[str, int]) -> int:
    return d if isinstance(d, int) else dims.get(str(d), DEFAULT_DIM)


def parameters(fn: Artifact) -> list[Parameter]:
    """One Parameter per positional parameter of the generated functions, in order."""
    declaration = fn.declaration
    if not declaration.is_tensor:
        return [Parameter(name, (), "real") for name in fn.params]
    kinds: dict[int, tuple[str, object]] = {}
    for node in schedule([declaration.output]):
        if node.op == Op.CROSS_ENTROPY:
            kinds[node.args[1].id] = ("labels", node.args[0].shape[1])
        elif node.op == Op.SOFTMAX_CE:
            kinds.setdefault(node.args[1].id, ("distribution", node.args[0].shape[1]))
        elif node.op == Op.TAKE_ROWS:  # the fewest rows of the tables its ids pick from
            ids = viewed(node.args[1]).id
            rows = node.args[0].shape[0]
            if ids not in kinds or isinstance(rows, int) and isinstance(kinds[ids][1], int) and rows < kinds[ids][1]:
                kinds[ids] = ("index", rows)
    result = []
    for name, tensor in zip(fn.params, declaration.inputs):
        dtype = tensor.dtype
        default = ("mask", None) if dtype == "bool" else ("index", DEFAULT_DIM) if dtype == "int64" else ("real", None)
        kind, classes = kinds.get(tensor.node.id, default)
        result.append(Parameter(name, tensor.shape, kind, classes, differentiable=dtype == "float64"
                                and kind != "labels"))
    return result


def output_shape(fn: Artifact) -> tuple:
    """() for a scalar function, the declared shape of a tensor-valued one (its vjp seed has that shape)."""
    return getattr(fn.declaration.output, "shape", ())


def symbolic_dims(fn: Artifact) -> list[str]:
    """The symbolic sizes of the parameters, in order of first appearance."""
    seen: list[str] = []
    for p in parameters(fn):
        for d in p.shape:
            if not isinstance(d, int) and str(d) not in seen:
                seen.append(str(d))
    return seen


def parse_assignments(text: str | None, what: str, convert) -> dict[str, object]:
    """`x=3,y=-4` -> {"x": 3.0, "y": -4.0}; a malformed entry is a one-line error naming it."""
    result: dict[str, object] = {}
    if not text:
        return result
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise BpgenError(f"{what}: expected NAME=VALUE, got {item.strip()!r}")
        try:
            result[name] = convert(value.strip())
        except ValueError:
            raise BpgenError(f"{what}: {name}={value.strip()!r} is not a valid value") from None
    return result


def describe(p: Parameter) -> str:
    if not p.shape:
        return p.name
    return f"{p.name} {format_shape(p.shape)}"
