"""Exact retrieval metrics (siamjax.eval.retrieval) on N random embeddings: one JSON line with the time
and the process's peak resident memory.

  python bench/retrieval.py                                   # 100,000 x 64, 1,000 classes of 100, cosine
  python bench/retrieval.py --n 100000 --dim 256 --classes 10 --metric euclidean --block 1024

The embeddings are class centres plus Gaussian noise (``--noise``), so the metrics lie between 0 and
1 rather than at chance. ``seconds`` is the whole ``retrieval_metrics`` call, compilation included
(one program for all blocks); ``peak_rss_mib`` is ``ru_maxrss`` of this process (JAX, the data and
the call; ``rss_before_call_mib`` is the same before the call; the embeddings themselves are
N x D x 4 bytes, 25.6 MB at 100,000 x 64).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--noise", type=float, default=1.5)
    p.add_argument("--metric", default="cosine", choices=("cosine", "euclidean"))
    p.add_argument("--block", type=int, default=4096)
    p.add_argument("--chunk", type=int, default=None)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import jax
    import numpy as np

    from siamjax.eval.retrieval import retrieval_metrics

    rng = np.random.default_rng(args.seed)
    labels = rng.permutation(np.arange(args.n) % args.classes)
    centres = rng.standard_normal((args.classes, args.dim)).astype(np.float32)
    emb = centres[labels] + args.noise * rng.standard_normal((args.n, args.dim)).astype(np.float32)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    m = retrieval_metrics(emb, labels, metric=args.metric, ks=tuple(args.ks), block=args.block, chunk=args.chunk)
    seconds = time.perf_counter() - t0
    row = {"n": args.n, "dim": args.dim, "classes": args.classes, "metric": args.metric, "block": args.block,
           "chunk": args.chunk, "k": m["k"], "seconds": round(seconds, 2),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "rss_before_call_mib": round(rss_data, 1),
           "device": str(jax.devices()[0]), "cpu_count": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2),
           **{key: round(v, 6) for key, v in m.items() if isinstance(v, float)}, "num_queries": m["num_queries"]}
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main()
