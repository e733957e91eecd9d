"""The run's own CSV and TensorBoard writers write what Lightning's loggers write.

Both drivers log through ``CSVWriter`` and ``TensorBoardWriter`` (no Lightning import);
users who open ``metrics.csv``, ``hparams.yaml`` or the event file with pandas or
TensorBoard must see exactly what Lightning's ``CSVLogger`` / ``TensorBoardLogger`` give.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trainforge.engine import CSVWriter, TensorBoardWriter

PARAMS = {
    "optim": {"lr": 0.001, "betas": [0.9, 0.999], "scheduler": "cosine"},
    "run": {"name": None, "tags": ["a", "b"]},
    "trainer": {"max_epochs": 3, "precision": "32-true"},
}

names = st.sampled_from(["train/loss", "val/loss", "val/acc", "lr/pg1", "grad/0.weight/norm"])
rows = st.lists(
    st.tuples(
        st.integers(0, 10_000),
        st.dictionaries(
            names, st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1
        ),
    ),
    min_size=1,
    max_size=30,
)


def _log(logger, logged, params=PARAMS):
    logger.log_hyperparams(params)
    for step, metrics in logged:
        logger.log_metrics(metrics, step=step)
    logger.finalize("success")


@settings(max_examples=40, deadline=None)
@given(logged=rows, flush_every=st.integers(1, 7))
def test_csv_files_are_lightnings_byte_for_byte(tmp_path_factory, logged, flush_every):
    root = tmp_path_factory.mktemp("csv")
    ours = CSVWriter(root / "ours", flush_every=flush_every)
    theirs = CSVLogger(save_dir=root / "theirs", name="", version="")
    _log(ours, logged)
    _log(theirs, logged)
    for name in ("metrics.csv", "hparams.yaml"):
        assert (root / "ours" / name).read_bytes() == (Path(theirs.log_dir) / name).read_bytes()


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


@settings(max_examples=25, deadline=None)
@given(logged=rows, flush_every=st.integers(1, 50))
def test_tensorboard_reads_the_same_scalars(tmp_path_factory, logged, flush_every):
    root = tmp_path_factory.mktemp("tb")
    ours = TensorBoardWriter(root / "ours", flush_every=flush_every)
    theirs = TensorBoardLogger(
        save_dir=root / "theirs", name="", version="", default_hp_metric=False
    )
    _log(ours, logged)
    _log(theirs, logged)
    assert _scalars(root / "ours") == _scalars(Path(theirs.log_dir))
    theirs_yaml = (Path(theirs.log_dir) / "hparams.yaml").read_bytes()
    assert (root / "ours" / "hparams.yaml").read_bytes() == theirs_yaml


def test_tensorboard_histograms_are_readable(tmp_path):
    writer = TensorBoardWriter(tmp_path)
    writer.experiment.add_histogram("grad/distribution", torch.randn(1000), global_step=5)
    writer.finalize("success")
    events = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0})
    events.Reload()
    (histogram,) = events.Histograms("grad/distribution")
    assert histogram.step == 5
    assert histogram.histogram_value.num == 1000


def test_buffered_values_are_on_disk_after_save(tmp_path):
    """TensorBoard shows a running run: ``save()`` (or flush_secs) writes what is buffered."""
    writer = TensorBoardWriter(tmp_path, flush_every=10_000)
    writer.log_metrics({"train/loss": 0.5}, step=1)
    assert _scalars(tmp_path) == {}
    writer.save()
    assert _scalars(tmp_path) == {"train/loss": [(1, 0.5)]}
    csv_writer = CSVWriter(tmp_path / "csv", flush_every=10_000)
    csv_writer.log_metrics({"train/loss": 0.5}, step=1)
    csv_writer.save()
    assert (tmp_path / "csv" / "metrics.csv").read_text().splitlines() == [
        "step,train/loss",
        "1,0.5",
    ]


@pytest.mark.parametrize("secs", [0.0])
def test_a_quiet_period_flushes_on_the_next_value(tmp_path, secs):
    writer = TensorBoardWriter(tmp_path, flush_every=10_000, flush_secs=secs)
    writer.log_metrics({"train/loss": math.pi}, step=3)
    assert _scalars(tmp_path) == {"train/loss": [(3, pytest.approx(math.pi))]}
