"""``trainforge ckpt``: list, inspect, verify, migrate and prune checkpoints."""

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
MonitorOpt = Annotated[str, typer.Option("--monitor", help="Metric that ranks checkpoints.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="min or max: which is better.")]


def _manager(directory: Path, monitor: str = "val_loss", mode: str = "min", **kwargs: Any) -> Any:
    from trainforge.checkpoint import CheckpointManager

    if not directory.is_dir():
        raise CheckpointNotFoundError(
            f"checkpoint directory {directory} does not exist", path=directory
        )
    return CheckpointManager(directory, monitor=monitor, mode=mode, **kwargs)  # type: ignore[arg-type]


def _is_checkpoint(path: Path) -> bool:
    from trainforge.checkpoint import MANIFEST_NAME

    return (path / MANIFEST_NAME).exists() or path.name.startswith("ckpt-")


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
    monitor: MonitorOpt = "val_loss",
    mode: ModeOpt = "min",
    as_json: JsonOpt = False,
) -> None:
    """List complete checkpoints in DIRECTORY, newest first."""
    checkpoints = _manager(directory, monitor, mode).list_checkpoints()
    if as_json:
        print_json([c.to_dict() for c in checkpoints])
        return
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
        monitor,
        "flags",
        "size",
        "time (UTC)",
        "git",
        "config",
    ]
    print_table(f"{len(rows)} checkpoint(s) in {directory}", headers, rows)


@app.command("inspect")
def inspect(path: Path, as_json: JsonOpt = False) -> None:
    """Show the manifest of a checkpoint directory, or summarise a Lightning .ckpt file."""
    from trainforge.checkpoint import inspect_lightning_checkpoint, read_manifest

    if path.is_file():
        info = inspect_lightning_checkpoint(path)
        if as_json:
            print_json(info)
            return
        keys = info.pop("state_dict_keys")
        rows = [(k, v) for k, v in info.items()] + [("state_dict keys", len(keys))]
        print_table(f"Lightning checkpoint {path}", ["field", "value"], rows)
        return
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist", path=path)
    manifest = read_manifest(path)
    meta = {k: v for k, v in manifest.metadata.items() if k != "rng_state"}
    data = {
        "path": str(path),
        "format_version": manifest.format_version,
        "written_as_format": manifest.migrated_from or manifest.format_version,
        "storage": manifest.storage,
        "files": {name: entry.to_dict() for name, entry in manifest.files.items()},
        "metadata": meta,
    }
    if as_json:
        print_json(data)
        return
    rows: list[tuple[Any, ...]] = [
        ("format", f"{data['written_as_format']} (current {manifest.format_version})"),
        ("storage", manifest.storage),
    ]
    rows += [(k, v) for k, v in meta.items() if k not in ("config", "config_provenance")]
    print_table(f"checkpoint {path}", ["field", "value"], rows)
    files = [(n, e.size, e.compression or "", e.sha256) for n, e in sorted(manifest.files.items())]
    print_table("files", ["file", "bytes", "compression", "sha256"], files)


@app.command("verify")
def verify(target: Path, as_json: JsonOpt = False) -> None:
    """Check size and SHA256 of every file of one checkpoint, or of all in a directory."""
    from trainforge.checkpoint import verify_checkpoint

    if not target.exists():
        raise CheckpointNotFoundError(f"{target} does not exist", path=target)
    reports = [verify_checkpoint(target)] if _is_checkpoint(target) else _manager(target).verify()
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
        if _is_checkpoint(path):
            targets, manager = [path], CheckpointManager(path.parent, monitor=None)
        else:
            manager = _manager(path, monitor=None)  # type: ignore[arg-type]
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
    keep_last_n: Annotated[int, typer.Option("--keep-last-n", help="Keep the n newest.")] = 5,
    keep_best_k: Annotated[int, typer.Option("--keep-best-k", help="Keep the k best.")] = 3,
    monitor: MonitorOpt = "val_loss",
    mode: ModeOpt = "min",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove incomplete checkpoints and leftovers, then apply retention."""
    manager = _manager(directory, monitor, mode, keep_last_n=keep_last_n, keep_best_k=keep_best_k)
    report = manager.prune(dry_run=dry_run)
    if as_json:
        print_json({"dry_run": dry_run, **report})
        return
    verb = "would remove" if dry_run else "removed"
    rows = [(kind, name) for kind, names in report.items() for name in names]
    print_table(f"{verb} {len(rows)} item(s) in {directory}", ["reason", "name"], rows)
