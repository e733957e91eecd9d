"""``TaskSpec``: what a model learns, in the few numbers every component needs.

Loss strategies, collators, metrics and the zoo read a TaskSpec instead of the whole
config, so each stays usable on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

__all__ = ["Modality", "TaskSpec", "TaskType"]

Modality = Literal["text", "vision", "tabular", "heatmap"]
"""The kind of input a task takes (``task.modality``)."""
TaskType = Literal["classification", "language_modeling", "segmentation", "heatmap", "regression"]
"""What a task learns (``task.task_type``); it chooses the loss and the metrics."""
_MODALITIES = ("text", "vision", "tabular", "heatmap")
_TASK_TYPES = ("classification", "language_modeling", "segmentation", "heatmap", "regression")


@dataclass(frozen=True)
class TaskSpec:
    """The shape of a task.

    Args:
        name: Task name (``digits``, ``tiny_lm``, or your own).
        modality: ``text``, ``vision``, ``tabular`` or ``heatmap``.
        task_type: ``classification``, ``language_modeling``, ``segmentation``,
            ``heatmap`` or ``regression``.
        num_classes: Classes for classification / segmentation.
        vocab_size: Vocabulary size for text.
        max_seq_len: Longest sequence for text.
        image_size: ``(height, width)`` for vision and heatmap tasks.
        in_channels: Image channels.
        input_dim: Feature count for tabular data.
        pad_token_id: Padding id of text batches: the collator pads with it and the
            language-modeling loss ignores labels equal to it (None: no pad id, nothing
            is ignored by its value).
        ignore_index: Label value the loss ignores.
        loss: Loss strategy name; chosen from ``task_type`` when None.
        extra: Anything task-specific (plain, JSON-serialisable data).

    Examples:
        >>> TaskSpec.classification_tiny().num_classes
        10
    """

    name: str
    modality: Modality = "tabular"
    task_type: TaskType = "classification"
    num_classes: int | None = None
    vocab_size: int | None = None
    max_seq_len: int | None = None
    image_size: tuple[int, int] | None = None
    in_channels: int | None = None
    input_dim: int | None = None
    pad_token_id: int | None = None
    ignore_index: int = -100
    loss: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.modality not in _MODALITIES:
            raise ValueError(f"modality must be one of {_MODALITIES}, got {self.modality!r}")
        if self.task_type not in _TASK_TYPES:
            raise ValueError(f"task_type must be one of {_TASK_TYPES}, got {self.task_type!r}")
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(self.image_size))
        for name in ("num_classes", "vocab_size", "max_seq_len", "in_channels", "input_dim"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        _check_pad_token_id(self.pad_token_id, self.vocab_size)
        if self.task_type in ("classification", "segmentation") and self.num_classes is None:
            raise ValueError(f"task_type={self.task_type!r} needs num_classes")
        if self.task_type == "language_modeling" and self.vocab_size is None:
            raise ValueError("task_type='language_modeling' needs vocab_size")

    @property
    def loss_name(self) -> str:
        """The loss strategy to use: ``loss`` if set, else the one for ``task_type``."""
        return self.loss or self.task_type

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and configs)."""
        data = asdict(self)
        if data["image_size"] is not None:
            data["image_size"] = list(data["image_size"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """Build from plain data; unknown keys go to ``extra``."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        if extra:
            kwargs["extra"] = {**kwargs.get("extra", {}), **extra}
        return cls(**kwargs)

    @classmethod
    def language_modeling_tiny(cls, vocab_size: int = 96, max_seq_len: int = 64) -> TaskSpec:
        """A character-level language modeling task (token 0 is padding)."""
        return cls(
            "tiny_lm",
            modality="text",
            task_type="language_modeling",
            vocab_size=vocab_size,
            max_seq_len=max_seq_len,
            pad_token_id=0,
        )

    @classmethod
    def vision_tiny(cls, num_classes: int = 10, image_size: int = 32) -> TaskSpec:
        """A small image classification task."""
        return cls(
            "vision_tiny",
            modality="vision",
            task_type="classification",
            num_classes=num_classes,
            image_size=(image_size, image_size),
            in_channels=3,
        )

    @classmethod
    def classification_tiny(cls, num_classes: int = 10, input_dim: int = 64) -> TaskSpec:
        """A small tabular classification task (the shape of ``digits``)."""
        return cls(
            "classification_tiny",
            modality="tabular",
            task_type="classification",
            num_classes=num_classes,
            input_dim=input_dim,
        )


def _check_pad_token_id(pad_token_id: object, vocab_size: int | None) -> None:
    """Raise ValueError unless ``pad_token_id`` is None or a token id of the vocabulary."""
    if pad_token_id is None:
        return
    if isinstance(pad_token_id, bool) or not isinstance(pad_token_id, int):
        raise ValueError(f"pad_token_id must be an integer token id, got {pad_token_id!r}")
    if pad_token_id < 0:
        raise ValueError(f"pad_token_id must be a token id >= 0, got {pad_token_id}")
    if vocab_size is not None and pad_token_id >= vocab_size:
        raise ValueError(
            f"pad_token_id {pad_token_id} is not a token id of a vocabulary of {vocab_size} "
            f"(0 to {vocab_size - 1})"
        )
