"""Test-session setup: hermetic caches, no network telemetry, no stray output dirs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
