"""Every documented command with bad arguments: exit 1 (a user error) or 2 (usage), one
clear message, never a traceback, nothing created or lost."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from trainforge.checkpoint import CheckpointManager
from trainforge.cli import main
from trainforge.tracking import ExperimentDB, ModelRegistry

# (command line as a shell would split it, exit code, a part of the message); {db},
# {ckpts}, {ckpt}, {file}, {garbage}, {empty} and {tmp} are filled in by the fixture below.
CASES: list[tuple[str, int, str]] = [
    # train and the global options
    ("train --template nope", 1, "unknown template 'nope'"),
    ("train optim.lr=abc", 1, "optim.lr"),
    ("train {tmp}/missing.yaml", 1, "config file not found"),
    ("train --preset huge", 1, "huge"),
    ("train --env nope --dry-run", 1, "unknown environment 'nope'"),
    ("train --dry-run trainer.max_epochs=-1", 1, "trainer.max_epochs"),
    ("train --dry-run optim.lrr=0.1", 1, "did you mean"),
    ("train --dry-run optim.lr=inf", 1, "optim.lr: Input should be a finite number"),
    ("train --dry-run optim.betas=[2,0.5]", 1, "optim.betas.0: Input should be less than 1"),
    (
        "train --dry-run optim.scheduler=step optim.scheduler_kwargs.bogus=3",
        1,
        "the step schedule has no argument 'bogus' (it takes: step_size, gamma)",
    ),
    (
        "train --dry-run optim.scheduler=onecycle optim.scheduler_kwargs.bogus=2",
        1,
        "onecycle schedule has no argument 'bogus'",
    ),
    ("train trainer.engine=plain --resume {tmp}/does/not/exist", 1, "does not exist"),
    ("train trainer.engine=plain --resume {garbage}", 1, "not a trainforge checkpoint"),
    ("--log-format xml train --dry-run", 2, "unknown log format 'xml'"),
    ("--log-level LOUD train --dry-run", 2, "unknown log level 'LOUD'"),
    ("no-such-command", 2, "No such command"),
    # config
    ("config show {tmp}/missing.yaml", 1, "config file not found"),
    ("config validate {garbage}", 1, "garbage"),
    ("config diff", 2, "Missing argument"),
    ("config diff {tmp}/a.yaml {tmp}/b.yaml", 1, "not found"),
    ("config legend --bogus", 2, "No such option"),
    ("config templates extra", 2, "unexpected extra argument"),
    # runs
    ("runs list --db {tmp}/no/such/dir/x.db", 1, "no tracking database at"),
    ("runs list --db {db} --status nope", 1, "unknown run status 'nope'"),
    ("runs list --db {db} --status \"completed' or attributes.id > '0\"", 1, "unknown run status"),
    ("runs list --db {db} -n -1", 2, "greater than or equal to 0"),
    ("runs list --db {db} --stale-after -5", 2, "greater than or equal to 0"),
    ("runs list --db notaurl://x", 1, "notaurl"),
    ("runs list --db postgresql+psycopg://postgres@127.0.0.1:1/none", 1, "unavailable"),
    ("runs --config {tmp}/missing.yaml list", 1, "config file not found"),
    ("runs show 99999999999999999999 --db {db}", 1, "no run with id 99999999999999999999"),
    ("runs show 0 --db {db}", 1, "no run with id 0"),
    ("runs show abc --db {db}", 2, "Input should be a valid integer"),
    ("runs show --db {db}", 2, "Missing argument"),
    ("runs compare --db {db}", 2, "Missing argument"),
    ("runs compare 1 x --db {db}", 2, "Input should be a valid integer"),
    ("runs compare 1 999 --db {db}", 1, "no run with id 999"),
    ("runs search 'metrics.x <' --db {db}", 1, "position"),
    ("runs search '" + "(" * 40 + "tags.a' --db {db}", 1, "nested more than 32"),
    ("runs search 'attributes.name < 5' --db {db}", 1, "quote the value"),
    ("runs search \"attributes.statuss = 'x'\" --db {db}", 1, "did you mean 'attributes.status'"),
    ("runs search tags.a --db {db} -o 'metrics.x sideways'", 1, "asc/desc"),
    ("runs search tags.a --db {db} -n -5", 2, "greater than or equal to 0"),
    ("runs plot 1 -m nothing -o {tmp}/p.png --db {db}", 1, "none of the runs"),
    ("runs plot 1 --db {db}", 1, "runs plot needs --metric/-m"),
    ("runs plot 999 -m loss --db {db}", 1, "no run with id 999"),
    # ckpt
    ("ckpt list {tmp}/nope", 1, "does not exist"),
    ("ckpt list {file}", 1, "is not a directory"),
    ("ckpt list {ckpts} --mode sideways", 1, "mode must be 'min' or 'max'"),
    ("ckpt list {ckpts} --monitor val_loss", 1, "recorded 'val/acc' (max)"),
    ("ckpt inspect {tmp}/nope", 1, "does not exist"),
    ("ckpt inspect {garbage}", 1, "garbage"),
    ("ckpt inspect {empty}", 1, "neither a checkpoint nor a directory of checkpoints"),
    ("ckpt verify {tmp}/nope", 1, "does not exist"),
    ("ckpt verify {empty}", 1, "neither a checkpoint"),
    ("ckpt verify {ckpt} --deepest", 2, "No such option"),
    ("ckpt migrate {tmp}/nope", 1, "does not exist"),
    ("ckpt migrate {garbage}", 1, "--into"),
    ("ckpt migrate {garbage} --into {tmp}/imported", 1, "garbage"),
    ("ckpt prune {tmp}/nope", 1, "does not exist"),
    ("ckpt prune {ckpts} --keep-last-n -1", 2, "greater than or equal to 0"),
    ("ckpt prune {ckpts} --keep-best-k abc", 2, "Input should be a valid integer"),
    ("ckpt prune {ckpts} --monitor val_loss", 1, "recorded 'val/acc' (max)"),
    ("ckpt bogus", 2, "No such command"),
    # registry
    ("registry register ghost --checkpoint {tmp}/does/not/exist --db {db}", 1, "no such file"),
    ("registry register ghost --db {db}", 2, "Missing option '--checkpoint'"),
    ("registry register m --checkpoint {ckpt} -m loss --db {db}", 1, "KEY=NUMBER"),
    ("registry register m --checkpoint {ckpt} --run-id 99999999999 --db {db}", 1, "not a run id"),
    ("registry register m --checkpoint {ckpt} --run-id 77 --db {db}", 1, "77 is not a run"),
    ("registry register m --checkpoint {ckpt} --parent-id 42 --db {db}", 1, "no registered model"),
    ("registry register '' --checkpoint {ckpt} --db {db}", 1, "model name must not be empty"),
    ("registry register m --checkpoint {ckpt} --db {tmp}/no/such/x.db", 1, "no tracking database"),
    ("registry promote 1 prodution --db {db}", 1, "did you mean 'production'"),
    ("registry promote 99999999999999999999 production --db {db}", 1, "no registered model"),
    ("registry promote abc production --db {db}", 2, "Input should be a valid integer"),
    ("registry promote 1 production --alias --db {db}", 1, "is a lifecycle tag"),
    ("registry list --db {tmp}/missing.db", 1, "no tracking database"),
    ("registry compare 42 --db {db}", 1, "no registered model with id 42"),
    ("registry lineage 42 --db {db}", 1, "no registered model with id 42"),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A store with one run and one model, a checkpoint directory and odd files."""
    tmp = tmp_path_factory.mktemp("bad-arguments")
    db = ExperimentDB(str(tmp / "runs.db"))
    run_id = db.log_run("run", {"optim": {"lr": 0.1}})
    db.log_metric(run_id, "loss", 0.5, step=0)
    ckpts = tmp / "ckpts"
    manager = CheckpointManager(ckpts, monitor="val/acc", mode="max")
    ckpt = manager.save(model=torch.nn.Linear(2, 2), epoch=0, global_step=1, metrics={"val/acc": 1})
    ModelRegistry(db.store).register_model("m", checkpoint_path=str(ckpt))
    db.close()
    (tmp / "garbage").write_bytes(b"\x00garbage: [")
    (tmp / "file.txt").write_text("not a directory")
    (tmp / "empty").mkdir()
    return {
        "tmp": str(tmp),
        "db": str(tmp / "runs.db"),
        "ckpts": str(ckpts),
        "ckpt": str(ckpt),
        "garbage": str(tmp / "garbage"),
        "file": str(tmp / "file.txt"),
        "empty": str(tmp / "empty"),
    }


