"""MkDocs hooks: the tutorial notebook becomes a page of the site.

The notebook is stored with its outputs stripped (the test suite executes it), so the
page shows its text and code cells in order, rendered from the notebook itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

NOTEBOOK = "tutorial.ipynb"
PAGE = "tutorial.md"


def notebook_markdown(path: Path) -> str:
    """The cells of a notebook as Markdown: text as written, code as Python blocks."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    parts = []
    for cell in cells:
        source = "".join(cell["source"]).rstrip()
        if cell["cell_type"] == "markdown":
            parts.append(source)
        elif cell["cell_type"] == "code":
            parts.append(f"```python\n{source}\n```")
    link = f"*This page is [{NOTEBOOK}]({NOTEBOOK}): run it with Jupyter.*"
    return "\n\n".join([*parts[:1], link, *parts[1:]]) + "\n"


def on_files(files: Files, config: Any) -> Files:
    """Add the tutorial page, generated from the notebook."""
    source = Path(config["docs_dir"]) / NOTEBOOK
    files.append(File.generated(config, PAGE, content=notebook_markdown(source)))
    return files
