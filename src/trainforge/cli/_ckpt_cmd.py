"""``trainforge ckpt``: list, inspect, verify, consolidate, migrate and prune checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from trainforge.cli._output import print_json, print_table
from trainforge.errors import CheckpointError, CheckpointNotFoundError

app = typer.Typer(
    help="List, inspect, verify, migrate and prune checkpoints.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
MonitorOpt = Annotated[
    str | None,
    typer.Option(
        "--monitor",
        help="Metric that ranks checkpoints (default: the one they recorded; must match it).",
        show_default=False,
    ),
]
ModeOpt = Annotated[
    str | None,
    typer.Option(
        "--mode",
        help="min or max (default: the mode the checkpoints recorded; must match it).",
        show_default=False,
    ),
]


def _manager(
    directory: Path, monitor: str | None = None, mode: str | None = None, **kwargs: Any
) -> Any:
    """A manager of ``directory`` ranking by what its checkpoints recorded."""
    from trainforge.checkpoint import CheckpointManager, recorded_ranking

    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise CheckpointNotFoundError(f"checkpoint directory {directory} {what}", path=directory)
    monitor, mode = recorded_ranking(directory, monitor, mode)
    return CheckpointManager(directory, monitor=monitor, mode=mode, **kwargs)


def _warn_unreadable(manager: Any) -> None:
    for item in manager.catalog.scan()[1]:
        typer.echo(f"warning: not listed: {item.name}: {item.reason}", err=True)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@app.command("list")
def list_(
    directory: Path,
    monitor: MonitorOpt = None,
    mode: ModeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List complete checkpoints in DIRECTORY, newest first, ranked as they recorded."""
    manager = _manager(directory, monitor, mode)
    checkpoints = manager.list_checkpoints()
    if as_json:
        print_json([c.to_dict() for c in checkpoints])
        return
    _warn_unreadable(manager)
    rows = [
        (
            c.name,
            c.epoch,
            c.global_step,
            "" if c.metric is None else f"{c.metric:.6g}",
            " ".join(
                f
                for f, on in (("best", c.is_best), ("last", c.is_last), ("protected", c.protected))
                if on
            ),
            _size(c.size),
            (c.timestamp or "")[:19],
            (c.git_commit or "")[:10],
            (c.config_hash or "")[:12],
        )
        for c in checkpoints
    ]
    headers = [
        "checkpoint",
        "epoch",
        "step",
        manager.monitor or "metric",
        "flags",
        "size",
        "time (UTC)",
        "git",
        "config",
    ]
    print_table(f"{len(rows)} checkpoint(s) in {directory}", headers, rows)


