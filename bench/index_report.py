"""Output of bench/index.py: bench/results/index.md from its results (bench/_work/index-results.json)."""

from __future__ import annotations

import os
from pathlib import Path

from common import cpu_model, markdown_table

TIERS = ("codes", "residuals", "centroids", "ids", "copy", "vectors")
LATENCY = ("Latency: ms per query, one query per call (first pass: never-seen queries on a freshly opened "
           "index, in a fresh process, after its warm-up (`Index.warm`, as `maxsim serve` does); "
           "warm: the same queries again), and all queries in one call.")


def _f(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _check(ok: bool) -> str:
    return "yes" if ok else "**no**"


def synthetic_section(rows: list[dict], title: str) -> list[str]:
    exact = {r["collection"]: r for r in rows if r["index"].startswith("Exact")}
    table = [[r["collection"], r["index"], _f(r["build_s"], 0), _f(r["bytes_per_token"]),
              ", ".join(f"{k} {r['tiers'][k]:.1f}" for k in TIERS if r["tiers"].get(k)), _f(r["recall10"], 3),
              _f(r["first_ms"]), _f(r["warm_ms"]), f"{r['first_ms'] / r['warm_ms']:.2f}x", _f(r.get("batched_ms")),
              f"{r['warm_ms'] / exact[r['collection']]['warm_ms']:.2f}x"] for r in rows]
    header = ["collection", "index", "build s", "B/token", "tiers (B/token)", "recall@10 vs exact", "first pass ms",
              "warm ms", "first / warm", "one call ms/query", "warm vs exact"]
    return [f"## {title}", "", "Bytes per token: every file of the index folder / token vectors; the tiers on disk "
            "(the inverted file is built in memory when the index is opened). " + LATENCY + " k = 10.", "",
            markdown_table(header, table)]


def checks_20k(rows: list[dict]) -> list[str]:
    by = {r["index"]: r for r in rows}
    d, e, t = by.get("PLAID nbits 2 (default)"), by.get("ExactIndex float16"), by.get("PLAID ternary")
    if not (d and e):
        return []
    out = (f"Targets: default PLAID <= 40 B/token: {d['bytes_per_token']:.1f} ({_check(d['bytes_per_token'] <= 40)}); "
           f"recall@10 >= 0.95: {d['recall10']:.3f} ({_check(d['recall10'] >= 0.95)}); <= 0.5x exact's latency: "
           f"{d['warm_ms'] / e['warm_ms']:.3f}x ({_check(d['warm_ms'] <= 0.5 * e['warm_ms'])}); first pass within 2x "
           f"of warm: {d['first_ms'] / d['warm_ms']:.2f}x ({_check(d['first_ms'] <= 2 * d['warm_ms'])}).")
    if t:
        out += (f" Ternary <= 30 B/token: {t['bytes_per_token']:.1f} ({_check(t['bytes_per_token'] <= 30)}); its "
                f"recall@10 {t['recall10']:.3f} vs nbits 2's {d['recall10']:.3f} "
                f"({_check(t['recall10'] >= d['recall10'])} >=).")
    return ["", out]


def scoring_section(rows: list[dict], title: str) -> list[str]:
    if not rows:
        return []
    table = [[r["collection"], r["method"], _f(r["tokens"], 0), _f(r["ms"], 2), _f(r["recall10"], 3),
              _f(r.get("ndcg10"), 4), _f(r["same_top10"], 2)] for r in rows]
    codes, dec = rows
    delta = abs((codes.get("ndcg10") or 0) - (dec.get("ndcg10") or 0))
    return ["", f"### Scoring from the codes vs decompress-then-score ({title})", "",
            "The same final candidates per query (default search), their tokens ranked two ways; ms per query of "
            "that stage alone (best of 3).", "",
            markdown_table(["collection", "method", "tokens per query", "ms per query", "recall@10 vs exact", "nDCG@10",
                            "same top 10"], table),
            "", f"From the codes: {dec['ms'] / codes['ms']:.1f}x faster than decompress-then-score "
            f"({_check(dec['ms'] >= 3 * codes['ms'])} >= 3x); |delta nDCG@10| = {delta:.4f} "
            f"({_check(delta <= 0.002)})."]


def real_section(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    table = [[r["collection"], r["documents"], r["auto"], r["index"], r["k"], _f(r["ndcg10"], 4), _f(r["recall10"], 3),
              _f(r["bytes_per_token"], 0), _f(r["first_ms"]), _f(r["warm_ms"]), _f(r.get("batched_ms"))] for r in rows]
    lines = ["", "## Real collections (default model, 384 dims)", "",
             "`auto`: the kind `maxsim.index.choose_kind` picks. " + LATENCY, "",
             markdown_table(["collection", "docs", "auto", "index", "k", "nDCG@10", "recall@10 vs exact", "B/token",
                             "first pass", "warm", "one call"], table), ""]
    for coll in dict.fromkeys(r["collection"] for r in rows):
        rs = [r for r in rows if r["collection"] == coll]
        ex = {r["k"]: r for r in rs if r["index"].startswith("Exact")}
        pl = {r["k"]: r for r in rs if r["index"].startswith("PLAID")}
        auto = rs[0]["auto"]
        faster = all(pl[k]["warm_ms"] < ex[k]["warm_ms"] and pl[k]["batched_ms"] < ex[k]["batched_ms"]
                     for k in (10, 100))
        delta = pl[10]["ndcg10"] - ex[10]["ndcg10"]
        lines.append(f"- {coll}: auto picks {auto} ({rs[0]['auto_reason']}); PLAID nDCG@10 {delta:+.4f} vs exact "
                     f"({_check(delta >= -0.005)} within 0.005); PLAID faster at k = 10 and 100, one per call and "
                     f"batched: {_check(faster) if auto == 'plaid' else ('yes' if faster else 'no')}"
                     f"{'' if auto == 'plaid' else ' (not required: auto picks exact)'}; "
                     f"exact one per call / one call: {ex[10]['warm_ms'] / ex[10]['batched_ms']:.2f}x "
                     f"({_check(ex[10]['warm_ms'] <= 2 * ex[10]['batched_ms'])}"
                     " <= 2x); first pass / warm, k = 10: exact "
                     f"{ex[10]['first_ms'] / ex[10]['warm_ms']:.2f}x, "
                     f"PLAID {pl[10]['first_ms'] / pl[10]['warm_ms']:.2f}x"
                     f" ({_check(max(r['first_ms'] / r['warm_ms'] for r in rs) <= 2)} <= 2x); open + warm-up: exact "
                     f"{_ms(ex[10])}, PLAID {_ms(pl[10])}.")
    return lines


def _ms(row: dict) -> str:
    return f"{row['open_s'] * 1000:.0f} + {row.get('warm_up_s', 0) * 1000:.0f} ms"


def fastplaid_section(rows: list[dict]) -> list[str]:
    if not rows or "note" in rows[0]:
        return ["", "## fast-plaid like for like", "", rows[0]["note"]] if rows else []
    table = [[r["collection"], r["index"], _f(r["build_s"], 0), _f(r["bytes_per_token"]), _f(r["recall10"], 3),
              _f(r.get("ndcg10"), 4), f"{r['first_ms']:.1f} ({r['first_p50']:.1f})",
              f"{r['warm_ms']:.1f} ({r['warm_p50']:.1f})"]
             for r in rows]
    lines = ["", "## fast-plaid 1.7 like for like", "",
             "nbits 2 on both sides, fast-plaid given maxsim's centroids (its k-means replaced), neither keeping a "
             "full-precision copy, the same queries, fast-plaid at its search defaults, one query per call; "
             "ms mean (p50).",
             "", markdown_table(["collection", "index", "build s", "B/token", "recall@10 vs exact", "nDCG@10",
                                 "first pass ms", "warm ms"], table)]
    for coll in dict.fromkeys(r["collection"] for r in rows):
        ours, theirs = [r for r in rows if r["collection"] == coll]
        lines.append(f"\n{coll}: recall@10 {ours['recall10']:.3f} vs {theirs['recall10']:.3f} "
                     f"({_check(ours['recall10'] >= theirs['recall10'])} >=); warm latency "
                     f"{ours['warm_ms'] / theirs['warm_ms']:.3f}x fast-plaid's "
                     f"({_check(ours['warm_ms'] <= 0.5 * theirs['warm_ms'])}"
                     " <= 0.5x).")
    return lines


def codecs_section(rows: list[dict]) -> list[str]:
    """Per collection and codec: nDCG@10 and recall@10 vs exact, mean (min-max) over the codec seeds."""
    if not rows:
        return []
    table = []
    for coll in dict.fromkeys(r["collection"] for r in rows):
        for codec in dict.fromkeys(r["codec"] for r in rows if r["collection"] == coll):
            group = [r for r in rows if r["collection"] == coll and r["codec"] == codec]
            cells = [_spread([r[key] for r in group]) for key in ("ndcg10", "recall10")]
            table.append([f"{coll} ({group[0]['queries']} q)", codec, len(group), *cells,
                          _f(group[0]["bytes_per_token"])])
    return ["", "## Codecs on real collections", "", "PLAID at its default search with each codec, one build "
            "per codec seed; mean (min-max) over the seeds.", "",
            markdown_table(["collection", "codec", "seeds", "nDCG@10", "recall@10 vs exact", "B/token"], table)]


def _spread(values: list[float]) -> str:
    return f"{sum(values) / len(values):.4f}" + (f" ({min(values):.4f}-{max(values):.4f})" if len(values) > 1 else "")


def defaults_section(study: dict | None) -> list[str]:
    if not study:
        return []
    rows = study["rows"]
    fitted = "; ".join(f"k = {f['k']}: n_full_scores {f['n_full_scores']}, n_ivf_probe {f['n_ivf_probe']}"
                       for f in study["fitted"])
    defaults = [[r["collection"], r["role"], r["k"], _f(r["exhaustive_recall"], 3), _f(r["faith"], 3),
                 _f(r["recall"], 3), _f(r["ms"])] for r in rows if r["setting"] == "defaults"]
    grid = [[r["collection"], r["k"], f"probe {r['setting']['n_ivf_probe']}, n_full {r['setting']['n_full_scores']}",
             _f(r["faith"], 3), _f(r["recall"], 3), _f(r["ms"])] for r in rows if r["setting"] != "defaults"]
    timings = [f"{kind}_{mode}_ms" for kind in ("exact", "plaid") for mode in ("one", "batched")]
    cross = [[c["documents"], c["tokens"], c["k"], *(_f(c[t]) for t in timings)] for c in study.get("crossover", [])]
    return ["", "## Search defaults: fitted and held-out collections (`bench/index_defaults.py`)", "",
            "faith: share of the top k of the exhaustive ranking from the codes that the search returns; recall: of "
            "exact's top k; ms: one query per call, warm.", "",
            markdown_table(["collection", "role", "k", "exhaustive recall", "defaults: faith", "recall", "ms"],
                           defaults),
            "", f"Fitted (the smallest settings reaching faithfulness 0.99 on every fit collection): {fitted}.", "",
            "Exact vs PLAID by collection size (Cranfield's document lengths, 384 dims; ms per query):", "",
            markdown_table(["documents", "tokens", "k", "exact one per call", "exact one call", "PLAID one per call",
                            "PLAID one call"], cross),
            "", "<details><summary>the grid</summary>", "",
            markdown_table(["collection", "k", "setting", "faith", "recall", "ms"], grid), "", "</details>"]


def write_report(results: dict, path: Path, args) -> None:
    """bench/results/index.md from ``results`` (stage name -> rows; "runs": stage name -> [start time,
    1-minute load average at the start of its run, end time, load at the end])."""
    runs = "; ".join(f"{stage} {start} - {end} (load {a:.1f} -> {b:.1f})"
                     for stage, (start, a, end, b) in results.get("runs", {}).items())
    lines = ["# Index benchmark (`bench/index.py`)", "",
             f"`python bench/index.py{' --quick' if args.quick else ''}`; {cpu_model()}, {os.cpu_count()} cores, "
             f"torch / faiss at {args.threads} threads. Each stage's last run: {runs or 'none'}."]
    lines += defaults_section(results.get("defaults"))
    for stage, title in (("20k", "Synthetic, 20k documents (2,000 topic centres, noise 0.6, 128 dims)"),
                         ("100k", "Synthetic, 100k documents (the same generator)")):
        if results.get(stage):
            checks = checks_20k(results[stage]) if stage == "20k" else []
            lines += [""] + synthetic_section(results[stage], title) + checks
    lines += scoring_section(results.get("scoring-20k", []), "synthetic")
    lines += real_section(results.get("real", [])) + scoring_section(results.get("scoring-real", []), "Cranfield")
    lines += fastplaid_section(results.get("fastplaid", [])) + codecs_section(results.get("codecs", []))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
