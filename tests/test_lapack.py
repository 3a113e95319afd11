"""The GIL-free Cholesky factorisation behind TransRate's per-class coding rates."""

from __future__ import annotations

import numpy as np
import pytest

from transferdet.metrics import _lapack
from transferdet.metrics._lapack import cholesky_in_place


def _spd(d: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(2 * d, d))
    return rows.T @ rows / d + np.eye(d)


@pytest.mark.parametrize("use_ctypes", [True, False])
def test_factor_in_the_upper_triangle_lower_one_untouched(monkeypatch, use_ctypes):
    if not use_ctypes:  # SciPy without its Cython LAPACK table: the f2py wrapper
        monkeypatch.setattr(_lapack, "_gil_free_dpotrf", lambda: None)
    matrix = _spd(50)
    expected = np.linalg.cholesky(matrix)
    work = matrix.copy()
    assert cholesky_in_place(work)
    np.testing.assert_allclose(np.triu(work), expected.T, rtol=1e-12, atol=1e-12)
    strictly_lower = np.tril_indices(50, -1)
    np.testing.assert_array_equal(work[strictly_lower], matrix[strictly_lower])


@pytest.mark.parametrize("use_ctypes", [True, False])
def test_not_positive_definite_is_reported(monkeypatch, use_ctypes):
    if not use_ctypes:
        monkeypatch.setattr(_lapack, "_gil_free_dpotrf", lambda: None)
    matrix = _spd(20)
    matrix[7, 7] = -1.0
    assert not cholesky_in_place(matrix)


def test_scipy_table_is_used_here():
    assert _lapack._gil_free_dpotrf() is not None


def test_only_the_expected_c_signature_is_called():
    fits = _lapack.signature_fits
    assert fits(b"void (char *, int *, __pyx_t_5scipy_6linalg_13cython_lapack_d *, int *, int *)")
    # a 64-bit integer build, a single-precision routine, another argument list: the f2py fallback
    assert not fits(b"void (char *, npy_int64 *, __pyx_t_5scipy_6linalg_13cython_lapack_d *, npy_int64 *, npy_int64 *)")
    assert not fits(b"void (char *, int *, __pyx_t_5scipy_6linalg_13cython_lapack_s *, int *, int *)")
    assert not fits(b"void (char *, int *, __pyx_t_5scipy_6linalg_13cython_lapack_d *, int *)")
    assert not fits(b"int (char *, int *, __pyx_t_5scipy_6linalg_13cython_lapack_d *, int *, int *)")


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="square float64"):
        cholesky_in_place(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="square float64"):
        cholesky_in_place(np.ones((3, 4)))
    with pytest.raises(ValueError, match="C-contiguous"):
        cholesky_in_place(np.asfortranarray(_spd(4)))