@app.command("inspect")
def inspect(
    path: Annotated[
        Path, typer.Argument(help="A checkpoint, its best/last pointer, or a Lightning .ckpt.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Show a checkpoint's manifest and tensors (name, shape, dtype), loading nothing unsafe."""
    from trainforge.checkpoint import inspect_checkpoint

    info = inspect_checkpoint(path)
    if as_json:
        print_json(info)
        return
    tensors = [
        (t["name"], "x".join(map(str, t["shape"])) or "scalar", t["dtype"])
        for t in info.pop("tensors")
    ]
    if info["kind"] == "lightning":
        keys = info.pop("state_dict_keys")
        fields = [(k, v) for k, v in info.items()] + [("state_dict keys", len(keys))]
        print_table(f"Lightning checkpoint {path}", ["field", "value"], fields)
    else:
        meta = info["metadata"]
        rows: list[tuple[Any, ...]] = [
            ("format", f"{info['written_as_format']} (current {info['format_version']})"),
            ("storage", info["storage"]),
        ]
        rows += [(k, v) for k, v in meta.items() if k not in ("config", "config_provenance")]
        print_table(f"checkpoint {info['path']}", ["field", "value"], rows)
        files = [
            (n, e["size"], e["compression"] or "", e["sha256"]) for n, e in info["files"].items()
        ]
        print_table("files", ["file", "bytes", "compression", "sha256"], files)
    print_table(f"{len(tensors)} tensor(s)", ["name", "shape", "dtype"], tensors)


@app.command("verify")
def verify(
    target: Annotated[
        Path, typer.Argument(help="A checkpoint, its best/last pointer, or a directory of them.")
    ],
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also load each payload through the safe loader, as a load would "
            "(finds payloads that are unsafe to unpickle).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check size and SHA256 of every file of one checkpoint, or of all in a directory."""
    from trainforge.checkpoint import resolve_checkpoint

    directory, name = resolve_checkpoint(target)
    manager = _manager(directory)
    whole = target.is_dir() and not (directory / name).is_dir()
    reports = manager.verify(None if whole else name, deep=deep)
    bad = [r for r in reports if not r.ok]
    if as_json:
        print_json([r.to_dict() for r in reports])
    else:
        rows = [
            (r.path.name, "ok" if r.ok else "BAD", r.bad_file or "", r.problem or "")
            for r in reports
        ]
        print_table(
            f"verified {len(reports)} checkpoint(s)",
            ["checkpoint", "status", "file", "problem"],
            rows,
        )
    if bad:
        names = ", ".join(str(r.path / r.bad_file) if r.bad_file else str(r.path) for r in bad)
        typer.echo(f"error: {len(bad)} bad checkpoint(s): {names}", err=True)
        raise typer.Exit(1)


@app.command("consolidate")
def consolidate(
    checkpoint: Annotated[Path, typer.Argument(help="A sharded checkpoint or its pointer.")],
    output: Annotated[
        Path, typer.Option("--output", help="Checkpoint directory to write the result into.")
    ],
    compression: Annotated[
        str | None, typer.Option("--compression", help="gzip or zstd (default: none).")
    ] = None,
) -> None:
    """Write a sharded checkpoint as one ordinary single-file checkpoint (every shard verified)."""
    from trainforge.checkpoint import consolidate_checkpoint

    written = consolidate_checkpoint(checkpoint, output, compression=compression)
    typer.echo(f"consolidated {checkpoint} -> {written}")


@app.command("migrate")
def migrate(
    path: Path,
    into: Annotated[
        Path | None, typer.Option("--into", help="For a Lightning .ckpt: directory to import into.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rewrite older-format checkpoints in the current format (or import a Lightning .ckpt)."""
    from trainforge.checkpoint import CheckpointManager
    from trainforge.checkpoint._targets import is_checkpoint_dir

    if path.is_file():
        if into is None:
            raise CheckpointError(
                f"{path} is a file (a Lightning checkpoint?)",
                hint="pass --into DIR to import it as a trainforge checkpoint",
            )
        into.mkdir(parents=True, exist_ok=True)
        created = CheckpointManager(into, monitor=None).import_lightning(path)
        result: dict[str, Any] = {"imported": str(created), "from": str(path)}
    else:
        if not path.exists():
            raise CheckpointNotFoundError(f"{path} does not exist", path=path)
        if is_checkpoint_dir(path):
            targets, manager = [path], CheckpointManager(path.parent, monitor=None)
        else:
            manager = CheckpointManager(path, monitor=None)
            targets = [c.path for c in manager.list_checkpoints()]
        migrated = [str(p) for p in targets if manager.migrate(p) is not None]
        result = {"migrated": migrated, "already_current": len(targets) - len(migrated)}
    if as_json:
        print_json(result)
    elif "imported" in result:
        typer.echo(f"imported {result['from']} as {result['imported']}")
    else:
        typer.echo(
            f"migrated {len(result['migrated'])}, already current {result['already_current']}"
        )
        for name in result["migrated"]:
            typer.echo(f"  {name}")


@app.command("prune")
def prune(
    directory: Path,
    keep_last_n: Annotated[
        int, typer.Option("--keep-last-n", min=0, help="Keep the n newest.")
    ] = 5,
    keep_best_k: Annotated[int, typer.Option("--keep-best-k", min=0, help="Keep the k best.")] = 3,
    monitor: MonitorOpt = None,
    mode: ModeOpt = None,
    remove_unreadable: Annotated[
        bool,
        typer.Option(
            "--remove-unreadable",
            help="Also remove checkpoints that cannot be read (damaged files, an unreadable "
            "or newer-format manifest); by default they are kept and reported.",
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove incomplete checkpoints and leftovers, then apply retention.

    Checkpoints are ranked by the monitor and mode they recorded.
    """
    manager = _manager(directory, monitor, mode, keep_last_n=keep_last_n, keep_best_k=keep_best_k)
    report = manager.prune(dry_run=dry_run, remove_unreadable=remove_unreadable)
    if as_json:
        print_json({"dry_run": dry_run, **report})
        return
    verb = "would remove" if dry_run else "removed"
    reasons = report.pop("reasons")
    removed = set(report.pop("removed_unreadable"))
    rows = []
    for kind, names in report.items():
        for name in names:
            if kind == "unreadable":
                state = "removed" if name in removed else "kept"
                rows.append((f"unreadable, {state}: {reasons[name]}", name))
            else:
                rows.append((kind, name))
    print_table(f"{verb} or reported {len(rows)} item(s) in {directory}", ["reason", "name"], rows)
