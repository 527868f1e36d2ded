"""Markdown tables of the README's performance section from a bench/run_cpu.sh JSONL file.

A configuration measured several times (run_cpu.sh alternates PyTorch and JAX for conv-4 and Koch, so
that both see the same share of a noisy shared machine) is shown by its median run.

  python bench/table.py bench/results/cpu-2026-11-29.jsonl
"""
from __future__ import annotations

import json
import sys


def _rows(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def _median_rows(rows: list[dict], key: str) -> list[dict]:
    """One row per configuration (repeated runs: the run with the median ``key``), with ``runs``."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r.get("mode"), r["framework"], r["model"], r.get("impl"), r.get("dtype"), r["batch"]), []).append(r)
    out = []
    for g in groups.values():
        g = sorted(g, key=lambda r: r[key])
        out.append({**g[(len(g) - 1) // 2], "runs": len(g)})
    return out


def _label(r: dict) -> str:
    if r["framework"] == "torch":
        return "PyTorch eager"
    impl = {"fast": "siamjax fast CPU path", "fast-conv": "fast path's convolutions only",
            "fast-pool": "fast path's max-pooling only"}.get(r.get("impl"), "plain XLA (fast_cpu=False)")
    return f"JAX, {impl}" + (", bf16" if r.get("dtype") == "bfloat16" else "")


def tables(rows: list[dict]) -> str:
    ceiling = max((r["gflops_per_s"] for r in rows if "n" in r), default=float("nan"))
    out = [f"f32 matmul ceiling (bench/matmul.py, best size): {ceiling:.1f} GFLOP/s", "",
           "versions: " + ", ".join(sorted({f"{r['framework']} {r['version']}" for r in rows if r.get("version")})),
           "machine load (1-min load average at the end of each run): "
           f"{min(r['loadavg_1m'] for r in rows if 'loadavg_1m' in r):.2f} .. "
           f"{max(r['loadavg_1m'] for r in rows if 'loadavg_1m' in r):.2f}", "",
           "| training step | model | pairs / step | pairs/s | GFLOP/s | % of matmul ceiling | vs PyTorch | peak RSS MB | load | runs |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    train = _median_rows([r for r in rows if "pairs_per_s" in r], "pairs_per_s")
    for r in train:
        torch = next(t for t in train if t["framework"] == "torch" and t["model"] == r["model"])
        out.append(f"| {_label(r)} | {r['model']} {r['size']}px | {r['batch']} | {r['pairs_per_s']:.1f} | "
                   f"{r['gflops_per_s']:.1f} | {100 * r['gflops_per_s'] / ceiling:.0f}% | "
                   f"{r['pairs_per_s'] / torch['pairs_per_s']:.2f}x | {r['peak_rss_mb']} | {r.get('loadavg_1m', float('nan')):.1f} | "
                   f"{r['runs']} |")
    out += ["", "| inference (embed) | model | images / call | images/s | GFLOP/s | vs PyTorch | peak RSS MB |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    embed = _median_rows([r for r in rows if r.get("mode") == "embed"], "images_per_s")
    for r in embed:
        torch = next(t for t in embed if t["framework"] == "torch" and t["model"] == r["model"])
        out.append(f"| {_label(r)} | {r['model']} {r['size']}px | {r['batch']} | {r['images_per_s']:.1f} | "
                   f"{r['gflops_per_s']:.1f} | {r['images_per_s'] / torch['images_per_s']:.2f}x | {r['peak_rss_mb']} |")
    out.append("")
    for r in rows:
        if r.get("mode") == "lake_trials":
            out.append(f"- {r['trials']} 20-way one-shot trials ({r['images']} PNG files, {r['model']}): "
                       f"{r['total_s']:.2f} s after compilation (read/decode {r['read_s']:.2f} s, embed and "
                       f"score {r['embed_score_s']:.2f} s); first pass with compilation {r['first_pass_s']:.2f} s.")
        elif r.get("stage"):
            out.append(f"- input pipeline, {r['stage']}: {r['images_per_s']:,.0f} images/s")
    return "\n".join(out)


if __name__ == "__main__":
    print(tables(_rows(sys.argv[1])))
