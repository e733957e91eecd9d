"""Every example in README.md and docs/*.md runs as written (see docs/writing-docs.md).

Each page is split into sessions: a session is a fresh working directory and one Python
namespace, and its blocks run in page order. ``python`` blocks are executed (their
printed output is compared with a following block marked ``<!-- output -->``),
``console`` blocks run each ``$ `` command with bash and compare what it prints,
``bash`` blocks run as one script that must succeed, ``yaml`` and ``json`` blocks must
parse, and a block marked ``<!-- file: PATH -->`` is also written to PATH. A block
marked ``<!-- not-run: reason -->`` is counted, not executed; one marked
``<!-- tested-by: tests/PATH.py -->`` is run by that test module instead. One test item runs one
session of one page.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import json
import os
import re
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXECUTED = ("python", "console", "bash")
PARSED = ("yaml", "json")
KNOWN = (*EXECUTED, *PARSED, "text", "")
BLOCK_TIMEOUT_S = 300
# clock times in log lines are never the same twice; a config hash changes whenever the
# schema gains a key
DEFAULT_VOLATILE = (r"\b\d\d:\d\d:\d\d\b", r"\bhash:? [0-9a-f]{16}\b")

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*([\w-]+)(?::\s*(.*?))?\s*-->\s*$")
_MARKERS = {"not-run", "tested-by", "session", "file", "output", "volatile", "env"}
_RC = "\x1etrainforge-doc-rc"
_JOB_NOTICE = re.compile(r"^bash: line \d+: +\d+ (Killed|Terminated) ")


@dataclasses.dataclass
class Block:
    """One fenced block and the markers written on the lines just above it."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    session: str
    markers: dict[str, list[str]]

    @property
    def where(self) -> str:
        return f"{_rel(self.path)}:{self.line}"

    def marker(self, name: str) -> str | None:
        values = self.markers.get(name)
        return values[-1] if values else None


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def parse_page(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, with their markers and session."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    pending: dict[str, list[str]] = {}
    session = "main"
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line.strip())
        fence = _FENCE.match(line)
        if marker and marker.group(1) in _MARKERS:
            pending.setdefault(marker.group(1), []).append(marker.group(2) or "")
            if marker.group(1) == "session":
                session = marker.group(2) or "main"
        elif line.startswith("````"):  # a block that shows fences: never run
            end = i + 1
            while end < len(lines) and not lines[end].startswith("````"):
                end += 1
            pending = {}
            i = end
        elif fence:
            end = i + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            if end == len(lines):
                raise ValueError(f"{_rel(path)}:{i + 1}: the fence is never closed")
            text = "\n".join(lines[i + 1 : end])
            blocks.append(Block(path, i + 1, fence.group(1), text, session, pending))
            pending = {}
            i = end
        elif line.strip():
            pending = {}  # markers belong to the block right below them
        i += 1
    return blocks


def doc_pages() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


# ---------------------------------------------------------------- comparing output


def _normalise(line: str, volatile: list[str]) -> str:
    for pattern in volatile:
        line = re.sub(pattern, "<volatile>", line)
    line = re.sub(r"[─━═]+", "─", line)  # table rules widen and narrow with their cells
    return re.sub(r"\s+", " ", line).strip()


def _is_gap(line: str) -> bool:
    """``...`` alone, or a table row holding only ``...``: any number of lines."""
    return line.strip("│┃ ") == "..."


def output_matches(expected: str, actual: str, volatile: list[str]) -> bool:
    """Whether ``actual`` is what ``expected`` shows; a line ``...`` stands for any lines."""
    want = [_normalise(x, volatile) for x in expected.split("\n")]
    got = [_normalise(x, volatile) for x in actual.split("\n")]
    want = [x for x in want if x]
    got = [x for x in got if x]
    pattern = "".join(r"(?:[^\n]*\n)*?" if _is_gap(x) else re.escape(x) + r"\n" for x in want)
    return re.fullmatch(pattern, "".join(x + "\n" for x in got)) is not None


def _diff(expected: str, actual: str) -> str:
    return "\n".join(
        difflib.unified_diff(
            expected.rstrip("\n").split("\n"),
            actual.rstrip("\n").split("\n"),
            "shown in the docs",
            "printed",
            lineterm="",
        )
    )


# ---------------------------------------------------------------- running a session


@dataclasses.dataclass
class Command:
    line: int
    text: str
    expected: str


