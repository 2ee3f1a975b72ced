"""Why a page scores what it does for a text query: per query token, its similarity with every page
vector mapped onto the page's patch grid (``PatchGrid.heatmap``), and the MaxSim pick.

The answer has the keys of a text explanation (``maxsim.search.explain``), so everything that shows
one shows this too: ``document_tokens`` are the page's vectors, labelled ``"cell r,c"`` (the first
grid cell they hold, ``+n`` more when pooling merged several), ``"global view"`` (ColModernVBert's
whole-page patches) or ``"prompt"``; spans are None (a page has no character offsets). ``page``
adds ``rows``, ``cols``, ``heatmaps`` (n_query_tokens, rows, cols) and ``heatmap`` (rows, cols),
their sum, float32, NaN where a cell's patch was not kept.
"""

from __future__ import annotations

import numpy as np

from maxsim.search.hits import Passage


def explain_page(model, index, snap, pages, query: str, doc_id: str, text: str) -> dict:
    """The explanation of ``doc_id`` (a page of the folder whose ``PageStore`` is ``pages``) for
    ``query``, from its stored vectors (PLAID: decompressed) in ``index`` at the snapshot ``snap``."""
    grid = pages.grid(snap, doc_id)
    ((key, *_),) = snap.doc_passages(doc_id)
    tokens, queries = model.query_tokens(query)
    page = index.get_embeddings([str(key)])[0]
    sims = queries @ page.T  # (n_query_tokens, n_page_vectors)
    picked = sims.argmax(axis=1)
    labels = vector_labels(grid)
    alignment = [{"query_token": token, "document_index": int(j), "document_token": labels[j],
                  "score": float(sims[i, j])} for i, (token, j) in enumerate(zip(tokens, picked))]
    heatmaps = grid.heatmap(sims)
    return {"query_tokens": tokens, "query_spans": [None] * len(tokens), "document_tokens": labels,
            "document_scored": [True] * len(labels), "document_spans": [None] * len(labels),
            "alignment": alignment, "score": float(sum(step["score"] for step in alignment)),
            "passage": Passage(0, 0, len(text), text),
            "page": {"rows": grid.rows, "cols": grid.cols, "heatmaps": heatmaps, "heatmap": heatmaps.sum(axis=0)}}


def vector_labels(grid) -> list[str]:
    """A label per page vector: the grid cells it holds, or what it is when it holds none."""
    labels = ["global view" if patch else "prompt" for patch in grid.patches]
    flat = grid.cells.ravel()
    kept = flat >= 0
    vectors, first, counts = np.unique(flat[kept], return_index=True, return_counts=True)
    cells = np.flatnonzero(kept)[first]
    for vector, cell, count in zip(vectors, cells, counts):
        row, col = divmod(int(cell), grid.cols)
        labels[vector] = f"cell {row},{col}" + (f" +{count - 1}" if count > 1 else "")
    return labels


def json_ready(page: dict) -> dict:
    """``page`` of an explanation with its maps as nested lists (6 decimals, NaN as None)."""
    def lists(maps: np.ndarray) -> list:
        return np.where(np.isnan(maps), None, np.round(maps.astype(np.float64), 6)).tolist()

    return {"rows": page["rows"], "cols": page["cols"], "heatmaps": lists(page["heatmaps"]),
            "heatmap": lists(page["heatmap"])}
