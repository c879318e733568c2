"""The compiled Numba target's matrix products: BLAS's dgemm called on the operands' own memory.

Numba's `@` copies a stack's transposed or sliced operands before its product, and cannot add into an array
it has. These helpers call dgemm themselves (alpha * a @ b + beta * out), reading a transposed or sliced matrix
in place when its rows or its columns are contiguous. Which BLAS: Intel MKL when its runtime library is
installed (`pip install bpgen[mkl]`: 1.3-1.5x OpenBLAS's speed on a layer's products here), else the OpenBLAS
SciPy ships, which Numba's own products use. BPGEN_BLAS=scipy keeps SciPy's; BPGEN_BLAS=mkl requires MKL;
BPGEN_BLAS=<path to a shared library> takes that library's Fortran dgemm (LP64: 32-bit integers).

Generated modules copy these functions' source, as they copy bpgen/runtime.py's, after which the name each
function has here wins. `dgemm_binding` runs when a module is imported: it finds the library and registers its
dgemm with LLVM under one symbol name, so that Numba's on-disk cache holds calls by name, never an address of
one process. The plain-Python target (jit=False) keeps bpgen/runtime.py's products, written with NumPy's `@`.
"""

import numpy as np

from ...runtime import rows_of  # noqa: F401  (a generated module holds its source too)


def dgemm_binding():
    """BLAS's Fortran dgemm as a function Numba compiles calls to: the library BPGEN_BLAS names (MKL when
    installed, by default, else SciPy's OpenBLAS), registered with LLVM as the symbol `bpgen_dgemm`."""
    import ctypes
    import glob
    import os
    import sys

    import llvmlite.binding
    from numba import types

    choice = os.environ.get("BPGEN_BLAS") or "auto"
    library = choice if choice not in ("auto", "mkl", "scipy") else None
    if choice in ("auto", "mkl"):
        names = ("libmkl_rt.so*", "libmkl_rt*.dylib", "mkl_rt*.dll")
        folders = (os.path.join(sys.prefix, "lib"), os.path.join(sys.prefix, "Library", "bin"))
        found = sorted(path for folder in folders for name in names for path in glob.glob(os.path.join(folder, name)))
        library = found[0] if found else None
        if library is None and choice == "mkl":
            raise ImportError(f"BPGEN_BLAS=mkl: no MKL runtime library (libmkl_rt) in {folders[0]}")
    address = None
    if library is not None:
        try:
            address = ctypes.cast(ctypes.CDLL(library).dgemm_, ctypes.c_void_p).value
        except (OSError, AttributeError) as exc:
            if choice != "auto":  # asked for: say why not; found by the default search: SciPy's instead
                raise ImportError(f"BPGEN_BLAS: no Fortran dgemm_ in {library}: {exc}") from None
    if address is None:  # SciPy's OpenBLAS, as Numba's own products: the pointer its Cython BLAS module exports
        from scipy.linalg import cython_blas

        capsule = cython_blas.__pyx_capi__["dgemm"]
        name_of, pointer_of = ctypes.pythonapi.PyCapsule_GetName, ctypes.pythonapi.PyCapsule_GetPointer
        name_of.restype, name_of.argtypes = ctypes.c_char_p, [ctypes.py_object]
        pointer_of.restype, pointer_of.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        address = pointer_of(capsule, name_of(capsule))
    llvmlite.binding.add_symbol("bpgen_dgemm", address)
    # Fortran passes every argument by address: the addresses are intp here (the integers Numba's .ctypes.data is)
    return types.ExternalFunction("bpgen_dgemm", types.void(*[types.intp] * 13))


_dgemm = None  # what gemm calls: a generated module, and bpgen's compiled runtime, bind it to dgemm_binding()


def blas_operand(x):
    """How dgemm reads the matrix x in place, as (transpose, leading dimension): its memory read in column-major
    order is x.T when x's rows are contiguous ("N" on that x.T), x itself when its columns are ("T"). (0, 0)
    when neither, and x must be copied."""
    rows, cols = x.shape
    s0, s1 = x.strides[0] // 8, x.strides[1] // 8
    if x.strides[0] % 8 == 0 and x.strides[1] % 8 == 0:
        if (s1 == 1 or cols == 1) and (rows == 1 or s0 >= max(cols, 1)):
            return ord("N"), s0 if rows > 1 else max(cols, 1)
        if (s0 == 1 or rows == 1) and (cols == 1 or s1 >= max(rows, 1)):
            return ord("T"), s1 if cols > 1 else max(rows, 1)
    return 0, 0


