"""InformationRetrievalEvaluator, NanoBEIREvaluator and the loaders: exactness, oracle, bad input."""

import json
import time

import numpy as np
import pytest

from conftest import DATA, MODELS
from maxsim.errors import NotFoundError
from maxsim.evaluation import (
    CollectionError,
    InformationRetrievalEvaluator,
    NanoBEIREvaluator,
    load_beir_folder,
    load_hub_collection,
)
from maxsim.evaluation.metrics import rank


def cranfield_subset(n_docs=150):
    """The first ``n_docs`` Cranfield documents and the queries judged on them (qrels restricted)."""
    queries, corpus, qrels = load_beir_folder(DATA / "cranfield")
    corpus = dict(list(corpus.items())[:n_docs])
    qrels = {q: {d: g for d, g in grades.items() if d in corpus} for q, grades in qrels.items()}
    qrels = {q: grades for q, grades in qrels.items() if grades}
    return {q: queries[q] for q in qrels}, corpus, qrels


def write_beir(folder, queries, corpus, qrels, qrels_name="qrels.tsv", header=True):
    """Write a BEIR-layout folder and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for doc_id, doc in corpus.items():
            doc = doc if isinstance(doc, dict) else {"title": "", "text": doc}
            f.write(json.dumps({"_id": doc_id, **doc}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in queries.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (folder / qrels_name).parent.mkdir(parents=True, exist_ok=True)
    rows = ["query-id\tcorpus-id\tscore"] if header else []
    rows += [f"{q}\t{d}\t{g}" for q, grades in qrels.items() for d, g in grades.items()]
    (folder / qrels_name).write_text("\n".join(rows) + "\n")
    return folder


class ExactModel:
    """Stand-in encoder whose vectors hold small dyadic numbers, so every MaxSim is exact in float32
    (chunking cannot perturb ties): text "v a b" -> one token vector [a, b]."""

    def __init__(self):
        self.document_calls = []

    def encode_query(self, texts, batch_size=32, show_progress_bar=False):
        return [np.array([[float(x) for x in t.split()[1:]]], dtype=np.float32) for t in texts]

    def encode_document(self, texts, batch_size=32, show_progress_bar=False):
        self.document_calls.append(len(texts))
        return self.encode_query(texts)


def test_rank_is_exact_top_k_with_id_tie_break_for_any_chunk_size():
    corpus = {f"d{i:02d}": f"v {a} {b}" for i, (a, b) in enumerate(
        [(1, 0), (0.5, 0.5), (1, 0), (0, 1), (0.5, 0.5), (1, 0), (0.25, 0), (0, 0), (1, 0), (0.5, 0.5)])}
    queries = {"q1": "v 1 0", "q2": "v 1 1", "q3": "v 0 0"}
    qrels = {"q1": {"d05": 1}, "q2": {"d09": 2, "d03": 1}, "q3": {"d07": 1}}
    expected = {q: rank([(d, float(np.dot([float(x) for x in queries[q].split()[1:]],
                                            [float(x) for x in text.split()[1:]]))) for d, text in corpus.items()])
                for q in queries}
    results = []
    for chunk in (1, 3, 100):
        ev = InformationRetrievalEvaluator(queries, corpus, qrels, name="toy", corpus_chunk_size=chunk, ndcg_at_k=(3,))
        model = ExactModel()
        ranked = ev.rank(model, k=4)
        assert {q: [d for d, _ in hits] for q, hits in ranked.items()} == {q: r[:4] for q, r in expected.items()}
        assert sum(model.document_calls) == 10 and max(model.document_calls) == min(chunk, 10)  # bounded memory
        results.append(ev(model))
    assert results[0] == results[1] == results[2]
    assert ev.primary_metric == "toy_MaxSim_ndcg@3" and ev.primary_metric in results[0]
    assert expected["q3"][:3] == ["d00", "d01", "d02"]  # all tie at 0: ids ascending


@pytest.fixture(scope="module")
def subset():
    return cranfield_subset()


def test_evaluator_equals_brute_force_maxsim(tiny_model, subset):
    queries, corpus, qrels = subset
    ev = InformationRetrievalEvaluator(queries, corpus, qrels, name="cran", corpus_chunk_size=40)
    ranked = ev.rank(tiny_model)
    q_vecs = tiny_model.encode_query(list(ev.queries.values()))
    d_vecs = tiny_model.encode_document(ev.documents)
    full = tiny_model.similarity(q_vecs, d_vecs)  # (Nq, Nd): every document scored at once
    for row, qid in enumerate(ev.queries):
        got_scores = np.array([s for _, s in ranked[qid]])
        want = np.sort(full[row])[::-1][:100]
        np.testing.assert_allclose(got_scores, want, rtol=1e-5, atol=1e-5)
        position = {d: j for j, d in enumerate(ev.doc_ids)}
        for (doc, score) in ranked[qid]:  # each returned score is that document's MaxSim
            assert full[row, position[doc]] == pytest.approx(score, abs=1e-4)
    assert len(ranked) == len(queries) and all(len(h) == 100 for h in ranked.values())


def test_all_metrics_equal_sentence_transformers_evaluator(tiny_model, subset):
    from sentence_transformers import MultiVectorEncoder as STMultiVectorEncoder
    from sentence_transformers.multi_vector_encoder.evaluation import MultiVectorInformationRetrievalEvaluator

    queries, corpus, qrels = subset
    texts = {d: f"{doc['title']} {doc['text']}" for d, doc in corpus.items()}  # our document_text
    binary = {q: {d for d, g in grades.items() if g > 0} for q, grades in qrels.items()}
    st_model = STMultiVectorEncoder(str(MODELS / "st6-tiny-bert"), device="cpu")
    oracle = MultiVectorInformationRetrievalEvaluator(queries, texts, binary, name="cran", write_csv=False)(st_model)
    ours = InformationRetrievalEvaluator(queries, corpus, binary, name="cran", corpus_chunk_size=64)(tiny_model)
    assert len(ours) == 15
    for key, value in ours.items():
        assert value == pytest.approx(oracle[key.replace("MaxSim", st_model.similarity_fn_name)], abs=1e-6), key


# -- bad input --------------------------------------------------------------------------------
def test_unknown_document_in_qrels_is_an_error_or_skipped(caplog):
    queries, corpus = {"q": "a query"}, {"d1": "doc one", "d2": "doc two"}
    with pytest.raises(CollectionError, match="'ghost'.*not in the corpus"):
        InformationRetrievalEvaluator(queries, corpus, {"q": {"d1": 1, "ghost": 1}})
    ev = InformationRetrievalEvaluator(queries, corpus, {"q": {"d1": 1, "ghost": 1}}, skip_unknown_docs=True)
    assert ev.relevant_docs == {"q": {"d1": 1}} and "skipped 1 judgment" in caplog.text


def test_empty_corpus_empty_query_and_nothing_to_evaluate_are_clear_errors():
    with pytest.raises(CollectionError, match="corpus is empty"):
        InformationRetrievalEvaluator({"q": "text"}, {}, {"q": {"d": 1}})
    with pytest.raises(CollectionError, match="query 'q2' has empty text"):
        InformationRetrievalEvaluator({"q1": "text", "q2": "  "}, {"d": "doc"}, {"q1": {"d": 1}, "q2": {"d": 1}})
    with pytest.raises(CollectionError, match="no query has a relevant document"):
        InformationRetrievalEvaluator({"q": "text"}, {"d": "doc"}, {"q": {"d": 0}, "other": {"d": 1}})
    ev = InformationRetrievalEvaluator({"q1": "text", "q2": ""}, {"d": "doc"}, {"q1": {"d": 1}})
    assert list(ev.queries) == ["q1"]  # unjudged queries (even empty ones) are skipped


def test_beir_folder_layouts_and_malformed_files(tmp_path):
    queries, corpus, qrels = {"1": "what"}, {"7": {"title": "T", "text": "body"}}, {"1": {"7": 2}}
    flat = write_beir(tmp_path / "flat", queries, corpus, qrels, header=False)
    nested = write_beir(tmp_path / "nested", queries, corpus, qrels, qrels_name="qrels/test.tsv")
    assert load_beir_folder(flat) == load_beir_folder(nested) == (queries, corpus, qrels)
    (nested / "qrels" / "test.tsv").write_text('query-id\tcorpus-id\n1\t7\n')  # no score column: grade 1
    assert load_beir_folder(nested)[2] == {"1": {"7": 1}}
    with open(flat / "corpus.jsonl", "a") as f:
        f.write('{"_id": "8", "text": "fine"}\n\n{"_id": "9", "text": broken}\n')
    with pytest.raises(CollectionError, match=r"corpus\.jsonl:4: not valid JSON"):
        load_beir_folder(flat)
    (nested / "queries.jsonl").write_text('{"_id": "1"}\n')
    with pytest.raises(CollectionError, match=r"queries\.jsonl:1: missing key\(s\) \['text'\]"):
        load_beir_folder(nested)
    (flat / "corpus.jsonl").write_text('{"_id": "7", "text": "x"}\n')
    (flat / "qrels.tsv").write_text("1\t7\t1\n1\t7\tlots\n")
    with pytest.raises(CollectionError, match=r"qrels\.tsv:2: score 'lots'"):
        load_beir_folder(flat)
    with pytest.raises(NotFoundError, match="does not exist"):  # exit 3 on the command line, as every missing folder
        load_beir_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CollectionError, match="corpus.jsonl is missing"):
        load_beir_folder(tmp_path / "empty")


def test_hub_unreachable_fails_fast(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match="cannot reach the Hugging Face hub"):
        load_hub_collection("sentence-transformers/NanoBEIR-en", "NanoMSMARCO")
    with pytest.raises(ConnectionError, match="local"):
        NanoBEIREvaluator(dataset_names=["msmarco"])
    assert time.perf_counter() - start < 10


def test_nanobeir_from_local_folders_with_mean_row(tiny_model, subset, tmp_path):
    queries, corpus, qrels = subset
    small = write_beir(tmp_path / "small", dict(list(queries.items())[:5]), corpus, qrels)
    folder = write_beir(tmp_path / "cran", queries, corpus, qrels)
    ev = NanoBEIREvaluator(dataset_names=["msmarco", "SciFact"], folders={"msmarco": folder, "scifact": small})
    results = ev(tiny_model)
    assert ev.primary_metric == "NanoBEIR_mean_MaxSim_ndcg@10"
    for metric in ("MaxSim_ndcg@10", "MaxSim_map@100", "MaxSim_accuracy@1"):
        mean = (results[f"NanoMSMARCO_{metric}"] + results[f"NanoSciFact_{metric}"]) / 2
        assert results[f"NanoBEIR_mean_{metric}"] == pytest.approx(mean)
    tiny_model.train()  # as during training: the evaluator must switch dropout off, then restore the mode
    try:
        alone = InformationRetrievalEvaluator(queries, corpus, qrels, name="NanoMSMARCO")(tiny_model)
        assert tiny_model.training
    finally:
        tiny_model.eval()
    assert {k: results[k] for k in alone} == pytest.approx(alone)
    assert len(results) == 45
    with pytest.raises(ValueError, match="unknown NanoBEIR dataset name"):
        NanoBEIREvaluator(dataset_names=["msmarco", "cranfield"])
