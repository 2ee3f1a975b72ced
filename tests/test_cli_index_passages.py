"""Long Markdown documents with answers past token 256 (tests/long_documents.py), indexed by
`maxsim index` with the default model: with passages every answer's document is at rank <= 3,
with --no-passages most are not, and the summary counts the split documents."""

import json

from typer.testing import CliRunner

from long_documents import long_collection
from maxsim.cli import app
from maxsim.io.chunking import count_tokens
from maxsim.search import Retriever

N_DOCUMENTS = 8


def ranks(folder, collection, model):
    with Retriever.open(folder, model=model) as r:
        qids = list(collection.queries)
        results = r.search([collection.queries[q] for q in qids], k=N_DOCUMENTS)
    return {q: next((rank for rank, hit in enumerate(hits, 1) if hit.id == collection.answers[q]), None)
            for q, hits in zip(qids, results)}


def test_answers_deep_in_long_documents(tmp_path, default_model):
    collection = long_collection(N_DOCUMENTS, sections=8, seed=1)
    folder = collection.write_markdown(tmp_path / "reports")
    collection.answers = {q: f"{doc}.md" for q, doc in collection.answers.items()}  # ids are file names
    for q, doc in collection.answers.items():  # every answer starts past token 256
        start = collection.answer_spans[q][0]
        assert count_tokens([(folder / doc).read_text()[:start]], default_model.tokenizer)[0] > 256
    runs = {}
    for name, extra in (("passages", []), ("truncated", ["--no-passages"])):
        out = tmp_path / name
        result = CliRunner().invoke(app, ["index", str(folder), "--output", str(out), "--no-hybrid", *extra])
        assert result.exit_code == 0, result.output
        runs[name] = (result.output, ranks(out, collection, default_model))
    output, found = runs["passages"]
    assert all(rank is not None and rank <= 3 for rank in found.values()), found
    summary = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in output.splitlines()
               if line.count("│") == 3}
    assert summary["documents split into passages"] == str(N_DOCUMENTS), output
    output, cut = runs["truncated"]
    assert f"warning: {N_DOCUMENTS} of {N_DOCUMENTS} documents are longer" in output
    assert sum(rank is not None and rank <= 3 for rank in cut.values()) <= N_DOCUMENTS // 2, json.dumps(cut)
