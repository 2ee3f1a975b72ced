"""Losses: hand-computed values on tiny batches, finite gradients, KD zero at agreement,
and CachedContrastive giving Contrastive's gradients."""

import math

import pytest
import torch

from conftest import MODELS
from maxsim.losses import CachedContrastive, Contrastive, DistillKLDiv, MarginMSE, maxsim_grouped, maxsim_matrix
from maxsim.training import Collator


class TableModel(torch.nn.Module):
    """Token id -> a fixed vector; the scoring mask is the attention mask (enough to check the maths)."""

    def __init__(self, vectors):
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(vectors, dtype=torch.float32))

    def forward(self, features, task=None):
        return {"token_embeddings": self.table[features["input_ids"]],
                "attention_mask": features["attention_mask"].bool()}


def features(ids, mask=None):
    ids = torch.tensor(ids)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids) if mask is None else torch.tensor(mask)}


def test_maxsim_matrix_and_grouped_by_hand():
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])   # third vector masked out
    q_mask = torch.tensor([[True, True, False]])
    d = torch.tensor([[[0.5, 0.2], [0.1, 0.9], [9.0, 9.0]],      # third vector masked out
                      [[2.0, -1.0], [0.0, 0.0], [0.0, 0.0]],
                      [[7.0, 7.0], [7.0, 7.0], [7.0, 7.0]]])      # no scored vector -> 0
    d_mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    expected = torch.tensor([[0.5 + 0.9, 2.0 + -1.0, 0.0]])
    assert torch.allclose(maxsim_matrix(q, q_mask, d, d_mask), expected)
    assert torch.allclose(maxsim_grouped(q, q_mask, d[None], d_mask[None]), expected)


def test_distill_kl_by_hand_and_zero_at_agreement():
    student, teacher = torch.tensor([[1.0, 2.0, 4.0]]), torch.tensor([[3.0, 1.0, 2.0]])

    def kl(s, t, temp):
        p = torch.softmax(t / temp, 1)[0].tolist()
        qs = torch.softmax(s / temp, 1)[0].tolist()
        return temp ** 2 * sum(pi * math.log(pi / qi) for pi, qi in zip(p, qs))

    raw = DistillKLDiv(None, temperature=2.0, normalize_scores=False).from_scores(student, teacher)
    assert raw.item() == pytest.approx(kl(student, teacher, 2.0), rel=1e-5)
    # normalize_scores: student min-max rescaled to [0, 1] per query -> [0, 1/3, 1]
    normed = DistillKLDiv(None, temperature=1.0).from_scores(student, teacher)
    assert normed.item() == pytest.approx(kl(torch.tensor([[0.0, 1 / 3, 1.0]]), teacher, 1.0), rel=1e-5)
    assert DistillKLDiv(None, normalize_scores=False).from_scores(student, student).item() == pytest.approx(0, abs=1e-7)
    rescaled = DistillKLDiv(None).from_scores(student, torch.tensor([[0.0, 1 / 3, 1.0]]))
    assert rescaled.item() == pytest.approx(0, abs=1e-7)


def test_margin_mse_by_hand():
    student, teacher = torch.tensor([[5.0, 3.0, 1.0]]), torch.tensor([[10.0, 9.0, 4.0]])
    # student margins (2, 4), teacher margins (1, 6): ((2-1)^2 + (4-6)^2) / 2
    assert MarginMSE.from_scores(student, teacher).item() == pytest.approx(2.5)


def test_contrastive_by_hand_with_gradient():
    # One token per text: MaxSim is a dot product. Ids: 0,1 queries; 2..5 documents (positive first).
    model = TableModel([[1, 0], [0, 1], [2, 0], [0, 1], [1, 1], [0, 3]])
    batch = {"query": features([[0], [1]]), "document": features([[2], [3], [4], [5]])}
    scores = [[2, 0, 1, 0], [0, 1, 1, 3]]  # query b against every document; targets: columns 0 and 2
    temp = 0.5

    def ce(row, target):
        return -math.log(math.exp(row[target] / temp) / sum(math.exp(s / temp) for s in row))

    loss = Contrastive(model, temperature=temp)(batch)
    assert loss.item() == pytest.approx((ce(scores[0], 0) + ce(scores[1], 2)) / 2, rel=1e-5)
    loss.backward()
    assert torch.isfinite(model.table.grad).all() and model.table.grad.abs().sum() > 0


def test_distill_kl_forward_by_hand():
    model = TableModel([[1, 0], [3, 0], [1, 0], [2, 0]])
    batch = {"query": features([[0]]), "document": features([[1], [2], [3]]), "scores": torch.tensor([[0.0, 1.0, 2.0]])}
    loss = DistillKLDiv(model, normalize_scores=False)(batch)  # student scores (3, 1, 2)
    expected = DistillKLDiv(None, normalize_scores=False).from_scores(torch.tensor([[3.0, 1.0, 2.0]]), batch["scores"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match="teacher scores"):
        DistillKLDiv(model)({k: v for k, v in batch.items() if k != "scores"})


@pytest.fixture(scope="module")
def tiny():
    from maxsim import MultiVectorEncoder

    return MultiVectorEncoder(MODELS / "st6-tiny-bert", device="cpu")


ROWS = [{"query": "what is late interaction", "documents": ["colbert scores tokens.", "bananas are yellow!", "a b c"],
         "scores": [9.0, 1.0, 2.0]},
        {"query": "capital of france", "documents": ["paris is the capital.", "berlin, germany", "rome"],
         "scores": [8.0, 3.0, 2.5]},
        {"query": "who wrote hamlet", "documents": ["shakespeare wrote it", "a play", "denmark's prince"],
         "scores": [7.0, 2.0, 4.0]}]


@pytest.mark.parametrize("make", [DistillKLDiv, MarginMSE, Contrastive,
                                  lambda m: CachedContrastive(m, mini_batch_size=2)])
def test_losses_on_a_real_model_have_finite_gradients(tiny, make):
    tiny.zero_grad()
    loss = make(tiny)(Collator(tiny)(ROWS))
    loss.backward()
    grads = [p.grad for p in tiny.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_cached_contrastive_matches_contrastive_gradients(tiny):
    batch = Collator(tiny)(ROWS)

    def run(loss_fn):
        tiny.zero_grad()
        loss = loss_fn(batch) * 0.5  # the trainer scales the loss (gradient accumulation): the hook must follow
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in tiny.named_parameters() if p.grad is not None}

    tiny.eval()
    loss_a, grads_a = run(Contrastive(tiny, temperature=0.1))
    loss_b, grads_b = run(CachedContrastive(tiny, temperature=0.1, mini_batch_size=2))
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 5
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-4, msg=name)


def test_length_buckets_give_the_single_forward_result(tiny):
    from maxsim.losses.scores import embed

    tiny.eval()
    features = Collator(tiny)(ROWS)["document"]
    whole, whole_mask = embed(tiny, features, "document")
    bucketed, bucketed_mask = embed(tiny, features, "document", buckets=4)
    assert torch.equal(whole_mask, bucketed_mask) and whole_mask.sum() > 0
    torch.testing.assert_close(bucketed[whole_mask], whole[whole_mask], rtol=1e-4, atol=1e-4)
