"""NanoBEIR: 13 small BEIR collections (about 50 queries, 5,000 documents each) and their mean."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from tqdm.auto import tqdm

from maxsim.errors import InvalidInputError
from maxsim.evaluation.information_retrieval import InformationRetrievalEvaluator
from maxsim.evaluation.loaders import load_beir_folder, load_hub_collection
from maxsim.evaluation.metrics import mean_over_collections

NANOBEIR_NAMES = {
    "climatefever": "ClimateFEVER", "dbpedia": "DBPedia", "fever": "FEVER", "fiqa2018": "FiQA2018",
    "hotpotqa": "HotpotQA", "msmarco": "MSMARCO", "nfcorpus": "NFCorpus", "nq": "NQ",
    "quoraretrieval": "QuoraRetrieval", "scidocs": "SCIDOCS", "arguana": "ArguAna", "scifact": "SciFact",
    "touche2020": "Touche2020",
}
DATASET_ID = "sentence-transformers/NanoBEIR-en"


class NanoBEIREvaluator:
    """Run an ``InformationRetrievalEvaluator`` on each named NanoBEIR collection and average them.

    ``dataset_names``: short names (default: all 13 of ``NANOBEIR_NAMES``). Each collection is read
    from ``folders[name]`` (a BEIR-layout folder) when given, else from the hub dataset ``dataset_id``
    (split ``Nano{Name}``) with the ``datasets`` library; offline, that fails at once with a clear
    error. ``evaluator(model)`` returns the per-collection keys (``NanoMSMARCO_MaxSim_ndcg@10``, ...)
    plus their unweighted mean over collections (``NanoBEIR_mean_MaxSim_ndcg@10``, ...).
    Other keyword arguments go to each ``InformationRetrievalEvaluator``; ``skip_unknown_docs``
    defaults to True here, since the hub loader drops empty documents that qrels may still name.
    """

    def __init__(self, dataset_names: Sequence[str] | None = None, dataset_id: str = DATASET_ID,
                 folders: Mapping[str, str | os.PathLike] | None = None, show_progress_bar: bool | None = None,
                 **evaluator_kwargs):
        names = list(dataset_names) if dataset_names is not None else list(NANOBEIR_NAMES)
        unknown = [n for n in names if n.lower() not in NANOBEIR_NAMES]
        if unknown or not names:
            raise InvalidInputError(f"unknown NanoBEIR dataset name(s) {unknown}; choose among {list(NANOBEIR_NAMES)}.")
        folders = {k.lower(): v for k, v in (folders or {}).items()}
        stray = sorted(set(folders) - {n.lower() for n in names})
        if stray:
            raise InvalidInputError(f"folders given for {stray}, which are not in dataset_names {names}.")
        self.dataset_names = [n.lower() for n in names]
        self.dataset_id = dataset_id
        self.name = "NanoBEIR_mean"
        self.primary_metric = f"{self.name}_MaxSim_ndcg@{max(evaluator_kwargs.get('ndcg_at_k', (10,)))}"
        self.show_progress_bar = show_progress_bar
        evaluator_kwargs.setdefault("skip_unknown_docs", True)
        self.evaluators = []
        for short in self.dataset_names:
            split = f"Nano{NANOBEIR_NAMES[short]}"
            collection = load_beir_folder(folders[short]) if short in folders else \
                load_hub_collection(dataset_id, split)
            self.evaluators.append(InformationRetrievalEvaluator(*collection, name=split,
                                                                 show_progress_bar=show_progress_bar,
                                                                 **evaluator_kwargs))

    def __call__(self, model) -> dict[str, float]:
        """Per-collection metrics, then ``NanoBEIR_mean_*``: the mean of each metric over collections."""
        per_collection = [(evaluator.name, evaluator(model))
                          for evaluator in tqdm(self.evaluators, desc="NanoBEIR", disable=not self.show_progress_bar)]
        results = {key: value for _, flat in per_collection for key, value in flat.items()}
        results.update(mean_over_collections(per_collection, self.name))
        return results
