"""A flat view of a compiled function: its `wrt` inputs as one float64 vector, the other inputs bound by name.

What optimizers and samplers take (SciPy's `minimize(fun, x0, jac=True, hessp=...)`, nutpie's
`logp(x) -> (value, gradient)`): `obj = g.flat(X=X, y=y)`, then `obj.value_and_grad(v)`, `obj.grad(v)`,
`obj.hvp(v, p)` and `obj.hessian(v)` on flat vectors, with `obj.pack(*wrt)` and `obj.unpack(v)` between the
flat vector and the inputs' own shapes. The bound inputs are copied when the view is made: changing the
caller's arrays afterwards does not change the view's function.
"""

from __future__ import annotations

import numpy as np

from ..errors import BpgenError
from .arguments import as_array, as_float, as_vector, is_dask_array
from .parameters import parameters


class Flat:
    def __init__(self, g, fixed: dict):
        declaration = g.declaration
        names = [_name(i) for i in declaration.inputs]
        wrt = [names[declaration.inputs.index(w)] for w in declaration.wrt]
        missing = [n for n in names if n not in wrt and n not in fixed]
        unknown = [n for n in fixed if n not in names]
        bound_wrt = [n for n in fixed if n in wrt]
        if unknown:
            raise BpgenError(f"{g.name}.flat: {unknown[0]!r} is not an input (its inputs: {', '.join(names)})")
        if bound_wrt:
            raise BpgenError(f"{g.name}.flat: {bound_wrt[0]} is differentiated (in wrt): it is the flat vector's "
                             "part, not bound by name")
        if missing:
            raise BpgenError(f"{g.name}.flat: give the inputs that are not differentiated by name: "
                             f"{', '.join(missing)}")
        self.g = g
        self.name = g.name
        self.names = tuple(wrt)
        self._positions = [names.index(n) for n in wrt]
        self._template = [None] * len(names)
        sizes: dict = {}
        dims: dict = {}
        where = f"{g.name}.flat"
        for k, (name, declared, p) in enumerate(zip(names, declaration.inputs, parameters(g))):
            if name in fixed:
                value = fixed[name]
                # converted once, as the methods would convert it at every call, and always a copy: the view
                # keeps the values it was given, whatever the caller does to their arrays later (Dask arrays
                # stay where they are)
                if not is_dask_array(value):
                    value = np.array(as_array(where, p, value, dims)) if p.shape or p.kind == "labels" else \
                        as_float(where, p.name, value)
                self._template[k] = value
                for axis, d in enumerate(getattr(declared, "shape", ())):
                    if not isinstance(d, int) and axis < np.ndim(value):
                        sizes.setdefault(d, np.shape(value)[axis])
        self.shapes = tuple(_concrete(g.name, n, getattr(declaration.inputs[names.index(n)], "shape", ()), sizes)
                            for n in wrt)
        counts = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self._bounds = np.cumsum([0] + counts).tolist()
        self.size = self._bounds[-1]
        # (start, stop, shape) per wrt input: a vector is a slice as it is, a number one entry
        self._slots = [(start, stop, shape if len(shape) > 1 else None, bool(shape))
                       for start, stop, shape in self.slots()]

    def pack(self, *values) -> np.ndarray:
        """The `wrt` values (in wrt order) as one flat float64 vector."""
        if len(values) != len(self.shapes):
            raise TypeError(f"{self.name}.flat.pack takes {len(self.shapes)} values ({', '.join(self.names)}), "
                            f"not {len(values)}")
        for value, shape in zip(values, self.shapes):
            if np.shape(value) != shape:
                raise ValueError(f"{self.name}.flat.pack: a value of shape {np.shape(value)} where {shape} belongs")
        return self._flatten([np.asarray(v, dtype=np.float64) if s else v for v, s in zip(values, self.shapes)])

    def unpack(self, v) -> tuple:
        """The flat vector as the `wrt` values in their shapes (views of it; numbers as floats)."""
        v = self._vector(v, "v")
        return tuple((v[start:stop] if reshape is None else v[start:stop].reshape(reshape)) if array
                     else float(v[start]) for start, stop, reshape, array in self._slots)

    def value_and_grad(self, v) -> tuple[float, np.ndarray]:
        value, grads = self.g.value_and_grad(*self._arguments(v))
        return float(value), self._flatten(grads)

    def _flatten(self, values) -> np.ndarray:
        """Values of the wrt shapes (the generated code's results) as one vector, without pack's checks."""
        out = np.empty(self.size)
        for value, (start, stop, reshape, array) in zip(values, self._slots):
            if array:
                out[start:stop] = value if reshape is None else np.ravel(value)
            else:
                out[start] = value
        return out

    def grad(self, v) -> np.ndarray:
        return self.value_and_grad(v)[1]

    def hvp(self, v, p) -> np.ndarray:
        """The Hessian at v times p, forward mode over the reverse pass."""
        _, _, hv = self.g.hvp(*self._arguments(v), self.unpack(self._vector(p, "p")))
        return self._flatten(hv)

    def hessian(self, v) -> np.ndarray:
        """The (size, size) Hessian at v."""
        _, _, H = self.g.hessian(*self._arguments(v))
        if isinstance(H, np.ndarray):
            return H
        counts = np.diff(self._bounds)
        return np.block([[np.reshape(block, (counts[i], counts[j])) for j, block in enumerate(row)]
                         for i, row in enumerate(H)])

    def _arguments(self, v) -> list:
        args = list(self._template)
        for position, value in zip(self._positions, self.unpack(v)):
            args[position] = value
        return args

    def bound_values(self) -> list:
        """Per input, in the function's order: its bound value (as the view converted it), None for a wrt input."""
        return list(self._template)

    def slots(self) -> list[tuple[int, int, tuple]]:
        """Per wrt input: (start, stop, shape) of its part of the flat vector."""
        return [(start, stop, shape) for shape, start, stop in zip(self.shapes, self._bounds, self._bounds[1:])]

    def _vector(self, v, what: str) -> np.ndarray:
        return as_vector(f"{self.name}.flat", what, v, self.size)

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}{list(s) if s else ''}" for n, s in zip(self.names, self.shapes))
        return f"<flat view of {self.name}: {self.size} numbers ({parts})>"


def _name(symbol_or_tensor) -> str:
    return str(getattr(symbol_or_tensor, "name", symbol_or_tensor))


def _concrete(function: str, name: str, shape: tuple, sizes: dict) -> tuple:
    out = []
    for d in shape:
        if isinstance(d, int):
            out.append(d)
        elif d in sizes:
            out.append(int(sizes[d]))
        else:
            raise BpgenError(f"{function}.flat: {name}'s size {d} is not the size of a bound input")
    return tuple(out)
