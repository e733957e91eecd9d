"""``FlashAttentionWrapper``: switch attention layers to ``scaled_dot_product_attention``.

``torch.nn.functional.scaled_dot_product_attention`` (SDPA) picks a fused kernel where one
exists (FlashAttention or memory-efficient attention on CUDA, a fused CPU kernel, the
plain math otherwise) and never materialises the ``T x T`` attention matrix on the fused
paths. Many models still compute ``softmax(QK^T)V`` by hand. The wrapper finds the
attention implementations it knows how to switch, switches each one, and keeps the switch
only if the model's outputs on a sample batch stay equal within a tolerance, in eval and
in train mode; otherwise the switch is rolled back and the layer is reported skipped with
the reason.

What it knows is a registry of patchers (:data:`ATTENTION_PATCHERS`): Hugging Face models
(through their ``attn_implementation`` setting), ``nn.MultiheadAttention`` and modules that
already call SDPA (reported as already fused), and whatever a user registers. A patcher
is a small object with two methods::

    class MyPatcher:
        def matches(self, module: nn.Module) -> bool: ...       # is this layer mine?
        def patch(self, module: nn.Module) -> Callable[[], None]:  # switch; return undo
            ...                                              # raise AlreadyFusedError if it is

A patched module's children are not visited again.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

from trainforge.errors import AlreadyFusedError, AttentionPatchError
from trainforge.registry import Registry

__all__ = [
    "ATTENTION_PATCHERS",
    "AttentionPatcher",
    "FlashAttentionWrapper",
    "SdpaMode",
]

logger = logging.getLogger(__name__)

SdpaMode = Literal["auto", "on", "off"]


@runtime_checkable
class AttentionPatcher(Protocol):
    """Switches one kind of attention layer to SDPA (see the module docstring)."""

    def matches(self, module: nn.Module) -> bool:
        """True when this patcher handles ``module``."""

    def patch(self, module: nn.Module) -> Callable[[], None]:
        """Switch ``module`` to SDPA and return a function that undoes it.

        Raises:
            AlreadyFusedError: ``module`` already runs a fused kernel (nothing to do).
        """


class HuggingFacePatcher:
    """A ``transformers`` model: ``set_attn_implementation("sdpa")``."""

    def matches(self, module: nn.Module) -> bool:
        """A model with a Hugging Face config and ``set_attn_implementation``."""
        config = getattr(module, "config", None)
        return hasattr(config, "_attn_implementation") and hasattr(
            module, "set_attn_implementation"
        )

    def patch(self, module: nn.Module) -> Callable[[], None]:
        """Switch the attention implementation; undo switches it back."""
        before = module.config._attn_implementation  # type: ignore[union-attr]
        if before == "sdpa" or str(before).startswith("flash"):
            raise AlreadyFusedError(f"attn_implementation is already {before!r}")
        if not getattr(module, "_supports_sdpa", False):
            raise ValueError(f"{type(module).__name__} does not support attn_implementation='sdpa'")
        module.set_attn_implementation("sdpa")  # type: ignore[operator]
        return lambda: module.set_attn_implementation(before)  # type: ignore[operator]


class MultiheadAttentionPatcher:
    """``nn.MultiheadAttention``: its fast path already calls the fused kernels."""

    def matches(self, module: nn.Module) -> bool:
        """Any ``nn.MultiheadAttention``."""
        return isinstance(module, nn.MultiheadAttention)

    def patch(self, module: nn.Module) -> Callable[[], None]:
        """Nothing to switch."""
        raise AlreadyFusedError("nn.MultiheadAttention runs fused attention kernels itself")


class SdpaCallerPatcher:
    """A module whose ``forward`` already calls ``scaled_dot_product_attention``."""

    def matches(self, module: nn.Module) -> bool:
        """An attention-named module whose own forward source calls SDPA."""
        if "attention" not in type(module).__name__.lower():
            return False
        try:
            source = inspect.getsource(type(module).forward)
        except (OSError, TypeError):
            return False
        return "scaled_dot_product_attention" in source

    def patch(self, module: nn.Module) -> Callable[[], None]:
        """Nothing to switch."""
        raise AlreadyFusedError(
            f"{type(module).__name__}.forward calls scaled_dot_product_attention"
        )


ATTENTION_PATCHERS: Registry[AttentionPatcher] = Registry("attention patcher")
"""Patchers by name, tried in name order; add yours with ``ATTENTION_PATCHERS.register``."""
ATTENTION_PATCHERS.register("huggingface", HuggingFacePatcher())
ATTENTION_PATCHERS.register("multihead_attention", MultiheadAttentionPatcher())
ATTENTION_PATCHERS.register("sdpa_caller", SdpaCallerPatcher())


def _tensors(output: Any) -> Iterator[torch.Tensor]:
    """Every floating tensor in a model's output (tensor, tuple, dict, ModelOutput)."""
    if isinstance(output, torch.Tensor):
        if output.is_floating_point():
            yield output
    elif isinstance(output, Mapping):
        for value in output.values():
            yield from _tensors(value)
    elif isinstance(output, (tuple, list)):
        for value in output:
            yield from _tensors(value)


