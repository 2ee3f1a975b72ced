"""Recipes: one YAML file names the model, the data, the loss, the evaluators and the Trainer's
arguments; ``run_recipe`` trains, saves the model and writes its model card.

```yaml
model: default            # | folder | hub id | {backbone: ..., dense: 128, query_length: 32, ...}
data: {train: rows.jsonl, documents_per_query: 32}   # + queries / documents tables for rows by ids
loss: {name: DistillKLDiv, normalize_scores: true, temperature: 1.0}
evaluation: [{name: cranfield, path: ../data/cranfield}]
training: {per_device_train_batch_size: 4, learning_rate: 3.0e-5, ...}   # transformers.TrainingArguments
output_dir: out/model
```
Relative paths are resolved against the recipe's folder first, then the working directory;
``maxsim:NAME`` names data shipped inside the package (``maxsim:kd/msmarco-kd-flagembedding.jsonl``,
``maxsim:cranfield``; see ``maxsim/data/*/PROVENANCE.md``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import string
import tempfile
from pathlib import Path

import transformers
import yaml

from maxsim.errors import InvalidInputError
from maxsim.losses import LOSSES
from maxsim.training.data import load_rows
from maxsim.training.plots import FILE_NAME as PLOT_NAME
from maxsim.training.plots import plot_training_curves
from maxsim.training.trainer import MaxSimTrainer

SECTIONS = ("model", "data", "loss", "evaluation", "training", "output_dir", "resume_from_checkpoint")
TRAINING_FIELDS = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
PACKAGE_DATA = "maxsim:"  # prefix of paths into the package's data folder
MODEL_KEYS = {"backbone", "dense", "query_length", "document_length", "query_expansion", "skiplist", "prompts"}


def load_recipe(path: str | os.PathLike, overrides: list[str] = ()) -> dict:
    """Read a recipe and apply ``key=value`` overrides (values parsed as YAML). ``a.b=v`` sets a nested
    key; a bare key sets a top-level section or, failing that, a ``training`` argument."""
    path = Path(path)
    try:
        recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"could not read recipe {path}: {exc}") from None
    if not isinstance(recipe, dict):
        raise InvalidInputError(f"recipe {path} must be a YAML mapping with sections {SECTIONS}.")
    unknown = set(recipe) - set(SECTIONS)
    if unknown:
        raise InvalidInputError(f"recipe {path} has unknown sections {sorted(unknown)}; allowed: {SECTIONS}.")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"override {item!r} is not key=value (e.g. max_steps=20).")
        keys = key.split(".")
        if len(keys) == 1 and key not in SECTIONS:
            if key not in TRAINING_FIELDS:
                raise InvalidInputError(f"override {key!r} is neither a recipe section {SECTIONS} nor a "
                                 "transformers.TrainingArguments field; use section.key=value.")
            keys = ["training", key]
        node = recipe
        for part in keys[:-1]:
            node = node.setdefault(part, {})
        node[keys[-1]] = _parse_value(value)
    recipe["_folder"] = str(path.resolve().parent)
    return recipe


def _parse_value(text: str):
    """YAML value of an override; YAML 1.1's yes/no/on/off stay strings (``eval_strategy=no``)."""
    if text.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
        return text.strip()
    return yaml.safe_load(text)


