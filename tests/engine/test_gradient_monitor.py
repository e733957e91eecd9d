"""GradientMonitor on real models with NaN, inf, tiny and huge gradients."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from trainforge.engine import GradientHealth, GradientMonitor, _grad_norms
from trainforge.engine._grad_norms import per_parameter_norms
from trainforge.errors import GradientHealthError
from trainforge.hooks import HookEvent, HookManager


@pytest.fixture(autouse=True, params=["fused", "torch kernels"])
def norm_read(request, monkeypatch):
    """Every test runs with the compiled norm read and as installed without a C compiler."""
    if request.param == "torch kernels":
        monkeypatch.setattr(_grad_norms, "_fused_norms", None)
    elif _grad_norms._fused_norms is None:
        pytest.skip("trainforge was installed without a C compiler")
    return request.param


def _model_with_grads(scale: float = 1.0) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    (model(torch.randn(5, 4)).sum() * scale).backward()
    return model


def _set(model: nn.Module, name: str, value: float) -> None:
    dict(model.named_parameters())[name].grad.view(-1)[0] = value


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[dict, int]] = []

    def log_metrics(self, metrics, step=None):
        self.calls.append((dict(metrics), step))


def test_healthy_model():
    health = GradientMonitor().check_gradients(_model_with_grads())
    assert health.is_healthy and not health.has_nan and not health.has_inf
    assert health.num_parameters == 4
    assert "healthy" in str(health)


@pytest.mark.parametrize(("value", "flag"), [(float("nan"), "has_nan"), (float("inf"), "has_inf")])
def test_nan_and_inf_are_located(value, flag):
    model = _model_with_grads()
    _set(model, "2.weight", value)
    health = GradientMonitor().check_gradients(model)
    assert getattr(health, flag)
    assert not health.is_healthy
    assert health.affected_layers == [f"2.weight ({'NaN' if math.isnan(value) else 'inf'})"]
    text = str(health)
    assert "UNHEALTHY" in text and "2.weight" in text and "\n" in text


def test_tiny_and_huge_gradients():
    model = _model_with_grads()
    dict(model.named_parameters())["0.bias"].grad.mul_(1e-12)
    dict(model.named_parameters())["2.weight"].grad.mul_(1e6)
    health = GradientMonitor(vanishing_threshold=1e-7, explosion_threshold=1e3).check_gradients(
        model
    )
    assert health.vanishing_layers == ["0.bias"]
    assert health.exploding_layers == ["2.weight"]
    assert not health.is_healthy


def test_matches_slow_per_parameter_reference():
    model = _model_with_grads()
    monitor = GradientMonitor()
    health = monitor.check_gradients(model)
    reference = {n: p.grad.norm().item() for n, p in model.named_parameters()}
    ref_global = math.sqrt(sum(v * v for v in reference.values()))
    assert health.max_norm == pytest.approx(max(reference.values()), rel=1e-6)
    assert health.min_norm == pytest.approx(min(reference.values()), rel=1e-6)
    assert health.global_norm == pytest.approx(ref_global, rel=1e-6)
    assert monitor.compute_gradient_norm(model) == pytest.approx(ref_global, rel=1e-6)
    clip_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")).item()
    assert health.global_norm == pytest.approx(clip_norm, rel=1e-6)
    norms = monitor.layer_norms(model)
    assert norms["grad/global_norm"] == pytest.approx(ref_global, rel=1e-6)
    for name, value in reference.items():
        assert norms[f"grad/{name}/norm"] == pytest.approx(value, rel=1e-6)


def test_half_precision_gradients_do_not_overflow():
    model = nn.Linear(4, 4).half()
    model.weight.grad = torch.full((4, 4), 100.0, dtype=torch.float16)
    health = GradientMonitor(explosion_threshold=1e6).check_gradients(model)
    assert health.is_healthy
    assert health.max_norm == pytest.approx(400.0)


def test_remediation_error_after_consecutive_failures_and_reset():
    hooks = HookManager()
    seen = []
    hooks.register(HookEvent.ON_GRADIENT_ANOMALY, lambda ctx: seen.append(ctx["step"]))
    monitor = GradientMonitor(max_consecutive_failures=3, hooks=hooks)
    bad = _model_with_grads()
    _set(bad, "0.weight", float("nan"))
    good = _model_with_grads()
    monitor.check_gradients(bad, step=1)
    monitor.check_gradients(bad, step=2)
    monitor.check_gradients(good, step=3)  # a healthy step breaks the streak
    assert monitor.consecutive_failures == 0
    monitor.check_gradients(bad, step=4)
    monitor.check_gradients(bad, step=5)
    with pytest.raises(GradientHealthError) as info:
        monitor.check_gradients(bad, step=6)
    message = str(info.value)
    assert "3 consecutive" in message
    assert "0.weight (NaN)" in message
    assert "trainer.gradient_clip_val" in message and "learning rate" in message
    assert "bf16" in message
    assert isinstance(info.value, RuntimeError)
    assert seen == [1, 2, 4, 5, 6]
    monitor.reset_failure_counts()
    assert monitor.consecutive_failures == 0
    monitor.check_gradients(bad)  # counting starts again: no error
    assert monitor.state_dict() == {"consecutive_failures": 1, "total_failures": 1}


def test_no_gradients():
    health = GradientMonitor().check_gradients(nn.Linear(2, 2))
    assert isinstance(health, GradientHealth)
    assert health.num_parameters == 0 and "no gradients" in str(health)
    assert GradientMonitor().compute_gradient_norm(nn.Linear(2, 2)) == 0.0


def test_log_gradient_distribution_to_a_tracker():
    model = _model_with_grads()
    tracker = Recorder()
    GradientMonitor(log_histogram=True, max_histogram_samples=10).log_gradient_distribution(
        model, tracker, step=7
    )
    ((metrics, step),) = tracker.calls
    assert step == 7
    assert "grad/global_norm" in metrics and "grad/0.weight/norm" in metrics
    assert "grad/distribution/std" in metrics
    assert all(isinstance(v, float) for v in metrics.values())


def _nan_as_text(values: dict) -> dict:
    """``values`` with NaN written as a string, so that equal values compare equal."""
    return {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in values.items()}


def _fields(health: GradientHealth) -> dict:
    """The report's fields, NaN written as text."""
    return _nan_as_text(dataclasses.asdict(health))


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(
        st.sampled_from([0.0, 1e-12, 1.0, 5e2, 2e3, float("nan"), float("inf"), -float("inf")]),
        min_size=4,
        max_size=4,
    ),
    frozen=st.lists(st.booleans(), min_size=4, max_size=4),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
)
def test_the_boolean_check_agrees_with_the_full_report(values, frozen, dtype):
    """step_is_healthy decides as check_gradients does, on every kind of gradient."""
    model = _model_with_grads().to(dtype)
    params = list(model.parameters())
    for param, value, drop in zip(params, values, frozen):
        param.grad = None if drop else torch.full_like(param, 1e-3).to(dtype)
        if param.grad is not None:
            param.grad.view(-1)[0] = value
    full, fast = (
        GradientMonitor(max_consecutive_failures=99),
        GradientMonitor(max_consecutive_failures=99),
    )
    named = list(model.named_parameters())
    reference_names, reference = per_parameter_norms(named)  # the general read, always
    for _ in range(2):  # the second check takes the cached fast path where it applies
        report = full.check_gradients(model)
        assert fast.step_is_healthy(model) == report.is_healthy
        assert fast.consecutive_failures == full.consecutive_failures
        assert _fields(fast.last_health()) == _fields(report)
        read = fast.last_layer_norms()
        expected = {f"grad/{n}/norm": v for n, v in zip(reference_names, reference or [])}
        assert _nan_as_text({k: v for k, v in read.items() if k != "grad/global_norm"}) == (
            _nan_as_text(expected)
        )


