"""Distillation losses: a teacher's scores for N documents per query train the student's MaxSim."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from maxsim.errors import InvalidInputError
from maxsim.losses.scores import group_scores


def _teacher_scores(batch: dict, n_docs: int, name: str) -> torch.Tensor:
    scores = batch.get("scores")
    if scores is None:
        raise InvalidInputError(f"{name} needs teacher scores: train on rows with 'scores' (one per document).")
    if scores.ndim != 2 or scores.shape[1] != n_docs:
        raise InvalidInputError(f"{name}: teacher scores have shape {tuple(scores.shape)}, expected (batch, {n_docs}).")
    return scores.detach().float()


class DistillKLDiv(torch.nn.Module):
    """KL(teacher || student) over the N candidate documents of each query (ColBERTv2's distillation).

    Input: a collated batch ``{"query": features (B rows), "document": features (B*N rows, query-major),
    "scores": (B, N) float teacher scores}``. Student scores s (B, N) are MaxSim (see ``scores``).
    With ``normalize_scores`` the student scores of each query are min-max rescaled to [0, 1]:
    ``s = (s - min_n s) / (max_n s - min_n s + 1e-8)`` (PyLate's ``Distillation(normalize_scores=True)``,
    the setting on the reference card); teacher scores are used as given. Then, with temperature T::

        p = softmax(teacher / T), log q = log_softmax(s / T)
        loss = T^2 * mean over queries of sum_n p_n (log p_n - log q_n)

    (``batchmean`` KL; the T^2 factor keeps gradient size independent of T, Hinton et al. 2015).
    The loss is 0 exactly when the two distributions agree. ``document_buckets``: documents are
    embedded in that many length-sorted forwards (less padding; same result, see ``scores.embed``).
    References: Santhanam et al. 2022 (ColBERTv2, arXiv:2112.01488); PyLate ``losses.Distillation``.
    """

    def __init__(self, model, temperature: float = 1.0, normalize_scores: bool = True, document_buckets: int = 4):
        super().__init__()
        if not temperature > 0:
            raise InvalidInputError(f"temperature must be positive, got {temperature}.")
        self.model, self.temperature, self.normalize_scores = model, float(temperature), bool(normalize_scores)
        self.document_buckets = int(document_buckets)

    def forward(self, batch: dict) -> torch.Tensor:
        student = group_scores(self.model, batch, self.document_buckets)
        return self.from_scores(student, _teacher_scores(batch, student.shape[1], type(self).__name__))

    def from_scores(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """student, teacher (B, N) float -> scalar loss (the definition above)."""
        if self.normalize_scores:
            low, high = student.amin(1, keepdim=True), student.amax(1, keepdim=True)
            student = (student - low) / (high - low + 1e-8)
        log_q = F.log_softmax(student / self.temperature, dim=1)
        log_p = F.log_softmax(teacher / self.temperature, dim=1)
        return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * self.temperature ** 2


class MarginMSE(torch.nn.Module):
    """Margin-MSE (Hofstätter et al. 2020, arXiv:2010.02666): match the student's score margins to the teacher's.

    Input: a collated batch whose rows hold a positive then k >= 1 negatives (N = k + 1 documents,
    the first one is the positive) and ``scores`` (B, N) teacher scores. With student MaxSim s::

        loss = mean over queries b and negatives i of ((s_b0 - s_bi) - (t_b0 - t_bi))^2

    ``document_buckets``: as in ``DistillKLDiv``.
    """

    def __init__(self, model, document_buckets: int = 4):
        super().__init__()
        self.model, self.document_buckets = model, int(document_buckets)

    def forward(self, batch: dict) -> torch.Tensor:
        student = group_scores(self.model, batch, self.document_buckets)
        if student.shape[1] < 2:
            raise InvalidInputError("MarginMSE needs a positive and at least one negative per query "
                                    "(N >= 2 documents).")
        return self.from_scores(student, _teacher_scores(batch, student.shape[1], type(self).__name__))

    @staticmethod
    def from_scores(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """student, teacher (B, N) float -> scalar loss (the definition above)."""
        return F.mse_loss(student[:, :1] - student[:, 1:], teacher[:, :1] - teacher[:, 1:])
