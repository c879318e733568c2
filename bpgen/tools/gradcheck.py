"""Gradient checks: the generated gradients against central finite differences of the generated value.

A scalar input is checked by its own derivative; a tensor input by the
derivative along a random direction (the gradient's dot product with the
direction against a central difference along it). A tensor-valued function
is checked through its vjp with a random seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..api.parameters import concrete_dim, output_shape, parameters
from ..errors import BpgenError

if TYPE_CHECKING:
    from ..api.compiled import CompiledFunction

STEP = 1e-6  # step of the central differences, relative to the size of the input
TRIES = 20  # random points tried before giving up on finding one where the function is finite


@dataclass(frozen=True)
class Row:
    name: str  # the input
    how: str  # "d/dx" or "along a random direction"
    analytic: float
    numeric: float
    error: float  # |analytic - numeric| / max(|analytic|, |numeric|)
    ok: bool


@dataclass(frozen=True)
class PointCheck:
    point: str  # the point, or how it was drawn, for the report
    value: float
    rows: list[Row]

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)


class Objective:
    """The scalar the check differentiates: the function's value, or sum(value * seed) for a tensor output."""

    def __init__(self, fn: CompiledFunction, seed: np.ndarray | None):
        self.fn = fn
        self.seed = seed

    def value(self, args) -> float:
        out = self.fn.forward(*args)
        return float(out) if self.seed is None else float(np.sum(np.asarray(out) * self.seed))

    def value_and_grad(self, args):
        if self.seed is None:
            value, grads = self.fn.value_and_grad(*args)
            return float(value), grads
        out, grads = self.fn.vjp(*args, self.seed)
        return float(np.sum(np.asarray(out) * self.seed)), grads


def _finite(value, grads) -> bool:
    return math.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)


def draw_point(fn: CompiledFunction, rng: np.random.Generator, dims: dict[str, int], at: dict[str, float]):
    """Arguments where the value and gradients are finite: normal draws first, then positive ones (log, sqrt)."""
    params = parameters(fn)
    unknown = sorted(set(at) - {p.name for p in params})
    if unknown:
        raise BpgenError(f"{fn.name} has no input {unknown[0]!r} (its inputs: {', '.join(p.name for p in params)})")
    for p in params:
        if p.name in at and p.shape:
            raise BpgenError(f"--at gives {p.name} a number, but {p.name} is a tensor of shape {p.shape}")
    out_shape = tuple(concrete_dim(d, dims) for d in output_shape(fn))
    for attempt in range(TRIES):
        positive = attempt >= TRIES // 2
        args = [at[p.name] if p.name in at else p.random(dims, rng, positive) for p in params]
        seed = rng.normal(size=out_shape) if out_shape else None
        objective = Objective(fn, seed)
        value, grads = objective.value_and_grad(args)
        if _finite(value, grads):
            return args, objective
        if len(at) == len(params):
            break  # every input was given: nothing to redraw
    where = "at the given point" if len(at) == len(params) else f"at {TRIES} random points"
    raise BpgenError(f"{fn.name} is not finite {where}; give a point inside its domain with --at")


def check_point(fn: CompiledFunction, args: list, objective: Objective, rng: np.random.Generator,
                tolerance: float) -> PointCheck:
    value, grads = objective.value_and_grad(args)
    params = {p.name: (i, p) for i, p in enumerate(parameters(fn))}
    rows = []
    for name, grad in zip((w for w in _wrt_names(fn)), grads):
        index, p = params[name]
        if not p.differentiable:
            continue
        x = args[index]
        if not p.shape:
            direction, how, analytic = 1.0, f"d/d{name}", float(grad)
        else:
            direction = rng.normal(size=np.shape(x))
            how, analytic = "along a random direction", float(np.sum(np.asarray(grad) * direction))
        h = STEP * max(1.0, float(np.max(np.abs(x))))

        def moved(t, index=index, x=x, direction=direction):
            return [x + t * direction if i == index else a for i, a in enumerate(args)]

        numeric = (objective.value(moved(h)) - objective.value(moved(-h))) / (2 * h)
        scale = max(abs(analytic), abs(numeric))
        error = abs(analytic - numeric) / scale if scale > 0 else 0.0
        # finite differences lose about eps/h of the value to rounding: allow that much absolute error
        ok = abs(analytic - numeric) <= tolerance * scale + 1e-8 * max(1.0, abs(value))
        rows.append(Row(name, how, analytic, numeric, error, ok))
    point = ", ".join(f"{p.name}={args[i]:g}" for name, (i, p) in params.items() if not p.shape)
    return PointCheck(point, value, rows)


def _wrt_names(fn: CompiledFunction) -> list[str]:
    """The generated names of the inputs gradients are returned for, in order."""
    by_input = dict(zip(fn.inputs, fn.params))
    return [by_input[w] for w in fn.wrt]


