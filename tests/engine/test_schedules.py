"""The per-step learning-rate schedules: the values torch's LambdaLR gives, bit for bit."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from trainforge.config import TrainingConfig
from trainforge.engine import build_optimizer, build_scheduler
from trainforge.engine._optim import _ScheduleFactor
from trainforge.errors import ConfigError
from trainforge.train import _build as build


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["none", "cosine", "linear", "step"]),
    total=st.integers(1, 300),
    warmup=st.integers(0, 50),
    steps=st.integers(1, 400),
    lr=st.floats(1e-6, 1.0),
)
def test_fast_steps_equal_torchs_lambdalr(name, total, warmup, steps, lr):
    ours_opt = build_optimizer("adamw", nn.Linear(3, 3), lr=lr, weight_decay=0.01)
    torch_opt = build_optimizer("adamw", nn.Linear(3, 3), lr=lr, weight_decay=0.01)
    ours = build_scheduler(name, ours_opt, total_steps=total, warmup_steps=warmup)
    reference = LambdaLR(torch_opt, _ScheduleFactor(name, total, warmup, {}))
    for _ in range(steps):
        ours_opt.step()
        torch_opt.step()
        ours.step()
        reference.step()
        assert [g["lr"] for g in ours_opt.param_groups] == [g["lr"] for g in torch_opt.param_groups]
    assert ours.get_last_lr() == reference.get_last_lr()
    assert ours.state_dict() == reference.state_dict()


def test_a_resumed_schedule_continues_where_it_stopped(tmp_path):
    optimizer = build_optimizer("sgd", nn.Linear(2, 2), lr=0.1)
    schedule = build_scheduler("cosine", optimizer, total_steps=50, warmup_steps=5)
    for _ in range(20):
        optimizer.step()
        schedule.step()
    torch.save(schedule.state_dict(), tmp_path / "s.pt")
    resumed_opt = build_optimizer("sgd", nn.Linear(2, 2), lr=0.1)
    resumed = build_scheduler("cosine", resumed_opt, total_steps=50, warmup_steps=5)
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    for _ in range(10):
        optimizer.step()
        resumed_opt.step()
        schedule.step()
        resumed.step()
    assert resumed.get_last_lr() == schedule.get_last_lr()


@pytest.mark.parametrize("name", ["none", "cosine"])
def test_a_tensor_learning_rate_takes_torchs_path(name):
    optimizer = torch.optim.AdamW(nn.Linear(2, 2).parameters(), lr=torch.tensor(0.01))
    schedule = build_scheduler(name, optimizer, total_steps=10)
    for _ in range(3):
        optimizer.step()
        schedule.step()
    assert isinstance(optimizer.param_groups[0]["lr"], torch.Tensor)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        (
            "step",
            {"bogus": 3},
            "the step schedule has no argument 'bogus' (it takes: step_size, gamma)",
        ),
        ("cosine", {"step_size": 10}, "has no argument 'step_size' (it takes: min_factor)"),
        ("none", {"min_factor": 0.1}, "(it takes: no arguments)"),
        ("step", {"step_size": 0}, "step_size of the step schedule must be an integer >= 1, got 0"),
        ("step", {"gamma": -0.5}, "gamma of the step schedule must be a number > 0"),
        (
            "linear",
            {"min_factor": 2},
            "min_factor of the linear schedule must be a number in [0, 1]",
        ),
    ],
)
def test_an_argument_a_schedule_would_ignore_is_refused(name, kwargs, message):
    optimizer = build_optimizer("sgd", nn.Linear(2, 2), lr=0.1)
    with pytest.raises(ValueError) as info:
        build_scheduler(name, optimizer, total_steps=100, kwargs=kwargs)
    assert message in str(info.value)


def test_a_schedules_own_arguments_shape_it():
    optimizer = build_optimizer("sgd", nn.Linear(2, 2), lr=1.0)
    schedule = build_scheduler(
        "step", optimizer, total_steps=100, kwargs={"step_size": 2, "gamma": 0.5}
    )
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25]


def test_training_and_the_dry_run_refuse_a_schedule_argument_alike():
    """The same bad ``optim.scheduler_kwargs`` gets the same error whether planned or built."""
    config = TrainingConfig.from_dict(
        {"optim": {"scheduler": "step", "scheduler_kwargs": {"bogus": 3}}}
    )
    optimizer = build_optimizer("sgd", nn.Linear(2, 2), lr=0.1)
    with pytest.raises(ConfigError) as planned:
        build.check_scheduler_for(config)
    with pytest.raises(ConfigError) as built:
        build.build_scheduler_for(config, optimizer, total_steps=100)
    assert (built.value.key, str(built.value)) == (planned.value.key, str(planned.value))
    assert built.value.key == "optim.scheduler_kwargs"
