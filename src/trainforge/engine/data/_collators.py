"""Collators: turn a list of samples into one batch, per modality, behind one registry.

Samples are dicts (``{"inputs": ..., "labels": ...}``, ``input_ids`` accepted for text)
or ``(inputs, labels)`` tuples; the text and vision collators return dict batches (see
:mod:`trainforge.engine._batch`), the default collator keeps the sample structure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import default_collate

from trainforge.engine._batch import as_batch_dict
from trainforge.engine._task import TaskSpec
from trainforge.engine.data._batched import CollatedColumns
from trainforge.registry import Registry

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CollatorRegistry",
    "TextCollator",
    "VisionCollator",
    "collate_columns",
]

Collator = Callable[[list[Any]], Any]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _CollatorRegistry(Registry[Callable[..., Collator]]):
    """Collator factories by name, with the default collator of each modality."""

    def __init__(self) -> None:
        super().__init__("collator")
        self.modalities: dict[str, str] = {}
        self.descriptions: dict[str, str] = {}

    def add(
        self, name: str, *, modalities: Sequence[str] = (), description: str = ""
    ) -> Callable[[Callable[..., Collator]], Callable[..., Collator]]:
        """Decorator: register a collator factory, the default for ``modalities``."""

        def decorator(factory: Callable[..., Collator]) -> Callable[..., Collator]:
            self.register(name, factory)
            for modality in modalities:
                self.modalities[modality] = name
            self.descriptions[name] = description or (factory.__doc__ or "").split("\n")[0]
            return factory

        return decorator

    def get_collator(self, task_or_name: TaskSpec | str | None = None, **kwargs: Any) -> Collator:
        """Build a collator by name, or the one a TaskSpec's modality needs.

        A TaskSpec passes its ``pad_token_id`` / ``ignore_index`` to the text collator
        and may name a collator in ``extra["collator"]``; ``kwargs`` win.
        """
        if isinstance(task_or_name, TaskSpec):
            spec = task_or_name
            name = spec.extra.get("collator") or self.modalities.get(spec.modality, "default")
            if name == "text":
                kwargs = {
                    "pad_token_id": spec.pad_token_id,
                    "ignore_index": spec.ignore_index,
                    **kwargs,
                }
        else:
            name = task_or_name or "default"
        return self.get(name)(**kwargs)

    def list_collators(self) -> list[dict[str, str]]:
        """One ``{"name", "modalities", "description"}`` row per collator."""
        rows = []
        for name in self.list():
            mods = sorted(m for m, n in self.modalities.items() if n == name)
            rows.append(
                {
                    "name": name,
                    "modalities": ", ".join(mods) or "-",
                    "description": self.descriptions.get(name, ""),
                }
            )
        return rows


CollatorRegistry = _CollatorRegistry()
"""Every collator by name; add yours with ``@CollatorRegistry.add("name")``."""


class TextCollator:
    """Pads token sequences to the longest in the batch, with a mask and padded labels.

    Each sample holds 1-D token ids (``inputs`` or ``input_ids``; a tuple's first
    element) and optionally ``labels``: a sequence as long as the tokens (padded with
    ``ignore_index``) or one class id (stacked). Without labels, no ``labels`` key is
    produced; the language-modeling loss then reads the tokens and the mask.

    The batch keeps the samples' key names: ``inputs`` samples give an ``inputs`` batch,
    ``input_ids`` samples (Hugging Face tokenizers and datasets) an ``input_ids`` batch,
    so it reaches a ``transformers`` model by its parameter names. Other per-token
    columns (``token_type_ids``, ...) are padded with 0, per-sample values are stacked.
    A sample that carries its own ``attention_mask`` (pre-padded tokenizer output) keeps
    it, padded with 0; in one without, every token is attended.

    Args:
        pad_token_id: Token id used for padding the tokens; taken from ``tokenizer``
            when one is given.
        ignore_index: Value used for padding sequence labels.
        padding_side: ``right`` (default) or ``left``; a tokenizer's own when given.
        max_length: Truncate longer sequences (None: no limit).
        tokenizer: A ``transformers`` tokenizer (anything with ``pad_token_id``); its pad
            id is kept as ``tokenizer_pad_token_id``, which a run whose task sets no
            ``task.pad_token_id`` takes as the task's pad id.

    Raises:
        ValueError: A tokenizer without a pad token.

    Examples:
        >>> batch = TextCollator()([{"inputs": [5, 6, 7]}, {"inputs": [8]}])
        >>> batch["inputs"].tolist(), batch["attention_mask"].tolist()
        ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    """

    def __init__(
        self,
        pad_token_id: int | None = 0,
        ignore_index: int = -100,
        padding_side: str | None = "right",
        max_length: int | None = None,
        tokenizer: Any = None,
    ) -> None:
        self.tokenizer_pad_token_id: int | None = None
        if tokenizer is not None:
            pad = getattr(tokenizer, "pad_token_id", None)
            if pad is None:
                raise ValueError(
                    f"the tokenizer {type(tokenizer).__name__} has no pad token; set one "
                    "(tokenizer.pad_token = tokenizer.eos_token for GPT-2 style models)"
                )
            pad_token_id = self.tokenizer_pad_token_id = int(pad)
            padding_side = getattr(tokenizer, "padding_side", None) or padding_side
        padding_side = padding_side or "right"
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.pad_token_id = 0 if pad_token_id is None else int(pad_token_id)
        self.ignore_index = ignore_index
        self.padding_side = padding_side
        self.max_length = max_length

    def __call__(self, samples: list[Any]) -> dict[str, Tensor]:
        """Collate ``samples`` into ``{"inputs" | "input_ids", "attention_mask"[, "labels"]}``."""
        rows = [as_batch_dict(s) for s in samples]
        key = "inputs" if "inputs" in rows[0] else "input_ids"
        ids = [self._tokens(r.get(key)) for r in rows]
        length = max(len(t) for t in ids)
        batch = {
            key: self._pad(ids, length, self.pad_token_id),
            "attention_mask": self._pad(self._masks(rows, ids), length, 0),
        }
        labels = [r.get("labels") for r in rows]
        if all(lab is not None for lab in labels):
            tensors = [torch.as_tensor(lab) for lab in labels]
            if all(t.dim() == 0 for t in tensors):
                batch["labels"] = torch.stack(tensors)
            else:
                tensors = [self._tokens(t) for t in tensors]
                batch["labels"] = self._pad(tensors, length, self.ignore_index)
        for name in rows[0]:
            if name in batch or name in ("labels", "inputs", "input_ids"):
                continue
            values = [torch.as_tensor(r[name]) for r in rows if name in r]
            if len(values) != len(rows):
                continue
            if all(v.dim() == 0 for v in values):
                batch[name] = torch.stack(values)
            elif all(v.dim() == 1 for v in values):
                batch[name] = self._pad([self._tokens(v) for v in values], length, 0)
        return batch

    def _masks(self, rows: list[dict[str, Any]], ids: list[Tensor]) -> list[Tensor]:
        """Each sample's own attention mask (truncated as its tokens), else all ones."""
        masks = []
        for index, (row, tokens) in enumerate(zip(rows, ids)):
            given = row.get("attention_mask")
            mask = torch.ones_like(tokens) if given is None else self._tokens(given)
            masks.append(mask)
            if len(mask) != len(tokens):
                raise ValueError(
                    f"sample {index}: its attention_mask has {len(mask)} entries for "
                    f"{len(tokens)} tokens; a mask needs one entry per token"
                )
        return masks

    def _tokens(self, value: Any) -> Tensor:
        if value is None:
            raise KeyError("a text sample needs 'inputs' (or 'input_ids') holding token ids")
        tokens = torch.as_tensor(value, dtype=torch.long).reshape(-1)
        return tokens[: self.max_length] if self.max_length else tokens

    def _pad(self, tensors: list[Tensor], length: int, value: int) -> Tensor:
        out = torch.full((len(tensors), length), value, dtype=torch.long)
        for i, t in enumerate(tensors):
            if self.padding_side == "right":
                out[i, : len(t)] = t
            else:
                out[i, length - len(t) :] = t
        return out


