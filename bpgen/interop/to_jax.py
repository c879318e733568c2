"""`g.jax()`: a compiled function as a JAX function, under `jax.jit`, `jax.grad` and `jax.vmap`.

The generated code runs on the host through `jax.pure_callback`. A scalar output has a custom JVP: the tangent
is the generated gradient dotted with the inputs' tangents, which is linear in them, so JAX transposes it for
reverse mode (`jax.grad`, `jax.vjp`) as well as pushing it forward (`jax.jvp`, `jax.jacfwd`). A tensor output has
a custom VJP calling the generated `vjp`. Gradients reach the `wrt` inputs; the others are constants. Derivatives
are first order: the generated gradient is itself a callback, which JAX does not differentiate. Under `jax.vmap`
the callback runs once per example. float32 arguments (JAX's default without x64) are computed in float64 and
returned in float32.
"""

from __future__ import annotations

import numpy as np

from .arguments import check_count, concrete_output_shape, handed_off


def jax_function(g):
    import jax
    import jax.numpy as jnp

    where, wrt, names, tensor_output = handed_off(g, "jax")

    def result_dtype(args):
        floats = [a.dtype for a in args if jnp.issubdtype(a.dtype, jnp.floating)]
        return jnp.float32 if floats and all(d == jnp.float32 for d in floats) else jnp.float64

    def host(function, *args):
        """The generated function on NumPy copies of the arguments (the callback's own)."""
        return function(*(np.asarray(a) if np.ndim(a) else float(a) for a in args))

    def value(*args):
        dtype = result_dtype(args)
        shape = jax.ShapeDtypeStruct(concrete_output_shape(g, args), dtype)
        return jax.pure_callback(lambda *a: np.asarray(host(g.forward, *a), dtype=dtype), shape, *args,
                                 vmap_method="sequential")

    if not tensor_output:
        @jax.custom_jvp
        def function(*args):
            return value(*args)

        @function.defjvp
        def function_jvp(primals, tangents):
            dtype = result_dtype(primals)
            shapes = (jax.ShapeDtypeStruct((), dtype),
                      tuple(jax.ShapeDtypeStruct(np.shape(primals[k]), dtype) for k in wrt))

            def value_and_grad(*a):
                v, grads = host(g.value_and_grad, *a)
                return np.asarray(v, dtype=dtype), tuple(np.asarray(d, dtype=dtype) for d in grads)

            v, grads = jax.pure_callback(value_and_grad, shapes, *primals, vmap_method="sequential")
            tangent = sum(jnp.sum(grad * tangents[k]) for grad, k in zip(grads, wrt)) if wrt else jnp.zeros((), dtype)
            return v, tangent
    else:
        @jax.custom_vjp
        def function(*args):
            return value(*args)

        def forward(*args):
            return value(*args), args

        def backward(args, upstream):
            dtype = result_dtype(args)
            shapes = tuple(jax.ShapeDtypeStruct(np.shape(args[k]), dtype) for k in wrt)

            def vjp(*a):
                *point, seed = a
                _, grads = host(g.vjp, *point, np.ascontiguousarray(seed, dtype=np.float64))
                return tuple(np.asarray(d, dtype=dtype) for d in grads)

            grads = jax.pure_callback(vjp, shapes, *args, upstream, vmap_method="sequential")
            out = [None] * len(args)
            for grad, k in zip(grads, wrt):
                out[k] = grad
            return tuple(jnp.zeros_like(a) if o is None and jnp.issubdtype(a.dtype, jnp.floating) else o
                         for o, a in zip(out, args))

        function.defvjp(forward, backward)

    def call(*args):
        check_count(g, where, args)
        return function(*(jnp.asarray(a) for a in args))

    call.__name__ = g.name
    call.__doc__ = f"{g.name}({', '.join(names)}) as a JAX function, its derivatives the generated ones (bpgen)."
    return call
