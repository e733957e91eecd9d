"""SIGKILL a ``trainforge train`` of a Hugging Face model on a ``datasets.Dataset``, then
``--resume last``: the result is bit-exact with an uninterrupted run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import assert_bitwise_equal, kill_at_first_checkpoint, last_checkpoint

pytest.importorskip("datasets")
pytest.importorskip("transformers")

pytestmark = pytest.mark.slow

JOB = """
import datasets
import torch
import transformers


def model():
    config = transformers.GPT2Config(
        n_layer=1, n_embd=32, n_head=2, vocab_size=100, n_positions=16,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config)


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = {"input_ids": [], "labels": []}
    for _ in range(48):
        length = int(torch.randint(6, 16, (1,), generator=g))
        ids = torch.randint(3, 40, (length,), generator=g).tolist()
        rows["input_ids"].append(ids)
        rows["labels"].append(ids)
    train = datasets.Dataset.from_dict(rows)
    return train, None
"""

CONFIG = """
task: {name: hf_lm, modality: text, task_type: language_modeling, vocab_size: 100}
model: {name: "hfjob:model"}
data: {name: "hfjob:data", collator: text, batch_size: 4}
trainer: {max_epochs: 2, checkpoint_every_n_steps: 3, enable_progress_bar: false}
run: {deterministic: true}
tracking: {enabled: false}
"""
STEPS = 24  # 12 batches an epoch, 2 epochs


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainforge.cli", "train", "job.yaml", *args]


@pytest.mark.parametrize("engine", ["plain", "lightning"])
def test_sigkill_then_resume_last_on_a_datasets_dataset_is_bit_exact(tmp_path, engine):
    dirs = {}
    for name in ("reference", "killed"):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        (dirs[name] / "hfjob.py").write_text(JOB, encoding="utf-8")
        (dirs[name] / "job.yaml").write_text(CONFIG, encoding="utf-8")
    engine_arg = f"trainer.engine={engine}"
    done = subprocess.run(
        _command(engine_arg), cwd=dirs["reference"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr

    work = dirs["killed"]
    kill_at_first_checkpoint(_command(engine_arg), work, {**os.environ})
    assert 0 < last_checkpoint(work / "outputs")["global_step"] < STEPS, "the kill was not mid-run"

    resumed = subprocess.run(
        _command(engine_arg, "--resume", "last"),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr

    expected, actual = (
        last_checkpoint(dirs["reference"] / "outputs"),
        last_checkpoint(work / "outputs"),
    )
    assert actual["global_step"] == expected["global_step"] == STEPS
    for key in ("model_state_dict", "optimizer_state_dict", "scheduler_state_dict"):
        assert_bitwise_equal(expected[key], actual[key], key)
