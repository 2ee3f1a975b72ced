"""What the benchmark scripts share: data loading, timing, the machine line, markdown tables, plots."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / "tests" / "fixtures"  # models/, data/ (copied from ../shared; see tests/README.md)
WORK = ROOT / "bench" / "_work"


def cranfield_texts() -> tuple[list[str], list[str]]:
    """(documents "title text", queries) of tests/fixtures/data/cranfield."""
    folder = SHARED / "data" / "cranfield"
    with open(folder / "corpus.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    with open(folder / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f if line.strip()]
    return [f"{d.get('title', '')} {d['text']}".strip() for d in docs], queries


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else the architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def load_average() -> str:
    """The 1/5/15-minute load averages, e.g. "0.42/0.61/0.40"."""
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def machine_line(start_load: str | None = None) -> str:
    """The report's machine line: CPU, cores, load average (at the start, when given, and now), UTC date."""
    load = f"load average {start_load} at the start, {load_average()} at the end" if start_load else \
        f"load average {load_average()}"
    return (f"Machine: {cpu_model()}, {os.cpu_count()} cores; {load} (1/5/15 min); "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")


def best_of(fn, repeats: int) -> float:
    """Fastest wall time (s) of ``repeats`` calls: the run least disturbed by other processes."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def publish(text: str, output: Path | None) -> None:
    """Print a bench's report, and write it to ``output`` (its folder created) when given."""
    print(text)
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save_plot(path: Path, panels: list[dict], title: str = "") -> Path | None:
    """One PNG of side-by-side panels next to a results table (None without matplotlib, the ``plots``
    extra). A panel: {"title", "xlabel", "ylabel", "series": {label: [(x, y), ...]}, "kind": "line"
    (default) or "bar" (one bar per label, y of its first point), "logx": bool, "logy": bool}."""
    try:
        import matplotlib
    except ImportError:
        print(f"matplotlib missing (pip install -e '.[plots]'): {path} not written")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        _draw_panel(ax, panel)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    print(f"wrote {path}")
    return Path(path)


def _draw_panel(ax, panel: dict) -> None:
    series = panel["series"]
    ax.set_xscale("log" if panel.get("logx") else "linear")  # before the ticks: a scale resets them
    ax.set_yscale("log" if panel.get("logy") else "linear")
    if panel.get("kind") == "bar":
        labels = list(series)
        ax.bar(range(len(labels)), [points[0][1] for points in series.values()])
        ax.set_xticks(range(len(labels)), labels, rotation=15, fontsize=8)
    else:
        for label, points in series.items():
            ax.plot(*zip(*points), marker="o", label=label)
        ax.legend(fontsize=8)
    ax.set(title=panel.get("title", ""), xlabel=panel.get("xlabel", ""), ylabel=panel.get("ylabel", ""))
    ax.grid(alpha=0.3, which="both")

