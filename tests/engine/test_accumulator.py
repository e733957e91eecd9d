"""GradientAccumulator against single large batches, clipping, AMP and resume."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainforge.engine import (
    AccumulationConflictError,
    GradientAccumulator,
    GradientMonitor,
)
from trainforge.engine.policies import HealthPolicy
from trainforge.errors import TrainingError


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optimizer


def _data(n: int):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def _assert_same_params(a: nn.Module, b: nn.Module, atol: float = 1e-6) -> None:
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, atol=atol, rtol=0)


def _one_big_step(x, y, max_grad_norm=None):
    model, optimizer = _setup()
    F.cross_entropy(model(x), y).backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return model


@pytest.mark.parametrize("max_grad_norm", [None, 0.05])
def test_four_micro_batches_of_eight_equal_one_batch_of_32(max_grad_norm):
    x, y = _data(32)
    model, optimizer = _setup()
    acc = GradientAccumulator(
        optimizer, accumulation_steps=4, max_grad_norm=max_grad_norm, batch_size=8
    )
    stepped = [
        acc.accumulate(F.cross_entropy(model(x[i : i + 8]), y[i : i + 8]), model)
        for i in range(0, 32, 8)
    ]
    assert stepped == [False, False, False, True]
    _assert_same_params(model, _one_big_step(x, y, max_grad_norm))
    stats = acc.stats
    assert (stats.micro_steps, stats.optimizer_steps, stats.window_position) == (4, 1, 0)
    assert acc.effective_batch_size == 32 and acc.effective_step == 1
    assert (stats.last_grad_norm is None) == (max_grad_norm is None)
    assert all(p.grad is None for p in model.parameters())


def test_short_final_window_equals_one_batch_of_the_same_samples():
    x, y = _data(28)  # micro-batches 8, 8, 8, 4 with a window of 8 * 8 never completed
    model, optimizer = _setup()
    acc = GradientAccumulator(optimizer, accumulation_steps=8, batch_size=8)
    starts = list(range(0, 28, 8))
    for i in starts:
        xb, yb = x[i : i + 8], y[i : i + 8]
        stepped = acc.accumulate(
            F.cross_entropy(model(xb), yb),
            model,
            is_final_batch=i == starts[-1],
            num_samples=len(xb),
        )
    assert stepped and acc.effective_step == 1
    _assert_same_params(model, _one_big_step(x, y))


def test_final_batch_steps_an_unfinished_window_of_full_batches():
    x, y = _data(16)
    model, optimizer = _setup()
    acc = GradientAccumulator(optimizer, accumulation_steps=4)
    assert not acc.accumulate(F.cross_entropy(model(x[:8]), y[:8]), model)
    assert acc.is_accumulating
    assert acc.accumulate(F.cross_entropy(model(x[8:]), y[8:]), model, is_final_batch=True)
    assert not acc.is_accumulating
    _assert_same_params(model, _one_big_step(x, y))


def test_state_dict_round_trip_mid_accumulation_is_exact(tmp_path):
    x, y = _data(32)
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    model, optimizer = _setup()
    acc = GradientAccumulator(optimizer, accumulation_steps=4, max_grad_norm=1.0)
    for xb, yb in batches:
        acc.accumulate(F.cross_entropy(model(xb), yb), model)
    reference = [p.detach().clone() for p in model.parameters()]

    model, optimizer = _setup()
    acc = GradientAccumulator(optimizer, accumulation_steps=4, max_grad_norm=1.0)
    for xb, yb in batches[:2]:
        acc.accumulate(F.cross_entropy(model(xb), yb), model)
    path = tmp_path / "state.pt"
    torch.save(
        {"model": model.state_dict(), "optim": optimizer.state_dict(), "acc": acc.state_dict()},
        path,
    )
    saved = torch.load(path, weights_only=True)

    model, optimizer = _setup(seed=5)  # different init: everything comes from the file
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optim"])
    acc = GradientAccumulator(optimizer, accumulation_steps=4, max_grad_norm=1.0)
    acc.load_state_dict(saved["acc"])
    assert acc.is_accumulating and acc.stats.micro_steps == 2
    for xb, yb in batches[2:]:
        acc.accumulate(F.cross_entropy(model(xb), yb), model)
    for got, want in zip(model.parameters(), reference):
        assert torch.equal(got, want)


def test_lightning_conflict_error_names_both_settings():
    trainer = SimpleNamespace(accumulate_grad_batches=4)
    _, optimizer = _setup()
    with pytest.raises(AccumulationConflictError) as info:
        GradientAccumulator(optimizer, accumulation_steps=2, trainer=trainer)
    message = str(info.value)
    assert "trainer.accumulate_grad_batches=4" in message
    assert "accumulation_steps=2" in message and "set trainer.accumulate_grad_batches=1" in message
    assert isinstance(info.value, ValueError)

    managed = GradientAccumulator(optimizer, batch_size=8, trainer=trainer)
    assert managed.is_lightning_managed and managed.effective_batch_size == 32
    with pytest.raises(TrainingError, match="Lightning accumulates"):
        managed.accumulate(torch.tensor(1.0, requires_grad=True))
    plain = GradientAccumulator(optimizer, trainer=SimpleNamespace(accumulate_grad_batches=1))
    assert not plain.is_lightning_managed


def test_reset_epoch_warns_when_gradients_are_discarded(caplog):
    x, y = _data(8)
    model, optimizer = _setup()
    acc = GradientAccumulator(optimizer, accumulation_steps=4)
    acc.accumulate(F.cross_entropy(model(x), y), model)
    with caplog.at_level(logging.WARNING, logger="trainforge.engine._accumulator"):
        acc.reset_epoch()
    assert "discarding the gradients of 1 micro-batch" in caplog.text
    assert not acc.is_accumulating
    assert all(p.grad is None for p in model.parameters())


def test_a_health_policy_skips_a_step_with_nan_gradients():
    x, y = _data(8)
    model, optimizer = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    policy = HealthPolicy(GradientMonitor(max_consecutive_failures=3), "stop")
    acc = GradientAccumulator(optimizer, before_step=lambda step: policy.check(model, step=step))
    loss = F.cross_entropy(model(x), y) * torch.tensor(float("nan"))
    assert acc.accumulate(loss, model)
    assert acc.stats.skipped_steps == 1 and acc.effective_step == 1
    assert policy.skipped_steps == 1 and not policy.healthy
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
    assert all(p.grad is None for p in model.parameters())


def test_amp_scaler_skips_overflowing_steps():
    x, y = _data(8)
    model, optimizer = _setup()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    acc = GradientAccumulator(optimizer, scaler=scaler)
    before = [p.detach().clone() for p in model.parameters()]
    loss = F.cross_entropy(model(x), y) * 1e38  # scaled by 2**16: inf gradients
    assert acc.accumulate(loss, model)
    assert acc.stats.skipped_steps == 1
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
    acc.accumulate(F.cross_entropy(model(x), y), model)
    assert acc.stats.skipped_steps == 1 and acc.stats.optimizer_steps == 2
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_before_step_sees_the_weights_before_each_step_and_can_skip_it():
    model, optimizer = _setup()
    x, y = _data(16)
    before = []

    def gate(step: int) -> bool:
        before.append((step, model[0].weight.detach().clone()))
        return step != 3

    accumulator = GradientAccumulator(optimizer, accumulation_steps=2, before_step=gate)
    for i in range(4):
        accumulator.accumulate(
            F.cross_entropy(model(x[i * 4 : i * 4 + 4]), y[i * 4 : i * 4 + 4]), model
        )
    assert [step for step, _ in before] == [1, 2]
    assert not torch.equal(before[1][1], model[0].weight)  # taken before step 2 moved it
    weights = model[0].weight.detach().clone()
    for _ in range(2):  # step 3: refused by the gate, the weights stay
        accumulator.accumulate(F.cross_entropy(model(x[:4]), y[:4]), model)
    assert torch.equal(model[0].weight, weights)
    assert accumulator.stats.skipped_steps == 1 and accumulator.effective_step == 3
