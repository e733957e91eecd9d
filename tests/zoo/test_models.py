"""Built-in models: shapes, the GPT's causality and that it learns."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from trainforge.engine import TaskSpec
from trainforge.errors import ConfigError, RegistryError
from trainforge.zoo import TinyGPT, build_model, get_task_spec, list_models


def test_builtin_names():
    assert list_models() == ["heatmap_net", "mlp", "seg_net", "tiny_gpt"]


def test_mlp_takes_sizes_from_the_task():
    model = build_model("mlp", get_task_spec("digits"), hidden_dims=[32])
    assert model(torch.rand(5, 64)).shape == (5, 10)


def test_tiny_gpt_shapes_and_weight_tying():
    spec = get_task_spec("tiny_lm")
    model = build_model("tiny_gpt", spec, n_layer=1, n_embd=32)
    assert isinstance(model, TinyGPT)
    logits = model(torch.randint(1, spec.vocab_size, (3, spec.max_seq_len)))
    assert logits.shape == (3, spec.max_seq_len, spec.vocab_size)
    assert model.lm_head.weight is model.token_embedding.weight


def test_tiny_gpt_is_causal():
    torch.manual_seed(0)
    model = TinyGPT(vocab_size=20, max_seq_len=12, n_layer=2, n_head=2, n_embd=16).eval()
    tokens = torch.randint(0, 20, (2, 12))
    changed = tokens.clone()
    changed[:, 7] = (changed[:, 7] + 1) % 20
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_tiny_gpt_rejects_sequences_longer_than_its_context():
    model = TinyGPT(vocab_size=10, max_seq_len=4, n_layer=1, n_embd=8, n_head=2)
    with pytest.raises(ValueError, match="max_seq_len=4"):
        model(torch.zeros(1, 5, dtype=torch.long))


def test_tiny_gpt_loss_decreases():
    torch.manual_seed(0)
    pattern = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8]).repeat(4)  # a learnable sequence
    batch = torch.stack([pattern.roll(-shift)[:16] for shift in range(8)])
    model = TinyGPT(vocab_size=10, max_seq_len=16, n_layer=1, n_head=2, n_embd=32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        logits = model(batch)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, 10), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_seg_net_outputs_one_logit_per_class_and_pixel():
    model = build_model("seg_net", get_task_spec("shapes_seg"), widths=[4, 8])
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 4, 32, 32)


def test_heatmap_net_reads_stacked_frames():
    model = build_model("heatmap_net", get_task_spec("ball_heatmap"), widths=[4, 8, 16])
    assert model(torch.rand(2, 3, 32, 48)).shape == (2, 1, 32, 48)


def test_conv_nets_reject_sizes_they_cannot_pool():
    model = build_model("heatmap_net", get_task_spec("ball_heatmap"), widths=[4, 8, 16])
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.rand(1, 3, 30, 32))


def test_typo_in_a_builtin_model_suggests_the_closest():
    with pytest.raises(RegistryError, match="did you mean 'tiny_gpt'") as info:
        build_model("tiny_gtp", get_task_spec("tiny_lm"))
    assert "heatmap_net" in str(info.value)  # lists the valid names


def test_unknown_model_kwarg_names_the_closest_argument():
    with pytest.raises(ConfigError, match="did you mean 'hidden_dims'"):
        build_model("mlp", get_task_spec("digits"), hidden_dim=[32])


def test_model_needs_the_sizes_it_reads_from_the_task():
    spec = TaskSpec("regression", task_type="regression")
    with pytest.raises(ConfigError, match="task.input_dim"):
        build_model("mlp", spec)
