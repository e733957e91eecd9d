"""``plan_run``: what a run of a config would do, checked, without training (``--dry-run``)."""

from __future__ import annotations

from dataclasses import dataclass

from trainforge.config import TrainingConfig
from trainforge.engine import TaskSpec
from trainforge.engine.data import sample_count
from trainforge.train import _build as build
from trainforge.train._checks import check_run

__all__ = ["RunPlan", "plan_run"]


@dataclass(frozen=True)
class RunPlan:
    """A run's task, model, data and driver, as a dry run reports them."""

    spec: TaskSpec
    model_name: str
    parameters: int
    train_samples: int | None
    val_samples: int | None
    driver: str
    processes: int
    optimizer_steps: int | None


def plan_run(config: TrainingConfig) -> RunPlan:
    """Build the model and the data of ``config`` and run every pre-training check.

    Raises:
        ConfigError: What :class:`~trainforge.train.Trainer` would refuse before training.
    """
    spec = build.task_spec_from_config(config)
    model = build.build_model_for(config, spec)
    train_data, val_data = build.build_datasets_for(config, spec)
    has_validation = val_data is not None and config.trainer.limit_val_batches != 0
    check_run(config, spec, has_validation=has_validation)
    processes = build.data_parallel_size(config)
    datamodule = build.build_datamodule(config, train_data, val_data, spec)
    batches = build.train_batches(config, datamodule, processes)
    steps = build.total_optimizer_steps(config, batches)
    # building an optimizer costs a second of imports (torch._dynamo): only the schedule's
    # arguments are checked here; the values of torch's onecycle are checked when built
    build.check_scheduler_for(config)
    return RunPlan(
        spec=spec,
        model_name=type(model).__name__,
        parameters=sum(p.numel() for p in model.parameters()),
        train_samples=datamodule.train_samples(),
        val_samples=sample_count(val_data) if val_data is not None else 0,
        driver=config.trainer.engine,
        processes=processes,
        optimizer_steps=steps,
    )
