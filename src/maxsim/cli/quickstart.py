"""``maxsim quickstart``: the embedded default model on a Cranfield sample shipped with maxsim, offline."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import typer

from maxsim.cli.common import DEFAULT_MODEL, MODEL_HELP, human_bytes, user_errors
from maxsim.cli.registry import app

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "cranfield"


@app.command()
def quickstart(
    output: Path = typer.Option(None, "--output", "-o",
                                help="Keep the index in this new folder (default: a temporary one, deleted)."),
    k: int = typer.Option(3, "--k", "-k", min=1, help="Hits shown per query."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
):
    """Build the default model (all-MiniLM-L6-v2 token vectors), index 400 Cranfield abstracts shipped
    with maxsim, run its 5 sample queries and print the hits (✓ = judged relevant) and nDCG@10."""
    with tempfile.TemporaryDirectory(prefix="maxsim-quickstart-") as scratch:
        folder = output or Path(scratch) / "index"
        with user_errors():
            run(folder, k, model)


def run(folder: Path, k: int, model_name: str) -> None:
    from maxsim.evaluation.loaders import load_beir_folder
    from maxsim.evaluation.metrics import evaluate_rankings
    from maxsim.io import read_corpus
    from maxsim.models.loading import load_model
    from maxsim.search import Retriever

    start = time.perf_counter()
    model = load_model(model_name)
    typer.echo(f"1. model: {'the embedded default' if model_name == DEFAULT_MODEL else model_name}, "
               f"{model.dim}-dim token vectors "
               f"({time.perf_counter() - start:.1f} s)")
    corpus = read_corpus(SAMPLE)
    queries, _, qrels = load_beir_folder(SAMPLE)
    step = time.perf_counter()
    with Retriever.create(folder, model, index="exact", hybrid=True, model_name=model_name) as retriever:
        retriever.add(corpus.texts, ids=corpus.ids, metadata=corpus.metadata, show_progress_bar=True)
        stats = retriever.stats()
        typer.echo(f"2. indexed {stats['documents']} Cranfield abstracts, {stats['tokens']} token vectors, "
                   f"{human_bytes(stats['bytes_on_disk'])} ({time.perf_counter() - step:.1f} s) -> {folder}")
        ids = list(queries)
        results = retriever.search([queries[i] for i in ids], k=max(k, 10))
    typer.echo(f"3. {len(ids)} searches (✓ = judged relevant in Cranfield):")
    for qid, hits in zip(ids, results):
        typer.echo(f"\n  query {qid}: {queries[qid]}")
        for rank, hit in enumerate(hits[:k], start=1):
            mark = "✓" if qrels.get(qid, {}).get(hit.id, 0) > 0 else " "
            title = (hit.metadata or {}).get("title", hit.text[:80])
            typer.echo(f"    {rank}. {mark} [{hit.id:>4}] {hit.score:7.3f}  {title[:90]}")
    rankings = {qid: [(hit.id, hit.score) for hit in hits] for qid, hits in zip(ids, results)}
    ndcg = evaluate_rankings(rankings, qrels)["MaxSim_ndcg@10"]
    typer.echo(f"\nnDCG@10 over these {len(ids)} queries: {ndcg:.3f}; total {time.perf_counter() - start:.1f} s.")
    typer.echo("Next: maxsim index FOLDER --output my-index; maxsim search my-index \"a question\"; "
               "maxsim serve my-index")