class VisionCollator:
    """Stacks images and normalises them per channel: ``(x - mean) / std``.

    ``uint8`` images are first scaled to ``[0, 1]``. ``mean`` / ``std`` of length 1 apply
    to every channel; the default ``(0.5,)`` maps ``[0, 1]`` to ``[-1, 1]`` for any
    channel count (``IMAGENET_MEAN`` / ``IMAGENET_STD`` are provided for RGB models).
    Labels (class ids, masks, heatmaps) are stacked unchanged.

    Args:
        mean: Per-channel mean.
        std: Per-channel standard deviation.

    Examples:
        >>> batch = VisionCollator(mean=(0.5,), std=(0.25,))([(torch.ones(1, 2, 2), 3)])
        >>> batch["inputs"].flatten().tolist(), batch["labels"].tolist()
        ([2.0, 2.0, 2.0, 2.0], [3])
    """

    def __init__(self, mean: Sequence[float] = (0.5,), std: Sequence[float] = (0.5,)) -> None:
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)

    def __call__(self, samples: list[Any]) -> dict[str, Tensor]:
        """Collate ``samples`` into ``{"inputs"[, "labels"]}`` with normalised images."""
        rows = [as_batch_dict(s) for s in samples]
        images = torch.stack([torch.as_tensor(r["inputs"]) for r in rows])
        if images.dtype == torch.uint8:
            images = images.float().div_(255.0)
        images = images.float()
        channels = images.size(1)
        if len(self.mean) not in (1, channels) or len(self.std) not in (1, channels):
            raise ValueError(
                f"images have {channels} channels but mean/std have {len(self.mean)}/"
                f"{len(self.std)} values; pass one value per channel (or a single value)"
            )
        shape = (1, -1) + (1,) * (images.dim() - 2)
        batch = {"inputs": (images - self.mean.view(shape)) / self.std.view(shape)}
        if all("labels" in r for r in rows):
            batch["labels"] = torch.stack([torch.as_tensor(r["labels"]) for r in rows])
        return batch


