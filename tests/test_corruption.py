"""The corruption fuzzer (tests/corruption.py) on a served retriever folder: random bytes in random stored
files, 200 trials. Every trial ends in a correct answer, a ``CorruptedError`` naming the file, or a wrong
answer that ``maxsim check`` names — never a wrong answer (or another error) without one."""

import pytest
import torch

import corruption
from conftest import TINY_MODEL

TRIALS = 200


@pytest.fixture()
def one_thread():
    """Torch on one thread: a tiny model's encodes are 10x slower with two on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_random_damage_is_detected_or_found_never_silent(tmp_path, tiny_model, one_thread):
    base = corruption.build(tmp_path / "base", tiny_model, str(TINY_MODEL))
    outcomes, silent = corruption.fuzz(base, tmp_path / "work", tiny_model, TRIALS, seed=0)
    assert silent == [], silent[:5]
    assert sum(outcomes.values()) == TRIALS and outcomes["detected"] > 0, outcomes
