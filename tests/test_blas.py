"""The compiled target's matrix products (bpgen/targets/numba/blas.py): dgemm on the operands' own memory.

Every layout a product meets (C and Fortran order, transposes, slices with a row stride longer than the row,
single rows and columns, empty sides, broadcast stacks) against NumPy's @; alpha and beta; the library each
BPGEN_BLAS setting picks, in fresh processes; and a one-line error for a library without dgemm."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bpgen.targets.numba import runtime

gemm = runtime._for_modules["gemm"]
matmul = runtime._for_modules["matmul"]
batch_matmul = runtime._for_modules["batch_matmul"]
flat_matmul = runtime._for_modules["flat_matmul"]
flat_transpose_matmul = runtime._for_modules["flat_transpose_matmul"]


def _layouts(x: np.ndarray, rng) -> list[np.ndarray]:
    """x itself, in Fortran order, as the transpose of a C array, inside a larger array, and strided twice."""
    rows, cols = x.shape
    big = rng.normal(size=(rows + 3, cols + 5))
    big[1:rows + 1, 2:cols + 2] = x
    wide = np.zeros((rows * 2, cols * 2))
    wide[::2, ::2] = x
    return [x, np.asfortranarray(x), np.ascontiguousarray(x.T).T, big[1:rows + 1, 2:cols + 2], wide[::2, ::2]]


@pytest.mark.parametrize("m, k, n", [(5, 3, 4), (1, 3, 4), (5, 1, 4), (5, 3, 1), (1, 1, 1), (7, 0, 2), (0, 3, 2),
                                     (64, 33, 17)])
def test_matmul_reads_every_layout_as_numpy_does(m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a, b = rng.normal(size=(m, k)), rng.normal(size=(k, n))
    for left in _layouts(a, rng):
        for right in _layouts(b, rng):
            np.testing.assert_allclose(matmul(left, right), a @ b, rtol=1e-13, atol=1e-13)


def test_operands_copied_inside_gemm_live_through_the_call():
    """An operand with no contiguous axis is copied in gemm; the copy (megabytes, so its pages would be unmapped
    when freed) must still be there when dgemm reads it, as must the argument arrays."""
    rng = np.random.default_rng(3)
    big = rng.normal(size=(1200, 1000))
    a, b = big[::2, ::2], rng.normal(size=(1000, 700))[::2, ::2]  # 600 x 500 and 500 x 350, neither contiguous
    for _ in range(3):
        np.testing.assert_allclose(matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)


def test_other_dtypes_are_products_in_float64():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 4))
    np.testing.assert_allclose(matmul(a.astype(np.float32), b.astype(np.float32)),
                               a.astype(np.float32).astype(float) @ b.astype(np.float32).astype(float), rtol=1e-12)
    ints = rng.integers(-5, 5, size=(5, 3))
    np.testing.assert_array_equal(matmul(ints, ints.T), (ints @ ints.T).astype(float))


def test_gemm_scales_and_adds_into_a_row_of_a_larger_output():
    rng = np.random.default_rng(0)
    a, b, out = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=(6, 9))
    want = out.copy()
    want[1:5, 2:7] = 0.5 * want[1:5, 2:7] - 2.0 * (a @ b)
    gemm(a, b, out[1:5, 2:7], -2.0, 0.5)
    np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-13)


def test_matmul_with_a_vector_keeps_numpy_semantics():
    rng = np.random.default_rng(1)
    A, v = rng.normal(size=(4, 3)), rng.normal(size=3)
    np.testing.assert_allclose(matmul(A, v), A @ v)
    np.testing.assert_allclose(matmul(rng.normal(size=4) * 0 + 1.0, A), np.ones(4) @ A)


def test_stack_products_read_transposed_and_broadcast_stacks_in_place():
    rng = np.random.default_rng(2)
    q, k = rng.normal(size=(2, 3, 5, 4)), rng.normal(size=(2, 3, 6, 4))
    keys = np.transpose(k, (0, 1, 3, 2))  # a stack of transposes, as attention's scores read it
    np.testing.assert_allclose(batch_matmul(q, keys), q @ keys, rtol=1e-13)
    shared = np.broadcast_to(rng.normal(size=(4, 7)), (2, 3, 4, 7))  # zero strides on the batch axes
    np.testing.assert_allclose(batch_matmul(q, shared), q @ shared, rtol=1e-13)
    X, W, G = rng.normal(size=(3, 5, 4)), rng.normal(size=(4, 6)), rng.normal(size=(3, 5, 6))
    np.testing.assert_allclose(flat_matmul(X, W), X @ W, rtol=1e-13)
    np.testing.assert_allclose(flat_transpose_matmul(X, G), np.einsum("bij,bik->jk", X, G), rtol=1e-13)
    permuted = np.transpose(rng.normal(size=(5, 3, 4)), (1, 0, 2))  # not C-contiguous: its rows are copied
    np.testing.assert_allclose(flat_matmul(permuted, W), permuted @ W, rtol=1e-13)


CHECK_PRODUCT = textwrap.dedent("""
    import numpy as np
    from bpgen.targets.numba import runtime
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 30)), rng.normal(size=(30, 20))
    assert np.allclose(runtime._for_modules["matmul"](a.T.T, b), a @ b)
    print("ok")
""")


def _run(env: dict) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-c", CHECK_PRODUCT], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def _mkl_installed() -> bool:
    import glob
    import os

    return bool(glob.glob(os.path.join(sys.prefix, "lib", "libmkl_rt.so*")))


@pytest.mark.slow
@pytest.mark.parametrize("choice", ["scipy", "auto", "mkl", ""])
def test_each_blas_choice_computes_the_product(choice):
    """SciPy's OpenBLAS, the default choice (also when BPGEN_BLAS is empty), and MKL (installed with the test
    dependencies, as bpgen[mkl])."""
    if choice == "mkl":
        if platform.machine() not in ("x86_64", "AMD64"):
            pytest.skip("MKL is built for x86-64 only")
        assert _mkl_installed(), "the test dependencies install MKL (bpgen[mkl]): this test needs it"
    done = _run({"BPGEN_BLAS": choice})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.slow
def test_a_library_without_dgemm_is_one_line(tmp_path):
    fake = tmp_path / "libnotblas.so"
    fake.write_bytes(b"not a library")
    done = _run({"BPGEN_BLAS": str(fake)})
    assert done.returncode != 0
    assert f"ImportError: BPGEN_BLAS: no Fortran dgemm_ in {fake}" in done.stderr
