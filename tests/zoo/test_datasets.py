"""Built-in datasets: item shapes and dtypes, split sizes, determinism for a seed."""

from __future__ import annotations

import pytest
import torch

from trainforge.engine import TaskSpec
from trainforge.errors import ConfigError, RegistryError
from trainforge.zoo import CharVocab, build_datasets, get_task_spec

SMALL = {
    "digits": {},
    "tiny_lm": {"max_chars": 20_000},
    "shapes_seg": {"num_samples": 50},
    "ball_heatmap": {"num_samples": 50},
}


def _build(name: str, seed: int = 0, val_split: float = 0.2):
    return build_datasets(name, get_task_spec(name), val_split=val_split, seed=seed, **SMALL[name])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_items_are_dicts_with_inputs_and_labels(name):
    train, val = _build(name)
    for dataset in (train, val):
        item = dataset[0]
        assert {"inputs", "labels"} <= set(item)
        assert all(isinstance(value, torch.Tensor) for value in item.values())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_data_other_seed_other_split(name):
    first, second, other = _build(name, seed=3), _build(name, seed=3), _build(name, seed=4)
    for a, b in zip(first, second):
        assert len(a) == len(b)
        for key in a[0]:
            assert torch.equal(a.tensors[key], b.tensors[key])
    assert not torch.equal(first[1].tensors["inputs"], other[1].tensors["inputs"])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_split_sizes_follow_val_split(name):
    train, val = _build(name, val_split=0.25)
    total = len(train) + len(val)
    assert len(val) == pytest.approx(0.25 * total, abs=1)


def test_digits_features_scaled_and_split_stratified():
    train, val = _build("digits")
    assert (len(train), len(val)) == (1437, 360)
    inputs = train.tensors["inputs"]
    assert inputs.dtype == torch.float32 and inputs.shape == (1437, 64)
    assert inputs.min() >= 0 and inputs.max() <= 1
    assert train.tensors["labels"].dtype == torch.int64
    counts = torch.bincount(val.tensors["labels"], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # ~36 of each class


def test_tiny_lm_windows_are_stdlib_text():
    spec = get_task_spec("tiny_lm")
    train, val = _build("tiny_lm")
    item = train[0]
    assert item["inputs"].dtype == torch.int64
    assert item["inputs"].shape == (spec.max_seq_len,)
    assert torch.equal(item["inputs"], item["labels"])  # the loss shifts
    assert (len(train) + len(val)) * spec.max_seq_len <= 20_000
    all_ids = torch.cat([train.tensors["inputs"], val.tensors["inputs"]])
    assert all_ids.min() >= 1 and all_ids.max() < spec.vocab_size  # no padding, in range
    text = CharVocab().decode(all_ids.flatten())
    assert text.count(" ") > len(text) / 10  # prose, not noise
    assert "return" in text.lower()


def test_tiny_lm_needs_a_large_enough_vocab():
    spec = TaskSpec.language_modeling_tiny(vocab_size=50)
    with pytest.raises(ConfigError, match="vocab_size"):
        build_datasets("tiny_lm", spec, val_split=0.2, seed=0, max_chars=5_000)


def test_shapes_seg_images_and_masks():
    train, _ = _build("shapes_seg")
    images, masks = train.tensors["inputs"], train.tensors["labels"]
    assert images.shape[1:] == (3, 32, 32) and images.dtype == torch.float32
    assert masks.shape[1:] == (32, 32) and masks.dtype == torch.int64
    assert images.min() >= 0 and images.max() <= 1
    assert set(masks.unique().tolist()) == {0, 1, 2, 3}  # every class occurs
    assert (masks > 0).flatten(1).any(dim=1).all()  # every image has a shape


def test_ball_heatmap_target_peaks_at_the_position():
    train, _ = _build("ball_heatmap")
    item = train[0]
    assert item["inputs"].shape == (3, 32, 32)
    assert item["labels"].shape == (1, 32, 32)
    assert item["position"].shape == (2,) and item["position"].dtype == torch.float32
    heatmaps, positions = train.tensors["labels"], train.tensors["position"]
    assert heatmaps.max() <= 1
    flat = heatmaps.flatten(1).argmax(dim=1)
    peaks = torch.stack([flat % 32, flat // 32], dim=1).float()
    assert (peaks - positions).abs().max() <= 0.5 + 1e-6  # the nearest pixel


def test_ball_is_visible_near_its_position_in_the_last_frame():
    train, _ = build_datasets(
        "ball_heatmap", None, val_split=0.2, seed=0, num_samples=20, occlusion=0.0, noise=0.0
    )
    for item in train:
        x, y = item["position"].round().long().tolist()
        last = item["inputs"][-1]
        assert last[y, x] > last.median() + 0.3


def test_unknown_builtin_dataset_suggests_the_closest():
    with pytest.raises(RegistryError, match="did you mean 'shapes_seg'"):
        build_datasets("shape_seg", None, val_split=0.2, seed=0)


def test_unknown_dataset_option_is_a_config_error():
    with pytest.raises(ConfigError, match="num_sample"):
        build_datasets("shapes_seg", None, val_split=0.2, seed=0, num_sample=10)
