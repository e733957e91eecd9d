"""``trainforge ui`` as a real subprocess: serves, binds loopback, warns, refuses a busy port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from trainforge.tracking import ExperimentDB
from trainforge.ui import is_loopback


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(db: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "trainforge.cli", "ui", "--db", db, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for(url: str, proc: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not answer: {proc.communicate()}") from None
            time.sleep(0.1)


@pytest.fixture
def db(tmp_path) -> str:
    path = str(tmp_path / "cli.db")
    store = ExperimentDB(path)
    store.log_run("one")
    store.close()
    return path


def test_ui_serves_the_store_and_warns_about_a_non_loopback_host(db):
    port = _free_port()
    proc = _start(db, "--host", "0.0.0.0", "--port", str(port))
    try:
        info = _wait_for(f"http://127.0.0.1:{port}/api/info", proc)
        assert info["store"].endswith("cli.db") and info["read_only"] is True
        runs = _wait_for(f"http://127.0.0.1:{port}/api/runs", proc)
        assert [r["name"] for r in runs["runs"]] == ["one"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert f"http://0.0.0.0:{port}/" in out
    assert "serving on 0.0.0.0" in err and "no login" in err


def test_the_default_host_is_loopback():
    from trainforge.cli._ui_cmd import ui
    from trainforge.ui import DEFAULT_HOST

    assert DEFAULT_HOST == "127.0.0.1" and is_loopback(DEFAULT_HOST)
    assert ui.__defaults__[1] == "127.0.0.1"  # the --host option's default


def test_a_busy_port_is_a_clear_error_with_exit_1(db):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _start(db, "--port", str(port))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in err and "--port" in err
    assert "Traceback" not in err


def test_a_port_out_of_range_is_refused_clearly(db, capsys):
    from trainforge.cli import main
    from trainforge.errors import UiServerError
    from trainforge.ui import serve

    assert main(["ui", "--db", db, "--port", "99999"]) == 2  # a usage error, no traceback
    assert "Invalid value for '--port'" in capsys.readouterr().err
    with pytest.raises(UiServerError, match="from 0 to 65535"):
        serve(db, port=70000)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_a_missing_sqlite_store_is_refused_not_created(tmp_path, capsys):
    from trainforge.cli import main

    missing = tmp_path / "typo.db"
    assert main(["ui", "--db", str(missing), "--port", str(_free_port())]) == 1
    err = capsys.readouterr().err
    assert f"no tracking database at {missing}" in err and "Traceback" not in err
    assert not missing.exists()
