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
        ({"strategy": "fsdp"}, "use trainer.strategy=model_parallel"),
        ({"shard_modules": ["Linear"]}, "trainer.shard_modules needs"),
        ({"strategy": "model_parallel", "compile": True}, "without torch.compile"),
        ({"engine": "plain", "num_nodes": 2}, "trainer.num_nodes 1"),
    ],
)
def test_bad_scale_settings_are_refused_by_the_schema(overrides, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        TrainingConfig.model_validate({"trainer": overrides})