def run_recipe(recipe: dict) -> Path:
    """Train as ``recipe`` says; write the model, its README.md and ``training_curves.png`` (loss and
    evaluation curves, with matplotlib) to ``output_dir`` (checkpoints go to
    ``output_dir/checkpoints``). On failure nothing half-written is left: the final model is written to
    a temporary folder and moved in at the end, and an interrupted checkpoint is removed."""
    for section in ("model", "data", "output_dir"):
        if section not in recipe:
            raise InvalidInputError(f"the recipe has no '{section}' section.")
    folder = recipe.get("_folder", ".")
    output_dir = Path(recipe["output_dir"]).expanduser()
    model = build_model(recipe["model"], folder)
    data = dict(recipe["data"])
    train_spec = data.pop("train", None)
    if train_spec is None:
        raise InvalidInputError("the recipe's data section needs 'train' (a file, a hub id or a list of them).")
    rows = load_rows(_paths(train_spec, folder), **{k: _paths(v, folder) for k, v in data.items()})
    loss_spec = dict(recipe.get("loss") or {"name": "DistillKLDiv" if rows.has_scores else "Contrastive"})
    loss = build_loss(loss_spec, model)
    evaluators = build_evaluators(recipe.get("evaluation") or [], folder)
    args = build_arguments(recipe.get("training") or {}, output_dir / "checkpoints", bool(evaluators))
    trainer = MaxSimTrainer(model, loss, args, rows, evaluators=evaluators)
    staging = None
    try:
        trainer.train(resume_from_checkpoint=recipe.get("resume_from_checkpoint"))
        if not trainer.is_world_process_zero():
            return output_dir
        output_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=output_dir))
        evaluations = {ev.name: ev(model) for ev in evaluators}
        model.save(staging)
        _write_card(model, staging, evaluations, trainer, recipe, rows.name, loss_spec, output_dir.name)
        for item in staging.iterdir():
            target = output_dir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    except BaseException:
        _remove_incomplete_checkpoints(Path(args.output_dir))
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def build_model(spec, folder: str = "."):
    """``"default"`` | a folder or hub id | ``{backbone, dense, query_length, document_length,
    query_expansion, skiplist ("punctuation" or a list), prompts}`` for a bare backbone."""
    from maxsim.models import Dense, MultiVectorEncoder, MultiVectorMask, Normalize, Transformer
    from maxsim.models.hub import resolve_model_folder

    if spec == "default":
        return MultiVectorEncoder.default()
    if isinstance(spec, str):
        return MultiVectorEncoder(_paths(spec, folder))
    if not isinstance(spec, dict) or "backbone" not in spec:
        raise InvalidInputError(f"model must be 'default', a folder, a hub id or {{backbone: ..., ...}}, got {spec!r}.")
    unknown = set(spec) - MODEL_KEYS
    if unknown:
        raise InvalidInputError(f"model has unknown keys {sorted(unknown)}; allowed: {sorted(MODEL_KEYS)}.")
    prompts = spec.get("prompts") or {}
    transformer = Transformer.from_pretrained(
        resolve_model_folder(_paths(spec["backbone"], folder)), prefix_tokens=list(prompts.values()),
        query_length=spec.get("query_length"), document_length=spec.get("document_length"),
        query_expansion=spec.get("query_expansion"))
    modules = [transformer]
    if spec.get("dense"):
        modules.append(Dense(transformer.hidden_size, int(spec["dense"]), bias=False))
    skiplist = spec.get("skiplist", "punctuation")
    if skiplist:
        modules.append(MultiVectorMask(list(string.punctuation) if skiplist == "punctuation" else list(skiplist)))
    modules.append(Normalize("token_embeddings"))
    return MultiVectorEncoder(modules=modules, prompts=prompts)


