"""The C heap's settings for compiled gradients: freed arrays stay in the heap for the next call.

Every call of a generated function allocates its temporaries afresh (Numba's arrays come from malloc). glibc
serves blocks above its mmap threshold (128 KiB at first, 8 MiB-arrays of a layer's activations among them)
with fresh pages from the kernel, and returns freed memory at the top of the heap to the kernel beyond its
trim threshold: each call then page-faults its way through new zeroed pages, 10-15% of a transformer layer's
gradient here. Serving blocks up to 32 MiB from the heap and keeping up to 1 GiB of freed memory there makes
the next call reuse the same pages, as PyTorch's and JAX's caching allocators do. The cost: the process keeps
what its largest call freed (its peak), rather than giving it back between calls.

Set BPGEN_MALLOC_TUNING=0 to leave the heap as it is. Only glibc (Linux) is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest (on 64-bit systems)
TRIM_THRESHOLD = 1 << 30

_done = threading.Event()


def keep_freed_memory() -> bool:
    """Set the heap's thresholds once per process (unless BPGEN_MALLOC_TUNING=0); whether they are set."""
    if _done.is_set():
        return True
    if os.environ.get("BPGEN_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        _done.set()
    return _done.is_set()
