"""Training losses on MaxSim scores: distillation (KL, margin-MSE) and contrastive (plain, cached).

Each loss is a ``torch.nn.Module`` built with the model and called on a collated batch
(``maxsim.training.Collator``): ``loss(batch) -> scalar tensor``.
"""

from maxsim.losses.contrastive import CachedContrastive, Contrastive
from maxsim.losses.distillation import DistillKLDiv, MarginMSE
from maxsim.losses.scores import maxsim_grouped, maxsim_matrix

LOSSES = {cls.__name__: cls for cls in (DistillKLDiv, MarginMSE, Contrastive, CachedContrastive)}

__all__ = ["LOSSES", "CachedContrastive", "Contrastive", "DistillKLDiv", "MarginMSE", "maxsim_grouped",
           "maxsim_matrix"]
