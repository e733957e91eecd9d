"""``trainforge train --dry-run``: the plan of a run, per driver and process count."""

import pytest

from trainforge.cli import main


@pytest.mark.parametrize(
    ("overrides", "driver", "steps"),
    [
        ([], "lightning, 1 process", "345"),  # 23 batches x 15 epochs
        (["trainer.engine=plain"], "plain, 1 process", "345"),
        (["trainer.strategy=ddp", "trainer.devices=2"], "lightning, 2 processes", "180"),
    ],
)
def test_dry_run_prints_the_plan_and_trains_nothing(
    tmp_path, monkeypatch, capsys, overrides, driver, steps
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["train", "--dry-run", *overrides]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing was trained" in out
    assert driver in out
    assert f"optimizer steps │ {steps}" in out
    assert not (tmp_path / "outputs").exists()