def console_commands(block: Block) -> list[Command]:
    """The ``$ `` commands of a console block, each with the output shown below it."""
    commands: list[Command] = []
    lines = block.text.split("\n")
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            if not commands:
                raise ValueError(f"{block.where}: a console block starts with a '$ ' command")
            commands[-1].expected += lines[i] + "\n"
            i += 1
            continue
        start = i
        text = lines[i][2:]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i].strip()
        commands.append(Command(block.line + 1 + start, text, ""))
        i += 1
    return commands


def _shell_env(block: Block) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleave as on a terminal
    env["COLUMNS"] = "200"
    env.pop("PYTEST_CURRENT_TEST", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    for values in block.markers.get("env", []):
        for item in values.split():
            key, _, value = item.partition("=")
            env[key] = value
    return env


def _run_console(block: Block, cwd: Path, failures: list[str]) -> None:
    commands = console_commands(block)
    script = ["exec 2>&1"]
    for index, command in enumerate(commands):
        script.append(command.text)
        # report the exit code, then hand it on to the next command's `$?`
        script.append(f"__rc=$?; printf '\\n{_RC} {index} %s\\n' $__rc; (exit $__rc)")
    proc = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=_shell_env(block),
        stdout=subprocess.PIPE,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    outputs: dict[int, tuple[str, int]] = {}
    chunk: list[str] = []
    for line in proc.stdout.split("\n"):
        if _JOB_NOTICE.match(line):
            continue  # bash's own notice that a background job was killed
        if line.startswith(_RC):
            _, index, rc = line.split(" ")
            outputs[int(index)] = ("\n".join(chunk), int(rc))
            chunk = []
        else:
            chunk.append(line)
    volatile = [*DEFAULT_VOLATILE, *block.markers.get("volatile", [])]
    for index, command in enumerate(commands):
        actual, rc = outputs.get(index, ("\n".join(chunk), -1))
        where = f"{_rel(block.path)}:{command.line}"
        if rc != 0 and "error" not in command.expected.lower():
            failures.append(
                f"{where}: $ {command.text}\nexited with {rc} but the docs show no error; "
                f"it printed:\n{actual}"
            )
        elif not output_matches(command.expected, actual, volatile):
            failures.append(
                f"{where}: $ {command.text}\nprinted something else than the docs show "
                f"('...' lines match anything):\n{_diff(command.expected, actual)}"
            )


def _run_bash(block: Block, cwd: Path, failures: list[str]) -> None:
    proc = subprocess.run(
        ["bash", "-e", "-c", block.text],
        cwd=cwd,
        env=_shell_env(block),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    if proc.returncode != 0:
        failures.append(
            f"{block.where}: the bash block exited with {proc.returncode}:\n"
            f"{block.text}\nit printed:\n{proc.stdout}"
        )


def _run_python(block: Block, namespace: dict[str, object], failures: list[str]) -> str:
    printed = io.StringIO()
    code = compile(block.text, f"{block.where}", "exec")
    try:
        with contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.simplefilter("default")
            exec(code, namespace)
    except Exception as exc:  # the failure names the block; the traceback shows the line
        import traceback

        failures.append(
            f"{block.where}: the python block raised {type(exc).__name__}: {exc}\n"
            + "".join(traceback.format_exception(exc)[-6:])
        )
    return printed.getvalue()


def run_session(blocks: list[Block], cwd: Path) -> list[str]:
    """Run the blocks of one session in ``cwd``; the failures, each with its file and line."""
    failures: list[str] = []
    namespace: dict[str, object] = {"__name__": "__main__"}
    printed: str | None = None
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        for block in blocks:
            if block.lang not in KNOWN:
                failures.append(f"{block.where}: unknown block language {block.lang!r}")
                continue
            if block.marker("not-run") is not None or block.marker("tested-by"):
                continue
            target = block.marker("file")
            if target:
                path = cwd / target
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(block.text + "\n", encoding="utf-8")
            if block.marker("output") is not None:
                volatile = [*DEFAULT_VOLATILE, *block.markers.get("volatile", [])]
                if printed is None:
                    failures.append(f"{block.where}: an output block follows no python block")
                elif not output_matches(block.text, printed, volatile):
                    failures.append(
                        f"{block.where}: the python block above printed something else "
                        f"('...' lines match anything):\n{_diff(block.text, printed)}"
                    )
                printed = None
                continue
            printed = None
            if block.lang == "python" and not target:
                printed = _run_python(block, namespace, failures)
            elif block.lang == "console":
                _run_console(block, cwd, failures)
            elif block.lang == "bash":
                _run_bash(block, cwd, failures)
            elif block.lang == "yaml":
                try:
                    yaml.safe_load(block.text)
                except yaml.YAMLError as exc:
                    failures.append(f"{block.where}: the yaml block does not parse: {exc}")
            elif block.lang == "json":
                try:
                    json.loads(block.text)
                except ValueError as exc:
                    failures.append(f"{block.where}: the json block does not parse: {exc}")
    finally:
        os.chdir(previous)
    return failures


def sessions(path: Path) -> dict[str, list[Block]]:
    """The blocks of a page, grouped by session, in page order."""
    grouped: dict[str, list[Block]] = {}
    for block in parse_page(path):
        grouped.setdefault(block.session, []).append(block)
    return grouped


def _items() -> list[tuple[Path, str]]:
    return [
        (path, name)
        for path in doc_pages()
        for name, blocks in sessions(path).items()
        if any(b.lang in (*EXECUTED, *PARSED) for b in blocks)
    ]


# ---------------------------------------------------------------- the tests


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize(
    ("page", "session"), _items(), ids=[f"{_rel(p)}::{s}" for p, s in _items()]
)
def test_doc_examples_run_as_shown(page: Path, session: str, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("TRAINFORGE_DB", raising=False)
    monkeypatch.delenv("TRAINFORGE_ENV", raising=False)
    failures = run_session(sessions(page)[session], tmp_path)
    assert not failures, "\n\n".join(failures)


def test_every_block_is_run_or_marked_with_a_reason():
    counts: Counter[str] = Counter()
    problems = []
    for page in doc_pages():
        for block in parse_page(page):
            reason = block.marker("not-run")
            tested_by = block.marker("tested-by")
            if tested_by is not None:
                counts["run by another test"] += 1
                if not (ROOT / tested_by).is_file():
                    problems.append(f"{block.where}: tested-by names no test file: {tested_by!r}")
            elif block.lang not in KNOWN:
                problems.append(f"{block.where}: unknown language {block.lang!r}")
            elif reason is not None:
                counts["not run"] += 1
                if not reason.strip():
                    problems.append(f"{block.where}: <!-- not-run --> needs a reason")
            elif block.lang in EXECUTED:
                counts["executed"] += 1
    assert not problems, "\n".join(problems)
    assert counts["executed"] > 0


def test_a_wrong_example_is_caught(tmp_path: Path):
    page = FIXTURES / "wrong.md"
    failures = [
        failure for blocks in sessions(page).values() for failure in run_session(blocks, tmp_path)
    ]
    report = "\n\n".join(failures)
    # the wrong output of a command: file, line, the command and the difference
    assert "tests/docs/fixtures/wrong.md:6: $ echo hello" in report
    assert "-goodbye" in report and "+hello" in report
    # a failing command that the page shows as succeeding
    assert "wrong.md:13: $ false" in report and "exited with 1" in report
    # a python block that raises, and one whose output differs from the shown output
    assert "wrong.md:16: the python block raised ZeroDivisionError" in report
    assert "wrong.md:25: the python block above printed something else" in report
    # a bash block that fails, a yaml block that does not parse
    assert "wrong.md:29: the bash block exited with 3" in report
    assert "wrong.md:33: the yaml block does not parse" in report
    assert len(failures) == 6
    # what the same page gets right passes
    assert not any(":41" in failure for failure in failures)


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ("a\nb\n", "a\nb\n", True),
        ("a\n...\nc\n", "a\nb\nb2\nc\n", True),
        ("a\n...\n", "a\n", True),
        ("a\nc\n", "a\nb\nc\n", False),
        ("│ x │ 1 │\n", "│ x   │ 1   │\n", True),  # column widths do not matter
        ("┏━━┓\n", "┏━━━━━━┓\n", True),
        ("10:44:17 INFO x\n", "09:01:02 INFO x\n", True),  # clock times are volatile
        ("val 0.5\n", "val 0.6\n", False),
    ],
)
def test_output_matching(expected: str, actual: str, matches: bool):
    assert output_matches(expected, actual, list(DEFAULT_VOLATILE)) is matches