def build_loss(spec: dict, model):
    """``{name: DistillKLDiv | MarginMSE | Contrastive | CachedContrastive, **its arguments}``."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in LOSSES:
        raise InvalidInputError(f"loss name {name!r} is unknown; use one of {sorted(LOSSES)}.")
    try:
        return LOSSES[name](model, **spec)
    except TypeError as exc:
        raise InvalidInputError(f"loss {name}: {exc}") from None


def build_evaluators(specs: list, folder: str = ".") -> list:
    """``[{name, path (a BEIR folder: corpus.jsonl, queries.jsonl, qrels), **evaluator arguments}]``."""
    from maxsim.evaluation import InformationRetrievalEvaluator, load_beir_folder

    evaluators = []
    for spec in specs:
        spec = dict(spec)
        if "path" not in spec or "name" not in spec:
            raise InvalidInputError(f"an evaluation entry needs 'name' and 'path', got {spec}.")
        queries, corpus, qrels = load_beir_folder(_paths(spec.pop("path"), folder))
        evaluators.append(InformationRetrievalEvaluator(queries, corpus, qrels, **spec))
    return evaluators


def build_arguments(training: dict, checkpoints: Path, has_evaluators: bool) -> transformers.TrainingArguments:
    """TrainingArguments from the recipe's ``training`` section; no reporting integrations by default."""
    training = {"report_to": "none", **training}
    unknown = set(training) - TRAINING_FIELDS
    if unknown:
        raise InvalidInputError(f"training has keys that transformers.TrainingArguments lacks: {sorted(unknown)}.")
    if not has_evaluators and training.get("load_best_model_at_end"):
        raise InvalidInputError("load_best_model_at_end needs an 'evaluation' section to pick the best checkpoint.")
    if not has_evaluators:
        training["eval_strategy"] = "no"
    return transformers.TrainingArguments(output_dir=str(checkpoints), **training)


def _write_card(model, folder: Path, evaluations: dict, trainer, recipe: dict, dataset: str, loss_spec: dict,
                model_id: str) -> None:
    from maxsim.evaluation import write_model_card

    loss = ", ".join(f"{k}={v}" for k, v in loss_spec.items() if k != "name")
    base = recipe["model"] if isinstance(recipe["model"], str) else recipe["model"].get("backbone")
    rows = log_rows(trainer.state.log_history, [ev.primary_metric for ev in trainer.evaluators])
    plot = plot_training_curves(rows, folder / PLOT_NAME, title=f"{base} ({loss_spec['name']})")
    write_model_card(model, folder, evaluations=evaluations, training_args=trainer.args, training_log=rows,
                     datasets=[f"{dataset} (loss: {loss_spec['name']}({loss}))"], base_model=str(base),
                     training_plot=plot and plot.name, model_id=model_id)


def log_rows(log_history: list[dict], metrics: list[str]) -> list[dict]:
    """The Trainer's log history -> one row per logged step: epoch, step, training loss and the
    evaluators' primary metrics (``eval_`` prefix dropped), as the model card's training-log table."""
    rows: dict[int, dict] = {}
    for entry in log_history:
        if "step" not in entry or not ("loss" in entry or any(f"eval_{m}" in entry for m in metrics)):
            continue
        row = rows.setdefault(entry["step"], {"epoch": round(entry.get("epoch", 0.0), 4), "step": entry["step"]})
        if "loss" in entry:
            row["loss"] = entry["loss"]
        row.update({m: entry[f"eval_{m}"] for m in metrics if f"eval_{m}" in entry})
    return [rows[step] for step in sorted(rows)]


def _remove_incomplete_checkpoints(folder: Path) -> None:
    """A checkpoint without trainer_state.json (written last) was interrupted: remove it."""
    for checkpoint in folder.glob("checkpoint-*"):
        if checkpoint.is_dir() and not (checkpoint / "trainer_state.json").exists():
            shutil.rmtree(checkpoint, ignore_errors=True)


def _paths(value, folder: str):
    """Resolve relative file paths (strings, or ``path`` of dicts, in lists) against the recipe's folder;
    ``maxsim:NAME`` against the package's data folder."""
    if isinstance(value, list):
        return [_paths(v, folder) for v in value]
    if isinstance(value, dict) and "path" in value:
        return {**value, "path": _paths(value["path"], folder)}
    if isinstance(value, str) and value.startswith(PACKAGE_DATA):
        return str(Path(__file__).resolve().parents[1] / "data" / value[len(PACKAGE_DATA):])
    if isinstance(value, str) and not os.path.isabs(value):
        candidate = Path(folder) / value
        if candidate.exists():
            return str(candidate)
    return value
