"""What a Dask worker runs: the generated chunk module's function on one chunk of rows.

Standard library and NumPy only: these functions are shipped to the workers by value (cloudpickle), so a
worker needs numpy and numba, not bpgen. Each worker process writes the module into a directory of its own,
so that Numba's on-disk cache is never written by several processes at once (numba#4807), and imports it
once: later tasks find it in sys.modules.
"""

import importlib.util
import os
import sys
import tempfile
import threading
import types

import numpy as np


def load(source: str, name: str):
    """The generated module `name` in this process, written and imported on first use (once, whatever the
    number of threads asking)."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    # a lock that lives in the process, not in this function's pickle: kept in a module of its own
    holder = sys.modules.setdefault("_bpgen_worker_state", types.ModuleType("_bpgen_worker_state"))
    with holder.__dict__.setdefault("lock", threading.Lock()):
        module = sys.modules.get(name)
        if module is not None:
            return module
        directory = os.path.join(tempfile.gettempdir(), f"bpgen-worker-{os.getpid()}")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{name}.py")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(source)
        os.replace(path + ".tmp", path)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module  # Numba's cache finds the functions again by their module's name
        return module


def run_chunk(source: str, name: str, function: str, kinds: tuple, *args):
    """`function` of the chunk module on one chunk; arrays as the generated code takes them (C-contiguous
    float64, int64 class labels)."""
    module = load(source, name)
    converted = []
    for kind, value in zip(kinds, args):
        if kind == "labels":
            converted.append(np.ascontiguousarray(value, dtype=np.int64))
        elif kind == "array":
            converted.append(np.ascontiguousarray(value, dtype=np.float64))
        else:
            converted.append(float(value))
    return getattr(module, function)(*converted)


def add(a, b):
    """The sum of two results of the same structure: numbers, arrays and tuples of them."""
    if isinstance(a, tuple):
        return tuple(add(x, y) for x, y in zip(a, b))
    return a + b
