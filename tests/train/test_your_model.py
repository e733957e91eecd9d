"""A user's own model and data on both drivers: Hugging Face models and datasets,
DataLoaders, IterableDatasets, dataclass outputs, runs without a validation set."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from trainforge.config import load_config
from trainforge.errors import ConfigError, TrainingError
from trainforge.train import Trainer

from .conftest import assert_bitwise_equal

datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

ENGINES = ("plain", "lightning")

# peft 0.21 reads a property transformers 5 deprecated; nothing of ours
PEFT_WARNING = "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"

TEXT_TASK = ["task.name=toy", "task.modality=text"]


def _config(tmp_path, engine: str, *overrides: str):
    return load_config(
        cli=[
            f"trainer.engine={engine}",
            "trainer.max_epochs=3",
            "trainer.enable_progress_bar=false",
            "tracking.enabled=false",
            "run.deterministic=true",
            "optim.scheduler=none",
            f"run.output_dir={tmp_path / engine}",
            *overrides,
        ]
    )


def _train(model_fn, config, train_data, val_data=None):
    torch.manual_seed(0)
    trainer = Trainer(model=model_fn(), training_config=config, log_config=False)
    return trainer.train(train_data=train_data, val_data=val_data)


def _losses(results) -> list[float]:
    return results.metrics_summary["train/loss"].tolist()


def _on_both_drivers(tmp_path, model_fn, overrides, train_data, val_data=None):
    """Results of both drivers; each loss goes down and both drivers agree."""
    results = {}
    for engine in ENGINES:
        config = _config(tmp_path, engine, *overrides)
        results[engine] = _train(model_fn, config, train_data(), val_data() if val_data else None)
        losses = _losses(results[engine])
        assert len(losses) == 3 and losses[-1] < losses[0], (engine, losses)
    assert _losses(results["plain"]) == pytest.approx(_losses(results["lightning"]), rel=1e-4)
    return results


# -- a GPT-2 language model on Hugging Face style dict batches --------------------------


def _gpt2(vocab: int = 100) -> nn.Module:
    config = transformers.GPT2Config(
        n_layer=1,
        n_embd=32,
        n_head=2,
        vocab_size=vocab,
        n_positions=16,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config)


class _Repeats(Dataset):
    """Sequences of 16 tokens that repeat a 4-token pattern: easy to learn."""

    def __init__(self, n: int = 32, seed: int = 1) -> None:
        g = torch.Generator().manual_seed(seed)
        self.tokens = torch.randint(3, 40, (n, 4), generator=g).repeat(1, 4)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.tokens[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


LM = [
    *TEXT_TASK,
    "task.task_type=language_modeling",
    "task.vocab_size=100",
    "data.batch_size=8",
    "optim.lr=0.01",
]


def test_gpt2_on_dict_batches_trains_with_its_own_loss_on_both_drivers(tmp_path):
    results = _on_both_drivers(tmp_path, _gpt2, LM, _Repeats, lambda: _Repeats(8, seed=2))
    summary = results["plain"].metrics_summary
    assert {"val/loss", "val/perplexity"} <= set(summary.columns)
    assert results["plain"]["best_epoch"] == 2 and "monitor" in results["plain"]


# -- a BERT classifier on a datasets.DatasetDict, dynamic padding ------------------------


def _bert() -> nn.Module:
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def _sentences(n: int, seed: int):
    """Class 0 uses tokens 5..29, class 1 tokens 30..54; lengths vary from 4 to 10."""
    g = torch.Generator().manual_seed(seed)
    rows: dict[str, list] = {"input_ids": [], "labels": []}
    for label in torch.randint(0, 2, (n,), generator=g).tolist():
        length = int(torch.randint(3, 10, (1,), generator=g))
        ids = torch.randint(5, 30, (length,), generator=g) + 25 * label
        rows["input_ids"].append([1, *ids.tolist()])
        rows["labels"].append(label)
    return datasets.Dataset.from_dict(rows)


CLS = [
    *TEXT_TASK,
    "task.task_type=classification",
    "task.num_classes=2",
    "data.batch_size=16",
    "data.collator=text",
    "optim.lr=0.005",
]


def test_bert_classifier_on_a_datasets_dict_on_both_drivers(tmp_path):
    def splits():
        return datasets.DatasetDict({"train": _sentences(64, 1), "validation": _sentences(16, 2)})

    results = _on_both_drivers(tmp_path, _bert, CLS, splits)
    assert "val/acc" in results["lightning"].metrics_summary.columns


# -- LoRA: only the adapters learn ------------------------------------------------------


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_lora_gpt2_trains_only_its_adapters_on_both_drivers(tmp_path):
    models = {}

    def lora() -> nn.Module:
        config = peft.LoraConfig(
            r=4, lora_alpha=8, target_modules=["c_attn"], lora_dropout=0.0, fan_in_fan_out=True
        )
        model = peft.get_peft_model(_gpt2(), config)
        models[len(models)] = (model, {k: v.clone() for k, v in model.state_dict().items()})
        return model

    overrides = [*LM, "optim.lr=0.05", "optim.weight_decay=0"]
    _on_both_drivers(tmp_path, lora, overrides, lambda: _Repeats(16))
    for model, before in models.values():
        after = model.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert changed and all("lora_" in k for k in changed), sorted(changed)[:5]


# -- a user DataLoader, a dataclass output, no validation set ---------------------------


@dataclass
class _Output:
    logits: torch.Tensor
    hidden: torch.Tensor


class _Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(8, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, features: torch.Tensor) -> _Output:
        hidden = torch.relu(self.body(features))
        return _Output(self.head(hidden), hidden)


def _blobs(n: int = 96) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 3, (n,), generator=g)
    features = torch.randn(n, 8, generator=g) + nn.functional.one_hot(labels, 8).float() * 3
    return [{"features": f, "labels": y} for f, y in zip(features, labels)]


TABULAR = ["task.name=blobs", "task.num_classes=3", "optim.lr=0.05", "data.batch_size=16"]


def test_user_dataloader_dataclass_output_and_no_validation_set_on_both_drivers(tmp_path, caplog):
    def loader() -> DataLoader:
        return DataLoader(_blobs(), batch_size=16, shuffle=False)

    with caplog.at_level(logging.WARNING, logger="trainforge"):
        results = _on_both_drivers(tmp_path, _Classifier, TABULAR, loader)
    for result in results.values():
        assert result.monitor == "train/loss"
        assert not [c for c in result.metrics_summary.columns if c.startswith("val/")]
        assert result.best_metric == pytest.approx(min(_losses(result)))
        assert result.best_checkpoint_path is not None
    notices = [r for r in caplog.records if "no validation set" in r.getMessage()]
    assert len(notices) == 2  # once per run
    assert "checkpoint.monitor = train/loss" in notices[0].getMessage()


def test_an_explicit_validation_monitor_without_validation_data_is_refused(tmp_path):
    config = _config(tmp_path, "plain", *TABULAR, "checkpoint.monitor=val/acc")
    with pytest.raises(ConfigError, match=r"checkpoint\.monitor.*'val/acc' is not a metric"):
        _train(_Classifier, config, DataLoader(_blobs(), batch_size=16))


# -- an IterableDataset ------------------------------------------------------------------


class _Stream(IterableDataset):
    def __iter__(self):
        yield from _blobs()


def test_iterable_dataset_runs_max_steps_on_both_drivers(tmp_path):
    steps = {}
    for engine in ENGINES:
        config = _config(tmp_path, engine, *TABULAR, "trainer.max_steps=15")
        result = _train(_Classifier, config, _Stream())
        steps[engine] = (result.global_step, _losses(result))
        assert result.global_step == 15
    assert steps["plain"][1] == pytest.approx(steps["lightning"][1], rel=1e-4)


def test_iterable_dataset_runs_max_epochs_passes_on_both_drivers(tmp_path):
    # no length, no max_steps: each epoch is one pass, as Lightning runs a stream
    results = {
        engine: _train(_Classifier, _config(tmp_path, engine, *TABULAR), _Stream())
        for engine in ENGINES
    }
    for result in results.values():
        assert (result.epochs_completed, result.global_step) == (3, 18)  # 6 batches a pass
    assert _losses(results["plain"]) == pytest.approx(_losses(results["lightning"]), rel=1e-4)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["optim.scheduler=cosine"], "optim.scheduler=cosine is sized by it"),
        (["optim.warmup_ratio=0.1"], "optim.warmup_ratio=0.1 is a fraction of it"),
    ],
)
def test_a_stream_with_a_schedule_sized_by_the_run_names_the_keys(tmp_path, overrides, reason):
    config = _config(tmp_path, "plain", *TABULAR, *overrides)
    with pytest.raises(ConfigError, match=r"trainer\.max_steps") as info:
        _train(_Classifier, config, _Stream())
    assert "IterableDataset without a length" in str(info.value) and reason in str(info.value)
    assert "optim.scheduler=none or step" in info.value.user_message()


@pytest.mark.parametrize(("writer", "reader"), [("plain", "lightning"), ("lightning", "plain")])
def test_a_stream_without_a_length_resumes_mid_epoch_on_the_other_driver(tmp_path, writer, reader):
    from trainforge.checkpoint import CheckpointManager

    def run(engine: str, steps: int, where: str, resume: bool = False):
        overrides = [f"trainer.max_steps={steps}", f"run.output_dir={tmp_path / where}"]
        config = _config(tmp_path, engine, *TABULAR, *overrides)
        torch.manual_seed(0)
        trainer = Trainer(
            _Classifier(), config, log_config=False, allow_config_changes=["trainer.max_steps"]
        )
        result = trainer.train(train_data=_Stream(), resume_from="last" if resume else None)
        state = CheckpointManager(result.run_dir / "checkpoints", monitor=None).load(
            "last", restore_rng=False
        )
        return result, state

    # 6 batches a pass: step 8 is 2 batches into the second epoch, step 15 in the third
    reference, expected = run(reader, 15, "reference")
    _, cut = run(writer, 8, "cut")
    position = cut["custom_state"]["position"]
    assert cut["global_step"] == 8 and (position["epoch"], position["batches_done"]) == (1, 2)
    resumed, actual = run(reader, 15, "cut", resume=True)
    assert actual["global_step"] == expected["global_step"] == 15
    assert actual["custom_state"]["driver"] == reader
    for key in ("model_state_dict", "optimizer_state_dict"):
        assert_bitwise_equal(expected[key], actual[key], key)
    assert actual["custom_state"]["position"] == expected["custom_state"]["position"]
    assert _losses(resumed)[-1] == _losses(reference)[-1]


# -- the forward contract --------------------------------------------------------------


def test_a_batch_the_forward_cannot_take_names_expected_and_present_keys(tmp_path):
    data = [{"x": row["features"], "labels": row["labels"]} for row in _blobs(32)]
    config = _config(tmp_path, "plain", *TABULAR)
    with pytest.raises(TrainingError) as info:
        _train(_Classifier, config, data)
    text = str(info.value)
    assert "forward() takes: features" in text and "the batch has: labels, x" in text
    assert "model.input_keys" in text

    config = _config(tmp_path, "lightning", *TABULAR, "model.input_keys.features=x")
    assert _train(_Classifier, config, data).global_step == 6
    config = _config(tmp_path, "plain", *TABULAR, "data.input_key=x")
    assert _train(_Classifier, config, data).global_step == 6


def test_task_loss_model_without_a_model_loss_says_so(tmp_path):
    config = _config(tmp_path, "plain", *TABULAR, "task.loss=model")
    with pytest.raises(TrainingError, match=r"task\.loss=model, but the model returned no loss"):
        _train(_Classifier, config, _blobs(32))
    config = _config(tmp_path, "plain", *TABULAR, "task.loss=modl")
    with pytest.raises(ConfigError, match=r"task\.loss.*did you mean model"):
        _train(_Classifier, config, _blobs(32))


@pytest.mark.parametrize("engine", ENGINES)
def test_data_that_gives_no_batch_is_refused_before_a_run_on_both_drivers(tmp_path, engine):
    config = _config(tmp_path, engine, *TABULAR)
    with pytest.raises(ConfigError) as info:
        _train(_Classifier, config, [])
    assert info.value.key == "data.name" and "the training data is empty (0 samples)" in str(
        info.value
    )
    loader = DataLoader(_blobs(10), batch_size=16, drop_last=True)
    with pytest.raises(ConfigError) as info:
        _train(_Classifier, config, loader)
    message = str(info.value)
    assert info.value.key == "data.batch_size"
    assert "10 samples in batches of 16 with drop_last" in message and "at most 10" in message
    # an empty validation set: no val/ metric to monitor (not a loss of 0, not a missing one)
    with pytest.raises(ConfigError) as info:
        _train(_Classifier, config, _blobs(32), [])
    assert info.value.key == "data.val_split" and "validation data gives no batch" in str(
        info.value
    )
    assert "val_data=None" in str(info.value)
    assert not (tmp_path / engine).exists()  # refused before the run folder


@pytest.mark.parametrize("engine", ENGINES)
def test_a_model_without_trainable_parameters_is_refused_on_both_drivers(tmp_path, engine):
    def frozen() -> nn.Module:
        return _Classifier().requires_grad_(False)

    with pytest.raises(ConfigError) as info:
        _train(frozen, _config(tmp_path, engine, *TABULAR), _blobs(32))
    message = str(info.value)
    assert (
        "model.name: the model (_Classifier) has no trainable parameters (195 parameters" in message
    )
    assert "requires_grad_(True)" in message and "nothing was trained" in message
    assert not (tmp_path / engine).exists()


@pytest.mark.parametrize("engine", ENGINES)
def test_labels_that_are_not_tensors_are_named_by_type_on_both_drivers(tmp_path, engine):
    data = [{"features": row["features"], "labels": "cat"} for row in _blobs(32)]
    with pytest.raises(TrainingError) as info:
        _train(_Classifier, _config(tmp_path, engine, *TABULAR), data)
    message = str(info.value)
    assert "the model or the loss cannot use this batch: AttributeError" in message
    assert "batch: {'features': (16, 8), 'labels': 'list of 16 str'}" in message


# -- Trainer() without a config ----------------------------------------------------------


def test_trainer_without_a_config_writes_its_logs_under_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAINFORGE_DB", f"sqlite:///{tmp_path / 'tracking.db'}")
    data = TensorDataset(torch.randn(32, 64), torch.randint(0, 10, (32,)))
    trainer = Trainer(model=nn.Linear(64, 10), log_config=False)
    trainer.config.update("trainer.max_epochs", 1)
    trainer.config.update("trainer.enable_progress_bar", False)
    results = trainer.train(train_data=data)
    assert results.run_dir.resolve().parent == tmp_path / "outputs"
    assert not list(tmp_path.glob("$*")), "a literal ${...} folder was created"
    assert list((tmp_path / "outputs").rglob("metrics.csv"))


def test_limit_val_batches_zero_is_a_run_without_validation_on_both_drivers(tmp_path):
    def loader() -> DataLoader:
        return DataLoader(_blobs(), batch_size=16, shuffle=False)

    overrides = [*TABULAR, "trainer.limit_val_batches=0"]
    results = _on_both_drivers(tmp_path, _Classifier, overrides, loader, loader)
    for result in results.values():
        assert result.monitor == "train/loss"
        assert list(result.metrics_summary["epoch"]) == [0, 1, 2]
        assert not [c for c in result.metrics_summary.columns if c.startswith("val/")]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_sequential_user_dataloader_resumes_mid_epoch_exactly(tmp_path, engine):
    from trainforge.checkpoint import CheckpointManager

    def run(steps: int, where: str, resume: bool = False):
        config = _config(
            tmp_path / where,
            engine,
            *TABULAR,
            "trainer.max_epochs=2",
            f"trainer.max_steps={steps}",
            "trainer.checkpoint_every_n_steps=2",
        )
        torch.manual_seed(0)
        trainer = Trainer(
            _Classifier(), config, log_config=False, allow_config_changes=["trainer.max_steps"]
        )
        loader = DataLoader(_blobs(), batch_size=16, shuffle=False)  # 6 batches an epoch
        result = trainer.train(train_data=loader, resume_from="last" if resume else None)
        return CheckpointManager(result.run_dir / "checkpoints", monitor=None).load(
            "last", restore_rng=False
        )

    reference = run(12, "reference")
    assert run(4, "cut")["global_step"] == 4  # stopped inside the first epoch
    resumed = run(12, "cut", resume=True)
    assert resumed["global_step"] == reference["global_step"] == 12
    for key, value in reference["model_state_dict"].items():
        assert torch.equal(value, resumed["model_state_dict"][key]), key


def test_a_user_dataloader_is_refused_for_data_parallel_training(tmp_path):
    config = _config(
        tmp_path,
        "lightning",
        *TABULAR,
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "trainer.accelerator=cpu",
    )
    with pytest.raises(ConfigError, match="data-parallel processes would read whole") as info:
        _train(_Classifier, config, DataLoader(_blobs(), batch_size=16))
    assert info.value.key == "trainer.devices"
    assert "pass the Dataset itself" in str(info.value)
