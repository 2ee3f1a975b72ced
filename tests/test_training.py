"""Training data, collator, trainer (checkpoints in our layout, resume, best model) and ``maxsim train``."""

import json
import math

import pytest
import torch

from conftest import DATA, MODELS
from maxsim.losses import DistillKLDiv
from maxsim.training import Collator, MaxSimTrainer, load_rows

TINY = MODELS / "st6-tiny-bert"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Two shared cores: one intra-op thread avoids oversubscription stalls (10x slower otherwise)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_rows(n=16):
    return [{"query": f"query {i} about topic {i % 5}",
             "documents": [f"document {i} on topic {i % 5}", f"unrelated text {i * 7}", f"topic {(i + 1) % 5}"],
             "scores": [5.0, 1.0, float(i % 3)]} for i in range(n)]


def tiny_model():
    from maxsim import MultiVectorEncoder

    return MultiVectorEncoder(TINY, device="cpu")


def arguments(out, **kw):
    import transformers

    base = dict(output_dir=str(out), per_device_train_batch_size=2, logging_steps=1, report_to="none", use_cpu=True,
                learning_rate=1e-3, seed=0, disable_tqdm=True, save_strategy="steps")
    return transformers.TrainingArguments(**{**base, **kw})


# -- data -------------------------------------------------------------------------------------------
def test_kd_rows_from_jsonl_keep_first_n_documents():
    path = DATA / "msmarco-kd-flagembedding" / "train.jsonl"
    rows = load_rows(path, documents_per_query=8)
    first = json.loads(path.read_text().splitlines()[0])
    assert len(rows) == 10 and rows.has_scores
    assert rows[0] == {"query": first["query"], "documents": first["documents"][:8], "scores": first["scores"][:8]}


def test_rows_of_different_widths_need_documents_per_query():
    sources = [DATA / "msmarco-kd-flagembedding" / "train.jsonl", DATA / "nq-kd-flagembedding" / "train.jsonl"]
    with pytest.raises(ValueError, match=r"nq-kd-flagembedding/train.jsonl:1: has \d+ documents, earlier rows have 26"):
        load_rows(sources)
    assert len(load_rows(sources, documents_per_query=26)) == 20
    with pytest.raises(ValueError, match=":1: has 26 documents but documents_per_query=30"):
        load_rows(sources, documents_per_query=30)


@pytest.mark.parametrize("source", ["missing-train.jsonl", "data/kd/missing", "./rows", "~/no/such.parquet"])
def test_a_missing_local_file_fails_at_once_naming_it(source, monkeypatch, tmp_path):
    """No hub lookup (whose retries took 30 s): NotFoundError, raised before ``datasets`` is asked."""
    from maxsim.errors import NotFoundError
    from maxsim.evaluation import load_hub_collection

    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFoundError, match=f"training data '{source}': no such file or folder"):
        load_rows(source)
    with pytest.raises(NotFoundError, match=f"collection '{source}': no such file or folder"):
        load_hub_collection(source, "test")
    (tmp_path / "rows.csv").write_text("query,positive\n")
    with pytest.raises(ValueError, match="rows.csv: not a .jsonl or .parquet file"):
        load_rows("rows.csv")


def test_triples_become_positive_then_negatives():
    rows = load_rows(DATA / "msmarco-triples-splade-toy" / "triples.jsonl")
    first = json.loads((DATA / "msmarco-triples-splade-toy" / "triples.jsonl").read_text().splitlines()[0])
    assert len(rows) == 100 and not rows.has_scores
    assert rows[0] == {"query": first["query"], "documents": [first["positive"], first["negative"]]}
    assert load_rows([{"query": "q", "positive": "p", "negative_2": "n2", "negative_1": "n1"}])[0]["documents"] == \
        ["p", "n1", "n2"]


