"""``tune_alpha`` picks the convex-fusion weight that maximizes nDCG@10 on judged queries; ``maxsim evaluate
--tune-fusion`` reports it and the fused metrics it gives."""

import pytest
from typer.testing import CliRunner

from conftest import MODELS
from maxsim.cli import app
from maxsim.evaluation import InformationRetrievalEvaluator, load_beir_folder
from maxsim.evaluation.fusion import GRID, tune_alpha
from test_evaluation_cli import folders  # noqa: F401  (fixture)

# Two documents per query, dense first. With TMM (minimum 0) a dense-top document beats a BM25-top one
# iff alpha > (1 - q) / (2 - p - q), p and q the other ranker's normalised score of each (docs/search.md).
DENSE = {"q1": [("A", 10.0), ("B", 5.0)], "q2": [("C", 10.0), ("D", 6.0)]}
LEXICAL = {"q1": [("B", 10.0), ("A", 2.0)], "q2": [("D", 20.0), ("C", 3.0)]}
RELEVANT = {"q1": {"A": 1}, "q2": {"D": 1}}  # q1 needs alpha > 0.615, q2 needs alpha < 0.68: only 0.65 serves both


def test_tune_alpha_picks_the_alpha_with_the_best_ndcg():
    alpha, means = tune_alpha(DENSE, LEXICAL, RELEVANT)
    assert list(means) == list(GRID) and alpha == 0.65
    assert means[0.65] == pytest.approx(1.0)
    assert max(v for a, v in means.items() if a != 0.65) == pytest.approx((1 + 1 / 1.5849625007211563) / 2)
    alpha, _ = tune_alpha(DENSE, LEXICAL, {"q1": {"A": 1}})  # a plateau: alpha > 0.615, nearest 0.5 wins
    assert alpha == 0.65
    alpha, _ = tune_alpha(DENSE, LEXICAL, RELEVANT, lower={"q1": -10.0, "q2": -10.0})  # floor shifts the range
    assert alpha != 0.65


def test_evaluate_tune_fusion_reports_the_tuned_alpha(folders):  # noqa: F811
    result = CliRunner().invoke(app, ["evaluate", str(MODELS / "st6-tiny-bert"), "--data", str(folders[0]),
                                      "--data", str(folders[1]), "--tune-fusion", "--dtype", "float32"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("alpha "))
    chosen = float(line.split()[1])
    means = dict(item.split(": ") for item in line.split("nDCG@10 ")[1].rstrip(")").split(", "))
    assert float(means[str(chosen)]) == max(float(v) for v in means.values())
    row = next(x for x in result.stdout.splitlines() if x.startswith("| Hybrid_ndcg@10 |"))
    assert float(row.split("|")[2]) == pytest.approx(float(means[str(chosen)]), abs=1e-4)  # same collection
    assert InformationRetrievalEvaluator(*load_beir_folder(folders[0]), name="cran").queries
