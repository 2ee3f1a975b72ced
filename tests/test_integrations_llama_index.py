"""``maxsim.integrations.llama_index`` against the real llama-index-core: retrieved ids, scores,
passages and the MaxSim node postprocessor."""

import pytest
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, TextNode

from maxsim.errors import InvalidInputError
from maxsim.integrations.llama_index import MaxsimReranker, MaxsimRetriever
from maxsim.search.rerank import rerank
from test_integrations_corpus import CORPUS, SHORT, build


@pytest.fixture(scope="module")
def retriever(default_model, tmp_path_factory):
    with build(tmp_path_factory.mktemp("li") / "r", default_model) as r:
        yield r


def test_retrieve_returns_nodes_with_ids_and_scores(retriever):
    li = MaxsimRetriever(retriever, k=2)
    assert isinstance(li, BaseRetriever)
    nodes = li.retrieve("Why is Mars red?")
    hits = retriever.search("Why is Mars red?", k=2)[0]
    assert [n.node.node_id for n in nodes] == [h.id for h in hits] and nodes[0].node.node_id == "mars"
    assert [n.score for n in nodes] == pytest.approx([h.score for h in hits])
    assert nodes[0].node.get_content() == CORPUS["mars"][0] and nodes[0].node.metadata == {"topic": "space"}
    assert [n.node.node_id for n in MaxsimRetriever(retriever, k=3, filter={"topic": "food"}).retrieve("Mars")] \
        == ["bread"]


def test_passage_content_and_checks(retriever):
    node = MaxsimRetriever(retriever, k=1, content="passage").retrieve("emergency shutdown valve colour")[0].node
    text = CORPUS["manual"][0]
    assert node.node_id == "manual" and node.text == text[node.start_char_idx:node.end_char_idx]
    assert "bright orange" in node.text and len(node.text) < len(text)
    with pytest.raises(InvalidInputError, match="content must be one of"):
        MaxsimRetriever(retriever, content="title")
    with pytest.raises(InvalidInputError, match="k must be a positive int"):
        MaxsimRetriever(retriever, k=0)


def test_reranker_postprocesses_nodes(default_model):
    nodes = [NodeWithScore(node=TextNode(id_=key, text=text), score=0.0) for key, (text, _) in SHORT.items()]
    reranker = MaxsimReranker(model=default_model, top_n=2)
    out = reranker.postprocess_nodes(nodes, query_str="ocean tides")
    expected = rerank(["ocean tides"], [[text for text, _ in SHORT.values()]], model=default_model, k=2)[0]
    assert [n.node.node_id for n in out] == [list(SHORT)[h["id"]] for h in expected] and out[0].node.node_id == "moon"
    assert [n.score for n in out] == pytest.approx([h["score"] for h in expected])
    with pytest.raises(InvalidInputError, match="needs the query"):
        reranker.postprocess_nodes(nodes)
