"""Which submodules FSDP2 shards as units: named classes, or the automatic choice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainforge.engine import ShardPlan, shard_units
from trainforge.errors import ConfigError


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Linear(4, 4)
        self.mlp = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attn(x))


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(4, 10)


def test_named_classes_are_the_units_innermost_first():
    net = Net()
    units = shard_units(net, ["Block", "Sequential"])
    assert units == [net.blocks[1].mlp, net.blocks[1], net.blocks[0].mlp, net.blocks[0]]


def test_automatic_choice_is_the_layers_of_every_module_list():
    net = Net()
    assert shard_units(net) == [net.blocks[1], net.blocks[0]]


def test_a_hugging_face_model_shards_its_declared_blocks():
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=32, n_positions=16, n_embd=8, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config)
    units = shard_units(model)
    assert [type(u).__name__ for u in units] == ["GPT2Block", "GPT2Block"]


def test_a_name_matching_no_class_is_refused_with_the_closest():
    with pytest.raises(ConfigError, match=r"'Blok' \(did you mean Block\?\)"):
        shard_units(Net(), ["Blok"])


def test_activation_checkpointing_needs_units_and_keeps_the_names():
    from trainforge.engine._sharding import checkpoint_units

    with pytest.raises(ConfigError, match="has no submodule to checkpoint"):
        ShardPlan(activation_checkpointing=True).units(nn.Sequential(nn.Linear(2, 2)))
    net = Net()
    names = [name for name, _ in net.named_parameters()]
    checkpoint_units(ShardPlan(activation_checkpointing=True).units(net))
    assert [name for name, _ in net.named_parameters()] == names
    net.head(net.blocks[1](net.blocks[0](net.embed(torch.tensor([1, 2]))))).sum().backward()
    assert all(p.grad is not None for p in net.blocks.parameters())


def test_fsdp_strategy_wraps_the_unit_classes_with_the_plan():
    from torch.distributed.fsdp import MixedPrecision

    from trainforge.lightning import build_strategy

    net = Net()
    plan = ShardPlan(param_dtype="bfloat16", activation_checkpointing=True)
    strategy = build_strategy("fsdp", processes=1, timeout_s=60, plan=plan, units=plan.units(net))
    assert strategy.mixed_precision == MixedPrecision(
        param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16
    )
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {Block}
    assert strategy._activation_checkpointing_kwargs["auto_wrap_policy"]._module_classes == {Block}
