"""MaxSimTrainer: ``transformers.Trainer`` with our losses, collator, evaluators and model layout.

Mixed precision, warmup and schedules, gradient accumulation, checkpoints, resume,
``load_best_model_at_end``, logging and multi-process training (torchrun / accelerate) are the
Trainer's. What changes: the loss is a ``maxsim.losses`` module; evaluation runs the given
evaluators (metrics logged as ``eval_<name>_MaxSim_ndcg@10`` ...); checkpoints hold the
sentence-transformers 6 layout written by ``model.save`` (safetensors, no pickled arguments).
"""

from __future__ import annotations

import atexit
import logging
import time
from pathlib import Path

import torch
import transformers

from maxsim.training.collator import Collator

logger = logging.getLogger(__name__)


class MaxSimTrainer(transformers.Trainer):
    """Train a ``MultiVectorEncoder`` with a ``maxsim.losses`` loss.

    ``evaluators``: callables ``evaluator(model) -> {metric: value}`` with a ``primary_metric``
    attribute (``maxsim.evaluation.InformationRetrievalEvaluator``); run at every ``eval_strategy``
    point. With ``load_best_model_at_end`` and no ``metric_for_best_model`` of its own, the first
    evaluator's primary metric selects the best checkpoint (higher is better). Evaluators run on
    every process under torchrun. ``gradient_checkpointing`` applies to the backbone.
    """

    def __init__(self, model, loss: torch.nn.Module, args: transformers.TrainingArguments, train_dataset,
                 evaluators: list | None = None, callbacks: list | None = None):
        self.loss = loss
        self.evaluators = list(evaluators or [])
        if self.evaluators and args.metric_for_best_model in (None, "loss"):
            args.metric_for_best_model = f"eval_{self.evaluators[0].primary_metric}"
            args.greater_is_better = True
        args.remove_unused_columns = False
        if getattr(args, "activation_checkpointing", False) or args.gradient_checkpointing:
            _checkpoint_backbone(model.transformer.auto_model)  # the Trainer would look for it on the encoder
            args.gradient_checkpointing = False
            if hasattr(args, "activation_checkpointing"):  # transformers >= 5.x name of the same flag
                args.activation_checkpointing = False
        # An empty eval_dataset satisfies the Trainer's "eval_strategy needs eval data" check: our
        # ``evaluate`` runs the evaluators instead of an evaluation loop.
        super().__init__(model=model, args=args, train_dataset=train_dataset, data_collator=Collator(model),
                         eval_dataset=[] if self.evaluators else None, callbacks=callbacks)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            atexit.register(_end_process_group)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.loss.model is not model:  # route the forward through the DDP wrapper so gradients sync
            self.loss.model = model
        loss = self.loss(inputs)
        return (loss, {}) if return_outputs else loss

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Run every evaluator on the model -> ``{f"{prefix}_{metric}": value}``; logged and reported to callbacks."""
        training = self.model.training
        self.model.eval()
        try:
            metrics = {f"{metric_key_prefix}_{k}": float(v)
                       for ev in self.evaluators for k, v in ev(self.model).items()}
        finally:
            self.model.train(training)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    # -- our layout for checkpoints and the final model -------------------------------------
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        if self.args.should_save:
            self.accelerator.unwrap_model(self.model).save(Path(output_dir or self.args.output_dir))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        self._load_weights(resume_from_checkpoint, model or self.model)

    def _load_best_model(self) -> None:
        logger.info("loading the best model from %s (%s = %s)", self.state.best_model_checkpoint,
                    self.args.metric_for_best_model, self.state.best_metric)
        self._load_weights(self.state.best_model_checkpoint, self.model)

    def _load_weights(self, folder: str, model) -> None:
        from maxsim.models import MultiVectorEncoder

        target = self.accelerator.unwrap_model(model)
        saved = MultiVectorEncoder(folder, device="cpu")
        target.load_state_dict(saved.state_dict(), strict=True)


def _checkpoint_backbone(backbone) -> None:
    """Recompute the backbone's layer activations in backward (transformers 5 name, else the older one)."""
    enable = getattr(backbone, "activation_checkpointing_enable", None) or backbone.gradient_checkpointing_enable
    enable()


def _end_process_group() -> None:
    """End a torchrun run's process group while the interpreter is still whole.

    Gloo's worker threads free a finished collective (and the tensors it holds, which may own Python
    objects) just after the caller resumes; one still freeing when the interpreter's teardown begins
    kills the process ("terminate called without an active exception", status -6) after a finished
    training. So: wait for every rank, give the workers a moment without the GIL, then destroy."""
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        time.sleep(0.1)
        torch.distributed.destroy_process_group()
