"""The model-card writer: the reference card's sections, a usage snippet that runs, the log table."""

import re
from dataclasses import dataclass

import pytest

from conftest import FIXTURES, MODELS
from maxsim import MultiVectorEncoder
from maxsim.evaluation import write_model_card

# Section headings of the reference card (rendered, so without '#'); ours must carry them in this order.
# "Direct Usage (Sentence Transformers)" is ours "Direct Usage (maxsim)".
HEADINGS = ["Model Details", "Model Description", "Model Sources", "Full Model Architecture", "Usage",
            "Direct Usage (Sentence Transformers)", "Evaluation", "Metrics", "Multi Vector Information Retrieval",
            "Multi Vector Nano BEIR", "Training Details", "Training Dataset", "Training Hyperparameters",
            "Non-Default Hyperparameters", "All Hyperparameters", "Training Logs", "Framework Versions",
            "Citation", "BibTeX"]


@dataclass
class Args:
    learning_rate: float = 5e-5
    num_train_epochs: int = 1
    seed: int = 42


EVALUATIONS = {"NanoBEIR": {"NanoMSMARCO_MaxSim_ndcg@10": 0.5, "NanoMSMARCO_MaxSim_mrr@10": 0.25,
                            "NanoNQ_MaxSim_ndcg@10": 0.3, "NanoNQ_MaxSim_mrr@10": 0.75,
                            "NanoBEIR_mean_MaxSim_ndcg@10": 0.4, "NanoBEIR_mean_MaxSim_mrr@10": 0.5}}
LOG = [{"epoch": 0.5, "step": 10, "loss": 0.5},
       {"epoch": 0.5, "step": 10, "NanoBEIR_mean_MaxSim_ndcg@10": 0.41234},
       {"epoch": 1.0, "step": 20, "loss": 0.25, "NanoBEIR_mean_MaxSim_ndcg@10": 0.3}]


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    folder = tmp_path_factory.mktemp("card") / "model"
    model = MultiVectorEncoder(MODELS / "st6-tiny-bert", device="cpu")
    model.save(folder)
    path = write_model_card(model, folder, evaluations=EVALUATIONS, training_args=Args(learning_rate=3e-5),
                            training_log=LOG, datasets=["msmarco-kd"], base_model="tiny-bert")
    return model, folder, path.read_text()


def test_card_has_the_reference_sections_in_order(card):
    _, _, text = card
    reference_lines = {line.strip() for line in (FIXTURES / "reference" / "model-card.md").read_text().splitlines()}
    ours = [h.replace("(maxsim)", "(Sentence Transformers)")
            for h in re.findall(r"^#{2,4} (.+)$", text, flags=re.M)]
    assert all(h in reference_lines for h in HEADINGS)
    positions = [ours.index(h) for h in HEADINGS]
    assert positions == sorted(positions), ours


def test_card_content(card):
    model, _, text = card
    assert repr(model) in text and "MultiVectorMask" in repr(model)
    assert "| MaxSim_ndcg@10 | 0.5 | 0.3 |" in text  # per collection
    assert "| MaxSim_mrr@10 | 0.5 |" in text  # the mean table
    assert "- `learning_rate`: 3e-05" in text.split("#### All Hyperparameters")[0]  # non-default
    assert "- `seed`: 42" not in text.split("#### All Hyperparameters")[0]
    assert "- `seed`: 42" in text.split("#### All Hyperparameters")[1]
    assert "| **0.5** | **10** | **-** | **0.4123** |" in text  # best row bold
    assert "| 1.0 | 20 | 0.2500 | 0.3000 |" in text
    assert "- PyTorch: " in text and "@inproceedings{khattab-zaharia-2020-colbert" in text


def test_usage_snippet_runs(card, capsys, monkeypatch):
    _, folder, text = card
    code = re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)
    assert f"MultiVectorEncoder({folder.name!r})" in code  # the model's name, not this machine's path
    monkeypatch.chdir(folder.parent)  # where the folder is, as beside a downloaded model
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["similarities"].shape == (3, 3)
    assert f", {namespace['model'].dim})" in capsys.readouterr().out


def test_card_without_training_or_evaluation(tmp_path, tiny_model):
    text = write_model_card(tiny_model, tmp_path, model_id="org/name").read_text()
    assert "## Training Details" not in text and "## Evaluation" not in text
    assert "MultiVectorEncoder('org/name')" in text
    with pytest.raises(TypeError, match="training_args"):
        write_model_card(tiny_model, tmp_path, training_args=[1])


def test_card_takes_an_evaluators_own_result(tmp_path, tiny_model):
    """``evaluations=evaluator(model)`` (a flat dict) works and equals {name: that dict}."""
    from maxsim.evaluation import InformationRetrievalEvaluator, load_beir_folder

    queries, corpus, qrels = load_beir_folder(FIXTURES / "data" / "cranfield")
    few = dict(list(queries.items())[:3])
    documents = {d: corpus[d] for q in few for d in qrels[q]} | dict(list(corpus.items())[:20])
    results = InformationRetrievalEvaluator(few, documents, qrels, name="cran")(tiny_model)
    plain = write_model_card(tiny_model, tmp_path / "plain", evaluations=results, model_id="m").read_text()
    named = write_model_card(tiny_model, tmp_path / "named", evaluations={"cran": results}, model_id="m").read_text()
    assert plain == named
    assert f"| MaxSim_ndcg@10 | {round(results['cran_MaxSim_ndcg@10'], 4)!r} |" in plain
    with pytest.raises(TypeError, match=r"evaluations\['cran'\] is str"):
        write_model_card(tiny_model, tmp_path / "bad", evaluations={"cran": "0.5"})


def test_card_links_a_training_plot(tmp_path, tiny_model):
    text = write_model_card(tiny_model, tmp_path, training_log=LOG, training_plot="training_curves.png").read_text()
    logs = text.split("### Training Logs")[1]
    assert logs.index("![Training loss and evaluation curves](training_curves.png)") < logs.index("| Epoch |")


def test_card_names_datasets_without_machine_paths(tmp_path):
    """Datasets, base model, output folders and the usage snippet: names, not this machine's paths."""
    model = MultiVectorEncoder(MODELS / "st6-tiny-bert", device="cpu")
    data = tmp_path / "data" / "kd-train.jsonl"
    path = write_model_card(model, tmp_path / "out" / "my-model", training_args={"output_dir": str(tmp_path / "ckpt")},
                            datasets=[f"{data} + {tmp_path / 'more.jsonl'} (loss: Contrastive())"],
                            base_model=str(tmp_path / "models" / "base-bert"))
    text = path.read_text()
    assert str(tmp_path) not in text and "/data/" not in text
    assert "- `kd-train.jsonl + more.jsonl (loss: Contrastive())`" in text
    assert "finetuned from `base-bert`" in text and "- `output_dir`: ckpt" in text
    assert "MultiVectorEncoder('my-model')" in text
