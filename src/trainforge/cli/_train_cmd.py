"""``trainforge train``: resolve the config, show where each value came from, train."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from trainforge.cli._output import console, print_table
from trainforge.cli._process import paused_collector

if TYPE_CHECKING:
    from trainforge.config import TrainingConfig

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}
DEFAULT_TEMPLATE = "digits"


def train(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="Config files and key=value overrides (or --key value).", show_default=False
        ),
    ] = None,
    template: Annotated[
        str | None, typer.Option("--template", help="Task template (default: digits).")
    ] = None,
    preset: Annotated[str | None, typer.Option("--preset", help="small, medium or large.")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Environment overlay.")] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Checkpoint to resume: PATH, last or best.")
    ] = None,
    allow_change: Annotated[
        list[str] | None,
        typer.Option("--allow-config-change", help="Accept a breaking change on resume (key)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build model and data, print the plan, stop.")
    ] = False,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the resolved config as YAML, stop.")
    ] = False,
) -> None:
    """Train a model: `trainforge train` alone trains the built-in digits task."""
    with paused_collector():  # start-up allocates for good: see trainforge.cli._process
        from trainforge.config import load_config, split_cli_args
        from trainforge.logs import configure_logging, format_value

        files, overrides = split_cli_args([*(args or []), *ctx.args])
        if template is None and not files:
            template = DEFAULT_TEMPLATE
        config = load_config(*files, cli=overrides, preset=preset, template=template, env=env)
        if print_config:
            typer.echo(config.to_yaml(), nl=False)
            return
        from trainforge.train import process_rank

        # a data-parallel run's other ranks run this command too: rank zero alone reports
        rank_zero = process_rank(config) == 0
        options = ctx.obj or {}
        if not options.get("log_level_given"):
            level = config.run.log_level if not dry_run and rank_zero else "WARNING"
            # the global --log-format stays: only the level comes from the config
            configure_logging(level, fmt=options.get("log_format", "text"))
        # the overview is printed here, as a table, so the Trainer need not log it again
        if rank_zero:
            print_table(
                "configuration (non-default values)",
                ("key", "value", "provenance"),
                [(k, format_value(v), p.render()) for k, v, p in config.overview_rows()],
            )
        if dry_run:
            _dry_run(config)
            return
        from trainforge.train import Trainer

    results = Trainer(
        training_config=config,
        allow_config_changes=allow_change or (),
        command=["trainforge", *sys.argv[1:]],
        log_config=False,
    ).train(resume_from=resume)
    if not rank_zero:
        return
    best = "n/a" if results.best_metric is None else f"{results.best_metric:.4f}"
    rows = [
        ("run", results.run_id),
        ("run folder", str(results.run_dir)),
        (f"best {results.monitor}", f"{best} (epoch {results.best_epoch})"),
        ("final train/loss", f"{results.final_loss:.4f}"),
        ("best checkpoint", str(results.best_checkpoint_path or "-")),
        ("last checkpoint", str(results.checkpoint_path or "-")),
        *_log_rows(config, results.run_id),
        ("time", f"{results.training_time:.1f} s, {results.global_step} optimizer steps"),
    ]
    print_table("training finished", ("", ""), rows, show_header=False)
    if config.tracking.enabled:
        run_number = results.run_id.removeprefix("run-").split("-")[0].lstrip("0") or "0"
        console().print(
            f"compare runs: trainforge runs compare {run_number} <other run id>   "
            f"(trainforge runs list)"
        )


def _log_rows(config: TrainingConfig, run_id: str) -> list[tuple[str, str]]:
    from trainforge.engine import logger_dir

    rows = []
    for kind, section in config.loggers:
        if section.enabled:
            where = logger_dir(section.save_dir, run_id, kind)
            if kind == "tensorboard":
                rows.append((kind, f"tensorboard --logdir {where}"))
            else:
                rows.append((f"{kind} logs", str(where)))
    return rows


def _dry_run(config: TrainingConfig) -> None:
    from trainforge.train import plan_run

    plan = plan_run(config)
    spec = plan.spec
    driver = f"{plan.driver}, {plan.processes} process{'es' if plan.processes > 1 else ''}"
    print_table(
        "dry run: nothing was trained",
        ("", ""),
        [
            ("task", f"{spec.name} ({spec.task_type}, {spec.modality})"),
            ("model", f"{plan.model_name}, {plan.parameters:,} parameters"),
            (
                "data",
                f"{_count(plan.train_samples)} train / {_count(plan.val_samples)} "
                "validation samples",
            ),
            ("driver", driver),
            (
                "optimizer steps",
                "unknown (a stream without a length: max_epochs passes)"
                if plan.optimizer_steps is None
                else str(plan.optimizer_steps),
            ),
        ],
        show_header=False,
    )


def _count(samples: int | None) -> str:
    return "unknown (a stream)" if samples is None else str(samples)
