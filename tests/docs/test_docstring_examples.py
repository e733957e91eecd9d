"""Every ``Examples:`` section in the package's docstrings runs (doctest), so none can drift."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
# Lightning's own use of a deprecated torch pytree name (the examples that fit a model)
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*is deprecated:FutureWarning")


def _modules_with_examples() -> list[str]:
    """Dotted names of the modules whose source holds a ``>>>`` line (found without importing)."""
    names = []
    for path in sorted((SRC / "trainforge").rglob("*.py")):
        if path.name == "__main__.py" or ">>> " not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(SRC).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module", _modules_with_examples())
def test_docstring_examples_run(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    # each module's examples run in a fresh directory with the default tracking store
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRAINFORGE_DB", raising=False)
    monkeypatch.delenv("TRAINFORGE_ENV", raising=False)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    tests = [test for test in doctest.DocTestFinder().find(importlib.import_module(module))]
    for test in sorted(tests, key=lambda test: test.lineno or 0):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    skipped = [test.name for test in tests if "+SKIP" in "".join(e.source for e in test.examples)]
    assert not skipped, f"examples marked +SKIP are never run, so they can drift: {skipped}"
    assert runner.tries, f"{module}: its '>>>' lines hold no example doctest can find"
