"""FlashAttentionWrapper: verified switches to SDPA, rollback, patchers, model.sdpa."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from trainforge.config import load_config
from trainforge.errors import AttentionPatchError, ConfigError
from trainforge.production import ATTENTION_PATCHERS, FlashAttentionWrapper
from trainforge.tracking import ExperimentDB
from trainforge.train import Trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers.*")


class NaiveSelfAttention(nn.Module):
    """``softmax(QK^T / sqrt(d)) V`` written out, or SDPA when ``use_sdpa`` is set."""

    def __init__(self, dim: int = 8, heads: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.drop = nn.Dropout(dropout)
        self.use_sdpa = False
        self.scale = 1.0  # a broken patcher changes this

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, dim = x.shape
        q, k, v = (
            t.view(batch, time, self.heads, -1).transpose(1, 2)
            for t in self.qkv(x).split(dim, dim=2)
        )
        if self.use_sdpa:
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                dropout_p=self.drop.p if self.training else 0.0,
                scale=self.scale / math.sqrt(q.shape[-1]),
            )
        else:
            weights = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(-1)
            y = self.drop(weights) @ v
        return y.transpose(1, 2).reshape(batch, time, dim)


class TokenClassifier(nn.Module):
    """64 digit pixels -> 8 tokens of 8 -> two attention layers -> 10 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([NaiveSelfAttention(), NaiveSelfAttention()])
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.view(len(x), 8, 8)
        for layer in self.layers:
            h = h + layer(h)
        return self.head(h.flatten(1))


