"""The compiled gradient-norm read: torch's float32 norms, from one call, or a clear decline."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn
from torch.utils.dlpack import to_dlpack

from trainforge.engine import GradientMonitor, _grad_norms

fused = pytest.importorskip(
    "trainforge.engine._fused_norms",
    reason="trainforge was installed without a C compiler: the norms are read by torch kernels",
)

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _norms(params: tuple) -> list[float] | None:
    return fused.norms(params, to_dlpack, torch.Tensor)


def test_ci_builds_the_extension():
    """A CI install that silently skipped the build would measure and test the slow path."""
    if os.environ.get("CI") == "true":
        assert _grad_norms._fused_norms is fused


def _param(grad: torch.Tensor) -> nn.Parameter:
    param = nn.Parameter(torch.zeros(grad.shape))
    param.grad = grad
    return param


def _reference(grad: torch.Tensor) -> float:
    """The exact norm (float64 sums), as float32 gives it: inf once the squares overflow it."""
    squares = grad.double().square().sum().item()
    if math.isnan(squares):
        return math.nan
    return math.inf if squares > _FLOAT32_MAX else float(np.float32(math.sqrt(squares)))


_VALUES = st.one_of(
    st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e3, max_value=1e3),
    st.floats(width=32),  # subnormals, huge values whose squares overflow float32, NaN, inf
)


@settings(max_examples=150, deadline=None)
@given(
    grads=st.lists(
        hnp.arrays(
            np.float32,
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40),
            elements=_VALUES,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_the_norms_are_torchs_float32_norms(grads):
    """Any shapes and values: the exact norm rounded to float32; torch's sums in float32."""
    tensors = [torch.from_numpy(g) for g in grads]
    squares = [t.double().square().sum().item() for t in tensors]
    # at float32's edge the order of the sum decides: either answer is right
    assume(not any(math.isclose(s, _FLOAT32_MAX, rel_tol=1e-9) for s in squares))
    read = _norms(tuple(_param(t) for t in tensors))
    assert read == pytest.approx([_reference(t) for t in tensors], rel=2**-23, nan_ok=True)
    for norm, t, s in zip(read, tensors, squares):
        if not (_FLOAT32_MAX * (1 - 1e-4) < s < math.inf):
            # torch's vectorised sum overflows there, its scalar path (few elements) does not
            assert norm == pytest.approx(torch.linalg.vector_norm(t).item(), rel=1e-4, nan_ok=True)


@settings(max_examples=100, deadline=None)
@given(
    grads=st.lists(
        hnp.arrays(np.float32, st.integers(0, 300), elements=_VALUES), min_size=1, max_size=4
    )
)
def test_the_vector_loop_and_the_portable_loop_read_the_same_norms(grads):
    """A norm has one value whichever loop the processor runs, to the last bit."""
    params = tuple(_param(torch.from_numpy(g)) for g in grads)
    vector = fused.vector_loop()
    try:
        fused.vector_loop(False)
        portable = _norms(params)
        fused.vector_loop(True)
        fast = _norms(params)
    finally:
        fused.vector_loop(vector)
    assert np.array_equal(np.array(fast), np.array(portable), equal_nan=True)


