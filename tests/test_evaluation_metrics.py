"""Metric definitions against pytrec_eval (trec_eval) and sentence-transformers' IR evaluator."""

import math

import numpy as np
import pytest
import pytrec_eval

from conftest import DATA
from maxsim.evaluation import evaluate_rankings, load_beir_folder, per_query_metrics
from maxsim.evaluation.metrics import (
    average_precision_at_k,
    metric_functions,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    rank,
    recall_at_k,
)

TREC_MEASURES = {"ndcg_cut.10", "P.1,3,5,10,100", "recall.1,3,5,10,100"}
OURS_TO_TREC = {"ndcg@10": "ndcg_cut_10", **{f"precision@{k}": f"P_{k}" for k in (1, 3, 5, 10, 100)},
                **{f"recall@{k}": f"recall_{k}" for k in (1, 3, 5, 10, 100)}}
FUNCTIONS = metric_functions(precision_recall_at=(1, 3, 5, 10, 100))


def trec_run(rankings):
    """pytrec_eval breaks ties its own way: give it strictly decreasing scores in our order."""
    return {q: {doc: float(len(hits) - i) for i, doc in enumerate(rank(hits))} for q, hits in rankings.items()}


def assert_matches_trec(rankings, qrels):
    ours = per_query_metrics(rankings, qrels, FUNCTIONS)
    trec = pytrec_eval.RelevanceEvaluator(qrels, TREC_MEASURES).evaluate(trec_run(rankings))
    assert ours, "no query evaluated"
    for qid, values in ours.items():
        if qid not in trec:  # an empty ranking: trec_eval has nothing to score, we count 0
            assert rankings[qid] == [] and not any(values.values()), qid
            continue
        for label, trec_label in OURS_TO_TREC.items():
            assert values[label] == pytest.approx(trec[qid][trec_label], abs=1e-6), (qid, label)
    return ours


@pytest.fixture(scope="module")
def cranfield():
    return load_beir_folder(DATA / "cranfield")


@pytest.fixture(scope="module")
def cranfield_run(cranfield):
    """A noisy-oracle ranking of all 1,400 documents: judged documents score grade + noise, so relevant
    documents land at all depths (more hits than a random ranking, misses as well)."""
    queries, corpus, qrels = cranfield
    rng = np.random.default_rng(0)
    doc_ids = list(corpus)
    run = {}
    for qid in queries:
        noise = rng.normal(0, 1.5, len(doc_ids))
        grades = qrels.get(qid, {})
        run[qid] = [(d, float(grades.get(d, 0) + n)) for d, n in zip(doc_ids, noise)]
    return run


def test_cranfield_graded_ndcg_precision_recall_equal_trec_eval(cranfield, cranfield_run):
    _, _, qrels = cranfield
    assert {g for grades in qrels.values() for g in grades.values()} == {1, 2, 3, 4}  # graded
    ours = assert_matches_trec(cranfield_run, qrels)
    assert len(ours) == 225
    mean_ndcg = np.mean([v["ndcg@10"] for v in ours.values()])
    assert 0.05 < mean_ndcg < 0.95  # a ranking with hits and misses, not a degenerate one


def test_hand_made_ties_unjudged_and_k_beyond_corpus():
    qrels = {
        "q1": {"d1": 2, "d2": 0, "d3": 1, "d9": 3},  # d9 never retrieved
        "q2": {"d1": 0},                              # judged, nothing relevant: skipped
        "q3": {"d2": 1},
        "q4": {"d4": 1},                              # not in the run (no query text): skipped
        "q5": {"d4": 1},                              # an empty ranking: retrieved nothing, scores 0
    }
    # Ties: d1/d3 and d2/d4 tie in q1; all four tie in q3. Ties are broken by doc id ascending.
    run = {"q1": [("d4", 1.0), ("d3", 2.0), ("d2", 1.0), ("d1", 2.0)],
           "q2": [("d1", 1.0)],
           "q3": [("d4", 0.5), ("d3", 0.5), ("d2", 0.5), ("d1", 0.5)], "q5": []}
    assert rank(run["q1"]) == ["d1", "d3", "d2", "d4"]
    with pytest.warns(UserWarning, match="1 of 4 judged queries have no ranking .*'q4'"):
        ours = assert_matches_trec(run, qrels)
    assert set(ours) == {"q1", "q3", "q5"}
    assert ours["q3"]["precision@1"] == 0.0 and ours["q3"]["precision@3"] == pytest.approx(1 / 3)
    assert ours["q3"]["precision@100"] == pytest.approx(1 / 100)  # k beyond the 4 ranked documents
    assert ours["q5"]["ndcg@10"] == ours["q5"]["recall@100"] == 0.0
    idcg = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    assert ours["q1"]["ndcg@10"] == pytest.approx((2 + 1 / math.log2(3)) / idcg)


