"""Job types: what a worker does with a job, registered by name in one :class:`Registry`.

A job type checks a job's config when it is submitted (``validate``: a bad config is
refused then, never in a worker) and does the work when a worker claims it (``run``).
Built in: ``train`` (a full training run, in a child process started exactly like
``trainforge train``), ``evaluate`` (a checkpoint on a data split) and ``export`` (a run or
checkpoint to a serving bundle, as ``trainforge export``), each in a child process. A
user type is a function registered with :func:`register_job_type`; it runs inside the
worker process and should call ``context.should_stop()`` now and then.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from trainforge.errors import ConfigError, TrainforgeError
from trainforge.jobs._child import JobContext, run_child
from trainforge.jobs._export_job import ExportJob
from trainforge.registry import Registry

__all__ = [
    "JOB_TYPES",
    "EvaluateJob",
    "ExportJob",
    "FunctionJob",
    "JobType",
    "TrainJob",
    "register_job_type",
]


class JobType(Protocol):
    """What a job type provides: a submit-time check and the work itself."""

    def validate(self, config: Mapping[str, Any], *, store_url: str) -> dict[str, Any]:
        """Check ``config`` and return what to store (plain JSON data); raise on bad input."""
        ...

    def run(self, config: Mapping[str, Any], context: JobContext) -> Mapping[str, Any] | None:
        """Do the work; the returned mapping is stored as the job's result."""
        ...


JOB_TYPES: Registry[JobType] = Registry("job type")


class FunctionJob:
    """A user job type: a function ``fn(config, context) -> result`` and an optional check."""

    def __init__(
        self,
        fn: Callable[[dict[str, Any], JobContext], Mapping[str, Any] | None],
        validate: Callable[[dict[str, Any]], Mapping[str, Any] | None] | None = None,
        name: str = "user",
    ) -> None:
        self.fn = fn
        self.check = validate
        self.name = name

    def validate(self, config: Mapping[str, Any], *, store_url: str) -> dict[str, Any]:
        """Run the user's check (it may return a replacement config); JSON data only."""
        import json

        data = dict(config)
        if self.check is not None:
            try:
                replaced = self.check(data)
            except TrainforgeError:
                raise
            except Exception as err:
                raise ConfigError(f"{self.name} job: config refused: {err}") from err
            if replaced is not None:
                data = dict(replaced)
        try:
            json.dumps(data)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{self.name} job: config must be JSON data: {err}") from None
        return data

    def run(self, config: Mapping[str, Any], context: JobContext) -> Mapping[str, Any] | None:
        """Call the function in the worker process."""
        return self.fn(dict(config), context)


def register_job_type(
    name: str,
    fn: Callable[[dict[str, Any], JobContext], Mapping[str, Any] | None] | None = None,
    *,
    validate: Callable[[dict[str, Any]], Mapping[str, Any] | None] | None = None,
    overwrite: bool = False,
) -> Any:
    """Register a function as job type ``name``; without ``fn``, return a decorator.

    Examples:
        >>> @register_job_type("doc-example-noop")
        ... def noop(config, context):
        ...     return {"echo": config.get("value")}
        >>> "doc-example-noop" in JOB_TYPES
        True
        >>> JOB_TYPES.unregister("doc-example-noop")
    """

    def add(target: Callable[[dict[str, Any], JobContext], Mapping[str, Any] | None]) -> Any:
        JOB_TYPES.register(name, FunctionJob(target, validate, name), overwrite=overwrite)
        return target

    return add if fn is None else add(fn)


_TRAIN_KEYS = {"config", "files", "overrides", "template", "preset", "env"}