def _argv(template: str, places: dict[str, str]) -> list[str]:
    return [word.format(**places) for word in shlex.split(template)]


@pytest.mark.parametrize(("template", "code", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_arguments_exit_1_or_2_with_a_message_and_no_traceback(
    places: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    template: str,
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(places["tmp"])
    monkeypatch.setenv("COLUMNS", "300")
    assert main(_argv(template, places)) == code
    out, err = capsys.readouterr()
    assert message in err, err
    assert "Traceback" not in out + err
    assert not (Path(places["tmp"]) / "no").exists() and not Path("/nonexistent").exists()


def test_cases_cover_every_command_group() -> None:
    assert len(CASES) >= 60
    groups = {c[0].split()[0] for c in CASES}
    assert {"train", "config", "runs", "ckpt", "registry"} <= groups


def test_the_installed_entry_point_prints_no_traceback(places: dict[str, str]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainforge.cli",
            "runs",
            "show",
            "99999999999999999999",
            "--db",
            places["db"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "no run with id" in done.stderr
    assert "Traceback" not in done.stderr


def test_log_format_json_applies_to_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = [
        "--log-format",
        "json",
        "train",
        "trainer.engine=plain",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.enable_progress_bar=false",
        "run.log_level=INFO",
        "loggers.tensorboard.enabled=false",
    ]
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    records: list[Any] = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and len(records) == len([ln for ln in lines if "trainforge" in ln])
    assert {"time", "level", "logger"} <= set(records[0])


def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path):
    # `trainforge runs list --json | head -c 100`: the write fails with EPIPE
    db = ExperimentDB(str(tmp_path / "many.db"))
    for n in range(400):
        db.log_run(f"run-{n}", {"optim": {"lr": n * 1e-4}, "note": "x" * 200})
    db.close()
    command = [sys.executable, "-m", "trainforge.cli", "runs", "list", "--json", "-n", "9999"]
    proc = subprocess.Popen(
        [*command, "--db", str(tmp_path / "many.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0
    assert err == ""  # no traceback, no "Exception ignored" at exit


def test_inspecting_a_text_file_asks_whether_it_is_a_checkpoint(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert main(["ckpt", "inspect", str(notes)]) == 1
    err = capsys.readouterr().err
    assert f"cannot deserialise {notes}" in err and "is it a checkpoint?" in err
    assert "alternative" not in err  # a lone file: nothing else was looked for
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["train", "{path}.yaml"],
        ["ckpt", "inspect", "{path}"],
        ["runs", "list", "--db", "sqlite:///{path}/t.db"],
    ],
)
def test_a_path_the_machine_refuses_is_one_error_line(tmp_path, capsys, command):
    # a name longer than the file system allows: an OSError no command checks for itself
    path = str(tmp_path / ("n" * 300))
    assert main([part.format(path=path) for part in command]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: File name too long (") and path in err
    assert "hint: check the path" in err and "Traceback" not in err
