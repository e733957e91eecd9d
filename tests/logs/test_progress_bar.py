"""The progress bar at a terminal counts every trained sample, the same on both drivers."""

from __future__ import annotations

import io
import re
import sys

import pytest

from trainforge.config import load_config
from trainforge.train import Trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers.*")


class _Terminal(io.StringIO):
    """What Rich draws on: a stream that is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("engine", ["plain", "lightning"])
def test_the_bar_drawn_at_a_terminal_ends_at_every_sample_trained(tmp_path, monkeypatch, engine):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("COLUMNS", "160")
    config = load_config(
        template="digits",
        cli=[
            f"trainer.engine={engine}",
            f"run.output_dir={tmp_path}",
            f"tracking.database=sqlite:///{tmp_path / 't.db'}",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=5",
            "data.batch_size=16",
            "loggers.tensorboard.enabled=false",
        ],
        environ={},
    )
    Trainer(training_config=config, log_config=False).train()
    counts = re.findall(r"(\d+)/(\d+)", terminal.getvalue())
    assert counts, "no progress bar was drawn"
    # the last frame, drawn as the bar closes: 2 epochs x 5 batches x 16 samples
    assert counts[-1] == ("160", "160")
