"""The digits split cache: same arrays as scikit-learn's split, without importing it."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from trainforge.zoo._digits import _split, digits_datasets


def _arrays(datasets):
    train, val = datasets
    return [np.asarray(d.tensors[k]) for d in (train, val) for k in ("inputs", "labels")]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINFORGE_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_cached_split_equals_a_fresh_one(cache):
    fresh = _split(0.2, 7)
    first = _arrays(digits_datasets(val_split=0.2, seed=7))
    (stored,) = (cache / "digits").glob("*.npz")
    again = _arrays(digits_datasets(val_split=0.2, seed=7))
    expected = [fresh["train_x"], fresh["train_y"], fresh["val_x"], fresh["val_y"]]
    for a, b, c in zip(first, again, expected, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
    assert "seed-7" in stored.name and "split-0.2" in stored.name


def test_a_warm_cache_does_not_import_scikit_learn(cache):
    digits_datasets(val_split=0.2, seed=0)
    code = (
        "import sys\n"
        "from trainforge.zoo._digits import digits_datasets\n"
        "train, val = digits_datasets(val_split=0.2, seed=0)\n"
        "assert len(train) == 1437 and len(val) == 360\n"
        "print('sklearn' in sys.modules)\n"
    )
    env = {**os.environ, "TRAINFORGE_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_damaged_cache_is_rebuilt(cache):
    expected = _arrays(digits_datasets(val_split=0.25, seed=1))
    (stored,) = (cache / "digits").glob("*.npz")
    stored.write_bytes(b"not a zip file")
    for a, b in zip(_arrays(digits_datasets(val_split=0.25, seed=1)), expected, strict=True):
        np.testing.assert_array_equal(a, b)
    with np.load(stored) as rebuilt:  # the rebuilt cache is whole again
        assert set(rebuilt.files) == {"train_x", "val_x", "train_y", "val_y"}


def test_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("TRAINFORGE_CACHE_DIR", str(blocked))
    train, val = digits_datasets(val_split=0.2, seed=0)
    assert (len(train), len(val)) == (1437, 360)
    assert list(tmp_path.iterdir()) == [blocked]