class NaivePatcher:
    """The documented protocol: match a layer type, switch it, return the undo."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def matches(self, module: nn.Module) -> bool:
        return isinstance(module, NaiveSelfAttention)

    def patch(self, module: nn.Module) -> Callable[[], None]:
        module.use_sdpa, module.scale = True, self.scale

        def undo() -> None:
            module.use_sdpa, module.scale = False, 1.0

        return undo


@pytest.fixture
def naive_patcher() -> Iterator[None]:
    ATTENTION_PATCHERS.register("naive", NaivePatcher())
    yield
    ATTENTION_PATCHERS.unregister("naive")


@pytest.fixture
def broken_patcher() -> Iterator[None]:
    ATTENTION_PATCHERS.register("naive", NaivePatcher(scale=2.0))  # wrong softmax temperature
    yield
    ATTENTION_PATCHERS.unregister("naive")


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def test_hugging_face_gpt2_is_switched_to_sdpa_with_equal_outputs():
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=128, n_positions=64, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=0, eos_token_id=0, attn_implementation="eager",
    )  # fmt: skip
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    eager = copy.deepcopy(model)
    ids = torch.randint(0, 128, (2, 16))
    wrapper = FlashAttentionWrapper(model, "auto", ids)

    assert wrapper.sdpa_available and wrapper.backend == "cpu"
    assert wrapper.patched_layers == ["<model>"] and wrapper.skipped_layers == {}
    assert model.config._attn_implementation == "sdpa"
    assert eager.config._attn_implementation == "eager"
    torch.testing.assert_close(
        _outputs(model, ids).logits, _outputs(eager, ids).logits, atol=1e-5, rtol=1e-4
    )
    model.train()  # dropout on: still runs through SDPA
    assert model(ids, labels=ids).loss.isfinite()

    wrapper.restore()
    assert model.config._attn_implementation == "eager"


def test_a_registered_patcher_switches_each_layer_after_checking_it(naive_patcher):
    torch.manual_seed(0)
    model = TokenClassifier()
    x = torch.rand(4, 64)
    before = _outputs(model, x)
    wrapper = FlashAttentionWrapper(model, "on", x)
    assert wrapper.patched_layers == ["layers.0", "layers.1"]
    assert all(layer.use_sdpa for layer in model.layers)
    torch.testing.assert_close(_outputs(model, x), before, atol=1e-5, rtol=1e-4)


def test_a_patch_that_changes_the_outputs_is_rolled_back(broken_patcher):
    torch.manual_seed(0)
    model = TokenClassifier()
    x = torch.rand(4, 64)
    before = _outputs(model, x)
    wrapper = FlashAttentionWrapper(model, "auto", x)
    assert wrapper.patched_layers == []
    assert wrapper.skipped_layers["layers.0"].startswith("rolled back: eval-mode outputs differ")
    assert not any(layer.use_sdpa for layer in model.layers)
    assert torch.equal(_outputs(model, x), before)

    with pytest.raises(AttentionPatchError, match="model.sdpa=on, but 2 attention layer"):
        FlashAttentionWrapper(model, "on", x)
    assert not any(layer.use_sdpa for layer in model.layers)


def test_fused_layers_are_reported_and_off_changes_nothing(naive_patcher):
    encoder = nn.TransformerEncoderLayer(16, 2, batch_first=True)
    wrapper = FlashAttentionWrapper(encoder, "auto", torch.randn(2, 5, 16))
    assert wrapper.skipped_layers == {
        "self_attn": "already fused: nn.MultiheadAttention runs fused attention kernels itself"
    }
    model = TokenClassifier()
    assert FlashAttentionWrapper(model, "off", torch.rand(2, 64)).report()["patched_layers"] == []
    unverified = FlashAttentionWrapper(model, "auto")  # no sample batch: nothing unverified
    assert unverified.skipped_layers["layers.0"] == "no sample batch to verify the switch on"
    assert not any(layer.use_sdpa for layer in model.layers)


def test_model_sdpa_accepts_only_auto_on_off():
    with pytest.raises(ConfigError, match="model.sdpa"):
        load_config(cli=["model.sdpa=yes please"], environ={})


def test_model_sdpa_patches_the_model_on_both_drivers(tmp_path, naive_patcher):
    for engine in ("plain", "lightning"):
        config = load_config(
            template="digits",
            cli=[
                f"trainer.engine={engine}",
                f"run.output_dir={tmp_path / engine}",
                f"tracking.database=sqlite:///{tmp_path / 't.db'}",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=3",
                "trainer.enable_progress_bar=false",
                "loggers.tensorboard.enabled=false",
                "model.sdpa=on",
            ],
            environ={},
        )
        model = TokenClassifier()
        results = Trainer(model=model, training_config=config, log_config=False).train()
        assert results.global_step == 3
        assert all(layer.use_sdpa for layer in model.layers), engine
        run = ExperimentDB(str(tmp_path / "t.db")).get_run(int(results.run_id.split("-")[1]))
        assert run["tags"]["sdpa_patched_layers"] in (2, "2"), engine


class _Tokens(torch.utils.data.Dataset):
    """Hugging Face style dict items: a repeating 4-token pattern."""

    def __init__(self, n: int = 16) -> None:
        self.tokens = torch.randint(3, 40, (n, 4), generator=torch.Generator().manual_seed(1))

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.tokens[i].repeat(4)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


class _Stream(torch.utils.data.IterableDataset):
    """Digits-shaped items from a stream; counts how often it is read."""

    def __init__(self) -> None:
        self.reads = 0

    def __iter__(self):
        self.reads += 1
        generator = torch.Generator().manual_seed(0)
        for _ in range(64):
            yield {"inputs": torch.rand(64, generator=generator), "labels": torch.tensor(1)}


def _user_config(tmp_path, engine: str, *extra: str):
    return load_config(
        cli=[
            f"trainer.engine={engine}",
            f"run.output_dir={tmp_path / engine}",
            "tracking.enabled=false",
            "trainer.enable_progress_bar=false",
            "loggers.tensorboard.enabled=false",
            *extra,
        ],
        environ={},
    )


def test_a_hugging_face_gpt2_trains_with_sdpa_on_both_drivers(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    for engine in ("plain", "lightning"):
        config = GPT2Config(
            vocab_size=100, n_positions=16, n_embd=32, n_layer=1, n_head=2,
            bos_token_id=1, eos_token_id=2, pad_token_id=0, attn_implementation="eager",
        )  # fmt: skip
        model = GPT2LMHeadModel(config)
        run = _user_config(
            tmp_path, engine, "task.name=toy", "task.modality=text",
            "task.task_type=language_modeling", "task.vocab_size=100",
            "trainer.max_epochs=1", "data.batch_size=8", "model.sdpa=on",
        )  # fmt: skip
        Trainer(model=model, training_config=run, log_config=False).train(
            train_data=_Tokens(), val_data=_Tokens(8)
        )
        assert model.config._attn_implementation == "sdpa", engine


def test_model_sdpa_reads_nothing_from_a_stream(tmp_path, naive_patcher):
    for engine in ("plain", "lightning"):
        reads = {}
        for mode in ("off", "auto"):
            stream, model = _Stream(), TokenClassifier()
            run = _user_config(tmp_path, engine, "trainer.max_steps=2", f"model.sdpa={mode}")
            Trainer(model=model, training_config=run, log_config=False).train(train_data=stream)
            reads[mode] = stream.reads
            assert not any(layer.use_sdpa for layer in model.layers), engine  # unverified
        assert reads["auto"] == reads["off"], engine  # no read of its own