@contextmanager
def _no_dropout(model: nn.Module) -> Iterator[None]:
    """Dropout off (train mode otherwise): kernels draw dropout masks differently."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    saved = [m.p for m in layers]
    for m in layers:
        m.p = 0.0
    try:
        yield
    finally:
        for m, p in zip(layers, saved, strict=True):
            m.p = p


@dataclass
class FlashAttentionWrapper:
    """Switch ``model``'s attention layers to SDPA where the outputs stay equal.

    Patching happens on construction. Every switch is checked on ``sample_inputs`` in
    eval mode and in train mode (dropout off) and rolled back when any output tensor
    differs by more than ``atol + rtol * max |output|``.

    Args:
        model: The network (patched in place).
        config: ``model.sdpa`` of the training config: ``auto`` (patch what verifies,
            report the rest), ``on`` (fail unless every known attention layer runs SDPA),
            ``off`` (change nothing).
        sample_inputs: A batch the model takes: a tensor, or a mapping of keyword
            arguments (``{"input_ids": ...}``), or a function returning one (called only
            when a switch needs checking; None from it means no sample). Needed to
            verify a switch.
        atol: Absolute tolerance of the check.
        rtol: Tolerance relative to the largest output magnitude.
        patchers: Patcher names to try (all of :data:`ATTENTION_PATCHERS` when None).

    Attributes:
        sdpa_available: ``scaled_dot_product_attention`` exists in this torch.
        backend: Where SDPA runs: ``cuda`` (fused kernels) or ``cpu`` (fallback).
        patched_layers: Names of the layers switched to SDPA.
        skipped_layers: Layer name -> why it was not switched.

    Raises:
        AttentionPatchError: ``config="on"`` and a known attention layer was not switched.

    Examples:
        >>> from transformers import GPT2Config, GPT2LMHeadModel
        >>> config = GPT2Config(n_layer=1, n_embd=32, n_head=2, attn_implementation="eager")
        >>> ids = torch.zeros(1, 8, dtype=torch.long)
        >>> FlashAttentionWrapper(GPT2LMHeadModel(config), "auto", ids).patched_layers
        ['<model>']
    """

    model: nn.Module
    config: SdpaMode | Mapping[str, Any] = "auto"
    sample_inputs: Any = None
    atol: float = 1e-5
    rtol: float = 1e-4
    patchers: list[str] | None = None
    sdpa_available: bool = field(init=False)
    backend: str = field(init=False)
    patched_layers: list[str] = field(init=False, default_factory=list)
    skipped_layers: dict[str, str] = field(init=False, default_factory=dict)
    _undo: list[Callable[[], None]] = field(init=False, default_factory=list, repr=False)
    _fused: set[str] = field(init=False, default_factory=set, repr=False)

    def __post_init__(self) -> None:
        mode = self.config.get("sdpa", "auto") if isinstance(self.config, Mapping) else self.config
        if mode not in ("auto", "on", "off"):
            raise AttentionPatchError(
                f"model.sdpa must be auto, on or off, got {mode!r}", key="model.sdpa"
            )
        self.mode: SdpaMode = mode
        self.sdpa_available = hasattr(F, "scaled_dot_product_attention")
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        self.backend = "cuda" if device.type == "cuda" else "cpu"
        if self.mode == "off":
            return
        if not self.sdpa_available:
            self._refuse_or_skip("<model>", "this torch has no scaled_dot_product_attention")
            return
        self._patch_all()
        if self.mode == "on":
            failed = {k: v for k, v in self.skipped_layers.items() if k not in self._fused}
            if failed:
                self.restore()
                details = "; ".join(f"{k}: {v}" for k, v in failed.items())
                raise AttentionPatchError(
                    f"model.sdpa=on, but {len(failed)} attention layer(s) cannot use SDPA: "
                    f"{details}",
                    key="model.sdpa",
                    hint="set model.sdpa=auto to keep those layers as they are",
                )

    def _refuse_or_skip(self, name: str, reason: str) -> None:
        if self.mode == "on":
            raise AttentionPatchError(f"model.sdpa=on: {reason}", key="model.sdpa")
        self.skipped_layers[name] = reason

    def _chosen(self) -> list[AttentionPatcher]:
        names = self.patchers if self.patchers is not None else ATTENTION_PATCHERS.list()
        return [ATTENTION_PATCHERS.get(n) for n in names]

    def _sample(self) -> Any:
        """The sample batch, built on first use when a function was given."""
        if callable(self.sample_inputs) and not isinstance(self.sample_inputs, nn.Module):
            self.sample_inputs = self.sample_inputs()
        return self.sample_inputs

    def _patch_all(self) -> None:
        patchers = self._chosen()
        handled: list[str] = []
        reference: list[list[torch.Tensor]] | None = None
        for name, module in self.model.named_modules():
            if any(name.startswith(h + ".") or h == "" for h in handled if h != name):
                continue
            patcher = next((p for p in patchers if p.matches(module)), None)
            if patcher is None:
                continue
            label = name or "<model>"
            handled.append(name)
            try:
                undo = patcher.patch(module)
            except AlreadyFusedError as fused:
                self.skipped_layers[label] = f"already fused: {fused.message}"
                self._fused.add(label)
                continue
            except Exception as exc:  # a patcher's failure skips its layer, never the run
                self.skipped_layers[label] = f"patch failed: {type(exc).__name__}: {exc}"
                continue
            if self._sample() is None:
                undo()
                self.skipped_layers[label] = "no sample batch to verify the switch on"
                continue
            if reference is None:  # the unpatched outputs (this layer switched back first)
                undo()
                reference = self._outputs()
                undo = patcher.patch(module)
            problem = self._compare(reference, self._outputs())
            if problem is None:
                self.patched_layers.append(label)
                self._undo.append(undo)
            else:
                undo()
                self.skipped_layers[label] = f"rolled back: {problem}"
        for label in self.patched_layers:
            logger.info("sdpa: %s now uses scaled_dot_product_attention", label)
        for label, reason in self.skipped_layers.items():
            logger.info("sdpa: %s left as is (%s)", label, reason)

    def _outputs(self) -> list[list[torch.Tensor]]:
        """The model's float outputs on the sample batch, in eval then train mode."""
        was_training = self.model.training
        results = []
        try:
            with torch.no_grad(), _no_dropout(self.model):
                for training in (False, True):
                    self.model.train(training)
                    if isinstance(self.sample_inputs, Mapping):
                        output = self.model(**self.sample_inputs)
                    else:
                        output = self.model(self.sample_inputs)
                    results.append([t.detach().float().clone() for t in _tensors(output)])
        finally:
            self.model.train(was_training)
        return results

    def _compare(
        self, expected: list[list[torch.Tensor]], actual: list[list[torch.Tensor]]
    ) -> str | None:
        for mode, want_all, got_all in zip(("eval", "train"), expected, actual, strict=True):
            for want, got in zip(want_all, got_all, strict=True):
                diff = (want - got).abs().max().item() if want.numel() else 0.0
                scale = want.abs().max().item() if want.numel() else 0.0
                if not diff <= self.atol + self.rtol * scale:  # NaN fails too
                    return (
                        f"{mode}-mode outputs differ by {diff:.3g} "
                        f"(> {self.atol:g} + {self.rtol:g} x {scale:.3g})"
                    )
        return None

    def restore(self) -> None:
        """Undo every switch (newest first)."""
        while self._undo:
            self._undo.pop()()
        self.patched_layers.clear()

    def report(self) -> dict[str, Any]:
        """Plain data: availability, backend, patched and skipped layers."""
        return {
            "sdpa_available": self.sdpa_available,
            "backend": self.backend,
            "mode": self.mode,
            "patched_layers": list(self.patched_layers),
            "skipped_layers": dict(self.skipped_layers),
        }