def test_rows_from_a_datasets_dataset():
    from datasets import Dataset

    dataset = Dataset.from_list(synthetic_rows(3))
    assert load_rows(dataset)[2] == synthetic_rows(3)[2]
    with pytest.raises(ValueError, match=r"dataset row 1: 3 documents but 2 scores"):
        load_rows(Dataset.from_list([synthetic_rows(1)[0], {**synthetic_rows(1)[0], "scores": [1.0, 2.0]}]))


def test_rows_by_ids_from_parquet_with_tables(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"query_id": "q1", "document_ids": ["d2", "d1"], "scores": [0.5, 0.25]}]),
                   tmp_path / "train.parquet")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"query_id": "q1", "text": "what?"}) + "\n")
    rows = load_rows(tmp_path / "train.parquet", queries=tmp_path / "queries.jsonl",
                     documents={"d1": "one", "d2": "two"})
    assert rows[0] == {"query": "what?", "documents": ["two", "one"], "scores": [0.5, 0.25]}
    with pytest.raises(ValueError, match=r"train.parquet row 0: document_ids 'd2' is not in its table"):
        load_rows(tmp_path / "train.parquet", queries=tmp_path / "queries.jsonl", documents={"d1": "one"})


@pytest.mark.parametrize("bad, message", [
    ({"query": "q", "documents": ["a", "b"], "scores": [1.0]}, "2 documents but 1 scores"),
    ({"query": "q", "documents": ["a", "b"], "scores": [1.0, math.nan]}, r"scores\[1\] is nan"),
    ({"query": "  ", "documents": ["a", "b"], "scores": [1.0, 2.0]}, "the query is empty"),
])
def test_bad_rows_name_file_and_line(tmp_path, bad, message):
    path = tmp_path / "train.jsonl"
    good = {"query": "fine", "documents": ["a", "b"], "scores": [1.0, 2.0]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=rf"{path}:2: {message}"):
        load_rows(path)


def test_collator_uses_the_inference_preprocessing():
    model = tiny_model()
    rows = synthetic_rows(2)
    batch = Collator(model)(rows)
    expected_q = model.preprocess([r["query"] for r in rows], "query")
    expected_d = model.preprocess([d for r in rows for d in r["documents"]], "document")
    assert batch["query"].keys() == expected_q.keys() and "expansion_positions" in batch["query"]
    assert all(torch.equal(batch["query"][k], expected_q[k]) for k in expected_q)
    assert all(torch.equal(batch["document"][k], expected_d[k]) for k in expected_d)
    assert batch["scores"].tolist() == [r["scores"] for r in rows]


# -- trainer ----------------------------------------------------------------------------------------
def train(out, resume=None, evaluators=None, **kw):
    model = tiny_model()
    trainer = MaxSimTrainer(model, DistillKLDiv(model, normalize_scores=False), arguments(out, **kw),
                            load_rows(synthetic_rows()), evaluators=evaluators)
    trainer.train(resume_from_checkpoint=resume)
    return trainer, {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}


def test_checkpoints_use_our_layout_and_resume_gives_the_same_next_loss(tmp_path):
    from maxsim import MultiVectorEncoder

    _, straight = train(tmp_path / "a", max_steps=4, save_steps=2)
    checkpoint = tmp_path / "a" / "checkpoint-2"
    assert (checkpoint / "modules.json").exists() and (checkpoint / "model.safetensors").exists()
    assert not (checkpoint / "training_args.bin").exists()  # no pickled arguments next to the weights
    assert MultiVectorEncoder(checkpoint, device="cpu").encode_query("q").shape[1] == 32
    _, resumed = train(tmp_path / "a", resume=str(checkpoint), max_steps=4, save_steps=2)
    assert sorted(resumed) == [1, 2, 3, 4]  # steps 1-2 come back from the checkpoint's trainer state
    assert resumed[3] == pytest.approx(straight[3], rel=1e-5) and resumed[4] == pytest.approx(straight[4], rel=1e-5)


