"""The API reference (docs/reference/, `make docs`) lists every public name with a docstring."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import griffe
import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference"
PAGES = {
    "trainforge.config": "config.md",
    "trainforge.train": "train.md",
    "trainforge.checkpoint": "checkpoint.md",
    "trainforge.tracking": "tracking.md",
    "trainforge.engine": "engine.md",
    "trainforge.lightning": "lightning.md",
    "trainforge.hooks": "hooks.md",
    "trainforge.errors": "errors.md",
}


@pytest.fixture(scope="module")
def package() -> griffe.Module:
    return griffe.load("trainforge", search_paths=[ROOT / "src"], resolve_aliases=False)


def _listed_members(page: Path) -> list[str]:
    return re.findall(r"^ {8}- (\S+)$", page.read_text(encoding="utf-8"), flags=re.M)


@pytest.mark.parametrize(("module", "page"), PAGES.items())
def test_every_public_name_is_in_the_reference(module: str, page: str):
    public = sorted(importlib.import_module(module).__all__)
    listed = sorted(_listed_members(REFERENCE / page))
    assert listed == public, (
        f"docs/reference/{page} lists {sorted(set(listed) - set(public))} which {module}.__all__ "
        f"does not have, and misses {sorted(set(public) - set(listed))}: add each missing name "
        f"under 'members:'"
    )


@pytest.mark.parametrize("module", PAGES)
def test_every_public_name_has_a_docstring(module: str, package: griffe.Module):
    missing = []
    for name in importlib.import_module(module).__all__:
        member = package[f"{module.removeprefix('trainforge.')}.{name}"]
        target = member.final_target if member.is_alias else member
        if target.docstring is None or not target.docstring.value.strip():
            missing.append(f"{target.path} ({target.relative_filepath}:{target.lineno})")
    assert not missing, "no docstring: " + ", ".join(missing)


def test_the_top_level_names_are_documented():
    import trainforge

    text = (REFERENCE / "trainforge.md").read_text(encoding="utf-8")
    missing = [name for name in trainforge.__all__ if f"| `{name}` |" not in text]
    assert not missing, f"docs/reference/trainforge.md does not list {missing}"


#: The public APIs the source documents show in use; each docstring carries an executed
#: ``Examples:`` section (run by test_docstring_examples.py).
SEEDED_EXAMPLES = [
    "trainforge.set_random_seed",
    "trainforge.config.TrainingConfig",
    "trainforge.config.TrainingConfigBuilder",
    "trainforge.config.load_config",
    "trainforge.train.Trainer",
    "trainforge.checkpoint.CheckpointManager",
    "trainforge.tracking.ExperimentTracker",
    "trainforge.tracking.ExperimentDB",
    "trainforge.tracking.ModelRegistry",
    "trainforge.engine.MetricsEngine",
    "trainforge.engine.AlertConfig",
    "trainforge.engine.GradientAccumulator",
    "trainforge.engine.GradientMonitor",
    "trainforge.engine.get_loss_strategy",
    "trainforge.lightning.CheckpointEngineCallback",
    "trainforge.lightning.UniversalDataModule",
    "trainforge.jobs.JobManager",
    "trainforge.jobs.Worker",
    "trainforge.jobs.TrainingScheduler",
    "trainforge.production.create_export_bundle",
    "trainforge.production.RetrainingTriggerManager",
    "trainforge.production.Dashboard",
]


@pytest.mark.parametrize("name", SEEDED_EXAMPLES)
def test_seeded_apis_have_an_examples_section(name: str):
    module, _, attribute = name.rpartition(".")
    target = getattr(importlib.import_module(module), attribute)
    docstring = inspect.getdoc(target) or ""
    section = docstring.partition("\nExamples:\n")[2]
    assert ">>> " in section, (
        f"{name}: its docstring needs an 'Examples:' section (Google style) with '>>>' lines"
    )
