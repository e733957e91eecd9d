"""Several nodes: one ``trainforge train`` per node, as a launcher or a cluster starts them.

Two processes on this machine play two nodes (``NODE_RANK`` 0 and 1, one device each,
gloo on the CPU). They must make one run: one folder, one tracked run, each checkpoint
written once, by rank zero of node zero; log lines name the node and rank.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from trainforge.checkpoint import CheckpointManager
from trainforge.config import TrainingConfig
from trainforge.tracking import ExperimentDB
from trainforge.train import process_rank

NODES = [
    "trainer.engine=lightning",
    "trainer.strategy=ddp",
    "trainer.num_nodes=2",
    "trainer.devices=1",
    "trainer.accelerator=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=2",
    "trainer.checkpoint_every_n_steps=2",
    "trainer.enable_progress_bar=false",
    "trainer.collective_timeout_s=60",
    "checkpoint.keep_last_n=10",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _node(workdir: Path, node: int, port: int, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "TRAINFORGE_DB": f"sqlite:///{workdir / 'tracking.db'}",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "NODE_RANK": str(node),
        "WORLD_SIZE": "2",
    }
    for name in ("LOCAL_RANK", "RANK", "TRAINFORGE_DDP_RUN_DIR", "TRAINFORGE_DDP_RESUME"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "trainforge.cli", "--log-level", "INFO", "train", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_nodes_make_one_run_with_checkpoints_written_once(workdir):
    port = _free_port()
    nodes = [_node(workdir, rank, port, *NODES) for rank in (0, 1)]
    outputs = [node.communicate(timeout=180) for node in nodes]
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err[-3000:]
    (out0, err0), (out1, err1) = outputs
    assert "training finished" in out0 and "training finished" not in out1
    assert "[node 1 rank 1]" in err1 and "[node 0 rank 0]" in err0

    (run_dir,) = (workdir / "outputs").glob("run-*")  # node one opened no folder
    assert TrainingConfig.load(run_dir / "config.yaml").trainer.num_nodes == 2
    manager = CheckpointManager(run_dir / "checkpoints", monitor=None)
    # 4 batches per process: step checkpoints at steps 2 and 4, then the epoch's own
    assert sorted(c.global_step for c in manager.list_checkpoints()) == [2, 4, 4]
    assert all(report.ok for report in manager.verify())
    db = ExperimentDB(f"sqlite:///{workdir / 'tracking.db'}")
    (run,) = db.search_runs()
    assert run["status"] == "completed"
    assert db.get_run(run["run_id"])["tags"]["world_size"] in (2, "2")


@pytest.mark.slow
def test_torchrun_starts_one_run_with_checkpoints_written_once(workdir):
    """``torch.distributed.run --nproc_per_node 2 -m trainforge.cli train``: TorchElastic."""
    env = {**os.environ, "TRAINFORGE_DB": f"sqlite:///{workdir / 'tracking.db'}"}
    for name in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "RANK", "WORLD_SIZE"):
        env.pop(name, None)
    single_node = [a for a in NODES if not a.startswith(("trainer.num_nodes", "trainer.devices"))]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "trainforge.cli",
            "--log-level",
            "INFO",
            "train",
            *single_node,
            "trainer.devices=2",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("training finished") == 1
    assert "[node 0 rank 1]" in done.stderr
    (run_dir,) = (workdir / "outputs").glob("run-*")
    checkpoints = run_dir / "checkpoints"
    assert not list(checkpoints.glob(".tmp-*"))
    manager = CheckpointManager(checkpoints, monitor=None)
    assert sorted(c.global_step for c in manager.list_checkpoints()) == [2, 4, 4]
    assert all(report.ok for report in manager.verify())
    db = ExperimentDB(f"sqlite:///{workdir / 'tracking.db'}")
    (run,) = db.search_runs()
    assert run["status"] == "completed"


def test_num_nodes_without_launcher_variables_is_refused_before_training(workdir, monkeypatch):
    for name in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    env = {**os.environ, "TRAINFORGE_DB": f"sqlite:///{workdir / 'tracking.db'}"}
    done = subprocess.run(
        [sys.executable, "-m", "trainforge.cli", "train", *NODES],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "trainer.num_nodes" in done.stderr
    assert "MASTER_ADDR, MASTER_PORT, NODE_RANK are not set" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / "outputs").exists() or not list((workdir / "outputs").glob("run-*"))


@pytest.mark.parametrize(
    ("variables", "rank"),
    [
        ({"MASTER_ADDR": "h", "MASTER_PORT": "1", "NODE_RANK": "1", "LOCAL_RANK": "0"}, 2),
        ({"MASTER_ADDR": "h", "MASTER_PORT": "1", "NODE_RANK": "1", "LOCAL_RANK": "1"}, 3),
        (
            {
                "TORCHELASTIC_RUN_ID": "x",
                "RANK": "3",
                "LOCAL_RANK": "1",
                "GROUP_RANK": "1",
                "WORLD_SIZE": "4",
                "LOCAL_WORLD_SIZE": "2",
                "MASTER_ADDR": "h",
                "MASTER_PORT": "1",
            },
            3,
        ),
        (
            {
                "SLURM_NTASKS": "4",
                "SLURM_NTASKS_PER_NODE": "2",
                "SLURM_JOB_NAME": "train",
                "SLURM_PROCID": "2",
                "SLURM_LOCALID": "0",
                "SLURM_NODEID": "1",
                "SLURM_NODELIST": "node[1-2]",
                "SLURM_JOB_ID": "77",
            },
            2,
        ),
    ],
    ids=["node-rank", "node-and-local-rank", "torchrun", "slurm"],
)
def test_each_launcher_gives_the_global_rank(monkeypatch, variables, rank):
    # Lightning's environments write MASTER_ADDR/MASTER_PORT back: undo that after the test
    names = ("SLURM_NTASKS", "TORCHELASTIC_RUN_ID", "RANK", "LOCAL_RANK", "GROUP_RANK")
    for name in (*names, "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "WORLD_SIZE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    config = TrainingConfig.model_validate(
        {"trainer": {"num_nodes": 2, "devices": 2, "accelerator": "cpu", "strategy": "ddp"}}
    )
    assert process_rank(config) == rank