def run_checks(fn: CompiledFunction, points: int, seed: int, dims: dict[str, int], at: dict[str, float],
               tolerance: float, derivatives: tuple[str, ...] = ()) -> list[PointCheck]:
    """`points` checks at random points (all at `at` when it gives every input); with `derivatives`, the
    module's jvp, hvp and hessian too."""
    rng = np.random.default_rng(seed)
    everything_given = len(at) == len(parameters(fn))
    if fn.declaration.is_vector:
        return [_check_jacobian(fn, rng, at, tolerance) for _ in range(1 if everything_given else points)]
    results = []
    for _ in range(1 if everything_given else points):
        args, objective = draw_point(fn, rng, dims, at)
        result = check_point(fn, args, objective, rng, tolerance)
        if derivatives:
            result = PointCheck(result.point, result.value,
                                result.rows + derivative_rows(fn, args, derivatives, rng, tolerance))
        results.append(result)
    return results


def _check_jacobian(fn: CompiledFunction, rng: np.random.Generator, at: dict[str, float],
                    tolerance: float) -> PointCheck:
    """A vector of outputs: each column of the Jacobian against central differences of forward."""
    args = [float(at[p]) if p in at else float(rng.normal()) for p in fn.params]
    values, J = fn.jacobian(*args)
    wrt = _wrt_names(fn)
    rows = []
    for j, name in enumerate(wrt):
        k = fn.params.index(name)
        h = STEP * max(1.0, abs(args[k]))
        up, down = list(args), list(args)
        up[k] += h
        down[k] -= h
        column = (np.asarray(fn.forward(*up)) - np.asarray(fn.forward(*down))) / (2 * h)
        for i, (analytic, numeric) in enumerate(zip(J[:, j], column)):
            scale = max(abs(analytic), abs(numeric))
            ok = abs(analytic - numeric) <= tolerance * scale + 1e-8 * max(1.0, abs(values[i]))
            rows.append(Row(f"output {i}", f"d/d{name}", float(analytic), float(numeric),
                            abs(analytic - numeric) / scale if scale > 0 else 0.0, ok))
    point = ", ".join(f"{p}={a:g}" for p, a in zip(fn.params, args))
    return PointCheck(point, float(values[0]), rows)


def derivative_rows(fn: CompiledFunction, args: list, derivatives: tuple[str, ...], rng: np.random.Generator,
                    tolerance: float) -> list[Row]:
    """The generated jvp against central differences of the value, hvp and hessian against central differences
    of the gradient, along a random direction (an array of each input's shape for tensors; an array result is
    compared through its dot product with a random probe)."""
    module = fn.module
    wrt = _wrt_names(fn)
    index = {name: fn.params.index(name) for name in wrt}
    direction = [_random_like(args[index[name]], rng) for name in wrt]
    h = STEP * max(1.0, max(float(np.max(np.abs(a))) if np.size(a) else 0.0 for a in args))

    def moved(t):
        return [a + t * direction[wrt.index(p)] if p in index else a for p, a in zip(fn.params, args)]

    def row(name, how, analytic, numeric, scale):
        error = abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-300)
        return Row(name, how, analytic, numeric, error,
                   abs(analytic - numeric) <= tolerance * max(abs(analytic), abs(numeric)) + 1e-6 * scale)

    rows = []
    if "jvp" in derivatives:
        value, tangent = module.jvp(*args, *direction)
        probe = _random_like(tangent, rng)
        numeric = (module.forward(*moved(h)) - module.forward(*moved(-h))) / (2 * h)
        rows.append(row("jvp", "along a random direction", _dot(tangent, probe), _dot(numeric, probe),
                        max(1.0, float(np.max(np.abs(value))))))
    if "hvp" not in derivatives and "hessian" not in derivatives:
        return rows
    up, down = module.value_and_grad(*moved(h))[1], module.value_and_grad(*moved(-h))[1]
    difference = [(a - b) / (2 * h) for a, b in zip(up, down)]  # the Hessian times the direction
    gradient_scale = max(1.0, *(float(np.max(np.abs(g))) for g in module.value_and_grad(*args)[1]))
    probes = [_random_like(d, rng) if np.ndim(d) else 1.0 for d in direction]
    if "hvp" in derivatives:
        _, _, hv = module.hvp(*args, *direction)
        rows += [row(f"hvp {name}", "along a random direction", _dot(a, p), _dot(n, p), gradient_scale)
                 for name, a, n, p in zip(wrt, hv, difference, probes)]
    if "hessian" in derivatives:
        _, _, H = module.hessian(*args)
        if isinstance(H, tuple):  # blocks: H[i][j] has the shape of input i then of input j
            along = [sum(np.tensordot(H[i][j], direction[j], axes=np.ndim(direction[j])) for j in range(len(wrt)))
                     for i in range(len(wrt))]
        else:
            along = list(np.asarray(H) @ np.asarray(direction))
        rows += [row(f"hessian {name}", "H times a random direction", _dot(a, p), _dot(n, p), gradient_scale)
                 for name, a, n, p in zip(wrt, along, difference, probes)]
    return rows


def _random_like(value, rng: np.random.Generator):
    """A random direction of value's shape: an array, or a float for a number."""
    shape = np.shape(value)
    return rng.normal(size=shape) if shape else float(rng.normal())


def _dot(value, probe) -> float:
    return float(np.sum(np.asarray(value, dtype=float) * probe))
