"""Sharded training: ``trainer.strategy=model_parallel`` (FSDP2) on 2 CPU processes.

The real CLI trains the digits task with the model sharded over two processes (gloo);
every checkpoint is sharded (each rank's shard listed in the manifest), verifies, resumes
bit-exact on two processes and continues on one (the shards re-sharded by DCP).
"""

from __future__ import annotations

import json

import pytest
import torch

from trainforge.checkpoint import CheckpointManager
from trainforge.config import TrainingConfig
from trainforge.errors import ConfigError

pytestmark = pytest.mark.slow

SHARDED = [
    "trainer.engine=lightning",
    "trainer.strategy=model_parallel",
    "trainer.devices=2",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.checkpoint_every_n_steps=2",
    "trainer.enable_progress_bar=false",
    "trainer.collective_timeout_s=120",
    "checkpoint.keep_last_n=10",
]


def _runs(workdir):
    return sorted((workdir / "outputs").glob("run-*"))


def test_sharded_run_saves_verified_shards_and_resumes_on_two_and_one_process(workdir, train_cli):
    done = train_cli(workdir, *SHARDED)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training finished") == 1
    (first,) = _runs(workdir)
    manager = CheckpointManager(first / "checkpoints", monitor=None)
    checkpoints = manager.list_checkpoints()
    assert sorted(c.global_step for c in checkpoints) == [2, 4, 4]
    assert all(report.ok for report in manager.verify())
    (step2,) = [c for c in checkpoints if c.global_step == 2]
    manifest = json.loads((step2.path / "manifest.json").read_text())
    assert manifest["metadata"]["sharding"]["world_size"] == 2
    assert {"__0_0.distcp", "__1_0.distcp", "dcp.metadata"} <= set(manifest["files"])
    expected = manager.load("last", restore_rng=False)

    # a mid-epoch position is per process: another world size is refused before training
    refused = train_cli(workdir, *SHARDED, "trainer.devices=1", "--resume", str(step2.path))
    assert refused.returncode == 1
    assert "by 2 data-parallel processes, and this run has 1" in refused.stderr
    assert "trainer.num_nodes x trainer.devices = 2" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _runs(workdir) == [first]

    resumed = train_cli(workdir, *SHARDED, "--resume", str(step2.path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (second,) = [p for p in _runs(workdir) if p != first]
    actual = CheckpointManager(second / "checkpoints", monitor=None).load("last", restore_rng=False)
    assert actual["global_step"] == expected["global_step"] == 4
    for key, tensor in expected["model_state_dict"].items():
        assert torch.equal(tensor, actual["model_state_dict"][key]), key

    # one process continues the two-process run from its epoch end: DCP re-shards it
    one = train_cli(
        workdir,
        *SHARDED,
        "trainer.devices=1",
        "trainer.max_epochs=2",
        "--resume",
        str(expected["path"]),
    )
    assert one.returncode == 0, one.stderr[-3000:]
    (third,) = [p for p in _runs(workdir) if p not in (first, second)]
    continued = CheckpointManager(third / "checkpoints", monitor=None)
    assert sorted(c.global_step for c in continued.list_checkpoints()) == [6, 8, 8]
    assert (
        json.loads((continued.resolve("last") / "manifest.json").read_text())["metadata"][
            "sharding"
        ]["world_size"]
        == 1
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"shard_modules": ["Linear"]}, "trainer.shard_modules only apply to a sharded model"),
        (
            {"strategy": "ddp", "param_dtype": "bfloat16", "activation_checkpointing": True},
            "trainer.param_dtype, trainer.activation_checkpointing only apply to a sharded",
        ),
        ({"strategy": "model_parallel", "param_dtype": "bf16"}, "float32"),
        ({"strategy": "fsdp", "optimization": "manual"}, "runs automatic optimization"),
        ({"strategy": "model_parallel", "compile": True}, "without torch.compile"),
        ({"engine": "plain", "num_nodes": 2}, "trainer.num_nodes 1"),
    ],
)
def test_bad_scale_settings_are_refused_by_the_schema(overrides, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        TrainingConfig.model_validate({"trainer": overrides})


def test_fsdp_on_the_cpu_is_refused_before_training(workdir, train_cli):
    done = train_cli(workdir, "trainer.strategy=fsdp", "trainer.accelerator=cpu")
    assert done.returncode == 1
    assert "fsdp needs CUDA GPUs; on CPU use trainer.strategy=model_parallel" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / "outputs").exists()


def test_activation_checkpointing_without_units_is_refused_before_training(workdir, train_cli):
    done = train_cli(workdir, *SHARDED, "trainer.activation_checkpointing=true")
    assert done.returncode == 1
    assert "has no submodule to checkpoint" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / "outputs").exists()


def test_bf16_sharded_units_with_activation_checkpointing_train_and_resume(workdir, train_cli):
    """FSDP2 mixed precision (bf16 compute, float32 shards) and checkpointed units on 2 CPUs."""
    options = [
        *SHARDED,
        "trainer.shard_modules=[Linear]",
        "trainer.activation_checkpointing=true",
        "trainer.param_dtype=bfloat16",
        "trainer.reduce_dtype=float32",
    ]
    done = train_cli(workdir, *options)
    assert done.returncode == 0, done.stderr[-3000:]
    (first,) = _runs(workdir)
    manager = CheckpointManager(first / "checkpoints", monitor=None)
    assert all(report.ok for report in manager.verify())
    state = manager.load("last", restore_rng=False)
    # the checkpoint wrapper leaves no trace in the names; the shards stay float32
    assert sorted(state["model_state_dict"]) == [
        f"net.{i}.{kind}" for i in (0, 3, 6) for kind in ("bias", "weight")
    ]
    assert all(t.dtype == torch.float32 for t in state["model_state_dict"].values())
    assert set(state["optimizer_state_dict"]["state"]) == set(state["model_state_dict"])
    (step2,) = [c for c in manager.list_checkpoints() if c.global_step == 2]
    resumed = train_cli(workdir, *options, "--resume", str(step2.path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (second,) = [p for p in _runs(workdir) if p != first]
    again = CheckpointManager(second / "checkpoints", monitor=None).load("last", restore_rng=False)
    for key, tensor in state["model_state_dict"].items():
        assert torch.equal(tensor, again["model_state_dict"][key]), key
