"""Output of bench/index.py: the markdown report and the recall-latency plot, from its results."""

from __future__ import annotations

import os
import time
from pathlib import Path

from common import cpu_model


def write_report(results: dict, path: Path, plot_path: Path, quick: bool, threads: int) -> None:
    """bench/results/index.md from the results of ``bench/index.py`` ({"rows", "k_rows", "matched",
    "sweeps", "notes", "load"}: its bench/_work/index-results.json); ``plot_path``: the plot it shows."""
    rows, k_rows, matched, sweeps = results["rows"], results["k_rows"], results["matched"], results["sweeps"]
    load = ", ".join(f"{name}: {a:.1f}/{b:.1f}/{c:.1f}" for name, (a, b, c) in results["load"])
    lines = ["# Index benchmark (`bench/index.py`)", "",
             f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, `python bench/index.py"
             f"{' --quick' if quick else ''}`; {cpu_model()}, {os.cpu_count()} cores; torch / faiss / fast-plaid at "
             f"{threads} threads, single queries, k = 10. Load averages (1/5/15 min) at each stage: {load}.", "",
             "Recall@10 is measured against ExactIndex's top 10 (float16 vectors). Bytes per token: all files "
             "of the index folder divided by the number of token vectors.", "",
             "PLAID's bytes are split: the compressed tier (codes, residuals, centroids, ids; the "
             "<= 36 B/token target at 128 dims, nbits 2) and its float16 re-scoring copy (memory-mapped, "
             "read for the final candidates only).", "",
             "| collection | index | build (s) | bytes/token all | compressed tier | float16 copy | p50 ms | p95 ms "
             "| recall@10 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tiers = (f"{r['compressed_bytes_per_token']:.1f} | {r['rescore_bytes_per_token']:.1f}"
                 if "compressed_bytes_per_token" in r and r["index"].startswith("Plaid") else "- | -")
        lines.append(f"| {r['collection']} | {r['index']} | {r['build_s']:.1f} | {r['bytes_per_token']:.1f} | "
                     f"{tiers} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['recall']:.3f} |")
    lines += ["", "## PLAID nbits 2 vs exact at k = 10 and 100 (ms per query; recall@10 vs exact's top 10)", "",
              "| collection | k | exact batched | PLAID batched | ratio | exact one per call p50 | "
              "PLAID one per call p50 | ratio | recall@10 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in k_rows:
        lines.append(f"| {r['collection']} | {r['k']} | {r['exact_batched_ms']:.1f} | {r['plaid_batched_ms']:.1f} | "
                     f"{r['plaid_batched_ms'] / r['exact_batched_ms']:.2f}x | {r['exact_one_ms']:.1f} | "
                     f"{r['plaid_one_ms']:.1f} | {r['plaid_one_ms'] / r['exact_one_ms']:.2f}x | {r['recall']:.3f} |")
    lines += ["", "## Like for like with fast-plaid (same queries, same search settings, same centroid count and "
              "k-means sample: n_centroids x 32 token vectors from all documents, 4 iterations)", "",
              "| collection | index | setting | build (s) | p50 ms | recall@10 |", "|---|---|---|---|---|---|"]
    for m in matched:
        setting = ", ".join(f"{k}={v}" for k, v in m["setting"].items())
        lines.append(f"| {m['collection']} | {m['index']} | {setting} | {m['build_s']:.1f} | {m['p50_ms']:.1f} | "
                     f"{m['recall']:.3f} |")
    for coll in sorted({m["collection"] for m in matched}):
        ours = next((m for m in matched if m["collection"] == coll and m["index"] == "PlaidIndex nbits 2"), None)
        theirs = next((m for m in matched
                       if m["collection"] == coll and m["index"].startswith("fast-plaid nbits 2")), None)
        if ours and theirs:
            lines.append(f"\n{coll}, nbits 2 at matched settings: recall@10 {ours['recall']:.3f} vs "
                         f"{theirs['recall']:.3f}; latency {ours['p50_ms'] / theirs['p50_ms']:.2f}x fast-plaid's; "
                         f"build {theirs['build_s'] / max(ours['build_s'], 1e-9):.1f}x faster.")
    lines += ["", "## Targets (against fast-plaid in the same run, same collection)", ""]
    for coll in sorted({r["collection"] for r in rows}):
        fp = next((r for r in rows if r["collection"] == coll and r["index"].startswith("fast-plaid")), None)
        for r in rows:
            if r["collection"] != coll or not r["index"].startswith("PlaidIndex"):
                continue
            checks = [f"recall@10 {r['recall']:.3f} {'≥' if r['recall'] >= 0.95 else '<'} 0.95"]
            if fp:
                checks.append(f"latency {r['p50_ms'] / fp['p50_ms']:.2f}× fast-plaid's "
                              f"({'≤' if r['p50_ms'] <= 0.5 * fp['p50_ms'] else '>'} 0.5×)")
                checks.append(f"build {fp['build_s'] / max(r['build_s'], 1e-9):.1f}× faster "
                              f"({'≥' if fp['build_s'] >= 5 * r['build_s'] else '<'} 5×)")
            if "nbits 2" in r["index"]:
                compressed = r.get("compressed_bytes_per_token", r["bytes_per_token"])
                checks.append(f"compressed tier {compressed:.1f} bytes/token "
                              f"({'≤' if compressed <= 36 else '>'} 36 at 128 dims)"
                              if coll.startswith("synthetic") else f"compressed tier {compressed:.1f} bytes/token "
                              "(384 dims)")
            lines.append(f"- {coll}, {r['index']}: " + "; ".join(checks))
    lines += ["", "## Sweep of search settings (recall@10 vs p50 latency)", "",
              f"![recall vs latency]({plot_path.relative_to(path.parent.parent).as_posix()})", "",
              "| collection | index | setting | p50 ms | recall@10 |", "|---|---|---|---|---|"]
    for s in sweeps:
        setting = ", ".join(f"{k}={v}" for k, v in s["setting"].items()) or "defaults"
        lines.append(f"| {s['collection']} | {s['index']} | {setting} | {s['p50_ms']:.1f} | {s['recall']:.3f} |")
    lines += ["", "## Notes", ""] + [f"- {n}" for n in results["notes"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], sweeps: list[dict], path: Path) -> None:
    """The recall@10 vs p50 latency plot of the settings sweeps, one panel per collection (needs
    matplotlib, the ``plots`` extra; skipped without it)."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is missing (pip install -e '.[plots]'): no plot written", flush=True)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    collections = sorted({s["collection"] for s in sweeps})
    if not collections:
        return
    fig, axes = plt.subplots(1, len(collections), figsize=(5.5 * len(collections), 4.2), squeeze=False)
    for ax, coll in zip(axes[0], collections):
        for name in sorted({s["index"] for s in sweeps if s["collection"] == coll}):
            pts = sorted((s["p50_ms"], s["recall"]) for s in sweeps if s["collection"] == coll and s["index"] == name)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if "Plaid" in name else "s--", label=name)
        for r in rows:
            if r["collection"] == coll and r["index"].startswith("Exact"):
                ax.axvline(r["p50_ms"], color="grey", ls=":", label="ExactIndex p50")
            elif r["collection"] == coll and r["index"].endswith("(defaults)"):
                ax.plot([r["p50_ms"]], [r["recall"]], "k*", ms=11)
        ax.plot([], [], "k*", ms=11, label="default settings")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("p50 latency per query (ms, log)")
        ax.set_ylabel("recall@10 vs exact")
        ax.set_title(coll)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