def test_ci_runs_the_vector_loop_where_the_processor_has_it():
    """On x86-64 with AVX2 and FMA the vector loop is chosen at import."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text() if cpuinfo.exists() else ""
    if os.environ.get("CI") == "true" and " avx2" in flags and " fma" in flags:
        assert fused.vector_loop()


def test_views_at_an_offset_are_read_where_they_start():
    """A gradient that is a contiguous view into a larger buffer (DDP buckets, flat grads)."""
    flat = torch.arange(30, dtype=torch.float32)
    params = (_param(flat[6:18].view(3, 4)), _param(flat[18:20]))
    assert _norms(params) == [
        pytest.approx(flat[6:18].norm().item()),
        pytest.approx(math.hypot(18, 19)),
    ]


class _Wrapped(torch.Tensor):
    """A tensor subclass, as DTensor is: its data pointer need not hold its values."""


@pytest.mark.parametrize(
    "grad",
    [
        pytest.param(torch.ones(4, 3).t(), id="transposed"),
        pytest.param(torch.ones(3, 8)[:, ::2], id="strided"),
        pytest.param(torch.ones(3, 4, dtype=torch.float16), id="float16"),
        pytest.param(torch.ones(3, 4, dtype=torch.bfloat16), id="bfloat16"),
        pytest.param(torch.ones(3, 4, dtype=torch.float64), id="float64"),
        pytest.param(torch.ones(3, 4).to_sparse(), id="sparse"),
        pytest.param(None, id="missing"),
        pytest.param(torch.ones(3, 4).as_subclass(_Wrapped), id="tensor-subclass"),
    ],
)
def test_gradients_it_cannot_read_are_declined(grad):
    """Anything but a plain dense float32 CPU gradient: None (the caller reads it with torch)."""
    plain = _param(torch.ones(2, 2))
    shape = (3, 4) if grad is None else tuple(grad.shape)
    other = nn.Parameter(torch.zeros(shape, dtype=grad.dtype if grad is not None else None))
    other.grad = grad
    assert _norms((plain, other)) is None
    assert _norms((plain,)) == [2.0]


def test_bad_arguments_raise():
    with pytest.raises(TypeError):
        _norms([_param(torch.ones(2))])  # a list, not a tuple
    with pytest.raises(AttributeError):
        _norms((object(),))  # no .grad
    with pytest.raises(TypeError):
        fused.norms((_param(torch.ones(2)),), to_dlpack, "Tensor")  # not a type
    assert _norms(()) == []


def test_a_training_run_checks_every_step_through_it():
    """A small float32 model's monitor reads its norms fused, and stops on the first NaN."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    monitor = GradientMonitor(max_consecutive_failures=99)
    x = torch.randn(32, 8)
    for step in range(3):
        model.zero_grad()
        model(x).square().mean().backward()
        assert monitor.step_is_healthy(model, step=step)
        assert monitor._plan.fused
        expected = [torch.linalg.vector_norm(p.grad).item() for p in model.parameters()]
        assert list(monitor.last_layer_norms().values())[:-1] == pytest.approx(expected, rel=1e-6)
    model[2].bias.grad[1] = math.nan
    assert not monitor.step_is_healthy(model, step=3)
    assert monitor.last_health().affected_layers == ["2.bias (NaN)"]


def test_channels_last_gradients_settle_on_torchs_read():
    """A layout the fused read declines is not retried every step (no wasted partial read)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    model = model.to(memory_format=torch.channels_last)
    monitor = GradientMonitor()
    x = torch.randn(5, 3, 8, 8).to(memory_format=torch.channels_last)
    for _ in range(3):
        model.zero_grad()
        model(x).sum().backward()
        assert not model[0].weight.grad.is_contiguous()
        assert monitor.step_is_healthy(model)
        expected = [torch.linalg.vector_norm(p.grad).item() for p in model.parameters()]
        assert list(monitor.last_layer_norms().values())[:-1] == pytest.approx(expected, rel=1e-6)
    assert not monitor._plan.fused and monitor._plan.plain


def test_a_layer_without_gradients_leaves_the_other_layers_norms_as_they_were():
    """A frozen layer sends the check down the general read: the same norms come back."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    model(torch.randn(64, 784)).square().mean().backward()
    whole = GradientMonitor()
    assert whole.step_is_healthy(model)
    model[2].weight.grad = model[2].bias.grad = None  # as a frozen layer leaves them
    partial = GradientMonitor()
    assert partial.step_is_healthy(model)
    assert not partial._plan.fused  # the general read
    expected = {k: v for k, v in whole.last_layer_norms().items() if k.startswith("grad/0.")}
    assert {k: v for k, v in partial.last_layer_norms().items() if k.startswith("grad/0.")} == (
        expected
    )
    assert len(expected) == 2
