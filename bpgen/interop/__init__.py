"""A compiled function handed to another framework: `g.torch()` (a torch.autograd.Function) and `g.jax()` (a JAX
function with custom derivatives through `jax.pure_callback`). Each framework is imported only when asked for."""
