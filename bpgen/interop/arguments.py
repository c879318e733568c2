"""What the hand-offs share: which inputs get gradients, and the output's shape at concrete arguments."""

from __future__ import annotations

import numpy as np

from ..api.parameters import output_shape, parameters
from ..errors import BpgenError


def handed_off(g, framework: str) -> tuple[str, list[int], list[str], bool]:
    """What every hand-off needs of `g`: where (for messages), the wrt positions, the parameter names, and whether
    the output is a tensor; a vector of outputs is refused in one line."""
    where = f"{g.name}.{framework}()"
    if g.declaration.is_vector:
        raise BpgenError(f"{where}: a vector of outputs is not a {framework} function yet; declare it as one tensor")
    tensor_output = getattr(g.declaration.output, "shape", ()) != ()
    return where, wrt_positions(g), [p.name for p in parameters(g)], tensor_output


def wrt_positions(g) -> list[int]:
    """The positions among the inputs of the `wrt` inputs, in wrt order."""
    return [g.declaration.inputs.index(w) for w in g.declaration.wrt]


def concrete_output_shape(g, arrays: list) -> tuple[int, ...]:
    """The output's shape at these arguments: its symbolic sizes read off the inputs' shapes."""
    sizes: dict[str, int] = {}
    for p, a in zip(parameters(g), arrays):
        for d, n in zip(p.shape, np.shape(a)):
            if not isinstance(d, int):
                sizes.setdefault(str(d), int(n))
    shape = []
    for d in output_shape(g):
        if isinstance(d, int):
            shape.append(d)
        elif str(d) in sizes:
            shape.append(sizes[str(d)])
        else:
            raise BpgenError(f"{g.name}: the output's size {d} is not the size of any input")
    return tuple(shape)


def check_count(g, where: str, args: tuple) -> None:
    count = len(g.declaration.inputs)
    if len(args) != count:
        names = ", ".join(p.name for p in parameters(g))
        raise TypeError(f"{where} takes {count} argument{'s' if count != 1 else ''} ({names}), not {len(args)}")