def gemm(a, b, out, alpha, beta):
    """out = alpha * (a @ b) + beta * out for matrices, out's rows contiguous: one dgemm, reading a transposed
    or sliced a or b in place. Row-major out = a @ b is column-major out.T = b.T @ a.T, so b goes first."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)  # another dtype is converted, as NumPy's @ would
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:  # an empty sum: dgemm would be handed an empty operand it cannot describe
        for i in range(m):
            for j in range(n):
                out[i, j] = 0.0 if beta == 0.0 else beta * out[i, j]
        return
    if max(m, n, k, out.strides[0] // 8) > 2147483647:
        raise ValueError("gemm: a matrix side of 2**31 or more does not fit BLAS's 32-bit sizes")
    flag_a, lda = blas_operand(a)
    if flag_a == 0:
        a = np.ascontiguousarray(a)
        flag_a, lda = blas_operand(a)
    flag_b, ldb = blas_operand(b)
    if flag_b == 0:
        b = np.ascontiguousarray(b)
        flag_b, ldb = blas_operand(b)
    ints = np.empty(8, np.int32)  # transa, transb (a character in the low byte), m, n, k, lda, ldb, ldc
    ints[0], ints[1], ints[2], ints[3] = flag_b, flag_a, n, m
    ints[4], ints[5], ints[6], ints[7] = k, ldb, lda, max(out.strides[0] // 8, max(n, 1))
    reals = np.empty(2)
    reals[0], reals[1] = alpha, beta
    dgemm_call(ints, reals, a, b, out)


def dgemm_call(ints, reals, a, b, out):
    """dgemm(transa, transb, m, n, k, alpha, B, ldb, A, lda, beta, C, ldc), each argument by its address. A
    function of its own so that its caller holds every array through the call: Numba frees a local array after
    its last use, which in one function would be the line taking its address, before dgemm reads it."""
    i, r, pa, pb, pc = ints.ctypes.data, reals.ctypes.data, a.ctypes.data, b.ctypes.data, out.ctypes.data
    _dgemm(i, i + 4, i + 8, i + 12, i + 16, r, pb, i + 20, pa, i + 24, r + 8, pc, i + 28)


def matmul(a, b):
    """a @ b: a dgemm for two matrices (a transposed or sliced one read in place), NumPy's @ with a vector."""
    if a.ndim == 2 and b.ndim == 2:
        out = np.empty((a.shape[0], b.shape[1]))
        gemm(a, b, out, 1.0, 0.0)
        return out
    return a @ b


def flat_matmul(a, b):
    """a @ b for a stack of matrices `a` (three or more axes) and a matrix `b`: one product of a's rows."""
    rows = rows_of(a)
    out = np.empty((rows.shape[0], b.shape[1]))
    gemm(rows, b, out, 1.0, 0.0)
    return out.reshape(a.shape[:-1] + (b.shape[1],))


def affine(x, w, bias):
    """x @ w + bias for a stack of matrices x, a matrix w and a bias row: the product of x's rows, the bias then
    added in place, one array and one pass fewer than a product and a sum. (Filling the result with the bias
    and having dgemm add into it, beta = 1, is slower: MKL's kernels that read C take longer than the pass.)"""
    out = flat_matmul(x, w)
    rows = out.reshape((-1, w.shape[1]))  # a view: flat_matmul's result is C-contiguous
    for i in range(rows.shape[0]):
        for j in range(rows.shape[1]):
            rows[i, j] += bias[j]
    return out


def flat_transpose_matmul(a, g):
    """The sum over the batch axes of a[i].T @ g[i], the gradient of the matrix b in flat_matmul(a, b): one
    product of a's rows, transposed in place, and g's."""
    rows = rows_of(a)
    out = np.empty((rows.shape[1], g.shape[-1]))
    gemm(rows.T, rows_of(g), out, 1.0, 0.0)
    return out


def product_into(a, b, out, accumulate):
    """out = a @ b, or out += a @ b when accumulate, for matrices (a convolution's per-image products): one
    dgemm into out's memory."""
    gemm(a, b, out, 1.0, 1.0 if accumulate else 0.0)


def batch_matmul(a, b):
    """a @ b for stacks of matrices with one batch shape (bpgen broadcasts them first): a dgemm per matrix, each
    read in place (a stack of transposes, or a broadcast operand, is not copied)."""
    out = np.empty(a.shape[:-1] + (b.shape[-1],))
    for index in np.ndindex(a.shape[:-2]):
        gemm(a[index], b[index], out[index], 1.0, 0.0)
    return out
