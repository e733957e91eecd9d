"""A manifest is untrusted data: nothing it says is read from outside its directory, and
bad metadata is one clear error that never blocks the folder."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainforge.checkpoint import MANIFEST_NAME, CheckpointManager, read_manifest
from trainforge.cli import main
from trainforge.errors import CheckpointCorruptedError, CheckpointError, TrainforgeError


@pytest.fixture
def saved(tmp_path: Path) -> tuple[CheckpointManager, Path, Path]:
    """A manager with one checkpoint, and a valid torch payload outside the directory."""
    manager = CheckpointManager(tmp_path / "ckpts", cache_ttl=0)
    path = manager.save(
        model=torch.nn.Linear(2, 2), epoch=0, global_step=0, metrics={"val_loss": 1}
    )
    victim = tmp_path / "victim.pt"
    torch.save({"model_state_dict": {"stolen": torch.ones(1)}}, victim)
    return manager, path, victim


def _rewrite(path: Path, change: Any) -> None:
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    change(manifest)
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))


def _entry(victim: Path) -> dict[str, Any]:
    data = victim.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "compression": None}


@pytest.mark.parametrize(
    "name", ["../../victim.pt", "../victim.pt", "{victim}", "./state.pt", "sub/state.pt", "."]
)
def test_file_names_outside_the_directory_are_refused(saved: Any, name: str) -> None:
    manager, path, victim = saved
    hostile = name.format(victim=victim)
    _rewrite(path, lambda m: m.__setitem__("files", {hostile: _entry(victim)}))
    with pytest.raises(CheckpointCorruptedError, match="not a plain name") as info:
        manager.load(path)
    assert MANIFEST_NAME in str(info.value) and "files" in str(info.value)
    assert manager.list_checkpoints() == []


@pytest.mark.parametrize("what", ["payload", "manifest"])
def test_symlinks_are_not_followed(saved: Any, what: str) -> None:
    manager, path, victim = saved
    target = path / ("state.pt" if what == "payload" else MANIFEST_NAME)
    outside = victim.parent / f"outside-{what}"
    shutil.copyfile(target, outside)
    target.unlink()
    target.symlink_to(outside)  # the same bytes, reached through a link
    with pytest.raises(CheckpointCorruptedError, match="symbolic link"):
        manager.load(path)
    assert all(not r.ok for r in manager.verify())


def test_symlinked_checkpoint_directory_is_not_listed(saved: Any, tmp_path: Path) -> None:
    manager, path, _ = saved
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(path, elsewhere)
    (manager.root / "ckpt-000009-epoch0009-step000009").symlink_to(elsewhere)
    assert [c.path for c in manager.list_checkpoints()] == [path]


def test_fifo_payload_is_refused_without_blocking(saved: Any) -> None:
    manager, path, _ = saved
    (path / "state.pt").unlink()
    os.mkfifo(path / "state.pt")  # opening it for reading would wait for a writer forever
    with pytest.raises(CheckpointCorruptedError, match="not a regular file"):
        manager.load(path)
    assert main(["ckpt", "verify", str(path)]) == 1


def test_empty_payload_is_a_clear_error(saved: Any) -> None:
    manager, path, _ = saved
    (path / "state.pt").write_bytes(b"")
    empty = {"sha256": hashlib.sha256(b"").hexdigest(), "size": 0, "compression": None}
    _rewrite(path, lambda m: m["files"].__setitem__("state.pt", empty))
    with pytest.raises(CheckpointCorruptedError, match="is empty"):
        manager.load(path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("epoch", "x", r"metadata\.epoch: Input should be a valid integer \(got 'x'\)"),
        ("epoch", None, r"metadata\.epoch"),
        ("global_step", -3, r"metadata\.global_step"),
        ("monitor_value", "abc", r"metadata\.monitor_value: Input should be a valid number"),
        ("metrics", [1, 2], r"metadata\.metrics: Input should be a valid dictionary"),
        ("mode", "sideways", r"metadata\.mode"),
        ("protected", "yes", r"metadata\.protected"),
    ],
)
def test_bad_metadata_is_one_clear_error_and_never_blocks_the_folder(
    saved: Any, field: str, value: Any, message: str
) -> None:
    manager, path, _ = saved
    _rewrite(path, lambda m: m["metadata"].__setitem__(field, value))
    with pytest.raises(CheckpointCorruptedError, match=message) as info:
        manager.load(path)
    assert str(path / MANIFEST_NAME) in str(info.value)
    assert manager.list_checkpoints() == []
    report = manager.prune()  # kept and reported, never deleted: it cannot be ranked
    assert report["unreadable"] == [path.name] and path.is_dir()
    newer = manager.save(
        model=torch.nn.Linear(2, 2), epoch=1, global_step=1, metrics={"val_loss": 0}
    )
    assert [c.path for c in manager.list_checkpoints()] == [newer]
    assert manager.load("last")["epoch"] == 1
    assert main(["ckpt", "list", str(manager.root)]) == 0


def test_unrestorable_rng_state_names_the_field(saved: Any) -> None:
    manager, path, _ = saved
    _rewrite(path, lambda m: m["metadata"]["rng_state"].__setitem__("python", 5))
    with pytest.raises(CheckpointCorruptedError, match=r"metadata\.rng_state cannot be restored"):
        manager.load(path)
    assert manager.load(path, restore_rng=False)["epoch"] == 0


# ---------------------------------------------------------------- random mutations
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 2**40) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_HOSTILE_NAMES = st.sampled_from(
    [
        "../../victim.pt",
        "../victim.pt",
        "VICTIM",
        ".",
        "..",
        "",
        "a/b",
        "state.pt\x00",
        "manifest.json",
    ]
) | st.text(max_size=12)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    return found


@st.composite
def _mutations(draw: Any, original: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    paths = _paths(original)[1:]
    kinds = st.sampled_from(["set", "delete", "rename", "steal", "add"])
    return [
        (kind, draw(st.sampled_from(paths)), draw(_JSON if kind != "rename" else _HOSTILE_NAMES))
        for kind in draw(st.lists(kinds, min_size=1, max_size=3))
    ]


def _apply(manifest: dict[str, Any], mutations: Any, victim: Path) -> Any:
    for kind, path, value in mutations:
        parent: Any = manifest
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or not isinstance(manifest.get("files"), dict):
            continue
        if kind == "set":
            parent[path[-1]] = value
        elif kind == "delete":
            parent.pop(path[-1], None)
        elif kind == "add":
            parent[f"extra-{path[-1]}"] = value
        else:  # rename the payload entry, or make it name the victim with the victim's hash
            name = str(victim) if value == "VICTIM" else value
            entries = manifest["files"]
            entry = _entry(victim) if kind == "steal" else next(iter(entries.values()), {})
            manifest["files"] = {("../victim.pt" if kind == "steal" else name): entry}
    return manifest


@pytest.fixture
def fast_dir(tmp_path: Path) -> Any:
    """A directory in memory (tmpfs) when the machine has one: 1,000 rewrites stay cheap."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="trainforge-test-", dir=shm))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_random_manifest_mutations_load_correctly_or_fail_clearly(fast_dir: Path) -> None:
    root = fast_dir
    manager = CheckpointManager(root / "ckpts", cache_ttl=0)
    model = torch.nn.Linear(3, 2)
    path = manager.save(model=model, epoch=2, global_step=7, metrics={"val_loss": 0.5})
    victim = path.parent / "victim.pt"  # what ../victim.pt names from inside the checkpoint
    torch.save({"model_state_dict": {"stolen": torch.ones(1)}}, victim)
    original = json.loads((path / MANIFEST_NAME).read_text())
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    outcomes = {"loaded": 0, "refused": 0}

    @settings(
        max_examples=1000,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(_mutations(original))
    def check(mutations: Any) -> None:
        manifest = _apply(copy.deepcopy(original), mutations, victim)
        (path / MANIFEST_NAME).write_text(json.dumps(manifest))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a load of an explicit path never warns
                loaded = manager.load(path, restore_rng=True)
        except CheckpointError as error:
            assert str(error) and not isinstance(error, (KeyError, TypeError))
            outcomes["refused"] += 1
        else:  # loaded: then it is the checkpoint saved, never anything else
            state = loaded["model_state_dict"]
            assert set(state) == set(expected), state.keys()
            assert all(torch.equal(state[k], expected[k]) for k in expected)
            outcomes["loaded"] += 1
        with contextlib.suppress(CheckpointCorruptedError):
            read_manifest(path)
        listed = manager.list_checkpoints()
        assert [c.path for c in listed] in ([], [path])
        for report in manager.verify():
            assert report.ok or report.problem

    try:
        check()
    except TrainforgeError as error:  # pragma: no cover - the assertion is the point
        pytest.fail(f"a mutation escaped as {error!r}")
    assert outcomes["loaded"] > 0 and outcomes["refused"] > 500, outcomes
    assert victim.exists()
