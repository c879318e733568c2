"""A compiled function handed to another framework: `g.torch()` (a torch.autograd.Function), `g.jax()` (a JAX
function with custom derivatives through `jax.pure_callback`) and `to_pytensor.op(g)` (a PyTensor Op for a PyMC
model, with Numba implementations for PyTensor's Numba backend). Each framework is imported only when asked for."""
