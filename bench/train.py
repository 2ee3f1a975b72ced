"""Training bench (CPU): distil the MiniLM default on the KD samples of tests/fixtures.

Reports: training loss (first vs last epoch); mean per-query Spearman correlation between student
MaxSim and teacher scores on held-out queries (20%), before/after; Cranfield nDCG@10 before/after;
training samples/s of our trainer vs sentence-transformers' MultiVectorEncoderTrainer (the oracle,
bench only) on the same model, rows and batch, in the same run.

    python bench/train.py [--epochs 3 --lr 2e-6 --docs 16 --batch 2 --threads 1]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers
from scipy.stats import spearmanr

from maxsim import MultiVectorEncoder
from maxsim.evaluation import InformationRetrievalEvaluator, load_beir_folder
from maxsim.losses import DistillKLDiv
from maxsim.training import MaxSimTrainer, TrainingRows, load_rows

sys.path.append(str(Path(__file__).resolve().parent))  # after maxsim: bench/maxsim.py must not shadow it
from common import load_average, machine_line  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / "tests" / "fixtures"  # models/, data/ (see tests/README.md)
KD_FILES = [SHARED / "data" / "msmarco-kd-flagembedding" / "train.jsonl",
            SHARED / "data" / "nq-kd-flagembedding" / "train.jsonl"]


def split(rows: TrainingRows, holdout: float, seed: int) -> tuple[TrainingRows, TrainingRows]:
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_test = max(1, round(holdout * len(rows)))
    return (TrainingRows([rows[i] for i in order[n_test:]], "train"),
            TrainingRows([rows[i] for i in order[:n_test]], "held-out"))


def spearman(model, rows: TrainingRows) -> float:
    """Mean over held-out queries of Spearman(student MaxSim, teacher score) across its documents."""
    values = []
    for row in rows:
        student = model.similarity(model.encode_query([row["query"]]), model.encode_document(row["documents"]))[0]
        values.append(spearmanr(student, row["scores"]).statistic)
    return float(np.mean(values))


def arguments(out: str, args, **extra) -> dict:
    return dict(output_dir=out, per_device_train_batch_size=args.batch, learning_rate=args.lr, seed=0,
                lr_scheduler_type="linear", warmup_steps=0.1, logging_steps=1, save_strategy="no",
                report_to="none", use_cpu=True, disable_tqdm=True, **extra)


def train_ours(model, rows, args, out, **extra):
    trainer = MaxSimTrainer(model, DistillKLDiv(model, normalize_scores=args.normalize, temperature=args.temperature),
                            transformers.TrainingArguments(**arguments(out, args, **extra)), rows)
    metrics = trainer.train().metrics
    return metrics, trainer.state.log_history


def train_oracle(folder, rows, args, out, max_steps):
    """sentence-transformers 6.2 on the same weights (our save is its layout), rows, batch and steps."""
    from datasets import Dataset
    from sentence_transformers import MultiVectorEncoder as STEncoder
    from sentence_transformers import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments
    from sentence_transformers.multi_vector_encoder.losses import MultiVectorDistillKLDivLoss

    model = STEncoder(str(folder), device="cpu")
    n = len(rows[0]["documents"])
    columns = {"query": [r["query"] for r in rows]}
    columns.update({f"document_{j}": [r["documents"][j] for r in rows] for j in range(n)})
    columns["label"] = [r["scores"] for r in rows]
    trainer = MultiVectorEncoderTrainer(
        model=model, train_dataset=Dataset.from_dict(columns),
        loss=MultiVectorDistillKLDivLoss(model, temperature=args.temperature),
        args=MultiVectorEncoderTrainingArguments(**arguments(out, args, max_steps=max_steps)))
    return trainer.train().metrics


def throughput(rows, args, tmp: Path) -> dict[str, list[float]]:
    """samples/s of both trainers, ``args.speed_rounds`` alternating rounds of ``args.speed_steps`` steps."""
    folder = tmp / "student-init"
    MultiVectorEncoder.default(device="cpu").save(folder)
    speeds = {"maxsim": [], "sentence-transformers": []}
    for round_ in range(args.speed_rounds):
        model = MultiVectorEncoder(folder, device="cpu")
        ours, _ = train_ours(model, rows, args, str(tmp / f"speed-ours-{round_}"), max_steps=args.speed_steps)
        speeds["maxsim"].append(ours["train_samples_per_second"])
        oracle = train_oracle(folder, rows, args, str(tmp / f"speed-st-{round_}"), args.speed_steps)
        speeds["sentence-transformers"].append(oracle["train_samples_per_second"])
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=2e-6)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--docs", type=int, default=16, help="documents per query")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True,
                        help="DistillKLDiv normalize_scores (the card: yes)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: the two trainers alternate)")
    parser.add_argument("--speed-steps", type=int, default=8)
    parser.add_argument("--speed-rounds", type=int, default=2)
    parser.add_argument("--skip-cranfield", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    logging.getLogger("maxsim").setLevel(logging.ERROR)

    rows = load_rows(KD_FILES, documents_per_query=args.docs)
    train_rows, test_rows = split(rows, 0.2, seed=0)
    cranfield = InformationRetrievalEvaluator(*load_beir_folder(SHARED / "data" / "cranfield"), name="cranfield",
                                              batch_size=64, show_progress_bar=False)
    model = MultiVectorEncoder.default(device="cpu")
    started, load = time.perf_counter(), load_average()
    before = {"spearman": spearman(model, test_rows)}
    if not args.skip_cranfield:
        before["ndcg"] = cranfield(model)[cranfield.primary_metric]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        metrics, log = train_ours(model, train_rows, args, str(tmp / "train"), num_train_epochs=args.epochs)
        model.eval()
        after = {"spearman": spearman(model, test_rows)}
        if not args.skip_cranfield:
            after["ndcg"] = cranfield(model)[cranfield.primary_metric]
        speeds = throughput(train_rows, args, tmp)
    losses = [(h["epoch"], h["loss"]) for h in log if "loss" in h]
    per_epoch = [[loss for epoch, loss in losses if e < epoch <= e + 1] for e in range(args.epochs)]

    print(f"\nKD bench: MiniLM default, {len(train_rows)} training / {len(test_rows)} held-out queries, "
          f"{args.docs} documents per query, batch {args.batch}, lr {args.lr}, {args.epochs} epochs "
          f"({len(losses)} steps), DistillKLDiv(normalize_scores={args.normalize}, temperature={args.temperature}), "
          f"torch threads {args.threads}\n")
    print("| measure | before | after |\n|---|---|---|")
    print(f"| training loss (mean of first / last epoch) | {statistics.mean(per_epoch[0]):.4f} | "
          f"{statistics.mean(per_epoch[-1]):.4f} |")
    print(f"| held-out Spearman(student MaxSim, teacher), mean per query | {before['spearman']:.4f} | "
          f"{after['spearman']:.4f} |")
    if not args.skip_cranfield:
        print(f"| Cranfield nDCG@10 | {before['ndcg']:.4f} | {after['ndcg']:.4f} |")
    ours, oracle = max(speeds["maxsim"]), max(speeds["sentence-transformers"])
    print(f"\n| trainer ({args.speed_steps} steps, best of {args.speed_rounds}) | samples/s | all rounds |")
    print("|---|---|---|")
    print(f"| maxsim MaxSimTrainer | {ours:.2f} | {', '.join(f'{s:.2f}' for s in speeds['maxsim'])} |")
    print(f"| sentence-transformers MultiVectorEncoderTrainer | {oracle:.2f} | "
          f"{', '.join(f'{s:.2f}' for s in speeds['sentence-transformers'])} |")
    print(f"\nspeed ratio maxsim / sentence-transformers: {ours / oracle:.2f}x; total bench time "
          f"{time.perf_counter() - started:.0f} s; training time {metrics['train_runtime']:.0f} s", file=sys.stdout)
    print(machine_line(load))


if __name__ == "__main__":
    main()
