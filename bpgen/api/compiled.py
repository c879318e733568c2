"""The object users get back: a declared function's generated module, its methods, and `bpgen.compile`."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sympy

from ..errors import BpgenError
from ..frontend.declaration import declare, declare_tensor, derivative_kinds, retarget
from ..frontend.tensor import Tensor
from ..ir.shapes import format_shape
from ..program.build import kinds_with
from ..targets import generate
from ..targets.load import load_source, write_atomic
from ..targets.python.emit import Artifact, with_origin

API_FUNCTIONS = ("forward", "value_and_grad", "grad", "value_and_grad_batch", "vjp")


class CompiledFunction:
    """Value and gradient code for one declared function.

    `forward`, `value_and_grad`, `grad` and `value_and_grad_batch` (a scalar
    output), or `forward` and `vjp` (a tensor output), are the generated
    module's functions (Numba dispatchers unless jit=False); the module is
    written and imported on first use, compiled on first call. `jvp`, `hvp`
    and `hessian` have modules of their own, generated on first use.
    """

    def __init__(self, artifact: Artifact):
        self.artifact = artifact
        self.declaration = artifact.declaration
        self.source = artifact.source
        self.params = artifact.params
        self.emitted = artifact.emitted  # what the pipeline derived, which bpgen.api.draw draws
        self.jit = artifact.target.jit
        self.backend = artifact.target.name
        self._module: ModuleType | None = None

    @property
    def name(self) -> str:
        return self.declaration.name

    @property
    def inputs(self) -> tuple[sympy.Symbol, ...]:
        return self.declaration.inputs

    @property
    def wrt(self) -> tuple[sympy.Symbol, ...]:
        return self.declaration.wrt

    @property
    def module(self) -> ModuleType:
        if self._module is None:
            self._module = load_source(self.source, self.name, self.artifact.target.compiled_runtime)
        return self._module

    def __getattr__(self, attr: str):
        if attr in API_FUNCTIONS:
            if attr not in self.artifact.functions:
                raise AttributeError(self._missing(attr))
            if attr == "vjp" and self.declaration.is_vector:  # the seed array, one parameter per output
                function = self._vector_vjp
                setattr(self, attr, function)
                return function
            function = self._checked(attr, getattr(self.module, attr))
            setattr(self, attr, function)  # later lookups skip __getattr__
            return function
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    def _checked(self, attr: str, function):
        """The generated function, taking float64 at full speed and converting (or refusing) anything else."""
        from .arguments import checked
        from .parameters import Parameter, output_shape, parameters

        seed = None
        if attr == "vjp":
            code = getattr(function, "py_func", function).__code__  # vjp's last parameter is the seed
            seed = Parameter(code.co_varnames[code.co_argcount - 1], output_shape(self), "real")
        elsewhere = functools.partial(self._on_dask, attr) if attr in ("forward", "value_and_grad", "grad") else None
        return checked(function, f"{self.name}.{attr}", parameters(self), batch=attr == "value_and_grad_batch",
                       seed=seed, elsewhere=elsewhere)

    def _on_dask(self, attr: str, args: tuple):
        """A call with Dask arrays: each chunk of rows where the data is (bpgen/cluster)."""
        from ..cluster.run import run_on_dask

        return run_on_dask(self, attr, args)

    def _missing(self, attr: str) -> str:
        output = self.declaration.output
        if self.declaration.is_vector:
            return (f"{self.name} has a vector of {len(output)} outputs: it has forward, jvp, vjp(..., seed) and "
                    f"jacobian, not {attr}")
        if getattr(output, "shape", ()) != ():
            return (f"{self.name} has a tensor output of shape {format_shape(output.shape)}: it has forward and "
                    f"vjp(..., seed), not {attr}")
        if attr == "vjp":
            return f"{self.name} has a scalar output: use value_and_grad (vjp is for tensor outputs)"
        return f"{self.name} is a tensor function: {attr} is for scalar SymPy functions"

    def jvp(self, *args):
        """(value, tangent) = g.jvp(*args, tangents): forward mode, the derivative of the value along `tangents`,
        one number per `wrt` input (a tuple or list; a bare number when there is one input). Its module is
        generated and compiled on first use; `g.jvp_source` shows it."""
        self._in_memory("jvp", args)
        *point, tangents = self._split("jvp", args)
        if self.declaration.is_vector:
            return self._vector_function("jvp")(*point, *tangents)
        return self._jvp_function(*point, *tangents)

    def jacobian(self, *args):
        """(values, J) for a vector of outputs: J[i, j] = d value_i / d wrt_j, an (m, n) float64 array, by n jvp
        calls (one per input) or m vjp calls (one per output), whichever are fewer."""
        import numpy as np

        if not self.declaration.is_vector:
            raise AttributeError(f"{self.name} has one output: use value_and_grad (jacobian is for a vector of "
                                 "outputs)")
        n, m = len(self.declaration.wrt), len(self.declaration.output)
        if n <= m:
            jvp = self._vector_function("jvp")
            columns = [jvp(*args, *(float(i == j) for i in range(n))) for j in range(n)]
            return columns[0][0], np.array([c[1] for c in columns], dtype=np.float64).T.copy()
        vjp = self._vector_function("vjp")
        rows = [vjp(*args, *(float(i == k) for i in range(m))) for k in range(m)]
        return rows[0][0], np.array([r[1] for r in rows], dtype=np.float64)

    def _vector_vjp(self, *args):
        """vjp(*args, *seeds) of a vector of outputs, one seed number per output as the generated module takes
        them, or vjp(*args, seeds) with the seeds in one array or sequence."""
        n, m = len(self.declaration.inputs), len(self.declaration.output)
        if len(args) == n + m:
            point, seeds = args[:n], args[n:]
        elif len(args) == n + 1 and hasattr(args[-1], "__len__"):
            point, seeds = args[:n], args[-1]
            if len(getattr(seeds, "shape", (m,))) != 1 or len(seeds) != m:
                raise ValueError(f"{self.name}.vjp: the seeds must be one number per output ({m}), not "
                                 f"{len(seeds)}")
        else:
            raise TypeError(f"{self.name}.vjp takes its {n} argument{'s' if n != 1 else ''} and then {m} seeds (one "
                            f"number per output, or one sequence of {m}), not {len(args)} values")
        return self._vector_function("vjp")(*point, *(float(v) for v in seeds))

    @functools.cache  # noqa: B019 - one per compiled object and function name, kept as long as the object
    def _vector_function(self, name: str):
        """A vector module's jvp or vjp, taking its parameters (inputs, then tangents or seeds) as numbers."""
        return self._taking_numbers(getattr(self.module, name), name)

    def hvp(self, *args):
        """(value, gradients, hv) = g.hvp(*args, vectors): the Hessian (restricted to `wrt`) times `vectors`, one
        number per `wrt` input, with the value and gradients, forward mode over the reverse pass in one call.
        Generated and compiled on first use; `g.hvp_source` shows it."""
        self._scalar_output("hvp")
        self._in_memory("hvp", args)
        *point, vectors = self._split("hvp", args)
        return self._second_order_module("hvp")(*point, *vectors)

    def hessian(self, *args):
        """(value, gradients, H): the Hessian restricted to `wrt`, column by column: the generated module's own
        `hessian`, beside its `hvp`. H is an (n, n) float64 array when every `wrt` input is a number, else a
        tuple of tuples of blocks, H[i][j] of shape wrt[i].shape + wrt[j].shape."""
        self._scalar_output("hessian")
        self._in_memory("hessian", args)
        count = len(self.declaration.inputs)
        if len(args) != count:  # said here, with the names: Numba's own message names no function
            names = ", ".join(str(getattr(i, "name", i)) for i in self.declaration.inputs)
            raise TypeError(f"{self.name}.hessian takes {count} argument{'s' if count != 1 else ''} ({names}), "
                            f"not {len(args)}")
        return self._second_order_module("hessian")(*args)

    def _in_memory(self, method: str, args: tuple) -> None:
        """Forward mode and second order run in this process: a Dask array is refused by name. (A call's fast
        path: only an argument of a Dask type is looked at further.)"""
        for a in args:
            if type(a).__module__.startswith("dask."):
                from .arguments import is_dask_array

                if is_dask_array(a):
                    raise BpgenError(f"{self.name}.{method} does not take Dask arrays (forward, value_and_grad and "
                                     "grad do): compute them into NumPy arrays first")

    def _scalar_output(self, method: str) -> None:
        output = self.declaration.output
        if self.declaration.is_vector:
            raise BpgenError(f"{self.name} has a vector of {len(output)} outputs: {method} is for a scalar output "
                             "(use jacobian)")
        if getattr(output, "shape", ()) != ():
            raise BpgenError(f"{self.name} has a tensor output of shape {format_shape(output.shape)}: {method} is "
                             "for a scalar output")

    @property
    def hvp_source(self) -> str:
        """The forward-over-reverse module's source."""
        return self._second_order_artifact.source

    @functools.cached_property
    def _second_order_artifact(self) -> Artifact:
        return generate(self.declaration, ("hvp", "hessian"), self.backend, self.jit)

    @functools.cached_property
    def hvp_module(self) -> ModuleType:
        """The forward-over-reverse module, imported: its `hvp` and `hessian`, taking float64 as declared."""
        artifact = self._second_order_artifact
        return load_source(artifact.source, f"{self.name}_hvp", artifact.target.compiled_runtime)

    @functools.cache  # noqa: B019 - one per compiled object and function name, kept as long as the object
    def _second_order_module(self, function_name: str):
        """The second-order module's hvp or hessian, behind the conversion of its parameters."""
        return self._taking_numbers(getattr(self.hvp_module, function_name), function_name)

    def _split(self, method: str, args: tuple) -> tuple:
        """The arguments, then the tangents or vectors as a tuple of one number per `wrt` input."""
        if not args:
            raise TypeError(f"{self.name}.{method} takes the function's arguments and then a tuple of "
                            f"{'arrays' if self.declaration.is_tensor else 'numbers'}, one per input in wrt")
        *point, vectors = args
        count = len(self.declaration.wrt)
        what = "tangents" if method == "jvp" else "vectors"
        kind = "arrays and numbers" if self.declaration.is_tensor else "numbers"
        if not isinstance(vectors, (tuple, list)):
            if count != 1:
                raise TypeError(f"{self.name}.{method}: the {what} must be a tuple of {count} {kind}, one per "
                                f"input in wrt ({self._wrt_names()}), each of its shape")
            vectors = (vectors,)
        if len(vectors) != count:
            raise TypeError(f"{self.name}.{method}: {len(vectors)} {what} for {count} inputs in wrt "
                            f"({self._wrt_names()})")
        return (*point, vectors)

    def _wrt_names(self) -> str:
        return ", ".join(str(getattr(w, "name", w)) for w in self.declaration.wrt)

    def _taking_numbers(self, function, function_name: str):
        """`function` behind the conversion of its parameters: the inputs, then the tangents, vectors or seeds,
        one per `wrt` input and of its shape (numbers, for scalar functions)."""
        from .arguments import checked
        from .parameters import Parameter, parameters

        code = getattr(function, "py_func", function).__code__
        names = code.co_varnames[:code.co_argcount]
        if not self.declaration.is_tensor:
            return checked(function, f"{self.name}.{function_name}", [Parameter(n, (), "real") for n in names])
        inputs = parameters(self)
        tangents = [Parameter(n, w.shape, "real") for n, w in zip(names[len(inputs):], self.declaration.wrt)]
        return checked(function, f"{self.name}.{function_name}", inputs + tangents)

    @property
    def jvp_source(self) -> str:
        """The forward-mode module's source."""
        return self._jvp_artifact.source

    @functools.cached_property
    def _jvp_artifact(self) -> Artifact:
        return generate(self.declaration, ("jvp",), self.backend, self.jit)

    @functools.cached_property
    def jvp_module(self) -> ModuleType:
        """The forward-mode module, imported: its `jvp`, taking float64 as declared."""
        artifact = self._jvp_artifact
        return load_source(artifact.source, f"{self.name}_jvp", artifact.target.compiled_runtime)

    @functools.cached_property
    def _jvp_function(self):
        return self._taking_numbers(self.jvp_module.jvp, "jvp")

    def flat(self, **fixed):
        """A flat view for optimizers and samplers: the inputs not in `wrt` bound by name (data, labels), the
        `wrt` inputs as one float64 vector: .value_and_grad(v), .grad(v), .hvp(v, p), .hessian(v), .pack(*wrt),
        .unpack(v), .size. `scipy.optimize.minimize(obj.value_and_grad, obj.pack(*init), jac=True,
        hessp=obj.hvp, method="trust-krylov")` works as written."""
        from .flat import Flat

        return Flat(self, fixed)

    def torch(self):
        """The function on torch tensors, a torch.autograd.Function whose backward is the generated gradient:
        usable as a loss or a layer in a PyTorch model (bpgen/interop/to_torch.py)."""
        from ..interop.to_torch import torch_function

        return torch_function(self)

    def jax(self):
        """The function as a JAX function, under jax.jit, jax.grad and jax.vmap, its first derivatives the
        generated ones (bpgen/interop/to_jax.py)."""
        from ..interop.to_jax import jax_function

        return jax_function(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the generated module to `path` (atomically)."""
        return write_atomic(path, self.source)

    def graph(self, **point):
        """The computation graph at `point` (inputs by name, the rest random) with its values and gradients:
        a graphviz.Digraph, shown inline in Jupyter. Options (sizes, --max-nodes) via bpgen.api.draw.graph."""
        from .draw import graph

        return graph(self, point)

    def _repr_html_(self) -> str:
        """Jupyter shows the generated module, highlighted."""
        import html

        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer

        return (f"<p><code>{html.escape(repr(self))}</code></p>"
                + highlight(self.source, PythonLexer(), HtmlFormatter(noclasses=True)))

    def __repr__(self) -> str:
        return (f"<bpgen function {self.name}({', '.join(self.params)}), "
                f"gradients w.r.t. {', '.join(s.name for s in self.wrt)}>")


def artifact(declaration, derivatives: tuple[str, ...] = (), backend: str = "numba", jit: bool = True) -> Artifact:
    """The module of a declaration with the forward-mode functions `derivatives`, as `backend` prints it."""
    return generate(declaration, kinds_with(declaration, tuple(derivatives)), backend, jit)


def compile(target, inputs: Sequence[sympy.Symbol] | None = None, wrt: Sequence[sympy.Symbol] | None = None,
            name: str | None = None, *, jit: bool | None = None, origin: str | None = None,
            derivatives: str | tuple[str, ...] | None = None, backend: str | None = None) -> CompiledFunction:
    """Generate value and gradient code for a SymPy expression (or re-target a compiled function).

    inputs: the positional parameters, in order (default: the free symbols sorted by name).
    wrt: the inputs to differentiate with respect to, in the order gradients are returned (default: all).
    jit: compile with Numba (default), or give plain Python functions to step through in a debugger.
    derivatives: "jvp", "hvp", "hessian": functions the generated module also holds (`bpgen generate
    --derivatives`); g.jvp, g.hvp and g.hessian work without them, from modules of their own.
    backend: "numba" (default) or "numpy": a module that needs only NumPy, for machines without Numba and for
    stepping through in a debugger.
    """
    kinds = derivative_kinds(derivatives or ())
    inputs = None if inputs is None else tuple(inputs)  # a generator is read once, here
    wrt = None if wrt is None else tuple(wrt)
    jit_or_default = True if jit is None else jit
    backend_or_default = backend or "numba"
    if isinstance(target, Tensor) or any(isinstance(i, Tensor) for i in (inputs or ())):
        declaration = declare_tensor(target, inputs, wrt, name, origin or "a tensor expression")
        return CompiledFunction(artifact(declaration, kinds, backend_or_default, jit_or_default))
    if isinstance(target, CompiledFunction):
        declaration = target.declaration
        if inputs is not None and tuple(inputs) != declaration.inputs:
            raise BpgenError(f"{declaration.name}: the inputs of an already declared function cannot change")
        backend = target.backend if backend is None else backend
        if jit is None:  # the function's own, or the new backend's default
            jit = target.jit if backend == target.backend else backend == "numba"
        kinds = target.artifact.derivatives if derivatives is None else kinds
        if (wrt is None and name is None and jit == target.jit and backend == target.backend
                and kinds == target.artifact.derivatives):
            return target if origin is None else CompiledFunction(with_origin(target.artifact, origin))
        return CompiledFunction(artifact(retarget(declaration, wrt, name, origin), kinds, backend, jit))
    declaration = declare(target, inputs, wrt, name, origin or "a SymPy expression")
    return CompiledFunction(artifact(declaration, kinds, backend_or_default, jit_or_default))
