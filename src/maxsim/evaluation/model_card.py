"""Write a model's README.md with the sections of the reference (sentence-transformers) card.

A card travels with the model: paths of the machine that trained it (datasets, base model, output
folders among the hyperparameters) are written as their last component (``portable``).
"""

from __future__ import annotations

import dataclasses
import ntpath
import os
import platform
import re
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

from maxsim.errors import InvalidInputError
from maxsim.evaluation.report import metrics_table, split_results

# an absolute POSIX path (not inside a URL) or a Windows drive path, up to a space, quote, bracket or comma
ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])[/~](?:[^\s'\"`(),]*)|\b[A-Za-z]:\\[^\s'\"`(),]*")
LOG_HEADERS = {"epoch": "Epoch", "step": "Step", "loss": "Training Loss", "eval_loss": "Validation Loss"}
PACKAGES = [("maxsim", "maxsim"), ("PyTorch", "torch"), ("Transformers", "transformers"),
            ("Tokenizers", "tokenizers"), ("NumPy", "numpy")]
CITATIONS = {
    "ColBERT": """@inproceedings{khattab-zaharia-2020-colbert,
    title = "ColBERT: Efficient and Effective Passage Search via Contextualized Late Interaction over BERT",
    author = "Khattab, Omar and Zaharia, Matei",
    booktitle = "Proceedings of the 43rd International ACM SIGIR Conference on Research and Development in Information Retrieval",
    year = "2020",
    publisher = "Association for Computing Machinery",
    url = "https://arxiv.org/abs/2004.12832",
}""",  # noqa: E501 (BibTeX fields stay on one line, as in the reference card)
    "ColBERTv2": """@inproceedings{santhanam-etal-2022-colbertv2,
    title = "ColBERTv2: Effective and Efficient Retrieval via Lightweight Late Interaction",
    author = "Santhanam, Keshav and Khattab, Omar and Saad-Falcon, Jon and Potts, Christopher and Zaharia, Matei",
    booktitle = "Proceedings of the 2022 Conference of the North American Chapter of the Association for Computational Linguistics: Human Language Technologies",
    year = "2022",
    publisher = "Association for Computational Linguistics",
}""",  # noqa: E501
}
USAGE = '''from maxsim import MultiVectorEncoder

model = MultiVectorEncoder({model_id!r})
# Run inference: each input becomes an array of per-token vectors (variable length).
sentences = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]
query_embeddings = model.encode_query(sentences)
document_embeddings = model.encode_document(sentences)
print(query_embeddings[0].shape)
# (num_query_tokens, {dim})

# Get the MaxSim similarity scores: a (3, 3) float32 array
similarities = model.similarity(query_embeddings, document_embeddings)
print(similarities)'''


def write_model_card(model, folder: str | os.PathLike, *, evaluations: Mapping[str, Mapping[str, float]] | None = None,
                     training_args=None, training_log: Sequence[Mapping] | None = None,
                     datasets: Sequence[str] | None = None, base_model: str | None = None,
                     model_id: str | None = None, best_metric: str | None = None,
                     training_plot: str | None = None) -> Path:
    """Write ``folder/README.md`` (atomically) and return its path.

    ``evaluations``: one evaluator's flat results (``evaluator(model)``, keys
    ``f"{collection}_MaxSim_{metric}"``) or {evaluator name: flat results}; collections named
    ``*_mean`` get their own table. ``training_plot``: an image file in ``folder`` (e.g. the
    training curves) shown under the training logs.
    ``training_args``: a dict or a dataclass (then "non-default" compares with its field defaults).
    ``training_log``: rows such as {"epoch", "step", "loss", "<collection>_MaxSim_ndcg@10"}; the row
    with the highest ``best_metric`` (default: the log's ``*_mean_*ndcg@10`` column, else its first
    ``*ndcg@10`` column) is bold. ``model_id``: what the usage snippet loads (default: ``folder``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    datasets = [portable(name) for name in datasets or ()]
    base_model = base_model and portable(base_model)
    sections = [_header(model, datasets, base_model), _usage(model, portable(model_id or folder.name))]
    if evaluations:
        sections.append(_evaluation(_by_evaluator(evaluations)))
    if training_args is not None or training_log or datasets or training_plot:
        sections.append(_training(training_args, training_log, datasets, best_metric, training_plot))
    sections += [_versions(), _citations()]
    path = folder / "README.md"
    tmp = folder / ".README.md.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n\n".join(sections) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def portable(text: str) -> str:
    """``text`` with each absolute path of this machine replaced by its last component
    (``/data/kd/train.jsonl (loss: ...)`` -> ``train.jsonl (loss: ...)``)."""
    return ABSOLUTE_PATH.sub(lambda m: ntpath.basename(m.group().rstrip("/\\")) or m.group(), str(text))


def _bullets(items: Mapping[str, object]) -> str:
    return "\n".join(f"- **{key}:** {value}" for key, value in items.items() if value not in (None, ""))


def _header(model, datasets, base_model) -> str:
    transformer = model.transformer
    origin = f" finetuned from `{base_model}`" if base_model else ""
    trained_on = f" on {', '.join(datasets)}" if datasets else ""
    description = {
        "Model Type": "Multi-Vector Encoder", "Base model": base_model and f"`{base_model}`",
        "Maximum Sequence Length": f"{transformer.max_length('query')} tokens (queries), "
                                   f"{transformer.max_length('document')} tokens (documents)",
        "Output Dimensionality": f"{model.dim} dimensions", "Similarity Function": "MaxSim",
        "Supported Modality": "Text", "Training Dataset": ", ".join(datasets or ()),
    }
    return "\n".join([
        "---", "library_name: maxsim", "tags:", "- multi-vector", "- late-interaction", "- maxsim", "---", "",
        f"# Multi-Vector Encoder{origin}", "",
        f"This is a Multi-Vector Encoder model{origin}{trained_on}, built with the maxsim library. It maps "
        f"sentences & paragraphs to sequences of {model.dim}-dimensional token-level vectors and scores them "
        "with late interaction (MaxSim), useful for semantic search.", "",
        "## Model Details", "", "### Model Description", "", _bullets(description), "",
        "### Model Sources", "", "- **Library:** maxsim (multi-vector retrieval: encode, evaluate, index, search)", "",
        "### Full Model Architecture", "", "```", repr(model), "```",
    ])


def _usage(model, model_id: str) -> str:
    return "\n".join([
        "## Usage", "", "### Direct Usage (maxsim)", "", "First install the maxsim library, then load this "
        "model and run inference.", "", "```python", USAGE.format(model_id=model_id, dim=model.dim), "```",
    ])


def _by_evaluator(evaluations: Mapping) -> Mapping[str, Mapping[str, float]]:
    """One evaluator's flat results ({key: number}) -> {"": results}; {name: results} unchanged."""
    if all(isinstance(value, (int, float)) for value in evaluations.values()):
        return {"": evaluations}
    for name, results in evaluations.items():
        if not isinstance(results, Mapping):
            raise InvalidInputError(f"evaluations[{name!r}] is {type(results).__name__}: give evaluator(model)'s dict "
                            "or {evaluator name: that dict}.")
    return evaluations


def _evaluation(evaluations: Mapping[str, Mapping[str, float]]) -> str:
    merged = {key: value for flat in evaluations.values() for key, value in flat.items()}
    by_collection = split_results(merged)
    plain = {c: v for c, v in by_collection.items() if not c.endswith("_mean")}
    lines = ["## Evaluation", "", "### Metrics"]
    if plain:
        lines += ["", "#### Multi Vector Information Retrieval", "",
                  f"- Datasets: {', '.join(f'`{c}`' for c in plain)}",
                  "- Evaluated with `maxsim.evaluation.InformationRetrievalEvaluator` (exact MaxSim over the corpus)",
                  "", metrics_table({f"{c}_{m}": v for c, values in plain.items() for m, v in values.items()})]
    for collection, values in by_collection.items():
        if collection.endswith("_mean"):
            lines += ["", "#### Multi Vector Nano BEIR" if collection.startswith("NanoBEIR") else
                      f"#### {collection}", "", f"- Dataset: `{collection}` (mean over the collections above)",
                      "", metrics_table(values)]
    return "\n".join(lines)


def _training(training_args, training_log, datasets, best_metric, training_plot=None) -> str:
    lines = ["## Training Details"]
    if datasets:
        lines += ["", "### Training Dataset" + ("s" if len(datasets) > 1 else ""), ""]
        lines += [f"- `{name}`" for name in datasets]
    if training_args is not None:
        all_args, non_default = _arguments(training_args)
        lines += ["", "### Training Hyperparameters", "", "#### Non-Default Hyperparameters", "",
                  _plain_bullets(non_default), "", "#### All Hyperparameters", "",
                  "<details><summary>Click to expand</summary>", "", _plain_bullets(all_args), "", "</details>"]
    if training_log or training_plot:
        lines += ["", "### Training Logs"]
    if training_plot:
        lines += ["", f"![Training loss and evaluation curves]({training_plot})"]
    if training_log:
        lines += ["", _log_table(training_log, best_metric)]
    return "\n".join(lines)


def _arguments(training_args) -> tuple[dict, dict]:
    if dataclasses.is_dataclass(training_args) and not isinstance(training_args, type):
        values = {f.name: getattr(training_args, f.name) for f in dataclasses.fields(training_args)}
        defaults = {f.name: f.default for f in dataclasses.fields(training_args)
                    if f.default is not dataclasses.MISSING}
        return values, {k: v for k, v in values.items() if k not in defaults or defaults[k] != v}
    if isinstance(training_args, Mapping):
        return dict(training_args), dict(training_args)
    raise InvalidInputError(f"training_args must be a dict or a dataclass, got {type(training_args).__name__}.")


def _plain_bullets(items: Mapping) -> str:
    return "\n".join(f"- `{key}`: {portable(value)}" for key, value in items.items()) or "- (none)"


def _log_table(rows: Sequence[Mapping], best_metric: str | None) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    best_metric = best_metric or _default_best(columns)
    scored = [i for i, row in enumerate(rows) if isinstance(row.get(best_metric), (int, float))]
    best = max(scored, key=lambda i: rows[i][best_metric]) if scored else None
    lines = ["| " + " | ".join(LOG_HEADERS.get(c, c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for i, row in enumerate(rows):
        cells = [_log_cell(row.get(c), c) for c in columns]
        if i == best:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    if best is not None:
        lines += ["", f"- The bold row has the best `{best_metric}` "
                  "(the saved checkpoint when the best model is kept)."]
    return "\n".join(lines)


def _default_best(columns: list[str]) -> str | None:
    ndcg = [c for c in columns if c.endswith("ndcg@10")]
    return next((c for c in ndcg if "_mean_" in c), ndcg[0] if ndcg else None)


def _log_cell(value, column: str) -> str:
    """Epochs with 2 decimals, other floats with 4 (as the reference card), "-" for missing."""
    if isinstance(value, float) and column == "epoch":
        return repr(round(value, 2))
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return "-" if value is None else str(value)


def _versions() -> str:
    versions = {"Python": platform.python_version()}
    for label, package in PACKAGES:
        try:
            versions[label] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(["### Framework Versions", "", "\n".join(f"- {k}: {v}" for k, v in versions.items())])


def _citations() -> str:
    lines = ["## Citation", "", "### BibTeX"]
    for title, bibtex in CITATIONS.items():
        lines += ["", f"#### {title}", "", "```bibtex", bibtex, "```"]
    return "\n".join(lines)
