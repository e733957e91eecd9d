"""Size presets: one word that sets batch size, schedule length and logging cadence.

Presets only touch generic training settings (never model-specific kwargs), so they
combine with any task template or user model.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

PRESETS: dict[str, dict[str, Any]] = {
    "small": {
        "data": {"batch_size": 32},
        "optim": {"lr": 3e-3},
        "trainer": {"max_epochs": 5, "log_every_n_steps": 5},
        "callbacks": {"monitoring": {"log_frequency": 10}},
        "checkpoint": {"keep_best_k": 1, "keep_last_n": 1},
    },
    "medium": {
        "data": {"batch_size": 64},
        "optim": {"lr": 1e-3, "warmup_ratio": 0.05},
        "trainer": {"max_epochs": 20, "log_every_n_steps": 20},
        "callbacks": {"monitoring": {"log_frequency": 50}},
        "checkpoint": {"keep_best_k": 3, "keep_last_n": 2},
    },
    "large": {
        "data": {"batch_size": 256, "num_workers": 4},
        "optim": {"lr": 3e-4, "warmup_ratio": 0.1},
        "trainer": {
            "max_epochs": 100,
            "accumulate_grad_batches": 2,
            "log_every_n_steps": 50,
            "checkpoint_every_n_steps": 1000,
        },
        "callbacks": {"monitoring": {"log_frequency": 200}},
        "checkpoint": {"keep_best_k": 5, "keep_last_n": 3},
    },
}
"""Size presets (``--preset NAME``): preset name to the nested config values it sets."""
