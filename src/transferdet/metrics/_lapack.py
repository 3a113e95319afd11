"""LAPACK's Cholesky factorisation (``dpotrf``), callable from two threads at once.

Two Python threads calling SciPy's f2py wrapper ``scipy.linalg.lapack.dpotrf`` take turns: 20
factorisations of 1024 x 1024 matrices took 0.190 s on two threads against 0.183 s on one (one BLAS
thread each, 2 cores; ``benchmarks/bench_cholesky_threads.py``). The same LAPACK routine, taken
from SciPy's Cython LAPACK table (``scipy.linalg.cython_lapack``: the function pointers SciPy
exports for compiled extensions) and called through ctypes, which releases the GIL for the call,
runs on both cores: 0.096 s against 0.184 s. Where SciPy's table is not there, or declares
another signature (a 64-bit integer build), the f2py wrapper is used (same results, one at a time).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache

import numpy as np
from scipy.linalg import cython_lapack
from scipy.linalg.lapack import dpotrf

_INT_P = ctypes.POINTER(ctypes.c_int)
_DOUBLE_P = ctypes.POINTER(ctypes.c_double)
# void dpotrf(char *uplo, int *n, double *a, int *lda, int *info), as scipy.linalg.cython_lapack declares it
_DPOTRF = ctypes.CFUNCTYPE(None, ctypes.c_char_p, _INT_P, _DOUBLE_P, _INT_P, _INT_P)


def signature_fits(capsule_name: bytes) -> bool:
    """Whether the C signature Cython wrote into the capsule's name is the one ``_DPOTRF`` calls:
    ``void (char *, int *, <double> *, int *, int *)``, the double spelt as a Cython typedef."""
    parts = [part.strip() for part in capsule_name.decode("ascii", "replace").removeprefix("void (").split(",")]
    return (
        capsule_name.startswith(b"void (")
        and capsule_name.endswith(b")")
        and len(parts) == 5
        and parts[0] == "char *"
        and parts[1] == parts[3] == "int *"
        and parts[4] == "int *)"
        and parts[2].endswith("_d *")
    )


@cache
def _gil_free_dpotrf() -> Callable | None:
    """``dpotrf`` from SciPy's Cython LAPACK table as a ctypes function; None if it is not there."""
    capsule = getattr(cython_lapack, "__pyx_capi__", {}).get("dpotrf")
    if capsule is None:
        return None
    # fresh prototypes rather than setting argtypes on ctypes.pythonapi's shared function objects
    get_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", ctypes.pythonapi))
    get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
        ("PyCapsule_GetPointer", ctypes.pythonapi)
    )
    name = get_name(capsule)
    if not signature_fits(name):
        return None
    address = get_pointer(capsule, name)
    return _DPOTRF(address) if address else None


def cholesky_in_place(matrix: np.ndarray) -> bool:
    """Cholesky-factorise the symmetric positive-definite, C-contiguous float64 square ``matrix``
    in place: afterwards its diagonal is the factor's diagonal (its upper triangle holds ``L^T``,
    the lower one is left as it was). True on success; False when the matrix is not positive
    definite in floating point (it is then partly overwritten)."""
    if matrix.dtype != np.float64 or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"need a square float64 matrix, got {matrix.dtype} {matrix.shape}")
    if not matrix.flags.c_contiguous:
        raise ValueError("need a C-contiguous matrix")
    if not matrix.flags.writeable or not matrix.flags.owndata and not isinstance(matrix.base, np.ndarray):
        # a read-only array would be overwritten behind NumPy's back, a memory map's pages may not be ours
        raise ValueError("need a writeable matrix that owns its memory (copy a read-only or memory-mapped one)")
    potrf = _gil_free_dpotrf()
    if potrf is None:
        # the transpose of a C-contiguous symmetric matrix is the Fortran-ordered same matrix, so
        # f2py factorises it in place
        _, info = dpotrf(matrix.T, lower=1, clean=0, overwrite_a=1)
        return info == 0
    n = ctypes.c_int(len(matrix))
    info = ctypes.c_int(0)
    # LAPACK reads the C-ordered matrix as its (equal) transpose; 'L' there is the upper triangle here
    potrf(b"L", ctypes.byref(n), matrix.ctypes.data_as(_DOUBLE_P), ctypes.byref(n), ctypes.byref(info))
    return info.value == 0