def test_definitions_on_a_tiny_case():
    grades = {"a": 1, "b": 2, "c": 0}
    ranking = ["x", "b", "c", "a"]
    assert mrr_at_k(ranking, grades, 10) == 0.5
    assert mrr_at_k(ranking, grades, 1) == 0.0
    assert precision_at_k(ranking, grades, 2) == 0.5
    assert recall_at_k(ranking, grades, 2) == 0.5
    assert average_precision_at_k(ranking, grades, 100) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert average_precision_at_k(ranking, grades, 1) == 0.0  # divides by min(k, #relevant) = 1
    assert ndcg_at_k(ranking, {"c": 0}, 10) == 0.0


def st_compute_metrics(rankings, qrels):
    """sentence-transformers' own metric code on the same ranking (binary relevance, as it uses)."""
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    relevant = {q: {d for d, g in grades.items() if g > 0} for q, grades in qrels.items()}
    relevant = {q: docs for q, docs in relevant.items() if docs}
    docs = sorted({d for hits in rankings.values() for d, _ in hits} | {d for s in relevant.values() for d in s})
    queries = {q: f"query {q}" for q in relevant}
    st = InformationRetrievalEvaluator(queries, dict.fromkeys(docs, "text"), relevant, write_csv=False)
    result_list = [[{"corpus_id": d, "score": s} for d, s in rankings.get(q, [])] for q in st.queries_ids]
    return st.compute_metrics(result_list)


def test_map_mrr_and_all_metrics_equal_sentence_transformers(cranfield, cranfield_run):
    _, _, qrels = cranfield
    binary = {q: {d: 1 for d, g in grades.items() if g > 0} for q, grades in qrels.items()}
    top100 = {q: sorted(hits, key=lambda h: (-h[1], h[0]))[:100] for q, hits in cranfield_run.items()}
    ours = evaluate_rankings(top100, binary, name="cranfield")
    st = st_compute_metrics(top100, binary)
    for key, value in ours.items():
        metric, k = key.removeprefix("cranfield_MaxSim_").split("@")
        assert value == pytest.approx(float(st[f"{metric}@k"][int(k)]), abs=1e-9), key


def test_map_divides_by_min_k_and_relevant_with_many_relevant_documents():
    """A query with 150 relevant documents: MAP@100 follows sentence-transformers, not trec_eval."""
    qrels = {"q": {f"d{i:03d}": 1 for i in range(150)}}
    run = {"q": [(f"d{i:03d}", float(-i)) for i in range(0, 200, 2)]}  # every other document relevant
    ours = evaluate_rankings(run, qrels)
    st = st_compute_metrics(run, qrels)
    assert ours["MaxSim_map@100"] == pytest.approx(float(st["map@k"][100]))
    assert ours["MaxSim_mrr@10"] == pytest.approx(float(st["mrr@k"][10])) == 1.0
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"map_cut.100"}).evaluate(trec_run(run))["q"]["map_cut_100"]
    assert ours["MaxSim_map@100"] == pytest.approx(trec * 150 / 100)


def test_no_relevant_query_or_a_duplicate_document_is_a_clear_error():
    with pytest.raises(ValueError, match="no query"):
        evaluate_rankings({"q": [("d", 1.0)]}, {"q": {"d": 0}})
    with pytest.raises(ValueError, match="query 'q' lists document 'd' more than once"):
        evaluate_rankings({"q": [("d", 1.0), ("e", 0.5), ("d", 0.2)]}, {"q": {"d": 1}})


def test_bad_cutoffs_are_rejected():
    with pytest.raises(ValueError, match="positive integer"):
        metric_functions(ndcg_at=(0,))


def test_judged_queries_without_a_ranking_do_not_count_as_zeros(cranfield, cranfield_run):
    """A partial run's trap: qrels judge 225 queries, the run ranks 50 (the others had no query text).
    The mean is over the 50, as trec_eval's, not diluted by 175 zeros."""
    _, _, qrels = cranfield
    asked = dict(list(cranfield_run.items())[:50])
    with pytest.warns(UserWarning, match="175 of 225 judged queries have no ranking"):
        ours = evaluate_rankings(asked, qrels)["MaxSim_ndcg@10"]
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(trec_run(asked))
    assert len(trec) == 50
    assert ours == pytest.approx(np.mean([v["ndcg_cut_10"] for v in trec.values()]), abs=1e-9)
    assert ours > 0.05 and ours * 50 / 225 < ours / 2  # counting the 175 as zeros would be 4.5x lower
