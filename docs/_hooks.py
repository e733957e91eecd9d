"""MkDocs hooks: the tutorial notebook becomes a page of the site.

The notebook is stored with its outputs stripped (the test suite executes it). What a
fresh execution prints is stored next to it in ``tutorial.outputs.json`` (the suite checks
it against a fresh execution), so the page shows each code cell followed by its outputs:
text as it was printed, figures as images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

NOTEBOOK = "tutorial.ipynb"
OUTPUTS = "tutorial.outputs.json"
PAGE = "tutorial.md"


def rendered_outputs(outputs: list[dict[str, str]]) -> list[str]:
    """One code cell's stored outputs as Markdown: text blocks and inline PNG images."""
    parts = []
    for output in outputs:
        if "image/png" in output:
            image = output["image/png"].replace("\n", "")
            parts.append(f'<img alt="cell output" src="data:image/png;base64,{image}">')
        elif output.get("text", "").strip():
            parts.append(f"```text\n{output['text'].rstrip()}\n```")
    return parts


def notebook_markdown(path: Path) -> str:
    """The cells of a notebook as Markdown: text as written, code as Python blocks."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    stored = path.with_name(OUTPUTS)
    outputs = json.loads(stored.read_text(encoding="utf-8")) if stored.exists() else {}
    sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    # outputs made from other code cells are not shown (the test suite reports them stale)
    per_cell = outputs.get("outputs", []) if outputs.get("sources") == sources else []
    parts = []
    code_index = 0
    for cell in cells:
        source = "".join(cell["source"]).rstrip()
        if cell["cell_type"] == "markdown":
            parts.append(source)
        elif cell["cell_type"] == "code":
            parts.append(f"```python\n{source}\n```")
            if code_index < len(per_cell):
                parts.extend(rendered_outputs(per_cell[code_index]))
            code_index += 1
    link = f"*This page is [{NOTEBOOK}]({NOTEBOOK}): run it with Jupyter.*"
    return "\n\n".join([*parts[:1], link, *parts[1:]]) + "\n"


def on_files(files: Files, config: Any) -> Files:
    """Add the tutorial page, generated from the notebook and its stored outputs."""
    source = Path(config["docs_dir"]) / NOTEBOOK
    files.append(File.generated(config, PAGE, content=notebook_markdown(source)))
    return files
