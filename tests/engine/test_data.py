"""Resumable sampling, loader determinism, collators and the collator registry."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from trainforge.engine import (
    CollatorRegistry,
    DataLoaderFactory,
    ResumableSampler,
    TaskSpec,
    TextCollator,
    VisionCollator,
    as_batch_dict,
)
from trainforge.engine.data._batched import TensorRows
from trainforge.errors import ConfigError, RegistryError


def _dataset(n: int = 23) -> TensorDataset:
    return TensorDataset(torch.arange(n, dtype=torch.float32), torch.arange(n))


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("cut", [0, 1, 7, 22, 23])
def test_resumable_sampler_continues_exactly(shuffle, cut):
    full = ResumableSampler(23, shuffle=shuffle, seed=11)
    full.set_epoch(2)
    expected = list(full)
    sampler = ResumableSampler(23, shuffle=shuffle, seed=11)
    sampler.set_epoch(2)
    it = iter(sampler)
    seen = [next(it) for _ in range(cut)]
    state = sampler.state_dict()
    assert state == {"epoch": 2, "seed": 11, "position": cut}
    resumed = ResumableSampler(23, shuffle=shuffle, seed=11)
    resumed.load_state_dict(state)
    resumed.set_epoch(2)  # a resumed loop re-announces the epoch: the position stays
    assert seen + list(resumed) == expected
    assert resumed.epoch == 3 and resumed.position == 0


def test_sampler_orders_differ_per_epoch_and_seed():
    s = ResumableSampler(50, seed=0)
    first, second = list(s), list(s)  # iteration advances the epoch
    assert sorted(first) == list(range(50)) and first != second
    assert list(ResumableSampler(50, seed=1)) != first
    state = random.getstate(), torch.random.get_rng_state()
    list(ResumableSampler(50, seed=0))
    assert torch.equal(torch.random.get_rng_state(), state[1])


def test_sampler_rejects_a_foreign_state():
    with pytest.raises(ValueError, match="same run.seed"):
        ResumableSampler(5, seed=1).load_state_dict({"epoch": 0, "seed": 2, "position": 0})
    with pytest.raises(ValueError, match="did the dataset change"):
        ResumableSampler(5, seed=1).load_state_dict({"epoch": 0, "seed": 1, "position": 9})


def test_loader_is_deterministic_and_resumes_mid_epoch_at_a_random_position():
    def order(loader):
        return [x.tolist() for x, _ in loader]

    a = DataLoaderFactory.create(_dataset(), batch_size=4, random_seed=5)
    b = DataLoaderFactory.create(_dataset(), batch_size=4, random_seed=5)
    assert order(a) == order(b)
    assert order(a) == order(b)  # second epoch too, and different from the first
    assert order(DataLoaderFactory.create(_dataset(), batch_size=4, random_seed=6)) != order(
        DataLoaderFactory.create(_dataset(), batch_size=4, random_seed=5)
    )

    reference = order(DataLoaderFactory.create(_dataset(), batch_size=4, random_seed=5))
    cut = random.Random(3).randrange(1, len(reference))
    loader = DataLoaderFactory.create(_dataset(), batch_size=4, random_seed=5)
    it = iter(loader)
    head = [next(it)[0].tolist() for _ in range(cut)]
    state = loader.sampler.state_dict()
    resumed = DataLoaderFactory.create(_dataset(), batch_size=4, random_seed=5, sampler_state=state)
    assert head + order(resumed) == reference


def test_loader_with_workers_matches_single_process():
    single = DataLoaderFactory.create(_dataset(), batch_size=5, random_seed=2)
    multi = DataLoaderFactory.create(
        _dataset(), batch_size=5, random_seed=2, num_workers=2, prefetch_factor=2
    )
    assert [x.tolist() for x, _ in single] == [x.tolist() for x, _ in multi]


def test_prefetch_factor_dropped_and_pin_memory_only_with_cuda():
    loader = DataLoaderFactory.create(_dataset(), batch_size=4, pin_memory=True, prefetch_factor=4)
    assert loader.prefetch_factor is None
    assert loader.pin_memory == torch.cuda.is_available()


def test_batch_larger_than_dataset_with_drop_last_names_the_keys():
    with pytest.raises(ConfigError, match=r"data\.batch_size=64.*data\.drop_last"):
        DataLoaderFactory.create(_dataset(10), batch_size=64, drop_last=True)


def test_text_collator_pads_to_longest_with_mask_and_ignore_index():
    collate = TextCollator(pad_token_id=0, ignore_index=-100)
    batch = collate(
        [
            {"input_ids": [5, 6, 7], "labels": [5, 6, 7]},
            {"input_ids": [8], "labels": [8]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, -100, -100]]
    left = TextCollator(padding_side="left", pad_token_id=9)([([1, 2], 0), ([3], 1)])
    assert left["inputs"].tolist() == [[1, 2], [9, 3]]
    assert left["labels"].tolist() == [0, 1]


def test_text_collator_keeps_the_samples_own_attention_masks():
    """Pre-padded tokenizer output: its pad tokens stay unattended after collation."""
    collate = TextCollator(pad_token_id=0, max_length=3)
    batch = collate(
        [
            {"input_ids": [5, 6, 0, 0], "attention_mask": [1, 1, 0, 0]},
            {"input_ids": [7], "attention_mask": [1]},
        ]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 0], [7, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 0, 0]]
    partly = collate([{"input_ids": [5, 0], "attention_mask": [1, 0]}, {"input_ids": [7]}])
    assert partly["attention_mask"].tolist() == [[1, 0], [1, 0]]  # no mask: all attended
    with pytest.raises(ValueError, match=r"sample 1: its attention_mask has 2 entries for 1"):
        collate(
            [
                {"input_ids": [5], "attention_mask": [1]},
                {"input_ids": [7], "attention_mask": [1, 1]},
            ]
        )


def test_vision_collator_normalises_per_channel():
    images = [
        torch.full((3, 2, 2), 255, dtype=torch.uint8),
        torch.zeros(3, 2, 2, dtype=torch.uint8),
    ]
    collate = VisionCollator(mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    batch = collate([{"inputs": img, "labels": i} for i, img in enumerate(images)])
    assert batch["inputs"].shape == (2, 3, 2, 2)
    assert batch["inputs"][0, :, 0, 0].tolist() == [1.0, 3.0, 1.0]
    assert batch["inputs"][1, :, 0, 0].tolist() == [-1.0, -1.0, 0.0]
    assert batch["labels"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="3 channels"):
        VisionCollator(mean=(0.1, 0.2), std=(1.0, 1.0))([(images[0], 0)])


def test_collator_registry_by_task_spec_and_name():
    assert {row["name"] for row in CollatorRegistry.list_collators()} >= {
        "text",
        "vision",
        "default",
    }
    text = CollatorRegistry.get_collator(TaskSpec.language_modeling_tiny())
    assert isinstance(text, TextCollator) and text.ignore_index == -100
    assert isinstance(CollatorRegistry.get_collator(TaskSpec.vision_tiny()), VisionCollator)
    default = CollatorRegistry.get_collator(TaskSpec.classification_tiny())
    x, y = default([(torch.zeros(2), 1), (torch.ones(2), 0)])
    assert x.shape == (2, 2) and y.tolist() == [1, 0]
    with pytest.raises(RegistryError, match="did you mean 'vision'"):
        CollatorRegistry.get_collator("visoin")


def test_custom_collator_and_factory_selection():
    @CollatorRegistry.add("doubling_test", description="test")
    def _factory():
        return lambda samples: [2 * s for s in samples]

    try:
        loader = DataLoaderFactory.create(
            [1, 2, 3], batch_size=3, shuffle=False, collator_name="doubling_test"
        )
        assert next(iter(loader)) == [2, 4, 6]
    finally:
        CollatorRegistry.unregister("doubling_test")


def test_batch_convention():
    assert as_batch_dict((1, 2)) == {"inputs": 1, "labels": 2}
    assert as_batch_dict({"inputs": 1}) == {"inputs": 1}
    with pytest.raises(ValueError, match="return a dict"):
        as_batch_dict((1, 2, 3))


def test_replicas_take_disjoint_padded_shares_of_the_same_order():
    full = ResumableSampler(10, seed=4).order(0)
    shares = [list(ResumableSampler(10, seed=4, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shares] == [4, 4, 4]  # 10 padded to 12
    padded = full + full[:2]
    assert shares == [padded[r::3] for r in range(3)]


def test_an_abandoned_iteration_does_not_move_the_next_start():
    sampler = ResumableSampler(8, seed=1)
    it = iter(sampler)
    [next(it) for _ in range(3)]  # a prefetching loader's iterator, dropped part-way
    sampler.set_epoch(1)
    assert list(sampler) == sampler.order(1)
    resumed = ResumableSampler(8, seed=1)
    resumed.load_state_dict({"epoch": 1, "seed": 1, "position": 5})
    resumed.set_epoch(1)  # announcing the same epoch keeps the loaded start
    assert list(resumed) == sampler.order(1)[5:]


def test_a_mid_epoch_position_needs_the_same_number_of_processes():
    two = ResumableSampler(10, seed=0, num_replicas=2, rank=0)
    state = two.state_dict(consumed=2)
    assert state["num_replicas"] == 2
    with pytest.raises(ValueError, match="resume with the same trainer.devices"):
        ResumableSampler(10, seed=0).load_state_dict(state)
    # an epoch boundary is the same for any number of processes
    ResumableSampler(10, seed=0).load_state_dict({**state, "position": 0})


_DTYPES = [torch.float32, torch.float64, torch.int64, torch.bool, torch.uint8]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 40),
    batch_size=st.integers(1, 9),
    shapes=st.lists(st.lists(st.integers(1, 3), max_size=2), min_size=1, max_size=3),
    dtypes=st.lists(st.sampled_from(_DTYPES), min_size=3, max_size=3),
    subset=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_tensor_datasets_load_the_same_batches_gathered_whole(
    rows, batch_size, shapes, dtypes, subset, seed
):
    """A TensorDataset (or a Subset of one) is read a batch at a time, with equal batches."""
    generator = torch.Generator().manual_seed(seed)
    tensors = [
        (torch.randn(rows, *shape, generator=generator) * 10).to(dtype)
        for shape, dtype in zip(shapes, dtypes)
    ]
    data: Dataset = TensorDataset(*tensors)
    if subset:
        picked = torch.randperm(rows, generator=generator)[: max(rows // 2, 1)].tolist()
        data = Subset(data, [i - rows if i % 3 == 0 else i for i in picked])  # negatives too
    loader = DataLoaderFactory.create(data, batch_size=batch_size, random_seed=seed)
    assert isinstance(loader.dataset, TensorRows)
    reference = DataLoader(
        data, batch_size=batch_size, sampler=list(ResumableSampler(len(data), seed=seed))
    )
    got, expected = list(loader), list(reference)
    assert len(got) == len(expected)
    for batch, want in zip(got, expected):
        assert isinstance(batch, list)
        assert len(batch) == len(want)
        for column, column_want in zip(batch, want):
            assert column.dtype == column_want.dtype
            assert column.shape == column_want.shape
            assert torch.equal(column, column_want)


def test_datasets_with_their_own_reads_are_read_sample_by_sample():
    """A subclass's __getitem__, a custom collator or out-of-range indices keep the old path."""

    class Doubled(TensorDataset):
        def __getitem__(self, index):
            x, y = super().__getitem__(index)
            return x * 2, y

    doubled = DataLoaderFactory.create(Doubled(*_dataset(6).tensors), batch_size=3, shuffle=False)
    assert not isinstance(doubled.dataset, TensorRows)
    assert next(iter(doubled))[0].tolist() == [0.0, 2.0, 4.0]
    named = DataLoaderFactory.create(_dataset(6), batch_size=3, collator_name="vision")
    assert not isinstance(named.dataset, TensorRows)
    broken = DataLoaderFactory.create(Subset(_dataset(6), [0, 9]), batch_size=2)
    assert not isinstance(broken.dataset, TensorRows)
    with pytest.raises(IndexError):
        list(broken)
    workers = DataLoaderFactory.create(_dataset(6), batch_size=3, num_workers=1)
    assert not isinstance(workers.dataset, TensorRows)