def test_gradient_checkpointing_gives_the_same_losses(tmp_path):
    _, plain = train(tmp_path / "a", max_steps=2, save_strategy="no")
    trainer, checkpointed = train(tmp_path / "b", max_steps=2, save_strategy="no", gradient_checkpointing=True)
    assert trainer.model.transformer.auto_model.is_gradient_checkpointing
    assert checkpointed == pytest.approx(plain, rel=1e-4)


class ScriptedEvaluator:
    """Returns the next value of a script as its primary metric (deterministic best checkpoint)."""

    def __init__(self, values):
        self.values, self.name, self.primary_metric = list(values), "toy", "toy_MaxSim_ndcg@10"

    def __call__(self, model):
        assert not model.training
        return {self.primary_metric: self.values.pop(0)}


def test_evaluators_drive_logging_and_the_best_checkpoint(tmp_path):
    from maxsim import MultiVectorEncoder

    trainer, _ = train(tmp_path, evaluators=[ScriptedEvaluator([0.3, 0.9, 0.1])], max_steps=3, eval_strategy="steps",
                       eval_steps=1, save_steps=1, load_best_model_at_end=True)
    logged = [h["eval_toy_MaxSim_ndcg@10"] for h in trainer.state.log_history if "eval_toy_MaxSim_ndcg@10" in h]
    assert logged == [0.3, 0.9, 0.1]
    assert trainer.state.best_model_checkpoint.endswith("checkpoint-2")
    best = MultiVectorEncoder(tmp_path / "checkpoint-2", device="cpu").state_dict()
    last = MultiVectorEncoder(tmp_path / "checkpoint-3", device="cpu").state_dict()
    state = trainer.model.state_dict()
    assert all(torch.equal(state[k], best[k]) for k in best)
    assert not all(torch.equal(state[k], last[k]) for k in last)


# -- recipes and the CLI ----------------------------------------------------------------------------
def write_recipe(tmp_path, **training):
    import yaml

    beir = tmp_path / "beir"
    beir.mkdir()
    (beir / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": f"d{i}", "text": f"document {i} on topic {i % 5}"}) + "\n" for i in range(6)))
    (beir / "queries.jsonl").write_text("".join(
        json.dumps({"_id": f"q{i}", "text": f"topic {i}"}) + "\n" for i in range(3)))
    (beir / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(3)))
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_rows()))
    recipe = {"model": str(TINY), "data": {"train": "train.jsonl"},
              "loss": {"name": "DistillKLDiv", "normalize_scores": True, "temperature": 1.0},
              "evaluation": [{"name": "toy", "path": "beir"}],
              "training": {"per_device_train_batch_size": 2, "logging_steps": 1, "use_cpu": True, "report_to": "none",
                           "eval_strategy": "steps", "eval_steps": 2, "save_steps": 2, "load_best_model_at_end": True,
                           **training},
              "output_dir": str(tmp_path / "unused")}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return tmp_path / "recipe.yaml"


def test_maxsim_train_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from maxsim import MultiVectorEncoder
    from maxsim.cli import app

    recipe, out = write_recipe(tmp_path), tmp_path / "model"
    result = CliRunner().invoke(app, ["train", str(recipe), "max_steps=3", f"output_dir={out}"])
    assert result.exit_code == 0, result.output
    model = MultiVectorEncoder(out, device="cpu")
    assert model.encode_document("a document").shape[1] == 32
    card = (out / "README.md").read_text()
    assert "Training Logs" in card and "toy_MaxSim_ndcg@10" in card
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left
    assert "![Training loss and evaluation curves](training_curves.png)" in card
    assert_png(out / "training_curves.png", (400, 1000))


def assert_png(path, shape):
    """A real PNG of ``shape`` (height, width) pixels that is not blank."""
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == shape and pixels[..., :3].std() > 0.01


