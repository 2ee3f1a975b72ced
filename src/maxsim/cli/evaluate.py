"""``maxsim evaluate``: the reference card's retrieval metrics of a model on BEIR-layout folders."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer

from maxsim.cli.common import (
    ALPHA,
    BACKEND_HELP,
    DEVICE_HELP,
    DTYPE_HELP,
    FUSION,
    MODEL_HELP,
    PRF,
    use_backend,
    user_errors,
)
from maxsim.cli.registry import app


@app.command()
def evaluate(
    model: str = typer.Argument(..., help=MODEL_HELP),
    data: list[Path] = typer.Option(..., "--data", "-d",
                                    help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels.tsv); repeatable."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the flat metric dict to this JSON file."),
    batch_size: int = typer.Option(32, min=1, help="Texts per forward pass."),
    device: str = typer.Option(None, "--device", help=DEVICE_HELP),
    dtype: str = typer.Option(None, "--dtype", help=DTYPE_HELP),
    backend: str = typer.Option(None, "--backend", help=BACKEND_HELP),
    hybrid: bool = typer.Option(False, "--hybrid", help="Score the BM25 + MaxSim fused ranking instead of exact "
                                                        "MaxSim; metrics named Hybrid_*."),
    fusion: str = FUSION,
    alpha: float = ALPHA,
    prf: bool = PRF,
    tune_fusion: bool = typer.Option(False, "--tune-fusion", help="Choose --alpha of convex fusion on the judged "
                                                                  "queries of the first --data (best nDCG@10), then "
                                                                  "report hybrid convex fusion with it on every one."),
):
    """Exact-MaxSim retrieval metrics of MODEL on each --data collection (columns named after the
    folders) and, with several, their mean; printed as the model card's table."""
    from maxsim.cli.hybrid import search_metrics, tuned_alpha
    from maxsim.evaluation import InformationRetrievalEvaluator, load_beir_folder, mean_over_collections, metrics_table
    from maxsim.models.loading import load_model

    use_backend(backend)
    with user_errors():
        names = _collection_names(data)
        evaluators = [InformationRetrievalEvaluator(*load_beir_folder(folder), name=name, batch_size=batch_size,
                                                    show_progress_bar=True)
                      for name, folder in zip(names, data)]
        encoder = load_model(model, device=device, dtype=dtype)
        if tune_fusion:
            hybrid, fusion = True, "convex"
            alpha, means = tuned_alpha(evaluators[0], encoder, model)
            typer.echo(f"alpha {alpha} chosen on {evaluators[0].name} ({len(evaluators[0].queries)} queries; nDCG@10 "
                       + ", ".join(f"{a}: {v:.4f}" for a, v in means.items()) + ")", err=True)
        per_collection = []
        for evaluator in evaluators:
            start = time.perf_counter()
            per_collection.append((evaluator.name, search_metrics(evaluator, encoder, model, hybrid, fusion, alpha, prf)
                                   if hybrid or prf else evaluator(encoder)))
            typer.echo(f"{evaluator.name}: {len(evaluator.queries)} queries, {len(evaluator.documents)} documents, "
                       f"{time.perf_counter() - start:.1f} s", err=True)
    results = {key: value for _, flat in per_collection for key, value in flat.items()}
    if len(per_collection) > 1:
        results.update(mean_over_collections(per_collection, "mean"))
    typer.echo(metrics_table(results))
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        partial = output.with_name(output.name + ".partial")
        partial.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, output)
        typer.echo(f"wrote {output}", err=True)


def _collection_names(folders: list[Path]) -> list[str]:
    """Folder names, made unique with a numeric suffix ("data", "data_2")."""
    names: list[str] = []
    for folder in folders:
        base = folder.resolve().name or "collection"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names
