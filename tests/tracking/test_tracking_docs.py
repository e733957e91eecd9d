"""The Python examples in docs/tracking.md run as written, each in a fresh directory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "tracking.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINFORGE_DB", raising=False)
    namespace: dict[str, object] = {}
    exec(compile(BLOCKS[index], f"{DOC.name}[{index}]", "exec"), namespace)
    tracker = namespace.get("tracker")
    if tracker is not None:
        assert tracker.status == "completed"  # type: ignore[attr-defined]
