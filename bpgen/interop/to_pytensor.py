"""`bpgen.interop.to_pytensor.op(g)`: a compiled scalar function as a PyTensor Op, for a PyMC model.

`op(g)(*variables)` is a PyTensor scalar: its value is the generated `forward`, its gradient an Op of its own
on the generated `value_and_grad` (one output per `wrt` input; the other inputs, data, get none). In a model,
`pm.Potential("likelihood", op(g)(X, y, beta))`, or as the `logp` of a `pm.CustomDist` (with the `dist` PyMC
needs to know a vector's shape). Where PyTensor compiles to
Numba (nutpie's default for PyMC models), both Ops register Numba implementations that call the generated
njit functions directly, so sampling never goes through Python per gradient; elsewhere (PyMC's default C
backend) their `perform` calls the compiled function. PyTensor and PyMC are imported only here.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..api.parameters import parameters
from ..errors import BpgenError
from .arguments import wrt_positions


def op(g):
    """The PyTensor Op of the compiled scalar function `g` (build it once, apply it to variables)."""
    import pytensor.tensor as pt
    from pytensor.gradient import grad_not_implemented
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    if getattr(g.declaration.output, "shape", ()) != () or g.declaration.is_vector:
        raise BpgenError(f"{g.name}: a PyTensor Op is for a scalar function (a log-density), not this output")
    params = parameters(g)
    wrt = wrt_positions(g)
    key = hashlib.sha1(g.source.encode()).hexdigest()[:16]  # the generated module: what the Op computes

    def variables(inputs) -> list:
        if len(inputs) != len(params):
            raise TypeError(f"{g.name} takes {len(params)} inputs ({', '.join(p.name for p in params)}), "
                            f"not {len(inputs)}")
        out = []
        for p, x in zip(params, inputs):
            v = pt.as_tensor_variable(x)
            if v.ndim != len(p.shape):
                raise BpgenError(f"{g.name}: {p.name} has {len(p.shape)} dimensions, not {v.ndim}")
            out.append(pt.cast(v, "int64" if p.dtype == "int64" else "float64"))
        return out

    class BpgenGradient(Op):
        """The gradients of the wrt inputs, from the generated value_and_grad."""

        __props__ = ("name", "key")

        def __init__(self):
            self.name, self.key, self.function = g.name, key, g

        def make_node(self, *inputs):
            inputs = variables(inputs)
            return Apply(self, inputs, [inputs[k].type() for k in wrt])

        def perform(self, node, inputs, outputs):
            _, grads = g.value_and_grad(*_numbers(params, inputs))
            for out, grad in zip(outputs, grads):
                out[0] = np.asarray(grad, dtype=np.float64)

    class Bpgen(Op):
        """The generated function's value; its gradient is BpgenGradient's."""

        __props__ = ("name", "key")

        def __init__(self):
            self.name, self.key, self.function = g.name, key, g
            self.gradient = BpgenGradient()

        def make_node(self, *inputs):
            return Apply(self, variables(inputs), [pt.dscalar()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = np.asarray(g.forward(*_numbers(params, inputs)), dtype=np.float64)

        def grad(self, inputs, output_grads):
            grads = self.gradient(*inputs)
            grads = grads if isinstance(grads, (list, tuple)) else [grads]
            (upstream,) = output_grads
            return [upstream * grads[wrt.index(k)] if k in wrt else
                    grad_not_implemented(self, k, x, f"{params[k].name} is not among {g.name}'s wrt inputs")
                    for k, x in enumerate(inputs)]

    _register_numba(Bpgen, BpgenGradient, g, params, wrt)
    return Bpgen()


def _numbers(params, inputs) -> list:
    """PyTensor's 0-d arrays as the numbers the generated code takes for scalar inputs."""
    return [float(x) if not p.shape else x for p, x in zip(params, inputs)]


def _register_numba(value_op, gradient_op, g, params, wrt) -> None:
    """Numba implementations of the two Ops for PyTensor's Numba backend: njit functions calling the generated
    module's own (g compiled with jit=True); without them PyTensor falls back to `perform` in object mode."""
    if not g.jit or g.backend != "numba":
        return
    import numba
    from pytensor.link.numba.dispatch import numba_funcify

    module = g.module
    names = [f"x{k}" for k in range(len(params))]
    # a scalar input arrives as a 0-d array: x[()] is its number
    call = ", ".join(f"{n}[()]" if not p.shape else n for n, p in zip(names, params))
    gradients = ", ".join(f"np.asarray(grads[{k}])" for k in range(len(wrt)))
    source = (f"def value({', '.join(names)}):\n    return np.asarray(forward({call}))\n\n"
              f"def gradient({', '.join(names)}):\n    _, grads = value_and_grad({call})\n"
              f"    return {gradients}\n")  # one Op output: an array; several: a tuple
    namespace = {"np": np, "forward": module.forward, "value_and_grad": module.value_and_grad}
    exec(compile(source, f"<bpgen pytensor op: {g.name}>", "exec"), namespace)
    value, gradient = numba.njit(namespace["value"]), numba.njit(namespace["gradient"])

    @numba_funcify.register(value_op)
    def _value(op, node=None, **kwargs):
        return value

    @numba_funcify.register(gradient_op)
    def _gradient(op, node=None, **kwargs):
        return gradient