@CollatorRegistry.add("text", modalities=("text",), description="dynamic padding + mask")
def _text(**kwargs: Any) -> Collator:
    return TextCollator(**kwargs)


@CollatorRegistry.add(
    "vision", modalities=("vision", "heatmap"), description="stack + per-channel normalisation"
)
def _vision(**kwargs: Any) -> Collator:
    return VisionCollator(**kwargs)


def collate_columns(samples: list[Any]) -> Any:
    """``default_collate``, with list-valued columns of dict samples made tensors first.

    A ``datasets.Dataset`` row is a dict whose sequence columns are Python lists;
    ``default_collate`` would transpose those into a list of per-position tensors.
    Lists of equal length become one ``[batch, length]`` tensor here instead.

    Examples:
        >>> collate_columns([{"x": [1, 2], "y": 0}, {"x": [3, 4], "y": 1}])["x"].tolist()
        [[1, 2], [3, 4]]
    """
    if type(samples) is CollatedColumns:  # a batch gathered whole (TensorRows)
        return list(samples)
    if samples and isinstance(samples[0], dict):
        samples = [
            {k: torch.as_tensor(v) if isinstance(v, list) else v for k, v in s.items()}
            for s in samples
        ]
    return default_collate(samples)


@CollatorRegistry.add(
    "default", modalities=("tabular",), description="torch default_collate (list columns stacked)"
)
def _default() -> Collator:
    return collate_columns
