"""The training engine's torch components, usable with or without Lightning."""

from trainforge.engine._task import Modality, TaskSpec, TaskType

__all__ = ["Modality", "TaskSpec", "TaskType"]
