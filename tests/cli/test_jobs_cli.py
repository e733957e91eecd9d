"""`trainforge jobs` and `trainforge schedules`: JSON output, and bad input that exits 1
with one clear message, no traceback, and nothing queued."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from trainforge.cli import main
from trainforge.config import load_config
from trainforge.jobs import JobManager

BAD: list[tuple[str, int, str]] = [
    ("jobs submit --db {db} --type trian", 1, "unknown job type 'trian'; did you mean 'train'?"),
    ("jobs submit --db {db} optim.lrr=0.1", 1, "did you mean optim.lr?"),
    ("jobs submit --db {db} optim.lr=-1", 1, "optim.lr"),
    ("jobs submit --db {db} {tmp}/missing.yaml", 1, "config file not found"),
    ("jobs submit --db {db} --type evaluate checkpoint={tmp}/none", 1, "no checkpoint at"),
    ("jobs submit --db {db} --type evaluate split=val", 1, "'checkpoint' is required"),
    ("jobs submit --db {db} --type export formats=onnx", 1, "'checkpoint' is required"),
    ("jobs submit --db {db} --type export checkpoint=7", 1, "no checkpoint or run at '7'"),
    ("jobs submit --db {db} --type export checkpoint=1", 1, "run-000001 has no checkpoints"),
    (
        "jobs submit --db {db} --type export checkpoint={tmp} formats=onx",
        1,
        "unknown export format 'onx'; did you mean 'onnx'?",
    ),
    (
        "jobs submit --db {db} --type export checkpoint={tmp} fromats=onnx",
        1,
        "unknown field(s) fromats; did you mean 'formats'?",
    ),
    ("jobs submit --db {db} --type export checkpoint={tmp} output={tmp}", 1, "exists"),
    ("jobs submit --db {db} --type export checkpoint={tmp} overwrite=2", 1, "true or false"),
    ("jobs submit --db {db} --config-json '[1'", 1, "--config-json is not valid JSON"),
    ("jobs submit --db {db} --max-attempts 0", 1, "max_attempts must be at least 1"),
    ("jobs submit --db {db} --import no_such_module_xyz", 1, "--import no_such_module_xyz"),
    ("jobs show 999 --db {db}", 1, "no job with id 999"),
    ("jobs cancel 999 --db {db}", 1, "no job with id 999"),
    ("jobs retry 999 --db {db}", 1, "no job with id 999"),
    ("jobs list --db {db} --status queud", 1, "did you mean 'queued'"),
    ("jobs list --db {tmp}/no/such.db", 1, "no tracking database at"),
    ("jobs worker --db {db} --heartbeat 5 --stale-timeout 1", 1, "must be shorter than"),
    ("jobs show abc --db {db}", 2, "valid integer"),
    ("schedules create s '61 * * * *' --db {db}", 1, "invalid cron expression '61 * * * *'"),
    ("schedules create s 'every day' --db {db}", 1, "invalid cron expression"),
    ("schedules create s '* * * * *' --db {db} --timezone Mars/Base", 1, "unknown time zone"),
    ("schedules create s '* * * * *' --db {db} --catchup some", 1, "catch-up policy 'some'"),
    ("schedules create s '* * * * *' --db {db} --type trian", 1, "did you mean 'train'?"),
    ("schedules create s '* * * * *' --db {db} optim.lrr=1", 1, "did you mean optim.lr?"),
    ("schedules enable nope --db {db}", 1, "no schedule 'nope'"),
    ("schedules delete nope --db {db}", 1, "no schedule 'nope'"),
]


@pytest.fixture
def places(tmp_path: Path) -> dict[str, str]:
    """An empty job store in ``tmp_path``, and a run folder without checkpoints."""
    JobManager(f"sqlite:///{tmp_path / 'jobs.db'}")
    load_config().save(tmp_path / "outputs" / "run-000001" / "config.yaml")
    return {"tmp": str(tmp_path), "db": str(tmp_path / "jobs.db")}


def _run(template: str, places: dict[str, str], capsys) -> tuple[int, str, str]:
    code = main([word.format(**places) for word in shlex.split(template)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("template", "code", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_input_exits_with_one_message_and_queues_nothing(
    places, capsys, monkeypatch, template, code, message
):
    monkeypatch.chdir(places["tmp"])
    result, _, err = _run(template, places, capsys)
    assert result == code
    assert message in err, err
    assert "Traceback" not in err
    manager = JobManager(f"sqlite:///{places['db']}")
    assert manager.list_jobs() == []
    assert not (Path(places["tmp"]) / "no").exists()


def test_submit_list_show_cancel_retry_as_json(places, capsys, monkeypatch):
    monkeypatch.chdir(places["tmp"])
    code, out, _ = _run(
        "jobs submit --db {db} --priority 4 --json trainer.engine=plain trainer.max_epochs=1",
        places,
        capsys,
    )
    assert code == 0
    job = json.loads(out)
    assert (job["job_type"], job["status"], job["priority"]) == ("train", "queued", 4)
    config = job["config"]["config"]
    assert config["trainer"]["max_epochs"] == 1
    assert config["run"]["output_dir"] == str(Path(places["tmp"]) / "outputs")
    assert config["tracking"]["database"].endswith("jobs.db")  # the run links to its job
    code, out, _ = _run("jobs list --db {db} --json --status queued", places, capsys)
    assert [j["id"] for j in json.loads(out)] == [job["id"]]
    code, out, _ = _run(f"jobs cancel {job['id']} --db {{db}} --json", places, capsys)
    assert json.loads(out)["status"] == "cancelled"
    code, out, err = _run(f"jobs cancel {job['id']} --db {{db}}", places, capsys)
    assert code == 1 and "only a queued or running job can be cancelled" in err
    code, out, _ = _run(f"jobs retry {job['id']} --db {{db}} --json", places, capsys)
    assert json.loads(out)["status"] == "queued"
    code, out, _ = _run(f"jobs show {job['id']} --db {{db}} --json", places, capsys)
    assert json.loads(out)["runs"] == []
    code, out, _ = _run("jobs list --db {db}", places, capsys)
    assert code == 0 and "queued" in out


def test_schedules_commands_as_json(places, capsys, monkeypatch):
    monkeypatch.chdir(places["tmp"])
    create = "schedules create nightly '0 2 * * *' trainer.engine=plain --db {db} --json"
    code, out, _ = _run(create + " --timezone Europe/Berlin --catchup all", places, capsys)
    assert code == 0
    schedule = json.loads(out)
    assert (schedule["timezone"], schedule["catchup"], schedule["enabled"]) == (
        "Europe/Berlin",
        "all",
        True,
    )
    code, out, err = _run(create, places, capsys)
    assert code == 1 and "'nightly' exists already" in err
    code, out, _ = _run("schedules disable nightly --db {db} --json", places, capsys)
    assert json.loads(out)[0]["enabled"] is False
    code, out, _ = _run("schedules enable nightly --db {db} --json", places, capsys)
    assert json.loads(out)[0]["enabled"] is True
    code, out, _ = _run("schedules list --db {db} --json", places, capsys)
    assert [s["name"] for s in json.loads(out)] == ["nightly"]
    code, out, _ = _run("jobs scheduler --once --db {db} --json", places, capsys)
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events == ["scheduler started", "scheduler stopped"]  # nothing due yet
    code, out, _ = _run("schedules delete nightly --db {db} --json", places, capsys)
    assert json.loads(out) == {"deleted": "nightly"}
