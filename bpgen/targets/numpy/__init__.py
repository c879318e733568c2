"""The NumPy target: the program the Numba target prints, as a module that needs only NumPy (and `math`), with
plain Python functions: for machines without Numba, and for stepping through in a debugger. On arrays it prints
NumPy's own functions (np.exp, x.sum(axis=1), a @ b) and calls NumPy-vectorized runtime helpers
(bpgen/targets/numpy/runtime.py); on numbers, the same `math` functions and scalar helpers as the Numba target."""
