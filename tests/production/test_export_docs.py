"""The export and attention examples in docs/production.md run as written, in order."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from trainforge.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "production.md"


def _sections() -> str:
    """The text of the ``## Export ...`` sections (other sections have their own tests)."""
    parts = re.split(r"^(?=## )", DOC.read_text(encoding="utf-8"), flags=re.M)
    return "".join(p for p in parts if p.startswith("## Export"))


TEXT = _sections()
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
SHELL = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S)


def test_the_export_sections_have_examples():
    assert len(PYTHON) >= 4 and len(SHELL) >= 1


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*does not have many workers.*")
def test_the_shell_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINFORGE_DB", raising=False)
    for line in SHELL[0].strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "trainforge"
        if argv[1] == "train":  # kept small and quiet here
            argv += [
                "trainer.engine=plain",
                "trainer.limit_train_batches=2",
                "trainer.enable_progress_bar=false",
                "loggers.tensorboard.enabled=false",
            ]
        assert main(argv[1:]) == 0, line
    out = capsys.readouterr().out
    assert "digits-mlp" in out and "onnx,torchscript,pytorch" in out


def test_the_python_examples_run_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the example adds the bundle folder
    namespace: dict[str, object] = {}
    try:
        for index, block in enumerate(PYTHON):
            exec(compile(block, f"{DOC.name}[{index}]", "exec"), namespace)
    finally:
        sys.modules.pop("inference", None)  # the bundle's module, imported by the example
    out = capsys.readouterr().out
    assert "['onnx', 'torchscript', 'pytorch']" in out
    assert "True cpu ['<model>']" in out
    assert "'patched_layers': ['0', '1']" in out
