"""docs/tutorial.ipynb runs top to bottom in a fresh directory and is stored without outputs.

What a fresh execution prints is kept in docs/tutorial.outputs.json, which the docs site
shows under each code cell; the test checks the stored outputs are what the notebook
prints now (times, durations and paths masked). After a deliberate change, refresh it:
``TRAINFORGE_UPDATE_TUTORIAL=1 python -m pytest -n 0 tests/docs/test_tutorial.py``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOTEBOOK = DOCS / "tutorial.ipynb"
OUTPUTS = DOCS / "tutorial.outputs.json"

#: Text that changes from one execution to the next.
VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?"), "<datetime>"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<time>"),
    (re.compile(r"\d+(\.\d+)?\s?(s|ms|min)\b"), "<duration>"),
    (re.compile(r"/tmp/\S+|/var/\S+"), "<tmp>"),
    (re.compile(r"\b[0-9a-f]{16,64}\b"), "<hash>"),
    (re.compile(r"-\d{8}-\d{6}\b"), "-<stamp>"),
    (re.compile(r"[ \t]+"), " "),
]


def normalise(text: str) -> str:
    """``text`` with what changes between executions masked."""
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.splitlines())


def cell_outputs(notebook: Any) -> list[list[dict[str, str]]]:
    """Per code cell, its outputs as ``{"text": ...}`` or ``{"image/png": base64}``."""
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        shown: list[dict[str, str]] = []
        for output in cell.outputs:
            data = output.get("data", {})
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                shown.append({"text": output["text"]})
            elif "image/png" in data:
                shown.append({"image/png": data["image/png"]})
            elif "text/plain" in data:
                shown.append({"text": data["text/plain"]})
        cells.append(shown)
    return cells


def comparable(cells: list[list[dict[str, str]]]) -> list[list[str]]:
    """What must stay the same: the normalised text, and where each figure is."""
    return [
        [normalise(item["text"]) if "text" in item else "<figure>" for item in cell]
        for cell in cells
    ]


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, f"{NOTEBOOK.name}: strip the outputs of cells {dirty}"


def test_the_stored_outputs_match_the_code_cells():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    stored = json.loads(OUTPUTS.read_text(encoding="utf-8"))
    sources = ["".join(cell.source) for cell in notebook.cells if cell.cell_type == "code"]
    assert stored["sources"] == sources, (
        f"{OUTPUTS.name} was made from other code cells: refresh it (see this module's docstring)"
    )


@pytest.mark.slow
def test_the_tutorial_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TRAINFORGE_DB", raising=False)
    monkeypatch.delenv("TRAINFORGE_ENV", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    printed = "\n".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "optim.lr" in printed and "(template:digits)" in printed
    assert "same validation accuracy: True" in printed
    assert "bit-exact: True" in printed
    assert any(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ), "the curves cell shows no figure"
    assert list((tmp_path / "outputs").glob("run-*/checkpoints/last"))

    fresh = cell_outputs(notebook)
    if os.environ.get("TRAINFORGE_UPDATE_TUTORIAL") == "1":
        sources = ["".join(cell.source) for cell in notebook.cells if cell.cell_type == "code"]
        record = {"sources": sources, "outputs": fresh}
        OUTPUTS.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    stored = json.loads(OUTPUTS.read_text(encoding="utf-8"))["outputs"]
    assert comparable(stored) == comparable(fresh), (
        f"{OUTPUTS.name} (what the docs site shows) differs from a fresh execution: "
        "refresh it (see this module's docstring)"
    )
