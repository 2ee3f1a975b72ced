"""``maxsim.integrations.langchain`` against the real langchain-core: retrieved ids, scores, metadata,
filters, passages, and the reranking compressor."""

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from maxsim.integrations.langchain import MaxsimReranker, MaxsimRetriever
from maxsim.search.rerank import rerank
from test_integrations_corpus import CORPUS, SHORT, build


@pytest.fixture(scope="module")
def retriever(default_model, tmp_path_factory):
    with build(tmp_path_factory.mktemp("lc") / "r", default_model) as r:
        yield r


def test_invoke_returns_documents_with_ids_and_scores(retriever):
    lc = MaxsimRetriever(retriever=retriever, k=2)
    assert isinstance(lc, BaseRetriever)
    documents = lc.invoke("Why is Mars red?")
    hits = retriever.search("Why is Mars red?", k=2)[0]
    assert [d.id for d in documents] == [h.id for h in hits] and documents[0].id == "mars"
    first = documents[0]
    assert isinstance(first, Document) and first.page_content == CORPUS["mars"][0]
    assert first.metadata["id"] == "mars" and first.metadata["topic"] == "space"
    assert first.metadata["score"] == pytest.approx(hits[0].score)
    assert first.metadata["passage"] == {"index": 0, "start": 0, "end": len(CORPUS["mars"][0])}


def test_filter_hybrid_and_batch(retriever):
    lc = MaxsimRetriever(retriever=retriever, k=4, filter={"topic": "food"})
    assert [d.id for d in lc.invoke("Why is Mars red?")] == ["bread"]
    hybrid = MaxsimRetriever(retriever=retriever, k=1, hybrid=True)
    answers = hybrid.batch(["sourdough yeast", "ocean tides"])
    assert [[d.id for d in docs] for docs in answers] == [["bread"], ["moon"]]


def test_passage_content_is_the_best_passage(retriever):
    query = "What colour is the emergency shutdown valve?"
    whole, passage = (MaxsimRetriever(retriever=retriever, k=1, content=c).invoke(query)[0]
                      for c in ("text", "passage"))
    assert whole.id == passage.id == "manual" and whole.page_content == CORPUS["manual"][0]
    span = passage.metadata["passage"]
    assert span["index"] > 0 and passage.page_content == CORPUS["manual"][0][span["start"]:span["end"]]
    assert "bright orange" in passage.page_content and len(passage.page_content) < len(whole.page_content)
    with pytest.raises(ValueError, match="content must be one of"):
        MaxsimRetriever(retriever=retriever, content="title")


def test_reranker_orders_other_retrievers_documents(default_model):
    documents = [Document(page_content=text, metadata={"key": key}) for key, (text, _) in SHORT.items()]
    reranked = MaxsimReranker(model=default_model, top_n=2).compress_documents(documents, "bread and yeast")
    expected = rerank(["bread and yeast"], [[d.page_content for d in documents]], model=default_model, k=2)[0]
    assert [d.metadata["key"] for d in reranked] == [list(SHORT)[h["id"]] for h in expected]
    assert reranked[0].metadata["key"] == "bread"
    assert [d.metadata["relevance_score"] for d in reranked] == pytest.approx([h["score"] for h in expected])
    assert "relevance_score" not in documents[2].metadata  # the inputs are left unchanged
