"""The CLI process pauses the garbage collector for start-up and settles it at exit.

What a user relies on: the collector is back as it was once a command has started
(in their own process too, where they call ``main``, which freezes nothing), and the
finalizers of garbage still run in the ``trainforge`` process.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trainforge.cli import main

# A user model whose construction leaves a reference cycle behind, with a finalizer that
# writes a file: the garbage Python's own exit would finalize.
USER_MODULE = """
import os
from torch import nn


class Leaves:
    def __init__(self):
        self.me = self

    def __del__(self):
        with open(os.environ["FINALIZED_MARKER"], "w") as f:
            f.write("finalized")


class Net(nn.Module):
    def __init__(self, task_spec=None):
        super().__init__()
        Leaves()  # unreachable at once, but a cycle: only the collector frees it
        self.net = nn.Linear(task_spec.input_dim, task_spec.num_classes)

    def forward(self, x):
        return self.net(x)
"""

CONFIG = """
task: {name: blobs, num_classes: 2, input_dim: 4}
model: {name: "userlab.net:Net"}
data: {name: "userlab.data:blobs"}
"""

DATA_MODULE = """
import torch
from torch.utils.data import TensorDataset


def blobs(val_split: float = 0.2, seed: int = 0):
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(seed))
    y = (x[:, 0] > 0).long()
    return TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:])
"""


def test_the_garbage_a_command_leaves_is_still_finalized_in_the_trainforge_process(tmp_path: Path):
    package = tmp_path / "userlab"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "net.py").write_text(USER_MODULE)
    (package / "data.py").write_text(DATA_MODULE)
    (tmp_path / "run.yaml").write_text(CONFIG)
    marker = tmp_path / "finalized.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "FINALIZED_MARKER": str(marker),
        "TRAINFORGE_DB": f"sqlite:///{tmp_path / 'tracking.db'}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "trainforge.cli", "train", "run.yaml", "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "dry run: nothing was trained" in result.stdout
    assert marker.read_text() == "finalized"


def test_in_its_own_process_the_pause_ends_by_finalizing_garbage_and_freezing_the_rest():
    script = textwrap.dedent(
        """
        import gc
        from trainforge.cli._process import claim_process, paused_collector

        class Cycle:
            def __init__(self, name):
                self.me, self.name = self, name
            def __del__(self):
                print("finalized", self.name, flush=True)

        claim_process()
        with paused_collector():
            kept = Cycle("kept")  # alive after start-up: frozen, never rescanned
            Cycle("garbage")
            print("paused", gc.isenabled(), gc.get_freeze_count() > 0, flush=True)
        print("after", gc.isenabled(), gc.get_freeze_count() > 0, flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.splitlines() == [
        "paused False False",
        "finalized garbage",
        "after True True",
    ]


@pytest.mark.parametrize(
    ("args", "exit_code"),
    [
        (["train", "--print-config"], 0),
        (["train", "--dry-run", "trainer.engine=plain"], 0),
        (["train", "--dry-run", "optim.lr=-1"], 1),  # refused
        (["train", "--dry-run", "no.such.key=1"], 1),
    ],
)
@pytest.mark.parametrize("enabled_before", [True, False])
def test_the_train_command_leaves_the_collector_as_it_found_it(
    tmp_path: Path, monkeypatch, capsys, args: list[str], exit_code: int, enabled_before: bool
):
    monkeypatch.chdir(tmp_path)
    if not enabled_before:
        gc.disable()
    try:
        code = main([*args, f"run.output_dir={tmp_path}"])
        assert gc.isenabled() is enabled_before
    finally:
        gc.enable()
    assert code == exit_code
    assert gc.get_freeze_count() == 0  # only the CLI's own process freezes anything
