"""The PyTorch profiler: a trace TensorBoard's plugin reads, and the operator table."""

from __future__ import annotations

import pytest

from trainforge.lightning import build_profiler, top_operators_table

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*LeafSpec.*is deprecated:FutureWarning",
    "ignore:.*does not have many workers.*",
    "ignore:.*log_every_n_steps.*",
    "ignore:You defined a `validation_step` but have no `val_dataloader`.*",
)


def test_pytorch_profiler_leaves_a_trace_and_an_operator_table(tiny, tmp_path):
    profiler = build_profiler("pytorch", dirpath=tmp_path, schedule=(1, 1, 3, 1), total_steps=6)
    fit = tiny.trainer(max_steps=6, profiler=profiler)
    fit.fit(tiny.task_module(), train_dataloaders=tiny.loader(n=96))
    assert list(tmp_path.glob("*.pt.trace.json"))

    table = top_operators_table(profiler, n=5)
    assert "self CPU ms" in table and len(table.splitlines()) == 7
    assert (tmp_path / "top_operators.txt").read_text().strip() == table

    from_traces = top_operators_table(tmp_path, n=5, save_to=tmp_path / "from_traces.txt")
    assert "aten::" in from_traces


def test_a_schedule_longer_than_the_run_warns(tmp_path):
    with pytest.warns(UserWarning, match="no step will be recorded"):
        build_profiler("pytorch", dirpath=tmp_path, schedule=(2, 2, 3, 1), total_steps=5)


@pytest.mark.parametrize(
    ("kind", "name"), [("simple", "SimpleProfiler"), ("advanced", "AdvancedProfiler")]
)
def test_other_profilers(kind, name, tmp_path):
    assert type(build_profiler(kind, dirpath=tmp_path)).__name__ == name


def test_memory_profiling_adds_a_memory_column(tiny, tmp_path):
    profiler = build_profiler(
        "pytorch", dirpath=tmp_path, schedule=(1, 1, 3, 1), memory=True, total_steps=6
    )
    fit = tiny.trainer(max_steps=6, profiler=profiler)
    fit.fit(tiny.task_module(), train_dataloaders=tiny.loader(n=96))
    header = top_operators_table(profiler, n=5).splitlines()[0]
    assert "self CPU MB" in header
    assert "self CUDA ms" not in header  # no device time on the CPU
