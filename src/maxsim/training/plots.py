"""The training curves as a PNG: training loss and the evaluators' metrics against the step.

Needs matplotlib (the ``plots`` extra: ``pip install "maxsim[plots]"``); without it
``plot_training_curves`` returns None and the model card simply has no picture.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)
FILE_NAME = "training_curves.png"


def plot_training_curves(rows: Sequence[Mapping], path: str | Path, title: str = "") -> Path | None:
    """Write ``path`` (PNG, 10 x 4 in at 100 dpi): loss per step on the left, every other numeric
    column of ``rows`` (``log_rows`` output: epoch, step, loss, metrics) per step on the right.
    Returns ``path``, or None when matplotlib is missing or nothing was logged."""
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'maxsim[plots]'): no training-curve plot.")
        return None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    loss = _series(rows, "loss")
    metrics = {c: _series(rows, c) for c in _metric_columns(rows)}
    if not loss and not metrics:
        return None
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    _draw(left, {"training loss": loss}, "training loss")
    _draw(right, metrics, "evaluation")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)
    return Path(path)


def _series(rows: Sequence[Mapping], column: str) -> list[tuple[int, float]]:
    return [(row["step"], float(row[column])) for row in rows if isinstance(row.get(column), (int, float))]


def _metric_columns(rows: Sequence[Mapping]) -> list[str]:
    columns = dict.fromkeys(key for row in rows for key in row)
    return [c for c in columns if c not in ("epoch", "step", "loss")]


def _draw(axes, series: Mapping[str, list[tuple[int, float]]], label: str) -> None:
    for name, points in series.items():
        if points:
            axes.plot(*zip(*points), marker="o" if len(points) < 30 else None, markersize=3, label=name)
    axes.set_xlabel("step")
    axes.set_ylabel(label)
    axes.grid(alpha=0.3)
    if any(series.values()):
        axes.legend(fontsize=8)
    else:
        axes.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axes.transAxes)