class TrainJob:
    """``train``: one training run, through the same path as ``trainforge train``.

    Config: ``{"files": [...], "overrides": ["optim.lr=3e-4", ...]}`` (optionally
    ``template``, ``preset``, ``env``) or ``{"config": {...full config...}}``. It is
    resolved and validated at submit; the job stores the resolved values, with
    ``run.output_dir`` made absolute and ``tracking.database`` defaulting to the queue's
    store (so the run links to its job). Each attempt writes its checkpoints to
    ``<run.output_dir>/jobs/job-<id>/checkpoints`` (unless ``checkpoint.dirpath`` is set)
    and resumes from the last one there.
    """

    def validate(self, config: Mapping[str, Any], *, store_url: str) -> dict[str, Any]:
        """Resolve and validate the training config (every problem reported at once)."""
        from trainforge.config import load_config, parse_overrides

        unknown = sorted(set(config) - _TRAIN_KEYS)
        if unknown:
            raise ConfigError(
                f"train job: unknown field(s) {', '.join(unknown)}",
                hint="give {'files': [...], 'overrides': [...]} or {'config': {...}}",
            )
        full = config.get("config")
        if full is not None and not isinstance(full, Mapping):
            raise ConfigError("train job: 'config' must be a mapping of config values")
        files = [str(Path(f).expanduser().resolve()) for f in config.get("files") or []]
        cli = [str(item) for item in config.get("overrides") or []]
        if full is not None and cli:  # key=value overrides win over the full config
            full = _merged(dict(full), parse_overrides(cli))
            cli = []
        loaded = load_config(
            *files,
            overrides=dict(full) if full is not None else None,
            cli=cli,
            template=config.get("template"),
            preset=config.get("preset"),
            env=config.get("env"),
        )
        values = loaded.to_dict()
        values["run"]["output_dir"] = str(Path(values["run"]["output_dir"]).resolve())
        if not values["tracking"].get("database"):
            values["tracking"]["database"] = store_url
        if values["checkpoint"].get("dirpath"):
            values["checkpoint"]["dirpath"] = str(Path(values["checkpoint"]["dirpath"]).resolve())
        source = {k: config[k] for k in ("files", "overrides", "template") if config.get(k)}
        if files:
            source["files"] = files
        return {"config": values, "source": source}

    def run(self, config: Mapping[str, Any], context: JobContext) -> Mapping[str, Any] | None:
        """Write the config, start ``trainforge train`` (resuming the job's last checkpoint)."""
        import yaml

        values = dict(config["config"])
        job_dir = Path(values["run"]["output_dir"]) / "jobs" / f"job-{context.job_id:06d}"
        job_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = dict(values["checkpoint"])
        ckpt_dir = Path(checkpoint.get("dirpath") or job_dir / "checkpoints")
        checkpoint["dirpath"] = str(ckpt_dir)
        values["checkpoint"] = checkpoint
        config_file = job_dir / "config.yaml"
        tmp = config_file.with_name("config.yaml.tmp")
        tmp.write_text(
            f"# trainforge train {config_file}\n" + yaml.safe_dump(values, sort_keys=False),
            encoding="utf-8",
        )
        tmp.replace(config_file)
        argv = [sys.executable, "-m", "trainforge.cli", "train", str(config_file)]
        resumed = None
        if (ckpt_dir / "last").exists():
            resumed = str(ckpt_dir / "last")
            argv += ["--resume", resumed]
        log_file = job_dir / f"attempt-{context.attempt}.log"
        run_child(argv, context, log_file, what="training")
        run = context.last_run()
        return {
            "run_id": run["id"] if run else None,
            "run_status": run["status"] if run else None,
            "resumed_from": resumed,
            "checkpoints": str(ckpt_dir),
            "log": str(log_file),
        }


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            base[key] = _merged(dict(base[key]), value)
        else:
            base[key] = value
    return base


class EvaluateJob:
    """``evaluate``: a checkpoint on a data split, in a child process.

    Config: ``{"checkpoint": PATH, "split": "val" | "train"}``; the model and data are
    built from the config stored in the checkpoint. The result holds the metrics.
    """

    def validate(self, config: Mapping[str, Any], *, store_url: str) -> dict[str, Any]:
        """The checkpoint must exist and the split must be known."""
        from trainforge.errors import CheckpointNotFoundError

        unknown = sorted(set(config) - {"checkpoint", "split"})
        if unknown:
            raise ConfigError(
                f"evaluate job: unknown field(s) {', '.join(unknown)}",
                hint="give {'checkpoint': PATH, 'split': 'val'}",
            )
        if not config.get("checkpoint"):
            raise ConfigError("evaluate job: 'checkpoint' is required (a checkpoint path)")
        path = Path(str(config["checkpoint"])).expanduser().resolve()
        if not path.exists():
            raise CheckpointNotFoundError(f"evaluate job: no checkpoint at {path}", path=path)
        split = str(config.get("split") or "val")
        if split not in ("val", "train"):
            raise ConfigError(f"evaluate job: split must be 'val' or 'train', got {split!r}")
        return {"checkpoint": str(path), "split": split}

    def run(self, config: Mapping[str, Any], context: JobContext) -> Mapping[str, Any] | None:
        """Run the evaluation in a child process and return its metrics."""
        import json

        job_dir = Path(config["checkpoint"]).parent / f"evaluate-job-{context.job_id:06d}"
        job_dir.mkdir(parents=True, exist_ok=True)
        out = job_dir / "metrics.json"
        argv = [
            sys.executable,
            "-m",
            "trainforge.cli",
            "evaluate",
            str(config["checkpoint"]),
            "--split",
            str(config["split"]),
            "--output",
            str(out),
        ]
        run_child(argv, context, job_dir / f"attempt-{context.attempt}.log", what="evaluation")
        return {"metrics": json.loads(out.read_text(encoding="utf-8")), "split": config["split"]}


JOB_TYPES.register("train", TrainJob(), aliases=("training",))
JOB_TYPES.register("evaluate", EvaluateJob(), aliases=("evaluation",))
JOB_TYPES.register("export", ExportJob())
