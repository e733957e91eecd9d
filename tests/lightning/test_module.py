"""TaskModule: automatic and manual optimization agree; heatmap pixel error."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from trainforge.lightning import HeatmapModule

# Tiny in-process loaders have no workers; short runs log rarely; most fits here train only.
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*LeafSpec.*is deprecated:FutureWarning",
    "ignore:.*does not have many workers.*",
    "ignore:.*log_every_n_steps.*",
    "ignore:You defined a `validation_step` but have no `val_dataloader`.*",
)


def _one_step(tiny, **module_kwargs):
    module = tiny.task_module(**module_kwargs)
    tiny.trainer(max_steps=1).fit(module, train_dataloaders=tiny.loader(n=32, batch_size=32))
    return module


def test_manual_micro_batches_match_automatic_step(tiny):
    automatic = _one_step(tiny)
    manual = _one_step(tiny, optimization="manual", micro_batch_size=8)
    initial = tiny.task_module()
    for a, m, i in zip(
        automatic.parameters(), manual.parameters(), initial.parameters(), strict=True
    ):
        assert not torch.equal(a, i)  # a step was taken
        torch.testing.assert_close(m, a, atol=1e-6, rtol=0)
    assert manual.accumulator is not None
    assert manual.accumulator.stats.micro_steps == 4
    assert manual.accumulator.stats.optimizer_steps == 1


def test_manual_mode_steps_the_scheduler_once_per_optimizer_step(tiny):
    def scheduler(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    module = tiny.task_module(
        optimization="manual",
        micro_batch_size=4,
        accumulation_steps=2,
        scheduler_factory=scheduler,
        max_grad_norm=1.0,
    )
    fit = tiny.trainer(max_epochs=1)
    fit.fit(module, train_dataloaders=tiny.loader(n=64, batch_size=16))
    # 4 batches, 2 per window: 2 optimizer steps, 2 halvings of the learning rate
    assert fit.global_step == 2
    assert fit.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.1 * 0.25)


def test_manual_only_options_are_refused_in_automatic_mode(tiny):
    with pytest.raises(ValueError, match="micro_batch_size.*optimization='manual'"):
        tiny.task_module(micro_batch_size=8)


def test_heatmap_module_logs_pixel_error(tiny):
    class Peak(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, x):
            return x * self.scale

    heatmaps = torch.zeros(4, 1, 6, 6)
    positions = torch.tensor([[1.0, 2.0], [3.0, 3.0], [0.0, 0.0], [5.0, 1.0]])
    for i, (x, y) in enumerate(positions.long().tolist()):
        heatmaps[i, 0, y, x] = 1.0
    shifted = torch.tensor([[4.0, 6.0], [3.0, 3.0], [0.0, 0.0], [5.0, 1.0]])  # first: 5 px off
    samples = [
        {"inputs": h, "labels": h, "position": p} for h, p in zip(heatmaps, shifted, strict=True)
    ]
    data = DataLoader(samples, batch_size=4)  # type: ignore[arg-type]

    module = HeatmapModule(
        Peak(),
        lambda out, batch: nn.functional.mse_loss(out, batch["labels"]),
        optimizer_factory=lambda m: torch.optim.SGD(m.parameters(), lr=0.0),
    )
    fit = tiny.trainer(max_epochs=1, num_sanity_val_steps=0)
    fit.fit(module, train_dataloaders=data, val_dataloaders=data)
    assert fit.callback_metrics["val/pixel_error"].item() == pytest.approx(5.0 / 4)
    assert "val/loss" in fit.callback_metrics
