"""Two CPU processes (torchrun, gloo) with batch b follow the loss curve of one process with batch 2b."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import MODELS

SCRIPT = '''
import json, os, sys
import torch, transformers
from maxsim import MultiVectorEncoder
from maxsim.losses import DistillKLDiv
from maxsim.training import MaxSimTrainer, load_rows

batch, out = int(sys.argv[1]), sys.argv[2]
model = MultiVectorEncoder(sys.argv[3], device="cpu")
for module in model.modules():  # no dropout: the two runs must see the same function
    if isinstance(module, torch.nn.Dropout):
        module.p = 0.0
rows = load_rows([{"query": f"query {i} about topic {i % 5}",
                   "documents": [f"document {i} on topic {i % 5}", f"unrelated text {i * 7}", f"topic {(i + 1) % 5}"],
                   "scores": [5.0, 1.0, float(i % 3)]} for i in range(32)])
args = transformers.TrainingArguments(
    output_dir=out, max_steps=4, per_device_train_batch_size=batch, logging_steps=1, save_strategy="no",
    report_to="none", use_cpu=True, learning_rate=1e-3, seed=0, disable_tqdm=True,
    ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None)
trainer = MaxSimTrainer(model, DistillKLDiv(model, normalize_scores=False), args, rows)
trainer.train()
if trainer.is_world_process_zero():
    json.dump({"world": int(os.environ.get("WORLD_SIZE", 1)),
               "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h]},
              open(out + "/losses.json", "w"))
'''


def run(command, out):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "losses.json").read_text())


@pytest.mark.slow
def test_two_processes_match_one_process_with_double_batch(tmp_path):
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.fail("torchrun is not on PATH (it ships with torch)")
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    two, one = tmp_path / "two", tmp_path / "one"
    with socket.socket() as sock:  # a free port: other test runs may share the machine
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ddp = run([torchrun, "--nproc_per_node", "2", "--master_port", str(port), str(script), "2", str(two),
               str(MODELS / "st6-tiny-bert")], two)
    single = run([sys.executable, str(script), "4", str(one), str(MODELS / "st6-tiny-bert")], one)
    assert ddp["world"] == 2 and single["world"] == 1
    assert len(ddp["losses"]) == len(single["losses"]) == 4
    assert ddp["losses"] == pytest.approx(single["losses"], rel=1e-3)
    assert ddp["losses"][-1] < ddp["losses"][0]  # it trains
