"""Dashboard: one PNG that shows how a run went, from its metric history.

The figure is built on a bare :class:`matplotlib.figure.Figure` (no pyplot), so it leaves
no global state and works on any backend, in a notebook or a headless worker. Panels are
chosen by metric name (SPEC section 3.11: ``train/loss``, ``lr/<group>``,
``grad/global_norm``, ``drift/<feature>/jsd``, ``health/...``); a panel whose metrics were
never logged says so in words instead of staying blank, so a missing curve is never
mistaken for a flat one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainforge.production._dashboard_data import (
    CONFIDENCE,
    as_dict,
    drift_table,
    field,
    is_split,
    subtitle,
    task_metrics,
    wide,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Dashboard"]

_ALERTS = ("health/val_loss_spike", "health/accuracy_drop", "health/gradient_explosion")
_STATUS_NAMES = ("healthy", "warning", "critical")


class Dashboard:
    """Six panels of training metrics (ten with drift and alerts), written to PNG.

    Args:
        columns: Panels per row.
        panel_size: Width and height of one panel, in inches.
        dpi: Resolution of the PNG.
        drift_warning: Jensen-Shannon divergence drawn as the warning line.
        drift_critical: Jensen-Shannon divergence drawn as the critical line.

    Examples:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"step": [1, 2, 3], "train/loss": [0.9, 0.7, 0.6]})
        >>> fig = Dashboard().plot(df, None, "demo")
        >>> len(fig.axes)
        6
    """

    def __init__(
        self,
        *,
        columns: int = 3,
        panel_size: tuple[float, float] = (5.0, 3.2),
        dpi: int = 100,
        drift_warning: float = 0.1,
        drift_critical: float = 0.2,
    ) -> None:
        if columns < 1:
            raise ValueError(f"columns must be at least 1, got {columns}")
        self.columns = columns
        self.panel_size = panel_size
        self.dpi = dpi
        self.drift_warning = drift_warning
        self.drift_critical = drift_critical

    # -- public API ----------------------------------------------------------------------

    @staticmethod
    def metric_keys(available: Iterable[str]) -> list[str]:
        """Which of ``available`` metric names the dashboard draws (skips per-layer norms)."""
        keep = []
        for key in available:
            per_layer = key.startswith(("grad/", "weights/")) and key != "grad/global_norm"
            if not per_layer:
                keep.append(key)
        return sorted(keep)

    def plot(
        self,
        metrics_df: pd.DataFrame,
        config: Any = None,
        title: str = "Training Metrics",
        *,
        output: str | Path | None = None,
    ) -> Figure:
        """Draw losses, the task metric, lr, gradient norm, epoch time and confidence.

        Args:
            metrics_df: Wide (a ``step`` column or index and one column per metric, as
                ``MetricsEngine.get_summary()``) or long (columns ``key``, ``value`` and
                ``step``, as the tracking store's history).
            config: The run's config (a mapping or an object with ``to_dict()``): its
                ``checkpoint.monitor`` picks the task metric, and a few values go in the
                subtitle.
            title: Figure title.
            output: Write the figure to this PNG file as well.

        Returns:
            The matplotlib figure.
        """
        frame = wide(metrics_df)
        figure, axes = self._figure(6, title, subtitle(as_dict(config)))
        self._core_panels(axes, frame, as_dict(config))
        return self._finish(figure, output)

    def plot_with_drift(
        self,
        metrics_df: pd.DataFrame,
        drift_data: Any = None,
        config: Any = None,
        title: str = "Training Metrics + Drift Analysis",
        *,
        alerts: Sequence[Any] | None = None,
        output: str | Path | None = None,
    ) -> Figure:
        """The six panels of :meth:`plot`, then drift per feature, drift status and alerts.

        Args:
            metrics_df: As for :meth:`plot`; its ``drift/<feature>/jsd``,
                ``health/drift_status`` and ``health/<alert>`` columns feed the new panels.
            drift_data: More drift measurements: ``DriftMetrics``-like objects (with
                ``details``), a mapping ``{feature: [jsd, ...]}`` or a DataFrame with
                ``drift/<feature>/jsd`` or plain feature columns. ``None``: use
                ``metrics_df`` only.
            config: As for :meth:`plot`.
            title: Figure title.
            alerts: Alert objects or dicts (``type``, ``step``, ``value``) to mark, on top of
                the ``health/*`` alert columns.
            output: Write the figure to this PNG file as well.

        Returns:
            The matplotlib figure.
        """
        frame = wide(metrics_df)
        cfg = as_dict(config)
        figure, axes = self._figure(10, title, subtitle(cfg))
        self._core_panels(axes[:6], frame, cfg)
        drift = drift_table(frame, drift_data)
        self._drift_over_time(axes[6], drift)
        self._drift_latest(axes[7], drift)
        self._drift_status(axes[8], frame, drift)
        self._alerts(axes[9], frame, alerts or ())
        return self._finish(figure, output)

    # -- layout --------------------------------------------------------------------------

    def _figure(self, panels: int, title: str, subtitle: str) -> tuple[Figure, list[Axes]]:
        from matplotlib.figure import Figure

        rows = math.ceil(panels / self.columns)
        width, height = self.panel_size
        figure = Figure(figsize=(width * self.columns, height * rows + 0.6), dpi=self.dpi)
        grid = figure.subplots(rows, self.columns, squeeze=False)
        axes = [ax for row in grid for ax in row]
        for extra in axes[panels:]:
            extra.set_visible(False)
        figure.suptitle(f"{title}\n{subtitle}" if subtitle else title)
        return figure, axes[:panels]

    def _finish(self, figure: Figure, output: str | Path | None) -> Figure:
        figure.tight_layout()
        if output is not None:
            path = Path(output)
            path.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(path, format="png", dpi=self.dpi)
        return figure

    def _core_panels(
        self, axes: Sequence[Axes], frame: pd.DataFrame, cfg: Mapping[str, Any]
    ) -> None:
        columns = list(frame.columns)
        losses = [c for c in columns if c.split("/")[-1].startswith("loss") and is_split(c)]
        _lines(axes[0], frame, losses, "Loss", "train/loss, val/loss")
        task = task_metrics(columns, cfg)
        _lines(axes[1], frame, task, " / ".join(task) or "Accuracy", "val/acc or the task metric")
        lrs = [c for c in columns if c.startswith("lr/") or c == "lr"]
        _lines(axes[2], frame, lrs, "Learning rate", "lr/<group>")
        _lines(
            axes[3],
            frame,
            [c for c in columns if c == "grad/global_norm"],
            "Gradient norm",
            "grad/global_norm",
        )
        _lines(
            axes[4],
            frame,
            [c for c in columns if c == "system/epoch_time_s"],
            "Epoch time (s)",
            "system/epoch_time_s",
            marker="o",
        )
        confidence = [c for c in columns if is_split(c) and c.split("/", 1)[1] in CONFIDENCE]
        _lines(
            axes[5],
            frame,
            confidence,
            "Confidence and calibration",
            "val/confidence_top1, val/ece",
            marker="o",
        )

    # -- drift panels --------------------------------------------------------------------

    def _thresholds(self, ax: Axes) -> None:
        ax.axhline(
            self.drift_warning,
            color="tab:orange",
            linestyle="--",
            linewidth=1,
            label=f"warning {self.drift_warning:g}",
        )
        ax.axhline(
            self.drift_critical,
            color="tab:red",
            linestyle="--",
            linewidth=1,
            label=f"critical {self.drift_critical:g}",
        )

    def _drift_over_time(self, ax: Axes, drift: pd.DataFrame) -> None:
        _lines(
            ax,
            drift,
            list(drift.columns),
            "Drift per feature (JS divergence)",
            "drift/<feature>/jsd",
            marker="o",
        )
        if not drift.empty:
            self._thresholds(ax)
            ax.legend(fontsize="x-small", loc="best")

    def _drift_latest(self, ax: Axes, drift: pd.DataFrame) -> None:
        ax.set_title("Latest drift by feature")
        latest = {c: drift[c].dropna() for c in drift.columns}
        latest = {c: float(v.iloc[-1]) for c, v in latest.items() if len(v)}
        if not latest:
            _no_data(ax, "drift/<feature>/jsd")
            return
        names = sorted(latest, key=lambda c: latest[c], reverse=True)
        values = [latest[n] for n in names]
        colors = [self._status_color(v) for v in values]
        ax.barh(names, values, color=colors)
        ax.invert_yaxis()
        self._thresholds(ax)
        ax.set_xlabel("JS divergence")
        ax.tick_params(axis="y", labelsize="x-small")

    def _status_color(self, value: float) -> str:
        if value >= self.drift_critical:
            return "tab:red"
        return "tab:orange" if value >= self.drift_warning else "tab:green"

    def _drift_status(self, ax: Axes, frame: pd.DataFrame, drift: pd.DataFrame) -> None:
        ax.set_title("Drift status")
        if "health/drift_status" in frame.columns:
            status = frame["health/drift_status"].dropna()
        elif not drift.empty:  # derived from the largest divergence of each measurement
            worst = drift.max(axis=1).dropna()
            status = worst.map(
                lambda v: (
                    2.0 if v >= self.drift_critical else 1.0 if v >= self.drift_warning else 0.0
                )
            )
        else:
            status = None
        if status is None or status.empty:
            _no_data(ax, "health/drift_status")
            return
        ax.step(status.index, status.values, where="post", color="tab:purple")
        ax.set_yticks(range(3), _STATUS_NAMES)
        ax.set_ylim(-0.3, 2.3)
        ax.set_xlabel(str(status.index.name or "step"))

    def _alerts(self, ax: Axes, frame: pd.DataFrame, alerts: Sequence[Any]) -> None:
        ax.set_title("Alerts")
        events: dict[str, list[float]] = {}
        for column in _ALERTS:
            if column in frame.columns:
                steps = frame[column].dropna().index
                events.setdefault(column.split("/", 1)[1], []).extend(float(s) for s in steps)
        for alert in alerts:
            kind = str(field(alert, "type"))
            step = field(alert, "step")
            if step is not None:
                events.setdefault(kind, []).append(float(step))
        events = {k: sorted(set(v)) for k, v in events.items() if v}
        if not events:
            _no_data(ax, "health/<alert> (no alert was raised)")
            return
        kinds = sorted(events)
        for row, kind in enumerate(kinds):
            ax.scatter(events[kind], [row] * len(events[kind]), marker="v", color="tab:red")
        ax.set_yticks(range(len(kinds)), kinds)
        ax.set_ylim(-0.5, len(kinds) - 0.5)
        ax.set_xlabel("step")


# -- drawing -------------------------------------------------------------------------------


def _lines(
    ax: Axes,
    frame: pd.DataFrame,
    columns: Sequence[str],
    title: str,
    expected: str,
    *,
    marker: str | None = None,
) -> None:
    ax.set_title(title)
    drawn = 0
    for column in columns:
        series = frame[column].dropna() if column in frame.columns else None
        if series is None or series.empty:
            continue
        style = marker or ("o" if len(series) < 3 else None)
        ax.plot(series.index, series.values, label=column, marker=style, markersize=3)
        drawn += 1
    if not drawn:
        _no_data(ax, expected)
        return
    ax.set_xlabel(str(frame.index.name or "step"))
    ax.grid(alpha=0.3)
    if drawn > 1 or columns[0] != title:
        ax.legend(fontsize="x-small", loc="best")


def _no_data(ax: Axes, expected: str) -> None:
    ax.text(
        0.5,
        0.5,
        f"no data\nnothing logged as {expected}",
        ha="center",
        va="center",
        transform=ax.transAxes,
        color="gray",
        wrap=True,
    )
    ax.set_xticks([])
    ax.set_yticks([])
