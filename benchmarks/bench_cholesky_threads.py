"""Do two threads factorise at once? SciPy's f2py ``dpotrf`` against ours (``cholesky_in_place``).

20 Cholesky factorisations of D x D matrices, one after another and handed to two threads, each on
one BLAS thread (as TransRate's class pass runs them); best of 5.

    python benchmarks/bench_cholesky_threads.py [--d 1024]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.linalg.lapack import dpotrf
from threadpoolctl import threadpool_limits

from transferdet.metrics._lapack import cholesky_in_place


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    rows = np.random.default_rng(0).normal(size=(2 * args.d, args.d))
    matrix = rows.T @ rows / args.d + np.eye(args.d)
    work = [matrix.copy() for _ in range(args.count)]

    def f2py(i: int) -> None:
        dpotrf(work[i].T, lower=1, clean=0, overwrite_a=1)

    def ours(i: int) -> None:
        cholesky_in_place(work[i])

    def best_of(run) -> float:
        times = []
        for _ in range(5):
            for w in work:
                np.copyto(w, matrix)
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    result = {"d": args.d, "count": args.count}
    with threadpool_limits(1):
        for name, factorise in (("f2py", f2py), ("ours", ours)):
            result[f"{name}_one_thread_s"] = best_of(lambda f=factorise: [f(i) for i in range(args.count)])

            def two_threads(f=factorise) -> None:
                with ThreadPoolExecutor(2) as pool:
                    list(pool.map(f, range(args.count)))

            result[f"{name}_two_threads_s"] = best_of(two_threads)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