def test_training_curves_plot_loss_and_metrics(tmp_path):
    from maxsim.training.plots import plot_training_curves

    rows = [{"epoch": 0.0, "step": 0, "cran_MaxSim_ndcg@10": 0.3}, {"epoch": 0.5, "step": 1, "loss": 2.0},
            {"epoch": 1.0, "step": 2, "loss": 1.5, "cran_MaxSim_ndcg@10": 0.35}]
    assert plot_training_curves(rows, tmp_path / "curves.png", title="tiny") == tmp_path / "curves.png"
    assert_png(tmp_path / "curves.png", (400, 1000))
    assert plot_training_curves([{"epoch": 0.0, "step": 0}], tmp_path / "none.png") is None


def test_cpu_recipe_reads_data_shipped_in_the_package(monkeypatch, tmp_path):
    """recipes/minilm-kd-cpu.yaml names maxsim:kd/... and maxsim:cranfield: no file outside the package."""
    from conftest import ROOT
    from maxsim.training.recipe import _paths, build_evaluators, load_recipe

    monkeypatch.chdir(tmp_path)  # anywhere, as after a fresh clone or a pip install
    recipe = load_recipe(ROOT / "recipes" / "minilm-kd-cpu.yaml")
    rows = load_rows(_paths(recipe["data"]["train"], recipe["_folder"]), documents_per_query=16)
    assert len(rows) == 20 and rows.has_scores
    (evaluator,) = build_evaluators(recipe["evaluation"], recipe["_folder"])
    assert evaluator.name == "cranfield" and len(evaluator.queries) == 5 and len(evaluator.documents) == 400


def test_failed_training_leaves_nothing_half_written(tmp_path, monkeypatch):
    from maxsim.training.recipe import load_recipe, run_recipe

    def broken(self, output_dir):
        raise RuntimeError("disk full")

    monkeypatch.setattr(MaxSimTrainer, "_save_optimizer_and_scheduler", broken)
    out = tmp_path / "model"
    with pytest.raises(RuntimeError, match="disk full"):
        run_recipe(load_recipe(write_recipe(tmp_path), ["max_steps=3", f"output_dir={out}", "eval_strategy=no",
                                                        "load_best_model_at_end=false"]))
    assert not (out / "checkpoints" / "checkpoint-2").exists()  # interrupted checkpoint removed
    assert not [p for p in out.rglob("*") if p.is_file()]


def test_cli_reports_bad_rows_and_overrides(tmp_path):
    from typer.testing import CliRunner

    from maxsim.cli import app

    recipe = write_recipe(tmp_path)
    with open(tmp_path / "train.jsonl", "a") as f:
        f.write(json.dumps({"query": "q", "documents": ["a", "b", "c"], "scores": [1.0, 2.0]}) + "\n")
    result = CliRunner().invoke(app, ["train", str(recipe), "max_steps=1"])
    assert result.exit_code == 2 and "train.jsonl:17: 3 documents but 2 scores" in result.output
    result = CliRunner().invoke(app, ["train", str(recipe), "max_stepz=1"])
    assert result.exit_code == 2 and "max_stepz" in result.output


def test_recipe_builds_a_model_from_a_bare_backbone():
    from maxsim import Dense, MultiVectorMask, Normalize
    from maxsim.training.recipe import build_model

    model = build_model({"backbone": str(MODELS / "st6-tiny-modernbert"), "dense": 16, "query_length": 32,
                         "document_length": 64, "query_expansion": {"strategy": "fixed", "length": 32, "attend": False},
                         "skiplist": "punctuation", "prompts": {"query": "[Q] ", "document": "[D] "}})
    assert [type(s) for s in model.steps] == [Dense, MultiVectorMask, Normalize]
    assert model.steps[0].linear.bias is None and model.dim == 16 and model.prompts["query"] == "[Q] "
    query = model.encode_query("what is maxsim?")
    assert query.shape == (32, 16)  # fixed expansion: 32 scored vectors
    assert model.encode_document("a b, c.").shape[0] < len(model.tokenize(["a b, c."], "document")[0])
