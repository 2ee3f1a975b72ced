"""Evaluation: ranking metrics, exact-MaxSim evaluators, collection loaders, the model-card writer."""

from maxsim.evaluation.information_retrieval import InformationRetrievalEvaluator
from maxsim.evaluation.loaders import CollectionError, load_beir_folder, load_hub_collection, normalize_collection
from maxsim.evaluation.metrics import evaluate_rankings, mean_over_collections, per_query_metrics
from maxsim.evaluation.model_card import write_model_card
from maxsim.evaluation.nano_beir import NANOBEIR_NAMES, NanoBEIREvaluator
from maxsim.evaluation.report import metrics_table

__all__ = ["CollectionError", "InformationRetrievalEvaluator", "NANOBEIR_NAMES", "NanoBEIREvaluator",
           "evaluate_rankings", "load_beir_folder", "load_hub_collection", "mean_over_collections",
           "metrics_table", "normalize_collection", "per_query_metrics", "write_model_card"]
