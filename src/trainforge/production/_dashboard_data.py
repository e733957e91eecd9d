"""Shaping metric frames for the dashboard: wide by step, drift per feature, the task metric.

Kept apart from the drawing code: these functions take and return plain pandas objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONFIDENCE",
    "as_dict",
    "drift_table",
    "field",
    "is_split",
    "subtitle",
    "task_metrics",
    "wide",
]

CONFIDENCE = ("confidence_top1", "confidence_top5", "ece", "entropy")


def wide(metrics_df: Any) -> pd.DataFrame:
    """Metrics as one column per name, indexed by step (long frames are pivoted)."""
    import pandas as pd

    if not isinstance(metrics_df, pd.DataFrame):
        raise TypeError(
            f"metrics_df must be a pandas DataFrame, got {type(metrics_df).__name__}; "
            "use MetricsEngine.get_summary() or a frame with key, value and step columns"
        )
    frame = metrics_df
    if {"key", "value"} <= set(frame.columns):
        if "step" not in frame.columns:
            raise ValueError("a long metrics frame (key, value) needs a step column")
        frame = frame.pivot_table(index="step", columns="key", values="value", aggfunc="last")
        frame.columns.name = None
    elif "step" in frame.columns:
        frame = frame.set_index("step")
    frame = frame.sort_index()
    frame.index.name = frame.index.name or "step"
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    return numeric.dropna(axis=1, how="all")


def drift_table(frame: pd.DataFrame, drift_data: Any) -> pd.DataFrame:
    """Drift per feature: columns are feature names, one row per measurement."""
    import pandas as pd

    columns = {
        c.split("/")[1]: frame[c]
        for c in frame.columns
        if c.startswith("drift/") and c.endswith("/jsd")
    }
    table = pd.DataFrame(columns).dropna(how="all") if columns else pd.DataFrame()
    if drift_data is None:
        return table
    extra: pd.DataFrame
    if isinstance(drift_data, pd.DataFrame):
        renamed = {
            c: c.split("/")[1] if str(c).startswith("drift/") else c for c in drift_data.columns
        }
        extra = drift_data.rename(columns=renamed)
        extra = extra.drop(columns=[c for c in ("epoch", "step") if c in extra.columns])
    elif isinstance(drift_data, Mapping):
        extra = pd.DataFrame(
            {str(k): pd.Series(list(v), dtype=float) for k, v in drift_data.items()}
        )
    elif isinstance(drift_data, Iterable):
        rows = []
        for item in drift_data:
            details = field(item, "details")
            if not isinstance(details, Mapping):
                raise TypeError(
                    "drift_data items must have a 'details' mapping of feature -> JS divergence "
                    f"(as DriftMetrics), got {type(item).__name__}"
                )
            rows.append({str(k): float(v) for k, v in details.items()})
        extra = pd.DataFrame(rows)
    else:
        raise TypeError(
            "drift_data must be a DataFrame, a mapping {feature: [values]} or a sequence of "
            f"DriftMetrics, got {type(drift_data).__name__}"
        )
    extra = extra.apply(pd.to_numeric, errors="coerce")
    if table.empty:
        extra.index.name = "measurement"
        return extra
    return pd.concat([table, extra], ignore_index=True)


def task_metrics(columns: Sequence[str], cfg: Mapping[str, Any]) -> list[str]:
    """``checkpoint.monitor`` when it is not a loss, else accuracy, else the first task metric."""
    monitor = (cfg.get("checkpoint") or {}).get("monitor") if isinstance(cfg, Mapping) else None
    chosen: list[str] = []
    if isinstance(monitor, str) and monitor in columns and "loss" not in monitor:
        chosen.append(monitor)
    for name in ("val/acc", "train/acc"):
        if name in columns and name not in chosen:
            chosen.append(name)
    if chosen:
        return chosen
    for column in columns:
        leaf = column.split("/", 1)[-1]
        if is_split(column) and not leaf.startswith("loss") and leaf not in CONFIDENCE:
            return [column]
    return []


def is_split(name: str) -> bool:
    return name.split("/", 1)[0] in ("train", "val", "test") and "/" in name


def as_dict(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise TypeError(
        f"config must be a mapping or an object with to_dict(), got {type(config).__name__}"
    )


def subtitle(cfg: Mapping[str, Any]) -> str:
    parts = []
    for section, key in (
        ("run", "name"),
        ("model", "name"),
        ("optim", "name"),
        ("optim", "lr"),
        ("data", "batch_size"),
    ):
        value = (cfg.get(section) or {}).get(key) if isinstance(cfg.get(section), Mapping) else None
        if value is not None:
            parts.append(f"{section}.{key}={value}")
    return "  ".join(parts)


def field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
