"""``trainforge config``: show, validate, diff, legend and templates."""

from __future__ import annotations

from typing import Annotated

import typer

from trainforge.cli._output import print_json, print_table

app = typer.Typer(help="Inspect and validate configurations.", no_args_is_help=True)

_EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}
ArgsOpt = Annotated[
    list[str] | None,
    typer.Argument(
        help="Config files and key=value overrides (or --key value).", show_default=False
    ),
]
PresetOpt = Annotated[str | None, typer.Option("--preset", help="small, medium or large.")]
TemplateOpt = Annotated[str | None, typer.Option("--template", help="A task template.")]
EnvOpt = Annotated[
    str | None, typer.Option("--env", help="Environment overlay (dev, test, prod, ...).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _load(args: list[str] | None, preset: str | None, template: str | None, env: str | None):
    from trainforge.config import load_config, split_cli_args

    files, overrides = split_cli_args(args or [])
    return load_config(*files, cli=overrides, preset=preset, template=template, env=env)


@app.command("show", context_settings=_EXTRA)
def show(
    ctx: typer.Context,
    args: ArgsOpt = None,
    preset: PresetOpt = None,
    template: TemplateOpt = None,
    env: EnvOpt = None,
    all_values: Annotated[
        bool, typer.Option("--all", help="Also show untouched defaults.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the resolved config with the provenance of each value."""
    from trainforge.logs import format_value

    config = _load([*(args or []), *ctx.args], preset, template, env)
    rows = config.overview_rows(include_defaults=all_values)
    if as_json:
        print_json(
            {
                "config": config.to_dict(),
                "config_hash": config.config_hash(),
                "provenance": {key: prov.to_dict() for key, _, prov in rows},
            }
        )
        return
    title = "configuration" + ("" if all_values else " (non-default values; --all for every key)")
    print_table(
        title,
        ("key", "value", "provenance"),
        [(key, format_value(value), prov.render()) for key, value, prov in rows],
    )
    typer.echo(f"config hash: {config.config_hash()[:16]}")


@app.command("validate", context_settings=_EXTRA)
def validate(
    ctx: typer.Context,
    args: ArgsOpt = None,
    preset: PresetOpt = None,
    template: TemplateOpt = None,
    env: EnvOpt = None,
) -> None:
    """Validate a config; exit 1 listing every problem."""
    config = _load([*(args or []), *ctx.args], preset, template, env)
    typer.echo(f"configuration is valid (hash {config.config_hash()[:16]})")


@app.command("legend")
def legend() -> None:
    """Explain the provenance tags shown next to values."""
    from trainforge.logs import PROVENANCE_LEGEND

    print_table("provenance legend", ("tag", "meaning"), PROVENANCE_LEGEND)


@app.command("templates")
def templates(as_json: JsonOpt = False) -> None:
    """List the task templates shipped with trainforge."""
    from trainforge.config import describe_template, list_templates

    names = list_templates()
    if as_json:
        print_json({name: describe_template(name) for name in names})
        return
    print_table("templates", ("name", "description"), [(n, describe_template(n)) for n in names])


@app.command("diff")
def diff(
    old: Annotated[str, typer.Argument(help="The old config (file or saved config).")],
    new: Annotated[str, typer.Argument(help="The new config.")],
    as_json: JsonOpt = False,
) -> None:
    """Compare two configs key by key, with how risky each change is for resuming."""
    from trainforge.config import TrainingConfig
    from trainforge.logs import format_value

    changes = TrainingConfig.load(old).diff(TrainingConfig.load(new))
    if as_json:
        print_json(
            [{"key": c.key, "old": c.old, "new": c.new, "severity": c.severity} for c in changes]
        )
        return
    if not changes:
        typer.echo("no differences")
        return
    print_table(
        f"{len(changes)} difference(s)",
        ("key", "old", "new", "severity"),
        [(c.key, format_value(c.old), format_value(c.new), c.severity) for c in changes],
    )
