"""`g.torch()`: a compiled function as a PyTorch function, its backward the generated gradient.

The callable takes torch tensors (and numbers) in the function's parameter order and returns a tensor. It is a
`torch.autograd.Function`: the forward runs the generated code on the tensors' float64 values (a scalar output
through `value_and_grad`, whose gradients the backward then scales by the upstream gradient; a tensor output
through `forward`, its backward through `vjp`). Gradients reach the `wrt` inputs; the others (data, labels) get
none. float32 tensors are computed in float64 and the results returned in float32. CPU tensors only; the backward
is not differentiable again (second order in PyTorch would need the generated hvp instead).
"""

from __future__ import annotations

import numpy as np

from ..errors import BpgenError
from .arguments import check_count, handed_off


def torch_function(g):
    import torch
    from torch.autograd.function import once_differentiable

    where, wrt, names, tensor_output = handed_off(g, "torch")

    def as_numpy(k: int, value):
        if isinstance(value, torch.Tensor):
            if value.device.type != "cpu":
                raise BpgenError(f"{where}: {names[k]} is on {value.device}: the generated code runs on the CPU "
                                 "(move it with .cpu())")
            value = value.detach().numpy()
        return value

    def result_dtype(inputs) -> torch.dtype:
        floats = [x.dtype for x in inputs if isinstance(x, torch.Tensor) and x.is_floating_point()]
        return torch.float32 if floats and all(d == torch.float32 for d in floats) else torch.float64

    class BpgenFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            arrays = [as_numpy(k, x) for k, x in enumerate(inputs)]
            dtype = result_dtype(inputs)
            needs = any(isinstance(inputs[k], torch.Tensor) and inputs[k].requires_grad for k in wrt)
            ctx.dtypes = [x.dtype if isinstance(x, torch.Tensor) else None for x in inputs]
            if tensor_output:
                ctx.arrays = arrays
                value = g.forward(*arrays)
            elif needs:
                value, ctx.grads = g.value_and_grad(*arrays)
            else:
                value = g.forward(*arrays)
            return torch.as_tensor(np.asarray(value, dtype=np.float64)).to(dtype)

        @staticmethod
        @once_differentiable
        def backward(ctx, upstream):
            seed = upstream.detach().to(torch.float64).numpy()
            if tensor_output:
                _, grads = g.vjp(*ctx.arrays, np.ascontiguousarray(seed))
                scale = 1.0
            else:
                grads, scale = ctx.grads, float(seed)
            out = [None] * len(ctx.dtypes)
            for k, position in enumerate(wrt):
                if ctx.needs_input_grad[position]:
                    grad = torch.as_tensor(np.asarray(grads[k], dtype=np.float64) * scale)
                    out[position] = grad.to(ctx.dtypes[position] or torch.float64)
            return tuple(out)

    def call(*inputs):
        check_count(g, where, inputs)
        return BpgenFunction.apply(*inputs)

    call.__name__ = g.name
    call.__doc__ = f"{g.name}({', '.join(names)}) on torch tensors, its backward the generated gradient (bpgen)."
    return call