def test_a_layer_frozen_later_leaves_the_fast_path():
    """Once gradients stop being plain float32 on every parameter, the general read runs."""
    model = _model_with_grads()
    monitor = GradientMonitor()
    assert monitor.step_is_healthy(model)
    assert monitor.step_is_healthy(model)  # cached: plain float32 gradients everywhere
    first = dict(model.named_parameters())["0.weight"]
    first.grad = None
    dict(model.named_parameters())["2.weight"].grad.view(-1)[0] = float("nan")
    assert not monitor.step_is_healthy(model)
    health = monitor.last_health()
    assert health.num_parameters == 3
    assert health.affected_layers == ["2.weight (NaN)"]


def _into_autograd(model: nn.Module) -> None:
    for param in model.parameters():
        param.grad = param.grad.detach().clone().requires_grad_(True)


def _sparse(model: nn.Module) -> None:
    for param in model.parameters():
        param.grad = param.grad.to_sparse()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_into_autograd, id="requires-grad"),
        pytest.param(nn.Module.double, id="float64"),
        pytest.param(nn.Module.bfloat16, id="bfloat16"),
        pytest.param(nn.Module.half, id="float16"),
        pytest.param(_sparse, id="sparse"),
    ],
)
def test_gradients_that_leave_the_plain_path_are_read_by_the_general_one(change):
    """Gradients that stop being dense float32 outside autograd after fast reads."""
    model = _model_with_grads()
    monitor = GradientMonitor()
    assert monitor.step_is_healthy(model) and monitor.step_is_healthy(model)
    change(model)
    assert monitor.step_is_healthy(model)
    expected = [v for _, v in zip(*per_parameter_norms(list(model.named_parameters())))]
    assert [v for k, v in monitor.last_layer_norms().items() if k != "grad/global_norm"] == (
        expected
    )
    assert monitor.last_health().num_parameters == 4


def test_sparse_embedding_gradients_are_measured():
    """``nn.Embedding(sparse=True)``: repeated indices add up, as in the dense gradient."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 4, sparse=True), nn.Linear(4, 1))
    model(torch.tensor([1, 1, 3])).sum().backward()
    grad = model[0].weight.grad
    assert grad.is_sparse and not grad.is_coalesced()
    monitor = GradientMonitor()
    assert monitor.check_gradients(model).is_healthy
    norms = monitor.layer_norms(model)
    assert norms["grad/0.weight/norm"] == pytest.approx(grad.to_dense().norm().item())
    assert monitor.check_gradients(model).num_parameters == 3
