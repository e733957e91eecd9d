"""``trainforge runs plot RUN --dashboard``: a run's history into :class:`Dashboard`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_dashboard"]


def write_dashboard(db: Any, run_id: int, output: Path) -> Path:
    """Draw run ``run_id`` of ExperimentDB ``db`` (10 panels if it logged drift) to ``output``."""
    import pandas as pd

    from trainforge.production import Dashboard

    run = db.get_run(run_id)
    keys = Dashboard.metric_keys(run["metrics"])
    frames = [db.get_metric_history(run_id, key).assign(key=key) for key in keys]
    history = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["step", "key", "value"])
    )
    title = f"run {run_id}: {run['name']} ({run['status']})"
    board = Dashboard()
    if any(key.startswith("drift/") for key in keys):
        board.plot_with_drift(history, None, run["config"], title, output=output)
    else:
        board.plot(history, run["config"], title, output=output)
    return output
