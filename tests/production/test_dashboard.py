"""Dashboard: the panels a user reads, from real metric histories, and `runs plot --dashboard`."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from trainforge.cli import main
from trainforge.engine import MetricsEngine
from trainforge.production import Dashboard
from trainforge.tracking import ExperimentDB


def _titles(figure):
    return [ax.get_title() for ax in figure.axes if ax.get_visible()]


def _texts(ax):
    return " ".join(t.get_text() for t in ax.texts)


def _engine_history() -> MetricsEngine:
    """A real MetricsEngine history: per-step loss and lr, epoch metrics, confidence."""
    engine = MetricsEngine()
    for step in range(1, 21):
        engine.log_metrics({"train/loss": 2.0 / step, "lr/pg1": 0.1 / step}, step=step)
        engine.log_metrics({"grad/global_norm": 1.0 + step % 3}, step=step)
        if step % 10 == 0:
            engine.log_epoch(
                step // 10, {"val/loss": 1.0 / step, "val/acc": 0.5 + step / 100}, step=step
            )
            engine.log_metrics({"system/epoch_time_s": 1.5}, step=step)
            engine.log_confidence(torch.randn(16, 4), torch.randint(0, 4, (16,)), step=step)
    return engine


def test_plot_draws_six_panels_from_a_metrics_engine_summary(tmp_path):
    out = tmp_path / "board.png"
    figure = Dashboard().plot(
        _engine_history().get_summary(), {"optim": {"lr": 0.1}}, "t", output=out
    )
    assert _titles(figure) == [
        "Loss",
        "val/acc",
        "Learning rate",
        "Gradient norm",
        "Epoch time (s)",
        "Confidence and calibration",
    ]
    lines = {ax.get_title(): [ln.get_label() for ln in ax.get_lines()] for ax in figure.axes}
    assert lines["Loss"] == ["train/loss", "val/loss"]
    assert lines["Gradient norm"] == ["grad/global_norm"]
    assert "val/ece" in lines["Confidence and calibration"]
    assert all(not ax.texts for ax in figure.axes)  # every panel had data
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "optim.lr=0.1" in figure._suptitle.get_text()


def test_panels_without_data_say_so():
    frame = pd.DataFrame({"step": [0, 1, 2], "train/loss": [1.0, 0.8, 0.7]})
    figure = Dashboard().plot(frame)
    empty = {ax.get_title(): _texts(ax) for ax in figure.axes if ax.texts}
    assert set(empty) == {
        "Accuracy",
        "Learning rate",
        "Gradient norm",
        "Epoch time (s)",
        "Confidence and calibration",
    }
    assert "nothing logged as grad/global_norm" in empty["Gradient norm"]
    assert not figure.axes[0].texts and figure.axes[0].get_lines()


def test_task_metric_follows_the_monitor_of_the_config():
    frame = pd.DataFrame({"step": [1, 2], "val/iou": [0.3, 0.4], "val/loss": [1.0, 0.9]})
    figure = Dashboard().plot(frame, {"checkpoint": {"monitor": "val/iou"}})
    assert figure.axes[1].get_title() == "val/iou"


def test_plot_with_drift_has_ten_panels_with_features_status_and_alerts():
    history = pd.DataFrame(
        {
            "key": ["train/loss"] * 3
            + [
                "drift/pixel/jsd",
                "drift/label/jsd",
                "health/drift_status",
                "health/val_loss_spike",
            ],
            "step": [1, 2, 3, 3, 3, 3, 2],
            "value": [1.0, 0.9, 0.8, 0.25, 0.05, 2.0, 1.4],
        }
    )
    figure = Dashboard().plot_with_drift(
        history, {"pixel": [0.02, 0.25]}, None, "d", alerts=[{"type": "accuracy_drop", "step": 3}]
    )
    titles = _titles(figure)
    assert len(titles) == 10
    assert titles[6:] == [
        "Drift per feature (JS divergence)",
        "Latest drift by feature",
        "Drift status",
        "Alerts",
    ]
    latest = figure.axes[7]
    bars = {p.get_width() for p in latest.patches}
    assert bars == {0.25, 0.05}  # the latest divergence of each feature
    alerts = figure.axes[9]
    assert [t.get_text() for t in alerts.get_yticklabels()] == ["accuracy_drop", "val_loss_spike"]


def test_bad_inputs_are_clear_errors():
    with pytest.raises(TypeError, match="pandas DataFrame"):
        Dashboard().plot({"train/loss": [1.0]})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="details"):
        Dashboard().plot_with_drift(pd.DataFrame({"step": [1]}), [object()])


def _store_with_drift(path) -> str:
    db = ExperimentDB(str(path))
    run = db.log_run("drifty", {"checkpoint": {"monitor": "val/acc"}})
    for step in range(5):
        db.log_metric(run, "train/loss", 1.0 / (step + 1), step=step)
        db.log_metric(run, "grad/layer0/norm", 3.0, step=step)  # per-layer: not drawn
    db.log_metric(run, "drift/pixel/jsd", 0.3, step=4)
    db.update_run_status(run, "completed")
    plain = db.log_run("plain")
    db.log_metric(plain, "train/loss", 1.0, step=0)
    db.close()
    return str(path)


def test_runs_plot_dashboard_writes_a_png_with_drift_panels_when_logged(tmp_path, capsys):
    db = _store_with_drift(tmp_path / "t.db")
    with_drift, plain = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["runs", "plot", "1", "--dashboard", "--db", db, "-o", str(with_drift)]) == 0
    assert main(["runs", "plot", "2", "--dashboard", "--db", db, "-o", str(plain)]) == 0
    # 4 rows of panels against 2: the drift run got the ten-panel dashboard
    assert imread(with_drift).shape[0] > 1.8 * imread(plain).shape[0]
    assert f"wrote {with_drift}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["1", "2", "--dashboard"], "draws one run"),
        (["1"], "needs --metric"),
        (["9", "--dashboard"], "no run with id 9"),
    ],
)
def test_runs_plot_refuses_bad_requests_with_exit_1(tmp_path, capsys, argv, message):
    db = _store_with_drift(tmp_path / "t.db")
    assert main(["runs", "plot", *argv, "--db", db, "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("what", [["--dashboard"], ["-m", "train/loss"]])
def test_runs_plot_makes_the_folder_or_says_it_cannot_write(tmp_path, capsys, what):
    db = _store_with_drift(tmp_path / "t.db")
    nested = tmp_path / "plots" / "run-1.png"
    assert main(["runs", "plot", "1", *what, "--db", db, "-o", str(nested)]) == 0
    assert imread(nested).shape[0] > 0
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert main(["runs", "plot", "1", *what, "--db", db, "-o", str(blocked / "x.png")]) == 1
    err = capsys.readouterr().err
    assert f"cannot write {blocked / 'x.png'}" in err and "--output" in err
    assert "Traceback" not in err
