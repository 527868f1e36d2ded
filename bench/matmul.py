"""The machine's f32 matrix-multiply ceiling (GFLOP/s), JAX (XLA:CPU) and NumPy: one JSON line each.

  python bench/matmul.py [--sizes 1024 2048 4096] [--repeats 5]

GFLOP/s = 2 n^3 / median time of ``a @ b`` (n x n float32), after a warm-up; the best size is the
ceiling to compare training throughput against.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time (s) of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np

    out = []
    for n in args.sizes:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        ja, jb = jax.device_put(a), jax.device_put(b)
        mm = jax.jit(jnp.matmul)
        flop = 2.0 * n ** 3
        for name, fn in (("jax", lambda: mm(ja, jb).block_until_ready()), ("numpy", lambda: a @ b)):
            t = median_time(fn, args.repeats)
            row = {"framework": name, "n": n, "seconds": round(t, 4), "gflops_per_s": round(flop / t / 1e9, 1),
                   "loadavg_1m": round(os.getloadavg()[0], 2)}
            print(json.dumps(row), flush=True)
            out.append(row)
    return out


if __name__ == "__main__":
    main()
