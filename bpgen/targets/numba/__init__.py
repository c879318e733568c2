"""The Numba target: the Python the shared syntax table prints, with Numba's faster forms for some ops, and
every function under `@numba.njit(cache=True)`. `jit=False` keeps the same code as plain Python functions."""
