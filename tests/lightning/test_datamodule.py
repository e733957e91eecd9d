import pytest
import torch

from trainforge.engine import TaskSpec
from trainforge.lightning import UniversalDataModule


def dataset(n: int = 20):
    return torch.utils.data.TensorDataset(torch.arange(n).float().unsqueeze(1), torch.zeros(n))


def indices(loader, batches=None):
    out = []
    for i, (x, _) in enumerate(loader):
        out.extend(int(v) for v in x.squeeze(1))
        if batches is not None and i + 1 >= batches:
            break
    return out


def test_loaders_are_seeded_and_validation_is_ordered():
    a = UniversalDataModule(dataset(), dataset(), batch_size=4, seed=3)
    b = UniversalDataModule(dataset(), dataset(), batch_size=4, seed=3)
    assert indices(a.train_dataloader()) == indices(b.train_dataloader())
    assert sorted(indices(a.train_dataloader())) == list(range(20))
    assert indices(a.val_dataloader()) == list(range(20))


def test_state_dict_resumes_at_the_next_unseen_sample():
    full = UniversalDataModule(dataset(), batch_size=4, seed=7)
    expected = indices(full.train_dataloader())

    first = UniversalDataModule(dataset(), batch_size=4, seed=7)
    loader = first.train_dataloader()
    seen = indices(loader, batches=2)
    state = first.state_dict()
    assert state["position"] == 8

    resumed = UniversalDataModule(dataset(), batch_size=4, seed=7)
    resumed.load_state_dict(state)
    assert seen + indices(resumed.train_dataloader()) == expected


def test_collator_follows_the_task_spec():
    spec = TaskSpec.language_modeling_tiny(vocab_size=10, max_seq_len=8)
    items = [{"inputs": torch.tensor([1, 2, 3])}, {"inputs": torch.tensor([4, 5])}]
    module = UniversalDataModule(items, batch_size=2, task_spec=spec, shuffle=False)
    batch = next(iter(module.train_dataloader()))
    assert batch["inputs"].shape == (2, 3)
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]


def _two_process_trainer(**options):
    import lightning.pytorch as pl

    return pl.Trainer(
        strategy="ddp", devices=2, accelerator="cpu", logger=False, **options
    )  # not fitted: only its world size and settings are read


def test_data_parallel_shares_are_disjoint_and_cover_the_epoch():
    data = torch.utils.data.TensorDataset(torch.arange(10.0), torch.arange(10))
    seen = []
    for rank in (0, 1):
        module = UniversalDataModule(data, data, batch_size=2, seed=3)
        module.trainer = _two_process_trainer(use_distributed_sampler=False)
        module.trainer.strategy.cluster_environment.set_global_rank(rank)  # as DDP does
        loader = module.train_dataloader()
        assert len(loader) == 3  # 5 samples per process, batches of 2
        seen.append([int(i) for batch in loader for i in batch[1]])
    assert sorted(seen[0] + seen[1]) == list(range(10))


def test_lightning_splitting_the_data_again_is_refused():
    data = torch.utils.data.TensorDataset(torch.zeros(8, 2), torch.zeros(8))
    module = UniversalDataModule(data, data, batch_size=2)
    module.trainer = _two_process_trainer()
    with pytest.raises(ValueError, match="use_distributed_sampler=False"):
        module.train_dataloader()
