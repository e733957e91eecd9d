"""The forward contract, collators with a real tokenizer, PEFT / fp16 loss checks, and what
resume restores for each kind of training data."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from trainforge.engine import (
    ClassificationLoss,
    DataLoaderFactory,
    ForwardInputs,
    LanguageModelingLoss,
    PEFTAwareLoss,
    QuantizationSafeLoss,
    StreamLoader,
    TextCollator,
    forward_and_loss,
)
from trainforge.errors import TrainingError

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
peft = pytest.importorskip("peft")
datasets = pytest.importorskip("datasets")

PEFT_WARNING = "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"


# -- the forward contract ---------------------------------------------------------------


class _Keyword(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.seen: list[str] = []

    def forward(self, features, mask=None, labels=None):
        self.seen = sorted(
            k for k, v in {"features": 1, "mask": mask, "labels": labels}.items() if v is not None
        )
        return {"logits": self.linear(features)}


BATCH_KEYS = st.sets(st.sampled_from(["mask", "labels", "index", "source", "weight"]))


@settings(max_examples=25, deadline=None)
@given(extra=BATCH_KEYS)
def test_batch_keys_reach_forward_by_name_and_others_stay_for_the_loss(extra):
    model = _Keyword()
    batch = {"features": torch.ones(4, 3)}
    batch.update({key: torch.zeros(4, dtype=torch.long) for key in extra})
    seen_by_loss = []

    def loss(outputs, b):
        seen_by_loss.extend(sorted(b))
        return outputs["logits"].sum()

    forward_and_loss(model, loss, batch)
    assert model.seen == sorted({"features"} | (extra & {"mask", "labels"}))
    assert seen_by_loss == sorted(batch)  # the loss strategy sees the whole batch


class _WithLoss(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, input_ids, labels=None):
        logits = self.linear(input_ids)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels) * 0 + 7.0
        return transformers.modeling_outputs.SequenceClassifierOutput(loss=loss, logits=logits)


def test_the_models_own_loss_is_used_when_labels_reach_it():
    batch = {"input_ids": torch.ones(2, 3), "labels": torch.tensor([0, 1])}
    outputs, loss = forward_and_loss(_WithLoss(), ClassificationLoss(), batch)
    assert loss.item() == 7.0  # the model's, not the strategy's
    # labels mapped away from the model: the strategy computes the loss on .logits
    inputs = ForwardInputs(input_keys={"input_ids": "input_ids"})
    outputs, loss = forward_and_loss(_WithLoss(), ClassificationLoss(), batch, inputs)
    assert loss.item() != 7.0 and outputs.logits.shape == (2, 2)


def test_missing_required_parameter_names_forward_and_batch_keys():
    with pytest.raises(TrainingError) as info:
        forward_and_loss(_Keyword(), ClassificationLoss(), {"mask": torch.ones(1), "y": 1})
    text = str(info.value)
    assert "required parameter(s) ['features']" in text
    assert "forward() takes: features, mask, labels" in text
    assert "the batch has: mask, y" in text
    with pytest.raises(TrainingError, match=r"model\.input_keys names batch key\(s\) \['x'\]"):
        forward_and_loss(
            _Keyword(), ClassificationLoss(), {"y": 1}, ForwardInputs(input_keys={"features": "x"})
        )


# -- collators with a real tokenizer ----------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    """A WordLevel tokenizer trained on text the Python installation ships."""
    model = tokenizers.models.WordLevel(unk_token="[UNK]")
    raw = tokenizers.Tokenizer(model)
    raw.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"])
    raw.train_from_iterator(json.__doc__.splitlines(), trainer=trainer)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]"
    )


def test_text_collator_pads_with_the_tokenizers_pad_id(tokenizer):
    texts = ["JSON is a subset of JavaScript", "json exposes an API", "dumps"]
    rows = [{"input_ids": ids, "labels": ids} for ids in tokenizer(texts)["input_ids"]]
    batch = TextCollator(tokenizer=tokenizer)(rows)
    pad = tokenizer.pad_token_id
    assert pad == 1
    lengths = [len(r["input_ids"]) for r in rows]
    assert batch["input_ids"].shape == (3, max(lengths))
    for i, length in enumerate(lengths):
        assert batch["input_ids"][i, length:].eq(pad).all()
        assert batch["attention_mask"][i].sum() == length
        assert batch["labels"][i, length:].eq(-100).all()
    # the LM loss ignores the padded positions: the padded row's loss is the unpadded one's
    short = 1
    assert 2 <= lengths[short] < max(lengths)
    logits = torch.randn(1, max(lengths), tokenizer.vocab_size)
    row = {k: v[short : short + 1] for k, v in batch.items()}
    alone = LanguageModelingLoss()(
        logits[:, : lengths[short]], {"input_ids": row["input_ids"][:, : lengths[short]]}
    )
    padded = LanguageModelingLoss()(logits, row)
    assert torch.allclose(alone, padded)


def test_a_tokenizer_without_pad_token_is_refused(tokenizer):
    bare = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer)
    with pytest.raises(ValueError, match="has no pad token"):
        TextCollator(tokenizer=bare)


def test_dataset_columns_become_tensors_with_and_without_set_format():
    data = datasets.Dataset.from_dict({"x": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "y": [0, 1, 0]})
    for dataset in (data, data.with_format("torch")):
        batch = next(iter(DataLoaderFactory.create(dataset, batch_size=3, shuffle=False)))
        assert batch["x"].tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
        assert batch["y"].tolist() == [0, 1, 0]


# -- PEFT and fp16 ----------------------------------------------------------------------


def _gpt2():
    config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=8)
    return transformers.GPT2LMHeadModel(config)


@pytest.mark.filterwarnings(PEFT_WARNING)
def test_peft_aware_loss_on_a_real_lora_model(caplog):
    lora = peft.get_peft_model(
        _gpt2(), peft.LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True)
    )
    ids = torch.randint(0, 50, (2, 8))
    strategy = PEFTAwareLoss(LanguageModelingLoss(), model=lora)
    with caplog.at_level(logging.INFO, logger="trainforge"):
        loss = strategy(lora(input_ids=ids), {"input_ids": ids})
    assert any("training" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    loss.backward()
    grads = {n for n, p in lora.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads)

    caplog.clear()
    full = _gpt2()
    with caplog.at_level(logging.WARNING, logger="trainforge"):
        PEFTAwareLoss(LanguageModelingLoss(), model=full)(full(input_ids=ids), {"input_ids": ids})
    assert any("base model is not frozen" in r.getMessage() for r in caplog.records)

    frozen = _gpt2().requires_grad_(False)
    with pytest.raises(TrainingError, match="no trainable parameters"):
        PEFTAwareLoss(LanguageModelingLoss(), model=frozen)(frozen(input_ids=ids), {})


def test_quantization_safe_loss_on_fp16_logits():
    logits = (torch.randn(4, 3) * 10).half().requires_grad_()
    saturated = torch.cat([logits[:1] * 0 + float("inf"), logits[1:]])
    labels = torch.tensor([0, 1, 2, 0])
    loss = QuantizationSafeLoss(ClassificationLoss())(saturated, {"labels": labels})
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad is not None and logits.grad.dtype == torch.float16
    reference = ClassificationLoss()(logits.detach()[1:].float(), {"labels": labels[1:]})
    rest = QuantizationSafeLoss(ClassificationLoss())(logits.detach()[1:], {"labels": labels[1:]})
    assert torch.allclose(rest, reference)


# -- what resume restores for each kind of data -----------------------------------------


def _loader(shuffle: bool) -> DataLoader:
    return DataLoader(TensorDataset(torch.arange(10.0)), batch_size=2, shuffle=shuffle)


def test_a_sequential_dataloader_resumes_exactly_without_warning(caplog):
    first = StreamLoader(_loader(shuffle=False))
    seen = iter(first)
    done = [next(seen)[0].tolist() for _ in range(2)]
    state = first.state_dict(batches=2)
    resumed = StreamLoader(_loader(shuffle=False))
    with caplog.at_level(logging.WARNING, logger="trainforge"):
        resumed.load_state_dict(state)
    rest = [b[0].tolist() for b in resumed]
    assert done + rest == [b[0].tolist() for b in _loader(shuffle=False)]
    assert not caplog.records and resumed.exact


class _Stream(IterableDataset):
    def __iter__(self):
        yield from torch.arange(6.0)


@pytest.mark.parametrize(
    ("loader", "described"),
    [
        (_loader(shuffle=True), "a DataLoader with a RandomSampler"),
        (DataLoader(_Stream(), batch_size=2), "an IterableDataset (_Stream)"),
    ],
)
def test_a_resume_that_cannot_be_exact_says_so(caplog, loader, described):
    stream = StreamLoader(loader)
    with caplog.at_level(logging.WARNING, logger="trainforge"):
        stream.load_state_dict({"kind": "stream", "epoch": 1, "batches": 2})
    (record,) = caplog.records
    assert described in record.getMessage() and "may repeat or miss samples" in record.getMessage()
    assert len(list(stream)) == len(list(loader)) - 2


def test_a_checkpoint_of_another_kind_of_data_is_refused():
    with pytest.raises(ValueError, match="same kind of training data"):
        StreamLoader(_loader(shuffle=False)).load_state_dict({"epoch": 0, "seed": 0, "position": 4})


@dataclass
class _Out:
    logits: torch.Tensor


def test_dataclass_outputs_reach_the_loss_and_the_metrics():
    from trainforge.engine import TaskSpec
    from trainforge.zoo import task_metrics

    outputs = _Out(torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    batch = {"labels": torch.tensor([0, 0])}
    assert ClassificationLoss()(outputs, batch).item() > 0
    assert task_metrics(TaskSpec.classification_tiny(num_classes=2), outputs, batch) == {"acc": 0.5}
