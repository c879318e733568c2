"""What a Dask worker runs: the generated chunk module's function on one chunk of rows.

Standard library and NumPy only: these functions are shipped to the workers by value (cloudpickle), so a
worker needs numpy and numba, not bpgen. Each worker process writes the module into a directory of its own,
so that Numba's on-disk cache is never written by several processes at once (numba#4807), and imports it
once: later tasks find it in sys.modules. The directories live under bpgen's cache (`<cache>/workers/`, the
driver's, when the worker can write there; else the system's temporary directory): a worker removes its own
when it exits, and the first task of a worker removes those of workers that have exited without doing so.
"""

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import types

import numpy as np

WORKER_PREFIX = "worker-"


def load(source: str, name: str, root: str):
    """The generated module `name` in this process, written and imported on first use (once, whatever the
    number of threads asking), from a directory of this process's under `root`."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    # a lock that lives in the process, not in this function's pickle: kept in a module of its own
    holder = sys.modules.setdefault("_bpgen_worker_state", types.ModuleType("_bpgen_worker_state"))
    with holder.__dict__.setdefault("lock", threading.Lock()):
        module = sys.modules.get(name)
        if module is not None:
            return module
        directory = holder.__dict__.get("directory") or _own_directory(holder, root)
        path = os.path.join(directory, f"{name}.py")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(source)
        os.replace(path + ".tmp", path)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module  # Numba's cache finds the functions again by their module's name
        return module


def _own_directory(holder, root: str) -> str:
    """This process's directory for chunk modules, removed when the process exits; the directories of workers
    that have exited without removing theirs are removed first."""
    for base in (root, os.path.join(tempfile.gettempdir(), "bpgen-workers")):
        try:
            os.makedirs(base, exist_ok=True)
            directory = os.path.join(base, f"{WORKER_PREFIX}{os.getpid()}")
            os.makedirs(directory, exist_ok=True)
            break
        except OSError:  # the driver's cache is not writable here (another machine): the temporary directory
            continue
    else:
        raise OSError(f"bpgen: no writable directory for chunk modules under {root} or the temporary directory")
    sweep(base)
    atexit.register(shutil.rmtree, directory, True)
    holder.directory = directory
    return directory


def sweep(base: str) -> None:
    """Remove the directories of worker processes that no longer run on this machine."""
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for entry in entries:
        pid = entry[len(WORKER_PREFIX):]
        if entry.startswith(WORKER_PREFIX) and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(base, entry), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def run_chunk(source: str, name: str, root: str, function: str, kinds: tuple, *args):
    """`function` of the chunk module on one chunk; arrays as the generated code takes them (C-contiguous
    float64, int64 class labels and indices, bool masks)."""
    module = load(source, name, root)
    converted = []
    for kind, value in zip(kinds, args):  # "number", or the dtype of an array
        converted.append(float(value) if kind == "number" else np.ascontiguousarray(value, dtype=kind))
    return getattr(module, function)(*converted)


def add(a, b):
    """The sum of two results of the same structure: numbers, arrays and tuples of them."""
    if isinstance(a, tuple):
        return tuple(add(x, y) for x, y in zip(a, b))
    return a + b
