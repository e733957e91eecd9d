"""Loss strategies against torch.nn.functional reference values."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainforge.engine import (
    ClassificationLoss,
    HeatmapLoss,
    LanguageModelingLoss,
    LossStrategy,
    LossStrategyRegistry,
    PEFTAwareLoss,
    QuantizationSafeLoss,
    RegressionLoss,
    TaskSpec,
    VisionLoss,
    get_loss_strategy,
)
from trainforge.errors import RegistryError, TrainingError


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_classification_matches_cross_entropy_with_weights_and_smoothing():
    logits = torch.randn(6, 4, generator=_gen())
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    weights = [1.0, 2.0, 0.5, 1.5]
    got = ClassificationLoss(class_weights=weights, label_smoothing=0.1)(logits, {"labels": labels})
    want = F.cross_entropy(logits, labels, weight=torch.tensor(weights), label_smoothing=0.1)
    torch.testing.assert_close(got, want)


def test_classification_uniform_logits_hand_checked():
    loss = ClassificationLoss()(torch.zeros(2, 3), {"labels": torch.tensor([0, 2])})
    assert loss.item() == pytest.approx(torch.log(torch.tensor(3.0)).item())


def test_sequence_classification_uses_last_real_token():
    logits = torch.randn(2, 4, 3, generator=_gen())
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    labels = torch.tensor([2, 1])
    got = ClassificationLoss()(logits, {"labels": labels, "attention_mask": mask})
    want = F.cross_entropy(torch.stack([logits[0, 1], logits[1, 3]]), labels)
    torch.testing.assert_close(got, want)
    no_mask = ClassificationLoss()(logits, {"labels": labels})
    torch.testing.assert_close(no_mask, F.cross_entropy(logits[:, -1], labels))


def test_language_modeling_shifts_and_ignores_padding():
    logits = torch.randn(2, 5, 7, generator=_gen())
    ids = torch.tensor([[1, 2, 3, 4, 5], [6, 5, 4, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    got = LanguageModelingLoss()(logits, {"inputs": ids, "attention_mask": mask})
    # reference: position t predicts t+1; the two padded targets of row 1 are dropped
    pairs = [(0, t) for t in range(4)] + [(1, 0), (1, 1)]
    ref_logits = torch.stack([logits[b, t] for b, t in pairs])
    ref_labels = torch.tensor([ids[b, t + 1].item() for b, t in pairs])
    torch.testing.assert_close(got, F.cross_entropy(ref_logits, ref_labels))
    # padding labelled with ignore_index gives the same value without a mask
    labels = ids.masked_fill(mask == 0, -100)
    torch.testing.assert_close(LanguageModelingLoss()(logits, {"labels": labels}), got)


def test_language_modeling_without_shift_and_pad_token():
    logits = torch.randn(1, 3, 5, generator=_gen())
    labels = torch.tensor([[1, 4, 0]])
    got = LanguageModelingLoss(shift=False, pad_token_id=0)(logits, {"labels": labels})
    torch.testing.assert_close(got, F.cross_entropy(logits[0, :2], labels[0, :2]))


def test_pad_id_is_ignored_only_where_the_labels_mark_nothing_with_ignore_index():
    logits = torch.randn(1, 4, 5, generator=_gen())
    strategy = LanguageModelingLoss(shift=False, pad_token_id=0)
    # no -100 in the labels: the pad id marks padding
    unmarked = strategy(logits, {"labels": torch.tensor([[3, 0, 4, 0]])})
    keep = [0, 2]
    torch.testing.assert_close(unmarked, F.cross_entropy(logits[0, keep], torch.tensor([3, 4])))
    # labels marked with -100 (a Hugging Face collator's): token 0 left in them counts
    marked = strategy(logits, {"labels": torch.tensor([[3, 0, 4, -100]])})
    keep = [0, 1, 2]
    torch.testing.assert_close(marked, F.cross_entropy(logits[0, keep], torch.tensor([3, 0, 4])))


def test_task_pad_id_reaches_the_strategy_and_no_pad_id_masks_nothing():
    logits = torch.randn(1, 4, 5, generator=_gen())
    batch = {"labels": torch.tensor([[3, 0, 4, 0]])}
    lm = {"name": "t", "modality": "text", "task_type": "language_modeling", "vocab_size": 5}
    padded = get_loss_strategy(TaskSpec(**lm, pad_token_id=0, loss="lm"))
    assert padded.pad_token_id == 0
    none = get_loss_strategy(TaskSpec(**lm))
    assert none.pad_token_id is None  # token 0 is a real token (GPT-2's "!")
    shifted = (logits[0, :3], torch.tensor([0, 4, 0]))
    torch.testing.assert_close(none(logits, batch), F.cross_entropy(*shifted))
    torch.testing.assert_close(
        padded(logits, batch), F.cross_entropy(logits[0, 1:2], batch["labels"][0, 2:3])
    )
    assert TaskSpec.language_modeling_tiny().pad_token_id == 0


@pytest.mark.parametrize(
    ("pad", "message"),
    [
        (-1, "must be a token id >= 0"),
        (True, "must be an integer token id"),
        (1.0, "must be an integer token id"),
        (5, "not a token id of a vocabulary of 5"),
    ],
)
def test_task_spec_refuses_a_bad_pad_id(pad, message):
    with pytest.raises(ValueError, match=message):
        TaskSpec(
            "t", modality="text", task_type="language_modeling", vocab_size=5, pad_token_id=pad
        )


def test_vision_classification_and_segmentation():
    logits = torch.randn(2, 3, 4, 4, generator=_gen())
    target = torch.randint(0, 3, (2, 4, 4), generator=_gen())
    target[0, 0, 0] = -100
    torch.testing.assert_close(
        VisionLoss()(logits, {"labels": target}), F.cross_entropy(logits, target)
    )
    flat = torch.randn(4, 3, generator=_gen())
    labels = torch.tensor([0, 1, 2, 1])
    torch.testing.assert_close(
        VisionLoss()(flat, {"labels": labels}), F.cross_entropy(flat, labels)
    )
    with pytest.raises(ValueError, match="vision loss expects"):
        VisionLoss()(logits, {"labels": labels})


def test_heatmap_bce_matches_reference_and_handles_channel_dim():
    logits = torch.randn(2, 1, 4, 4, generator=_gen())
    target = torch.rand(2, 4, 4, generator=_gen())
    got = HeatmapLoss(pos_weight=5.0)(logits, {"labels": target})
    want = F.binary_cross_entropy_with_logits(
        logits.squeeze(1), target, pos_weight=torch.tensor(5.0)
    )
    torch.testing.assert_close(got, want)


def test_heatmap_focal_hand_checked():
    logits = torch.tensor([[0.0, 0.0]])
    target = torch.tensor([[1.0, 0.5]])
    got = HeatmapLoss(variant="focal", alpha=2.0, beta=4.0)(logits, {"labels": target})
    # p = 0.5 everywhere: centre -(0.5**2)*log(0.5); other -(0.5**4)*(0.5**2)*log(0.5)
    log_half = torch.log(torch.tensor(0.5))
    want = -(0.25 * log_half + 0.0625 * 0.25 * log_half)
    torch.testing.assert_close(got, want)


def test_regression_mse_squeezes_trailing_dim():
    preds = torch.tensor([[1.0], [3.0]])
    got = RegressionLoss()(preds, {"labels": torch.tensor([0.0, 1.0])})
    assert got.item() == pytest.approx((1.0 + 4.0) / 2)


def test_model_output_objects_with_logits_are_accepted():
    logits = torch.randn(3, 4, generator=_gen())
    labels = torch.tensor([0, 1, 3])
    want = F.cross_entropy(logits, labels)
    for outputs in (SimpleNamespace(logits=logits), {"logits": logits}, (logits, None)):
        torch.testing.assert_close(ClassificationLoss()(outputs, {"labels": labels}), want)


def test_missing_labels_names_the_batch_keys():
    with pytest.raises(KeyError, match=r"needs batch\['labels'\].*\['inputs'\]"):
        ClassificationLoss()(torch.zeros(2, 3), {"inputs": torch.zeros(2)})


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("classification", ClassificationLoss),
        ("language_modeling", LanguageModelingLoss),
        ("causal_lm", LanguageModelingLoss),
        ("segmentation", VisionLoss),
        ("vision_classification", VisionLoss),
        ("heatmap", HeatmapLoss),
        ("regression", RegressionLoss),
    ],
)
def test_registry_names_and_aliases(name, cls):
    strategy = get_loss_strategy(name)
    assert type(strategy) is cls
    assert isinstance(strategy, LossStrategy)


def test_every_task_type_has_a_strategy():
    for task_type in ("classification", "language_modeling", "segmentation", "heatmap"):
        assert task_type in LossStrategyRegistry


def test_registry_typo_suggests_the_closest_name():
    with pytest.raises(RegistryError, match="did you mean 'language_modeling'"):
        get_loss_strategy("languag_modeling")


def test_task_spec_selects_strategy_and_passes_ignore_index():
    spec = TaskSpec("lm", modality="text", task_type="language_modeling", vocab_size=9)
    spec = TaskSpec.from_dict({**spec.to_dict(), "ignore_index": -1})
    strategy = get_loss_strategy(spec, label_smoothing=0.0)
    assert isinstance(strategy, LanguageModelingLoss)
    assert strategy.ignore_index == -1
    custom = TaskSpec("c", num_classes=2, loss="heatmap")
    assert isinstance(get_loss_strategy(custom, variant="focal"), HeatmapLoss)


def test_custom_strategy_registration():
    @LossStrategyRegistry.register("l1_test")
    class L1:
        name = "l1_test"

        def __call__(self, outputs, batch):
            return (outputs - batch["labels"]).abs().mean()

    try:
        loss = get_loss_strategy("l1_test")(torch.ones(2), {"labels": torch.zeros(2)})
        assert loss.item() == 1.0
    finally:
        LossStrategyRegistry.unregister("l1_test")


def test_peft_aware_loss_checks_trainable_parameters_and_grad_flow():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    x, labels = torch.randn(3, 4, generator=_gen()), torch.tensor([0, 1, 1])
    for p in model[0].parameters():
        p.requires_grad_(False)
    strategy = PEFTAwareLoss(ClassificationLoss(), model)
    loss = strategy(SimpleNamespace(logits=model(x)), {"labels": labels})
    loss.backward()
    assert model[0].weight.grad is None and model[1].weight.grad is not None

    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(TrainingError, match="no trainable parameters"):
        PEFTAwareLoss(ClassificationLoss(), model)(model(x), {"labels": labels})
    with pytest.raises(TrainingError, match="does not depend on any trainable"):
        PEFTAwareLoss(ClassificationLoss())(model(x), {"labels": labels})


def test_quantization_safe_loss_computes_in_float32_and_guards_inf():
    logits = torch.tensor([[2.0, 1.0, float("inf")], [0.5, -1.0, 0.0]], dtype=torch.float16)
    labels = torch.tensor([0, 1])
    loss = QuantizationSafeLoss(ClassificationLoss())(logits, {"labels": labels})
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    plain = ClassificationLoss()(logits.float(), {"labels": labels})
    assert not torch.isfinite(plain)
    finite = torch.randn(2, 3, generator=_gen()).half()
    torch.testing.assert_close(
        QuantizationSafeLoss(ClassificationLoss())(finite, {"labels": labels}),
        F.cross_entropy(finite.float(), labels),
    )
