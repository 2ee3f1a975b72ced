"""Card-style metric tables: metric rows x collection columns, from flat result dicts."""

from __future__ import annotations

import re
from collections.abc import Mapping

from maxsim.errors import InvalidInputError

KEY = re.compile(r"^(?:(?P<collection>.+)_)?(?P<metric>[A-Za-z0-9]+_[a-z]+@\d+)$")


def split_results(results: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """``{"cranfield_MaxSim_ndcg@10": v, ...}`` -> ``{"cranfield": {"MaxSim_ndcg@10": v}, ...}``, in key
    order; keys not shaped ``[collection_]Score_metric@k`` raise ValueError naming the key."""
    out: dict[str, dict[str, float]] = {}
    for key, value in results.items():
        match = KEY.match(key)
        if match is None:
            raise InvalidInputError(f"result key {key!r} is not shaped like 'collection_MaxSim_ndcg@10'.")
        out.setdefault(match["collection"] or "", {})[match["metric"]] = float(value)
    return out


def format_value(value: float | None) -> str:
    """Four decimals at most, as the reference card prints them ("0.5", "0.2333"); "-" for missing."""
    return "-" if value is None else repr(round(float(value), 4))


def metrics_table(results: Mapping[str, float]) -> str:
    """A Markdown table with one row per metric and one column per collection (a collection lacking a
    metric shows "-"); a single unnamed collection gets the column "Value"."""
    by_collection = split_results(results)
    metrics = list(dict.fromkeys(m for values in by_collection.values() for m in values))
    columns = [c or "Value" for c in by_collection]
    lines = ["| Metric | " + " | ".join(columns) + " |", "|:--" + "|--:" * len(columns) + "|"]
    for metric in metrics:
        cells = [format_value(values.get(metric)) for values in by_collection.values()]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
