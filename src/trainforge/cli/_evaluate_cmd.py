"""``trainforge evaluate``: a checkpoint's loss and task metrics on a data split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from trainforge.cli._output import print_json, print_table


def evaluate(
    checkpoint: Annotated[
        str, typer.Argument(help="Checkpoint directory, directory of checkpoints, or pointer.")
    ],
    split: Annotated[str, typer.Option(help="val or train.")] = "val",
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the metrics to this JSON file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Evaluate a checkpoint on a split of the data its own config names."""
    from trainforge.train import evaluate_checkpoint

    metrics = evaluate_checkpoint(checkpoint, split=split)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        tmp.replace(output)
    if as_json:
        print_json(metrics)
    else:
        print_table(f"{checkpoint} on {split}", ("metric", "value"), sorted(metrics.items()))
