"""``data.global_batch_size``: per-device batch x processes x accumulation, checked up front."""

from __future__ import annotations

import pytest

from trainforge.config import load_config
from trainforge.errors import ConfigError
from trainforge.train._build import task_spec_from_config
from trainforge.train._checks import check_run


def _check(*overrides: str) -> None:
    config = load_config(
        cli=["trainer.engine=lightning", "trainer.accelerator=cpu", *overrides], environ={}
    )
    check_run(config, task_spec_from_config(config), has_validation=True)


def test_a_global_batch_that_matches_runs():
    _check("trainer.devices=4", "data.batch_size=16", "data.global_batch_size=64")
    _check(
        "trainer.devices=2",
        "trainer.accumulate_grad_batches=3",
        "data.batch_size=8",
        "data.global_batch_size=48",
    )


def test_a_global_batch_the_processes_divide_names_the_per_device_size():
    with pytest.raises(ConfigError) as caught:
        _check("trainer.devices=4", "data.batch_size=64", "data.global_batch_size=128")
    assert (
        "data.global_batch_size: is 128 but data.batch_size=64 x 4 processes x "
        "trainer.accumulate_grad_batches=1 = 256; set data.batch_size=32 (per device)"
    ) in caught.value.user_message()


def test_a_global_batch_the_world_size_does_not_divide_is_refused():
    with pytest.raises(ConfigError, match="choose a global batch size that is a multiple of 6"):
        _check(
            "trainer.devices=3",
            "trainer.accumulate_grad_batches=2",
            "data.global_batch_size=100",
        )


def test_the_cli_refuses_it_before_training(workdir, train_cli):
    done = train_cli(
        workdir, "trainer.devices=3", "trainer.accelerator=cpu", "data.global_batch_size=100"
    )
    assert done.returncode == 1
    assert "3 processes x 1 accumulated batch do not divide it" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (workdir / "outputs").exists()
