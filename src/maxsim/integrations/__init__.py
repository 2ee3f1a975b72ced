"""Adapters to RAG frameworks; each module needs its extra and imports the framework itself:

- ``maxsim.integrations.langchain`` (``pip install "maxsim[langchain]"``): ``MaxsimRetriever``, ``MaxsimReranker``.
- ``maxsim.integrations.llama_index`` (``pip install "maxsim[llama-index]"``): ``MaxsimRetriever``, ``MaxsimReranker``.
"""
