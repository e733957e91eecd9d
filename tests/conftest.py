"""Test-session setup: hermetic caches, no network telemetry, no stray output dirs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

# Third-party tools (matplotlib, wandb, mlflow, comet_ml, onnxruntime) write caches under $HOME:
# point everything at a throwaway directory before any of them is imported.
_HOME = Path(tempfile.mkdtemp(prefix="trainforge-test-home-"))
for var, sub in (
    ("HOME", ""),
    ("XDG_CACHE_HOME", ".cache"),
    ("MPLCONFIGDIR", ".matplotlib"),
    ("WANDB_DIR", "wandb"),
    ("WANDB_CACHE_DIR", "wandb-cache"),
    ("WANDB_CONFIG_DIR", "wandb-config"),
):
    path = _HOME / sub
    path.mkdir(parents=True, exist_ok=True)
    os.environ[var] = str(path)
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# CLI tables off a terminal take their width from COLUMNS: one wide width for every test
# (and every subprocess), whatever the terminal or another library left there.
os.environ["COLUMNS"] = "200"
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
# comet_ml: no error reports to Sentry (enabled for a random share of imports, which also
# warns SentryHubDeprecationWarning) and no look-up of the route to comet.com for the IP
# (without network it leaves an unclosed socket: ResourceWarning).
os.environ["COMET_ERROR_TRACKING_ENABLE"] = "false"
os.environ["COMET_AUTO_LOG_ENV_HOST"] = "false"
os.environ.pop("COMET_API_KEY", None)
os.environ.pop("TRAINFORGE_ENV", None)
os.environ.pop("TRAINFORGE_DB", None)
for _name in [n for n in os.environ if n.startswith("TRAINFORGE__")]:
    os.environ.pop(_name)


def _short_digits(tmp_path: Path, *extra: str) -> Any:
    from trainforge.config import load_config

    return load_config(
        template="digits",
        cli=[
            "trainer.engine=lightning",
            f"run.output_dir={tmp_path / 'outputs'}",
            f"tracking.database=sqlite:///{tmp_path / 't.db'}",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=6",
            "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=2",
            "callbacks.monitoring.log_frequency=2",
            *extra,
        ],
        environ={},
    )


@pytest.fixture
def digits_config():
    """``digits_config(tmp_path, *overrides)``: digits under Lightning, 2 epochs of 6
    batches, logged every 2 steps, tracked in ``tmp_path/t.db``."""
    return _short_digits
