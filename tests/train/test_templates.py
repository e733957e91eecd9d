"""Every zoo template trains through the real Trainer (a few batches each)."""

from __future__ import annotations

import math

import pytest

from trainforge.config import list_templates, load_config
from trainforge.train import Trainer


@pytest.mark.parametrize("template", list_templates())
def test_template_trains_its_loss_goes_down_and_it_logs_its_monitor(tmp_path, template):
    config = load_config(
        template=template,
        cli=[
            f"run.output_dir={tmp_path}",
            "tracking.enabled=false",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=8",
            "trainer.limit_val_batches=2",
            "trainer.enable_progress_bar=false",
            "loggers.tensorboard.enabled=false",
        ],
        environ={},
    )
    results = Trainer(training_config=config).train()
    summary = results.metrics_summary
    assert results.global_step == 16
    losses = list(summary["train/loss"])
    assert losses[1] < losses[0], f"{template}: training loss did not go down: {losses}"
    assert config.checkpoint.monitor in summary.columns
    assert math.isfinite(summary[config.checkpoint.monitor].iloc[-1])
    assert results.checkpoint_path is not None
