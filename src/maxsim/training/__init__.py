"""Training: rows, collator, the Trainer subclass and recipes (``maxsim train RECIPE.yaml``)."""

from maxsim.training.collator import Collator
from maxsim.training.data import TrainingRows, load_rows
from maxsim.training.trainer import MaxSimTrainer

__all__ = ["Collator", "MaxSimTrainer", "TrainingRows", "load_rows"]
