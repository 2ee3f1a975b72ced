"""``maxsim evaluate``: the card-style table, the JSON dict, errors naming the bad item."""

import json

import pytest
from typer.testing import CliRunner

from conftest import MODELS
from maxsim.cli import app
from test_evaluation_evaluator import cranfield_subset, write_beir


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    queries, corpus, qrels = cranfield_subset(60)
    root = tmp_path_factory.mktemp("cli")
    first = write_beir(root / "cran", queries, corpus, qrels)
    second = write_beir(root / "other" / "cran", dict(list(queries.items())[:4]), corpus, qrels,
                        qrels_name="qrels/test.tsv")
    return first, second


def test_evaluate_prints_the_table_and_writes_json(folders, tmp_path):
    """float32 on both sides: in bfloat16 ("auto" on AVX512-BF16 CPUs) the batch size changes the last bits."""
    from maxsim import MultiVectorEncoder
    from maxsim.evaluation import InformationRetrievalEvaluator, load_beir_folder

    out = tmp_path / "res" / "results.json"
    result = CliRunner().invoke(app, ["evaluate", str(MODELS / "st6-tiny-bert"), "--data", str(folders[0]),
                                      "--data", str(folders[1]), "--output", str(out), "--batch-size", "8",
                                      "--device", "cpu", "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert len(results) == 3 * 15
    model = MultiVectorEncoder(MODELS / "st6-tiny-bert", device="cpu", dtype="float32")
    expected = InformationRetrievalEvaluator(*load_beir_folder(folders[0]), name="cran")(model)
    assert {k: results[k] for k in expected} == pytest.approx(expected, abs=1e-6)
    mean = (results["cran_MaxSim_ndcg@10"] + results["cran_2_MaxSim_ndcg@10"]) / 2
    assert results["mean_MaxSim_ndcg@10"] == pytest.approx(mean)
    assert "| Metric | cran | cran_2 | mean |" in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("| MaxSim_map@100 |"))
    assert row.split("|")[2].strip() == repr(round(results["cran_MaxSim_map@100"], 4))


def test_evaluate_errors_name_the_bad_item(folders, tmp_path):
    runner = CliRunner()
    missing = tmp_path / "nowhere"
    result = runner.invoke(app, ["evaluate", str(MODELS / "st6-tiny-bert"), "--data", str(missing)])
    assert result.exit_code == 3 and str(missing) in result.output  # NotFoundError, as in docs/cli.md
    bad_model = tmp_path / "no-model"
    result = runner.invoke(app, ["evaluate", str(bad_model), "--data", str(folders[0])])
    assert result.exit_code != 0 and str(bad_model) in result.output
    broken = write_beir(tmp_path / "broken", {"1": "q"}, {"7": "doc"}, {"1": {"8": 1}})
    result = runner.invoke(app, ["evaluate", str(MODELS / "st6-tiny-bert"), "--data", str(broken)])
    assert result.exit_code != 0 and "'8'" in result.output and "not in the corpus" in result.output
    result = runner.invoke(app, ["evaluate", str(MODELS / "st6-tiny-bert")])
    assert result.exit_code != 0 and "--data" in result.output
