"""The task's pad id reaches the loss on both drivers: from ``task.pad_token_id`` or from
the tokenizer of a DataLoader's TextCollator; bad values are config errors."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from trainforge.config import load_config
from trainforge.engine import TextCollator
from trainforge.errors import ConfigError
from trainforge.train import Trainer

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

ENGINES = ("plain", "lightning")
LENGTH = 12


def _tokenizer(special: list[str]):
    """A WordLevel tokenizer trained on text the Python installation ships."""
    raw = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="[UNK]"))
    raw.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.WordLevelTrainer(special_tokens=special)
    raw.train_from_iterator(json.__doc__.splitlines(), trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]"
    )


@pytest.fixture(scope="module")
def tokenizer():
    """Pad id 1."""
    return _tokenizer(["[UNK]", "[PAD]"])


@pytest.fixture(scope="module")
def rows(tokenizer):
    """Rows padded to a fixed length by the tokenizer, without labels or a mask."""
    texts = ["JSON is a subset of JavaScript", "json exposes an API", "dumps", "load it"]
    encoded = tokenizer(texts, padding="max_length", max_length=LENGTH, truncation=True)
    return [{"input_ids": torch.tensor(ids)} for ids in encoded["input_ids"]]


class _TinyLM(nn.Module):
    """Next-token logits from an embedding; computes no loss itself."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.head = nn.Linear(8, vocab)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(input_ids))


def _config(tmp_path, engine: str, vocab: int, *overrides: str):
    return load_config(
        cli=[
            "task.name=padded",
            "task.modality=text",
            "task.task_type=language_modeling",
            f"task.vocab_size={vocab}",
            f"trainer.engine={engine}",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "tracking.enabled=false",
            "run.deterministic=true",
            "optim.scheduler=none",
            f"data.batch_size={LENGTH}",
            f"run.output_dir={tmp_path / engine}",
            *overrides,
        ]
    )


def _reference(model: nn.Module, ids: torch.Tensor, pad: int | None) -> float:
    """Next-token cross-entropy by hand, skipping the targets equal to ``pad``."""
    logits = model(ids)[:, :-1].reshape(-1, model.head.out_features)
    targets = ids[:, 1:].reshape(-1)
    keep = targets != pad if pad is not None else torch.ones_like(targets, dtype=torch.bool)
    return F.cross_entropy(logits[keep], targets[keep]).item()


@pytest.mark.parametrize("source", ["tokenizer", "config"])
def test_padded_batch_loss_skips_the_pad_id_on_both_drivers(tmp_path, tokenizer, rows, source):
    vocab, pad = tokenizer.vocab_size, tokenizer.pad_token_id
    torch.manual_seed(0)
    model = _TinyLM(vocab)
    ids = torch.stack([row["input_ids"] for row in rows])
    assert ids.eq(pad).any()
    with torch.no_grad():
        want = _reference(model, ids, pad)
        assert want != pytest.approx(_reference(model, ids, None), rel=1e-3)
    losses = {}
    for engine in ENGINES:
        if source == "tokenizer":  # one batch; the collator's mask is all ones
            data = DataLoader(
                rows, batch_size=len(rows), collate_fn=TextCollator(tokenizer=tokenizer)
            )
            config = _config(tmp_path, engine, vocab)
        else:
            data = rows
            config = _config(tmp_path, engine, vocab, f"task.pad_token_id={pad}")
        trainer = Trainer(copy.deepcopy(model), config, log_config=False)
        results = trainer.train(train_data=data)
        losses[engine] = results.metrics_summary["train/loss"].iloc[0]
    assert losses["plain"] == pytest.approx(want, rel=1e-6)
    assert losses["lightning"] == pytest.approx(want, rel=1e-6)


def test_a_pad_id_other_than_the_tokenizers_is_refused(tmp_path, tokenizer, rows):
    loader = DataLoader(rows, batch_size=2, collate_fn=TextCollator(tokenizer=tokenizer))
    config = _config(tmp_path, "plain", tokenizer.vocab_size, "task.pad_token_id=0")
    with pytest.raises(ConfigError, match="pads with its tokenizer's pad id 1") as info:
        Trainer(_TinyLM(tokenizer.vocab_size), config, log_config=False).train(train_data=loader)
    assert info.value.key == "task.pad_token_id"
    other = DataLoader(
        rows, batch_size=2, collate_fn=TextCollator(tokenizer=_tokenizer(["[PAD]", "[UNK]"]))
    )
    config = _config(tmp_path, "plain", tokenizer.vocab_size)
    with pytest.raises(ConfigError, match=r"pad with different tokenizer pad ids \(0, 1\)"):
        Trainer(_TinyLM(tokenizer.vocab_size), config, log_config=False).train(
            train_data=loader, val_data=other
        )
    small = _config(tmp_path, "plain", 1)
    with pytest.raises(ConfigError, match="not a token id of a vocabulary of 1"):
        Trainer(_TinyLM(1), small, log_config=False).train(train_data=loader)
    assert not (tmp_path / "plain").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["task.pad_token_id=-1"], "greater than or equal to 0"),
        (["task.pad_token_id=1.5"], "must be an integer token id"),
        (["task.pad_token_id=true"], "must be an integer token id"),
        (["task.pad_token_id=pad"], "valid integer"),
        (["task.vocab_size=10", "task.pad_token_id=10"], "vocabulary of vocab_size=10"),
    ],
)
def test_a_bad_pad_id_is_a_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(cli=["task.name=padded", "task.modality=text", *overrides])
    assert "task" in str(info.value)


def test_a_pad_id_outside_a_built_in_tasks_vocabulary_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="vocab_size=97"):  # the template sets the size
        load_config(template="tiny_lm", cli=["task.pad_token_id=97"])
    # the task's own size, not in the config: refused when the run builds the task
    config = load_config(
        cli=["task.name=tiny_lm", "task.pad_token_id=97", f"run.output_dir={tmp_path}"]
    )
    with pytest.raises(ConfigError, match="not a token id of a vocabulary of 97"):
        Trainer(training_config=config, log_config=False).train()
    assert not any(tmp_path.iterdir())


def test_the_cli_reports_a_bad_pad_id_without_a_traceback(train_cli, workdir):
    result = train_cli(workdir, "task.pad_token_id=-1")
    assert result.returncode == 1
    assert "task.pad_token_id" in result.stderr and "Traceback" not in result.stderr
