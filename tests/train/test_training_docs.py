"""The Python examples of "Bring your own model and data" in docs/training.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("datasets")
pytest.importorskip("tokenizers")

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"
TEXT = DOC.read_text(encoding="utf-8")
SECTION = TEXT[TEXT.index("## Bring your own model and data") :]
SECTION = SECTION[: SECTION.index("\n## ")]
BLOCKS = re.findall(r"```python\n(.*?)```", SECTION, flags=re.S)


def test_the_section_has_a_runnable_example():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_bring_your_own_example_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"{DOC.name}[byo {index}]", "exec"), {})
    printed = capsys.readouterr().out
    assert "val/perplexity" in printed
    assert printed.strip().splitlines()[-1].startswith("train/loss 2 ")
